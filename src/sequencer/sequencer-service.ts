/**
 * The sequencer (DESIGN §4): turns committed inbox events into the ordered log.
 *
 * Every process with the sequencer role runs one; exactly one of them leads at a time, elected by a
 * session advisory lock. Followers retry the lock every `followerRetryMs`, so when the leader's
 * process dies (its lock vanishes with its connection) another takes over within about a second.
 * The leader stamps whenever capture's NOTIFY on INBOX_CHANNEL wakes it, and every `pollMs` anyway
 * (a missed notification, a listener reconnecting). Writers notify at most every
 * INBOX_NOTIFY_INTERVAL_MS per process (a NOTIFY serialises commits on PostgreSQL), so after any
 * round that found work the leader stays in busy mode: it checks again every `busyPollMs` until
 * `busyLingerMs` pass without work. Each check is one call that returns at once, without a lock,
 * when nothing waits. Rounds that find work start `busyPollMs` apart, counted from the start of
 * the previous round, not its end: a stamping round lasts about one commit, and on a busy server a
 * commit waits for the WAL flush (several ms), so pausing again after it would make events that
 * committed during the round wait for both. Stamping is correct even if two stampers overlap for
 * a moment (see migration 005_sequencer.sql); the leader lock only keeps them from competing.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import type { BackgroundService } from "../background-service.js";
import type { AdvisoryLock, Database, Unlisten } from "../storage/database.js";
import { ADVISORY_LOCKS } from "../storage/database.js";
import { INBOX_CHANNEL, INBOX_NOTIFY_INTERVAL_MS } from "../storage/log-channels.js";
import { DEFAULT_STAMP_BATCH, stampPendingEvents } from "../storage/sequencer-repository.js";
import { defineCounter, defineGauge, defineHistogram } from "../metrics.js";
import { WakeSignal } from "./wake-signal.js";

const logHeadGauge = defineGauge("herald_log_head", "Highest log position stamped by this process");
const leaderGauge = defineGauge(
  "herald_sequencer_leader",
  "1 while this process leads the sequencer, else 0",
);
const stampedCounter = defineCounter(
  "herald_sequencer_events_stamped_total",
  "Events stamped with a log position by this process",
);
const lagHistogram = defineHistogram(
  "herald_sequencer_lag_seconds",
  "Per stamping batch: the longest wait of one of its events between insert and stamp",
);

export interface SequencerOptions {
  db: Database;
  logger: Logger;
  /** Most events per stamping transaction (default 5000). */
  batchSize?: number;
  /** Safety-net poll while leading, in ms (default 1000). */
  pollMs?: number;
  /** How often a follower tries to become leader, in ms (default 1000). */
  followerRetryMs?: number;
  /** Busy mode: re-check interval after a round that found work, in ms (default 3; PGlite 20). */
  busyPollMs?: number;
  /** Busy mode lasts this long after the last round that found work, in ms (default 250). */
  busyLingerMs?: number;
  /** Pause after a failed stamping attempt (database unreachable), in ms (default 1000). */
  errorBackoffMs?: number;
}

export interface SequencerStats {
  leader: boolean;
  /** The log head as this process last stamped it (0 until it stamps). */
  head: number;
  /** Events stamped by this process since it started. */
  stampedTotal: number;
  /** Largest insert-to-stamp delay in the last non-empty batch, in ms. */
  lastBatchMaxLagMs: number;
  lastStampAt: Date | null;
}

export interface Sequencer extends BackgroundService {
  isLeader(): boolean;
  stats(): SequencerStats;
  /** Asks the leader to stamp now (capture in the same process may call it; NOTIFY does it too). */
  wake(): void;
}

export async function startSequencer(options: SequencerOptions): Promise<Sequencer> {
  const sequencer = new SequencerLoop(options);
  await sequencer.start();
  return sequencer;
}

class SequencerLoop implements Sequencer {
  readonly name = "sequencer";
  private readonly db: Database;
  private readonly logger: Logger;
  private readonly batchSize: number;
  private readonly pollMs: number;
  private readonly followerRetryMs: number;
  private readonly errorBackoffMs: number;
  private readonly busyPollMs: number;
  private readonly busyLingerMs: number;
  /** When a round last found work (busy mode runs until busyLingerMs after it). */
  private lastWorkAt = 0;
  private readonly signal = new WakeSignal();
  private readonly stopping = new AbortController();
  private lock: AdvisoryLock | undefined;
  private lockLost = false;
  private unlisten: Unlisten | undefined;
  private running: Promise<void> | undefined;
  private readonly counters: Omit<SequencerStats, "leader"> = {
    head: 0,
    stampedTotal: 0,
    lastBatchMaxLagMs: 0,
    lastStampAt: null,
  };

