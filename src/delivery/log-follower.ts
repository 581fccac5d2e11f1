/**
 * Follows the change log for one consumer (DESIGN §4: everything downstream reads the log by
 * position): a subscription's runner, and any other consumer of the log (a scenario's trigger).
 * From the consumer's cursor it reads the log in position windows up to the head, hands each
 * window's events to the consumer, and stops while the consumer has no room, until woken.
 *
 * Its modes:
 * - idle:    not reading; the log is read up to the last head known (or the last reading failed:
 *            the next poke reads again);
 * - reading: a reading runs; a poke meanwhile makes it look for a newer head before it ends;
 * - starved: reading stopped for want of room; the consumer wakes it once room is made;
 * - stopped: the consumer stopped; nothing more is read.
 * Beside its mode, `behind` says whether more of the log is known to wait past the cursor.
 *
 * Every position up to a head a poke announced (the sequencer's NOTIFY payload) is stamped and
 * committed, so the database is asked for the head only once the cursor has reached it. Events the
 * sequencer of this process handed over with a poke are taken instead of a read for exactly their
 * window (HandedEvents).
 */
import type { DatabaseOutageLog } from "../database-outage-log.js";
import type { ChangeEvent } from "../domain/change-event.js";
import type { StampedEvents } from "../storage/log-channels.js";
import { HandedEvents } from "./handed-events.js";

export const FOLLOWER_MODES = ["idle", "reading", "starved", "stopped"] as const;
export type FollowerMode = (typeof FOLLOWER_MODES)[number];

/** Where the log is read from, for what. */
export interface LogSource<D> {
  /**
   * The definition reads are made for now (a subscription's, whose SQL pre-filter a PUT may change).
   * Compared by identity: a window read for a definition replaced meanwhile is read again.
   */
  definition(): D;
  /**
   * Up to `limit` events of the positions (after, upTo], in position order, read for `definition`
   * (a pre-filter may leave out events the consumer would refuse anyway).
   */
  read(after: number, upTo: number, limit: number, definition: D): Promise<readonly ChangeEvent[]>;
  /** The log's highest stamped position. */
  head(): Promise<number>;
}

/** The consumer's read position (the watermark tracker's). */
export interface LogCursor {
  /** Every position up to it has been read. */
  readonly cursor: number;
  readUpTo(position: number): void;
}

/** What the follower hands the events to. */
export interface LogConsumer {
  /** Resolves once the consumer can take events; asked before each reading (a failure ends it). */
  prepare(): Promise<void>;
  /** Room for more events; without it the follower starves until woken. */
  hasRoom(): boolean;
  /** Room to read the next window while this one is handed over (one read ahead). */
  hasRoomAhead(): boolean;
  /**
   * The events read of the positions (after, …], in position order. Handed-over windows are not
   * pre-filtered: the consumer drops what it does not want.
   */
  accept(events: readonly ChangeEvent[], after: number): void;
  /** A window was handed over and the cursor moved past it. */
  windowRead(): void;
}

export interface FollowerOptions {
  /** Events per read (one page). */
  pageSize: number;
  /** Told of each reading that failed or succeeded (logged once per database outage). */
  outage: Pick<DatabaseOutageLog, "failed" | "succeeded">;
}

interface PendingRead<D> {
  after: number;
  upTo: number;
  /** The definition the read was made for. */
  definition: D;
  events: Promise<readonly ChangeEvent[]>;
}

/** Windows grow up to this many pages of positions while few events come back. */
const MAX_WINDOW_PAGES = 5;

export class LogFollower<D> {
  private current: FollowerMode = "idle";
  /** Poked while reading: look for a newer head before ending. */
  private again = false;
  /** The last window stopped short of the head, or reading starved: more of the log is waiting. */
  private behindHead = false;
  /** A backlog was read since backlogCaughtUp last said so. */
  private backlog = false;
  /** The highest log head known (a poke's, or a read of the head). */
  private knownHead = 0;
  /** Positions per read (see readToHead). */
  private windowSize: number;
  /** Events this process's sequencer handed over, used instead of reading them back. */
  private readonly handed = new HandedEvents();

  constructor(
    private readonly source: LogSource<D>,
    private readonly position: LogCursor,
    private readonly consumer: LogConsumer,
    private readonly options: FollowerOptions,
  ) {
    this.windowSize = options.pageSize;
  }

  get mode(): FollowerMode {
    return this.current;
  }

  /** Reading stopped for want of room: wake() reads on. */
  get starved(): boolean {
    return this.current === "starved";
  }

  /** More of the log is known to wait past the cursor (the last window stopped short of the head). */
  get behind(): boolean {
    return this.behindHead;
  }

