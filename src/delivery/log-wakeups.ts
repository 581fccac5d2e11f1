/**
 * The wake-ups of a process's log followers (the delivery worker's runners, the scenario starter's
 * followers): each new log head, announced once, from whichever comes first of this process's
 * sequencer (LogSignals.onLogStamped, with the events it stamped when it has them) and another
 * process's NOTIFY on LOG_CHANNEL. A head already announced is not announced again (a poke with
 * no news would cost a read).
 *
 * A NOTIFY that arrives while a stamping round of this process runs is most often that round's own,
 * come before the round's result (the server sends both at its commit; about half the time the
 * NOTIFY is first): it waits for the round, which announces the head with its events, so the
 * followers need not read them back. Should the rounds end without reaching it (another process
 * stamped), the held head is announced then. A NOTIFY without a head means "look again".
 */
import type { Logger } from "pino";
import { LOG_CHANNEL } from "../storage/change-event-repository.js";
import type { Database, Unlisten } from "../storage/database.js";
import type { StampedEvents } from "../storage/log-channels.js";
import type { LogSignals } from "../storage/log-signals.js";

export interface LogWakeupOptions {
  db: Database;
  logSignals: LogSignals;
  logger: Logger;
  /** Pokes every follower: with the new head (and its events, when this process stamped them), or with nothing ("look again"). */
  poke(head?: number, stamped?: StampedEvents): void;
  /** Whether anyone follows now: the sequencer reads the stamped events only for someone. */
  wantsEvents(): boolean;
  /** Logged at warn when LISTEN fails: what then relies on the poll alone. */
  listenFailed: string;
}

export class LogWakeups {
  private announcedHead = 0;
  /** The highest head a NOTIFY brought while this process's sequencer had a round running. */
  private heldHead = 0;
  private readonly stopStamped: () => void;
  private readonly stopRoundsEnded: () => void;
  private unlisten: Unlisten | undefined;

  private constructor(private readonly options: LogWakeupOptions) {
    const { logSignals } = options;
    this.stopStamped = logSignals.onLogStamped(
      (head, stamped) => this.announce(head, stamped),
      options.wantsEvents,
    );
    this.stopRoundsEnded = logSignals.onStampingRoundsEnded(() => {
      if (this.heldHead > this.announcedHead) this.announce(this.heldHead);
    });
  }

  /** Starts taking the wake-ups; a LISTEN that fails is logged, and the local ones still come. */
  static async start(options: LogWakeupOptions): Promise<LogWakeups> {
    const wakeups = new LogWakeups(options);
    try {
      wakeups.unlisten = await options.db.listen(LOG_CHANNEL, (payload) =>
        wakeups.notified(payload),
      );
    } catch (error) {
      options.logger.warn({ err: error }, options.listenFailed);
    }
    return wakeups;
  }

  /** The highest head announced so far (0 before the first). */
  get head(): number {
    return this.announcedHead;
  }

  async stop(): Promise<void> {
    this.stopStamped();
    this.stopRoundsEnded();
    await this.unlisten?.().catch(() => {});
  }

  private notified(payload: string): void {
    const head = /^\d+$/.test(payload) ? Number(payload) : undefined;
    if (head === undefined) this.options.poke();
    else if (this.options.logSignals.stampingRoundsInFlight() > 0) {
      if (head > this.heldHead) this.heldHead = head;
    } else this.announce(head);
  }

  private announce(head: number, stamped?: StampedEvents): void {
    if (head <= this.announcedHead) return;
    this.announcedHead = head;
    this.options.poke(head, stamped);
  }
}
