/**
 * The in-process shortcuts of the change log, for one database: when writer, sequencer and delivery
 * worker share a process (`herald start` runs all three), they tell each other directly instead of
 * waiting for a poll or a NOTIFY round trip through the server: a writer calls `inboxCommitted`
 * after its transaction committed, the sequencer calls `logStamped` after its stamping transaction
 * committed. Both are only shortcuts: the NOTIFYs still go out for other processes and the polls
 * still run, so a missed or absent local wake-up only costs time. It also paces the writers' inbox
 * NOTIFY (takeInboxNotifyTurn).
 *
 * main.ts makes one beside the database it opens and hands it to every part of the process. Never
 * share one between two Database objects (one pool or one embedded database each): a head announced
 * for one database must never reach a worker reading another, where positions up to it may not be
 * stamped yet.
 */
import type { InboxNotifyTurns, StampedEvents } from "./log-channels.js";
import { INBOX_NOTIFY_INTERVAL_MS } from "./log-channels.js";

/** Told each new head, with the round's events when it has them (see logStamped). */
export type StampListener = (head: number, stamped?: StampedEvents) => void;

export class LogSignals implements InboxNotifyTurns {
  private lastInboxNotifyAt = 0;
  private readonly inbox = new Set<() => void>();
  /** Each stamp listener, and whether it wants the stamped events now. */
  private readonly log = new Map<StampListener, () => boolean>();
  /** Stamping rounds of this process's sequencer that have not ended yet (see stampingRound). */
  private roundsInFlight = 0;
  private readonly roundsEnded = new Set<() => void>();

  /** True when this write should send the inbox NOTIFY (at most once per interval). */
  takeInboxNotifyTurn(): boolean {
    const now = Date.now();
    if (now - this.lastInboxNotifyAt < INBOX_NOTIFY_INTERVAL_MS) return false;
    this.lastInboxNotifyAt = now;
    return true;
  }

  /**
   * A transaction that appended change events has committed (call it after the commit returned,
   * never before: the sequencer may look at once). Wakes a sequencer of this process, if any.
   */
  inboxCommitted(): void {
    for (const listener of this.inbox) listener();
  }

  /**
   * Runs a write that appends change events in its own transaction and, once it has committed
   * (resolved), wakes a sequencer of this process. A write that fails committed nothing: no
   * wake-up.
   */
  async committingEvents<T>(write: () => Promise<T>): Promise<T> {
    const result = await write();
    this.inboxCommitted();
    return result;
  }

  /** The sequencer of this process listens for local commits; returns the way to stop listening. */
  onInboxCommitted(listener: () => void): () => void {
    this.inbox.add(listener);
    return () => this.inbox.delete(listener);
  }

  /**
   * Every position up to `head` is stamped and committed (the same promise as the NOTIFY payload on
   * LOG_CHANNEL). Wakes the delivery workers of this process, if any. `stamped`, when given, holds
   * the events of the round's positions, so that a worker whose reading has reached them need not
   * read them back (the log stays the source of truth: a worker uses them only for exactly that
   * range).
   */
  logStamped(head: number, stamped?: StampedEvents): void {
    for (const listener of this.log.keys()) listener(head, stamped);
  }

  /**
   * Delivery workers of this process listen for stamps; returns the way to stop listening.
   * `wantsEvents` says whether the listener has a use for the stamped events right now (a worker
   * driving no subscription has none): the sequencer reads them only for someone.
   */
  onLogStamped(listener: StampListener, wantsEvents: () => boolean = () => true): () => void {
    this.log.set(listener, wantsEvents);
    return () => this.log.delete(listener);
  }

  /** Some delivery worker of this process would use the events of a stamp now. */
  wantsStampedEvents(): boolean {
    for (const wants of this.log.values()) if (wants()) return true;
    return false;
  }

  /**
   * The sequencer of this process starts a stamping round; call the function it returns when the
   * round has ended, committed or failed, after its `logStamped`. While a round runs, its NOTIFY
   * may reach this process's workers before the round's own result (the server sends both at
   * commit): a worker that waits for the round (see stampingRoundsInFlight) gets the head with its
   * events instead of reading them back.
   */
  stampingRound(): () => void {
    this.roundsInFlight++;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      if (--this.roundsInFlight > 0) return;
      for (const listener of this.roundsEnded) listener();
    };
  }

  /** Stamping rounds of this process's sequencer running now. */
  stampingRoundsInFlight(): number {
    return this.roundsInFlight;
  }

  /** Called each time no stamping round of this process runs any more; returns the way to stop. */
  onStampingRoundsEnded(listener: () => void): () => void {
    this.roundsEnded.add(listener);
    return () => this.roundsEnded.delete(listener);
  }
}
