/**
 * The events a stamping round of this process handed over (LogSignals.logStamped), kept by a
 * subscription runner until its reading reaches them: a window of the log that begins exactly where
 * a handed range begins is then taken from memory instead of read back from the database.
 *
 * A handed range is all of the positions (after, after + n], as the log holds them once stamped, so
 * using it for exactly that window skips nothing and reorders nothing; anything else (a window that
 * begins elsewhere, a range not handed, one larger than a page) is read from the log as before. At
 * most MAX_RANGES ranges are kept, the newest; ranges the reading has passed are dropped.
 */
import type { ChangeEvent } from "../domain/change-event.js";
import type { StampedEvents } from "../storage/log-channels.js";

const MAX_RANGES = 16;

export interface HandedWindow {
  /** The window's end: the last position of the handed range. */
  upTo: number;
  /** Every event of (after, upTo], in position order (not filtered for the subscription). */
  events: readonly ChangeEvent[];
}

export class HandedEvents {
  /** Handed ranges by the position before their first one, oldest first. */
  private readonly ranges = new Map<number, StampedEvents>();

  /** Keeps a handed range unless the reading (at `cursor`) is past it already. */
  offer(stamped: StampedEvents, cursor: number): void {
    this.dropUpTo(cursor);
    if (stamped.events.length === 0 || end(stamped) <= cursor || !dense(stamped)) return;
    this.ranges.set(stamped.after, stamped);
    for (const after of this.ranges.keys()) {
      if (this.ranges.size <= MAX_RANGES) break;
      this.ranges.delete(after);
    }
  }

  /**
   * The window (after, …] from a handed range that begins at `after`, ends at or before `upTo` and
   * holds at most `limit` events; undefined when there is none (read the log).
   */
  window(after: number, upTo: number, limit: number): HandedWindow | undefined {
    this.dropUpTo(after);
    const stamped = this.ranges.get(after);
    if (!stamped || end(stamped) > upTo || stamped.events.length > limit) return undefined;
    return { upTo: end(stamped), events: stamped.events };
  }

  get size(): number {
    return this.ranges.size;
  }

  /** Forgets the ranges that end at or before `position` (the reading has passed them). */
  private dropUpTo(position: number): void {
    for (const [after, stamped] of this.ranges)
      if (end(stamped) <= position) this.ranges.delete(after);
  }
}

/** The range's events hold exactly its positions, in order (what the stamp promises; checked). */
function dense(stamped: StampedEvents): boolean {
  return stamped.events.every((event, i) => event.position === stamped.after + i + 1);
}

function end(stamped: StampedEvents): number {
  return stamped.after + stamped.events.length;
}