  constructor(options: SequencerOptions) {
    this.db = options.db;
    this.logger = options.logger;
    this.batchSize = options.batchSize ?? DEFAULT_STAMP_BATCH;
    this.pollMs = options.pollMs ?? 1000;
    this.followerRetryMs = options.followerRetryMs ?? 1000;
    this.errorBackoffMs = options.errorBackoffMs ?? 1000;
    // Each check is a round trip (on the embedded database, a turn on the single session the API
    // also needs). On PostgreSQL a check that finds nothing is a cheap read of a partial index:
    // every 3 ms it cut commit→receipt p50 from 10.9 to 6.6 ms in the delivery bench with no
    // measurable cost to capture throughput. Embedded: 20 ms, to leave the session to the API.
    this.busyPollMs = options.busyPollMs ?? (this.db.kind === "pglite" ? 20 : 3);
    // Busy mode must outlast the writers' notification interval, or a skipped NOTIFY could wait
    // for the slow poll.
    this.busyLingerMs = Math.max(options.busyLingerMs ?? 250, INBOX_NOTIFY_INTERVAL_MS * 5);
  }

  async start(): Promise<void> {
    this.unlisten = await this.db.listen(INBOX_CHANNEL, () => this.signal.wake());
    this.running = this.run();
  }

  isLeader(): boolean {
    return this.lock !== undefined && !this.lockLost;
  }

  stats(): SequencerStats {
    return { leader: this.isLeader(), ...this.counters };
  }

  wake(): void {
    this.signal.wake();
  }

  async stop(): Promise<void> {
    if (this.stopping.signal.aborted) return this.running;
    this.stopping.abort();
    this.signal.wake();
    await this.running;
    await this.unlisten?.().catch(() => {});
    const lock = this.lock;
    this.lock = undefined;
    if (lock && !this.lockLost) await lock.release().catch(() => {});
    if (lock) leaderGauge.set(0);
  }

  private get stopped(): boolean {
    return this.stopping.signal.aborted;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      if (!this.isLeader()) {
        if (!(await this.tryToLead())) {
          await this.pause(this.followerRetryMs);
          continue;
        }
      }
      // Wake-ups received before this point are answered by the stamping below.
      this.signal.consume();
      const roundStartedAt = Date.now();
      let found: boolean;
      try {
        found = await this.stampUntilEmpty();
      } catch (error) {
        if (this.stopped) break;
        this.logger.warn({ err: error }, "stamping failed; retrying");
        await this.pause(this.errorBackoffMs);
        continue;
      }
      if (!this.isLeader() || this.stopped) continue;
      if (found) {
        // Look again busyPollMs after this round began: at once if it lasted longer than that.
        const left = roundStartedAt + this.busyPollMs - Date.now();
        if (left > 0) await this.signal.wait(left);
        continue;
      }
      const busy = Date.now() - this.lastWorkAt < this.busyLingerMs;
      await this.signal.wait(busy ? this.busyPollMs : this.pollMs);
    }
  }

  private async tryToLead(): Promise<boolean> {
    this.dropLostLock();
    let lock: AdvisoryLock | null;
    try {
      lock = await this.db.tryAdvisoryLock(ADVISORY_LOCKS.sequencerLeader);
    } catch (error) {
      this.logger.warn({ err: error }, "could not ask for the sequencer lock");
      return false;
    }
    if (!lock) return false;
    if (this.stopped) {
      await lock.release().catch(() => {});
      return false;
    }
    this.lock = lock;
    this.lockLost = false;
    void lock.lost.then((reason) => {
      if (this.lock !== lock) return;
      this.lockLost = true;
      leaderGauge.set(0);
      this.logger.warn({ err: reason }, "sequencer lost its leader lock; following again");
      this.signal.wake();
    });
    leaderGauge.set(1);
    this.logger.info("this process now leads the sequencer");
    return true;
  }

  /** Forgets a lock whose connection died; its release cannot reach the server, so do not wait. */
  private dropLostLock(): void {
    if (this.lock && this.lockLost) {
      void this.lock.release().catch(() => {});
      this.lock = undefined;
    }
  }

  /** Stamps until the inbox is empty; true when it stamped anything. */
  private async stampUntilEmpty(): Promise<boolean> {
    let found = false;
    while (this.isLeader() && !this.stopped) {
      // Returns at once, without locking, when nothing waits (one cheap round trip per poll).
      const result = await stampPendingEvents(this.db, this.batchSize);
      if (result.stamped === 0) return found;
      found = true;
      this.lastWorkAt = Date.now();
      this.counters.head = result.head;
      this.counters.stampedTotal += result.stamped;
      this.counters.lastBatchMaxLagMs = result.maxLagMs;
      this.counters.lastStampAt = new Date();
      logHeadGauge.set(result.head);
      stampedCounter.inc(result.stamped);
      lagHistogram.observe(result.maxLagMs / 1000);
      if (this.logger.isLevelEnabled("debug"))
        this.logger.debug(
          { stamped: result.stamped, head: result.head, maxLagMs: result.maxLagMs },
          "stamped",
        );
      if (result.stamped < this.batchSize) return found;
    }
    return found;
  }

  /** Sleeps, unless stop() is called meanwhile. */
  private async pause(ms: number): Promise<void> {
    await sleep(ms, undefined, { signal: this.stopping.signal }).catch(() => {});
  }
}