  /**
   * True once after a backlog (reading was behind the head, or starved) has been read to the head:
   * the consumer may write its progress at once instead of at its next tick.
   */
  backlogCaughtUp(): boolean {
    if (!this.backlog || this.behindHead) return false;
    this.backlog = false;
    return true;
  }

  /**
   * New events may be in the log. `head`, when known (the sequencer's NOTIFY payload), saves
   * reading it: every position up to it is stamped and committed. `stamped` (from a sequencer of
   * this process) holds the events of a range of positions up to `head`: a read of exactly that
   * range takes them instead (see HandedEvents).
   */
  poke(head?: number, stamped?: StampedEvents): void {
    if (this.current === "stopped") return;
    if (head !== undefined && head > this.knownHead) this.knownHead = head;
    if (stamped) this.handed.offer(stamped, this.position.cursor);
    void this.follow();
  }

  /** Reads on (room was made, or something else may let it read). */
  wake(): void {
    void this.follow();
  }

  /** Reads nothing more; a read in flight is dropped when it returns. */
  stop(): void {
    this.current = "stopped";
  }

  private async follow(): Promise<void> {
    if (this.current === "reading") {
      this.again = true;
      return;
    }
    if (this.current === "stopped") return;
    this.current = "reading";
    this.again = false;
    try {
      await this.consumer.prepare();
      await this.readToHead();
      this.options.outage.succeeded();
    } catch (error) {
      this.options.outage.failed(error, "reading the log failed; retrying at the next poll");
    } finally {
      if (this.current === "reading") this.current = "idle";
    }
  }

  /**
   * Starts reading the window (after, upTo] of the log for the source's definition, or takes a
   * narrower window (after, …] from the events the sequencer handed over.
   */
  private startRead(after: number, upTo: number): PendingRead<D> {
    const definition = this.source.definition();
    const page = this.options.pageSize;
    const handed = this.handed.window(after, upTo, page);
    if (handed)
      return { after, upTo: handed.upTo, definition, events: Promise.resolve(handed.events) };
    const events = this.source.read(after, upTo, page, definition);
    // A read started ahead may be dropped unread (stop, full buffer); its failure is then nobody's.
    events.catch(() => undefined);
    return { after, upTo, definition, events };
  }

  /**
   * Reads the log in position windows while the consumer has room. While a backlog exists the next
   * window is read while this one is handed over (one read ahead), so the consumer does not wait
   * for the database between pages. Windows are a page of positions wide while the log is dense (a
   * window then cannot hold more than one page, so the next one is known before this one returns)
   * and grow up to five pages while few events come back (fewer queries for a sparse filter).
   */
  private async readToHead(): Promise<void> {
    const page = this.options.pageSize;
    let ahead: PendingRead<D> | undefined;
    while (this.current === "reading") {
      if (!this.consumer.hasRoom()) {
        this.current = "starved";
        this.again = false;
        this.behindHead = true;
        this.backlog = true;
        return;
      }
      const cursor = this.position.cursor;
      // Every position up to a head we know of is stamped and committed; ask the database only when
      // we have caught up with it.
      if (this.knownHead <= cursor)
        this.knownHead = Math.max(this.knownHead, await this.source.head());
      const head = this.knownHead;
      if (head <= cursor) {
        this.behindHead = false;
        // Poked meanwhile: the head may have moved since it was read.
        if (!this.again) return;
        this.again = false;
        continue;
      }
      const read =
        ahead && ahead.after === cursor && ahead.definition === this.source.definition()
          ? ahead
          : this.startRead(cursor, Math.min(head, cursor + this.windowSize));
      ahead = undefined;
      if (read.upTo < head && this.consumer.hasRoomAhead())
        ahead = this.startRead(read.upTo, Math.min(head, read.upTo + this.windowSize));
      const events = await read.events;
      if (this.current !== "reading") return;
      // Read for a definition replaced meanwhile (its events may be trimmed for it): read the window
      // again for the new one.
      if (read.definition !== this.source.definition()) continue;
      this.consumer.accept(events, cursor);
      // A full page may stop short of its window; otherwise the whole window has been examined.
      const cut = events.length === page && (events.at(-1)?.position ?? read.upTo) < read.upTo;
      this.position.readUpTo(cut ? (events.at(-1)?.position ?? cursor) : read.upTo);
      if (cut || events.length > page / 2) this.windowSize = page;
      else this.windowSize = Math.min(page * MAX_WINDOW_PAGES, this.windowSize * 2);
      this.behindHead = this.position.cursor < head;
      if (this.behindHead) this.backlog = true;
      this.consumer.windowRead();
    }
  }
}
