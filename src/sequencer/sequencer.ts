/**
 * The sequencer (DESIGN §4): turns committed inbox events into the ordered log.
 *
 * Every process with the sequencer role runs one; exactly one of them leads at a time, elected by a
 * session advisory lock. Followers retry the lock every `followerRetryMs`, so when the leader's
 * process dies (its lock vanishes with its connection) another takes over within about a second.
 *
 * The leader stamps in rounds, one `herald_stamp_events` call each. A round starts:
 * - on a wake-up: capture's NOTIFY on INBOX_CHANNEL, or a writer of this process calling
 *   `inboxCommitted` after its commit (no server round trip), but no sooner than `wakeGapMs` after
 *   the previous round started;
 * - in busy mode (until `busyLingerMs` after the last round that found work), `busyPollMs` after
 *   the previous round started: writers notify at most every INBOX_NOTIFY_INTERVAL_MS per process
 *   (a NOTIFY serialises commits on PostgreSQL), and writers in other processes have no other way
 *   to reach it;
 * - otherwise every `pollMs` (a missed notification, a listener reconnecting).
 * Rounds are counted from the start of the previous one, not its end (after a round that found
 * nothing: from its end), and on PostgreSQL up to `maxRoundsInFlight` (2) overlap: a stamping round
 * lasts about one commit, and on a busy server a commit waits for the WAL flush (several ms). The
 * next round, sent `busyPollMs` after the previous one started, waits in the server for the stamp
 * lock and stamps what committed during the previous one the moment it commits, instead of a round
 * trip later; a wake-up never starts a round beside one still running. A round that finds nothing
 * once it has the lock ends without writing anything (migration 009), so an overlapping round costs
 * no WAL flush when it is not needed. Under heavy writing (a round stamped 8 events or more), the
 * next round waits longer, up to 10 ms, so that rounds gather more events each (see coalesceMs).
 * Stamping is correct however stampers overlap (migrations 005 and 009); the leader lock only keeps
 * them from competing.
 *
 * After each round that stamped, the leader tells delivery workers of this process the new head
 * directly (`logStamped`), beside the NOTIFY on LOG_CHANNEL that other processes wait for. When such
 * workers exist and the round stamped at most `handOffEvents` events, the round also returns those
 * events (read inside its transaction) and hands them over, so the workers need not read them back.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import type { BackgroundService } from "../background-service.js";
import type { AdvisoryLock, Database, Unlisten } from "../storage/database.js";
import { ADVISORY_LOCKS } from "../storage/database.js";
import { INBOX_CHANNEL, INBOX_NOTIFY_INTERVAL_MS } from "../storage/log-channels.js";
import type { LogSignals } from "../storage/log-signals.js";
import { DEFAULT_STAMP_BATCH, stampPendingEvents } from "../storage/sequencer-repository.js";
import { defineCounter, defineGauge, defineHistogram } from "../metrics.js";
import { DatabaseOutageLog } from "../database-outage-log.js";
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
  /** This process's log signals: local commits wake the leader, and it announces stamped heads. */
  logSignals: LogSignals;
  logger: Logger;
  /** Most events per stamping transaction (default 5000). */
  batchSize?: number;
  /** Safety-net poll while leading, in ms (default 1000). */
  pollMs?: number;
  /** How often a follower tries to become leader, in ms (default 1000). */
  followerRetryMs?: number;
  /** Busy mode: a round starts this long after the previous one started, in ms (default 3; PGlite 20). */
  busyPollMs?: number;
  /** Busy mode lasts this long after the last round that found work, in ms (default 250). */
  busyLingerMs?: number;
  /** A wake-up starts a round no sooner than this after the previous one started (default 1; PGlite 0). */
  wakeGapMs?: number;
  /** Stamping rounds that may overlap (default 2; PGlite 1: its one session runs one at a time). */
  maxRoundsInFlight?: number;
  /**
   * Heavy writing: once a round stamps this many events or more (default 8), the next round waits
   * `coalesceMsPerEvent` (default 0.5) per event it stamped, up to `maxCoalesceMs` (default 10; 0
   * turns this off). See coalesceMs.
   */
  coalesceFromEvents?: number;
  coalesceMsPerEvent?: number;
  maxCoalesceMs?: number;
  /** Pause after a failed stamping attempt (database unreachable), in ms (default 1000). */
  errorBackoffMs?: number;
  /**
   * A round that stamps at most this many events hands them to the delivery workers of this process
   * (default 64; 0 never). Beyond it (a backlog) workers read the log in pages, which is cheaper.
   */
  handOffEvents?: number;
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
  private readonly signals: LogSignals;
  private readonly logger: Logger;
  private readonly batchSize: number;
  private readonly pollMs: number;
  private readonly followerRetryMs: number;
  private readonly errorBackoffMs: number;
  private readonly busyPollMs: number;
  private readonly busyLingerMs: number;
  private readonly wakeGapMs: number;
  private readonly maxRoundsInFlight: number;
  /** When a round last found work (busy mode runs until busyLingerMs after it). */
  private lastWorkAt = 0;
  /** The latest round to end stamped something (a round running now probably will too). */
  private lastFound = false;
  /** Events the last round stamped (paces the next under heavy writing, see coalesceMs). */
  private lastStamped = 0;
  private readonly coalesceFromEvents: number;
  private readonly coalesceMsPerEvent: number;
  private readonly maxCoalesceMs: number;
  private readonly handOffEvents: number;
  /** When the latest round started (or, after a round that found nothing, ended). */
  private lastRoundAt = Number.NEGATIVE_INFINITY;
  /** A wake-up (or a full batch) asks for a round that has not started yet. */
  private wanted = false;
  /** No round starts before this (after a failed one). */
  private resumeAt = 0;
  private readonly rounds = new Set<Promise<void>>();
  /** Wakes the loop: a wake-up arrived or a round ended. */
  private readonly signal = new WakeSignal();
  private readonly stopping = new AbortController();
  /** A database outage is logged once, not at every round that fails because of it. */
  private readonly outage: DatabaseOutageLog;
  private lock: AdvisoryLock | undefined;
  private lockLost = false;
  private unlisten: Unlisten | undefined;
  private unlistenLocal: (() => void) | undefined;
  private running: Promise<void> | undefined;
  private readonly counters: Omit<SequencerStats, "leader"> = {
    head: 0,
    stampedTotal: 0,
    lastBatchMaxLagMs: 0,
    lastStampAt: null,
  };

  constructor(options: SequencerOptions) {
    this.db = options.db;
    this.signals = options.logSignals;
    this.logger = options.logger;
    this.outage = new DatabaseOutageLog(options.logger, "stamping");
    this.batchSize = options.batchSize ?? DEFAULT_STAMP_BATCH;
    this.pollMs = options.pollMs ?? 1000;
    this.followerRetryMs = options.followerRetryMs ?? 1000;
    this.errorBackoffMs = options.errorBackoffMs ?? 1000;
    // One session for the whole process (the embedded database): rounds cannot overlap, and each
    // check takes a turn the API needs too.
    const oneSession = !this.db.capabilities.concurrentSessions;
    // Each check is a round trip (on the embedded database, a turn on the single session the API
    // also needs). On PostgreSQL a check that finds nothing is a cheap read of a partial index, so
    // checking every 3 ms shortens commit→receipt at no cost to capture throughput
    // (docs/performance-notes.md, "Sequencer"). Embedded: 20 ms, to leave the session to the API.
    this.busyPollMs = options.busyPollMs ?? (oneSession ? 20 : 3);
    // Busy mode must outlast the writers' notification interval, or a skipped NOTIFY could wait
    // for the slow poll.
    this.busyLingerMs = Math.max(options.busyLingerMs ?? 250, INBOX_NOTIFY_INTERVAL_MS * 5);
    // A wake-up arrives after every local commit: the gap bounds stamping commits (each a WAL
    // flush and a NOTIFY) to one per ms per overlapping round however fast writes come.
    this.wakeGapMs = options.wakeGapMs ?? (oneSession ? 0 : 1);
    this.maxRoundsInFlight = Math.max(1, options.maxRoundsInFlight ?? (oneSession ? 1 : 2));
    // Coalescing a busy round's wake-ups saves CPU per write in Node and in PostgreSQL for a little
    // stamp lag (docs/performance-notes.md, "Sequencer").
    this.coalesceFromEvents = Math.max(1, options.coalesceFromEvents ?? 8);
    this.coalesceMsPerEvent = Math.max(0, options.coalesceMsPerEvent ?? 0.5);
    this.maxCoalesceMs = Math.max(0, options.maxCoalesceMs ?? 10);
    this.handOffEvents = Math.max(0, options.handOffEvents ?? 64);
  }

  async start(): Promise<void> {
    this.unlisten = await this.db.listen(INBOX_CHANNEL, () => this.wake());
    // Where capture's NOTIFY is already delivered in process (the embedded database), the local
    // wake-up would only say it twice.
    if (!this.db.capabilities.notifiesInProcess)
      this.unlistenLocal = this.signals.onInboxCommitted(() => this.wake());
    this.running = this.run();
  }

  isLeader(): boolean {
    return this.lock !== undefined && !this.lockLost;
  }

  stats(): SequencerStats {
    return { leader: this.isLeader(), ...this.counters };
  }

  wake(): void {
    this.wanted = true;
    this.signal.wake();
  }

  async stop(): Promise<void> {
    if (this.stopping.signal.aborted) return this.running;
    this.stopping.abort();
    this.signal.wake();
    await this.running;
    this.unlistenLocal?.();
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
        // Rounds of a lost leadership end on their own (stamping stays correct meanwhile).
        await this.roundsEnded();
        if (this.stopped) break;
        if (!(await this.tryToLead())) {
          await this.pause(this.followerRetryMs);
          continue;
        }
        this.wanted = true;
      }
      const now = Date.now();
      if (now < this.resumeAt) {
        await this.pause(this.resumeAt - now);
        continue;
      }
      if (this.rounds.size >= this.maxRoundsInFlight) {
        await this.signal.wait(this.pollMs);
        continue;
      }
      const due = this.lastRoundAt + this.spacing(now);
      if (now >= due) {
        // Wake-ups received up to here are answered by this round: it looks after they came.
        this.wanted = false;
        this.startRound(now);
        continue;
      }
      await this.signal.wait(due - now);
    }
    await this.roundsEnded();
  }

  /**
   * How long after the previous round's start the next may start. Alone: at the wake-up gap when
   * asked, else at the busy or the slow poll. Beside a round still running, only at the busy
   * interval (a wake-up does not shorten it: every round is a commit), and only while rounds find
   * work or a wake-up asks: a slow stamping round (a WAL flush stalls) is then followed by one that
   * stamps what committed meanwhile as soon as it commits. Under heavy writing, never sooner than
   * coalesceMs.
   */
  private spacing(now: number): number {
    let gap: number;
    if (this.rounds.size > 0) {
      if (!this.lastFound && !this.wanted) return this.pollMs;
      gap = this.busyPollMs;
    } else if (this.wanted) gap = Math.min(this.wakeGapMs, this.busyPollMs);
    else if (now - this.lastWorkAt < this.busyLingerMs) gap = this.busyPollMs;
    else return this.pollMs;
    return Math.max(gap, this.coalesceMs());
  }

  /**
   * Under heavy writing, the longer gap that lets stamping rounds gather more events each. A round
   * costs about one commit (a WAL flush and a NOTIFY) however many events it stamps, and on a busy
   * server that is CPU the writers need: once a round stamps `coalesceFromEvents` events or more,
   * the next waits `coalesceMsPerEvent` per event the last one stamped, up to `maxCoalesceMs`. At a
   * few events per round (up to ~1,000 events/s on one server) this never applies.
   */
  private coalesceMs(): number {
    if (this.lastStamped < this.coalesceFromEvents) return 0;
    return Math.min(this.maxCoalesceMs, this.lastStamped * this.coalesceMsPerEvent);
  }

  private startRound(now: number): void {
    this.lastRoundAt = now;
    const ended = this.signals.stampingRound();
    const round = this.stampOnce()
      .catch((error: unknown) => {
        if (this.stopped) return;
        this.outage.failed(error, "stamping failed; retrying");
        this.resumeAt = Date.now() + this.errorBackoffMs;
        this.wanted = true;
      })
      .finally(() => {
        ended();
        this.rounds.delete(round);
        this.signal.wake();
      });
    this.rounds.add(round);
  }

  private async roundsEnded(): Promise<void> {
    await Promise.all(this.rounds);
  }

  private async tryToLead(): Promise<boolean> {
    this.dropLostLock();
    let lock: AdvisoryLock | null;
    try {
      lock = await this.db.tryAdvisoryLock(ADVISORY_LOCKS.sequencerLeader);
    } catch (error) {
      this.outage.failed(error, "could not ask for the sequencer lock");
      return false;
    }
    // The database answered: a standby (which never stamps) ends its outage here too.
    this.outage.succeeded();
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

  /** One stamping round: returns at once, without locking, when nothing waits. */
  private async stampOnce(): Promise<void> {
    const handOff = this.signals.wantsStampedEvents() ? this.handOffEvents : 0;
    const result = await stampPendingEvents(this.db, this.batchSize, handOff);
    this.outage.succeeded();
    this.lastFound = result.stamped > 0;
    this.lastStamped = result.stamped;
    if (result.stamped === 0) {
      // After a check that found nothing the next one waits from its end: only rounds that stamp
      // are paced from their start (see spacing), so a check slowed by a busy server (or the
      // embedded database's one session, which the API needs) is not followed by another at once.
      this.lastRoundAt = Math.max(this.lastRoundAt, Date.now());
      return;
    }
    this.lastWorkAt = Date.now();
    // Committed: workers of this process may read up to the new head at once, or take its events.
    const stamped = result.events && { after: result.head - result.stamped, events: result.events };
    this.signals.logStamped(result.head, stamped);
    if (result.head > this.counters.head) this.counters.head = result.head;
    this.counters.stampedTotal += result.stamped;
    this.counters.lastBatchMaxLagMs = result.maxLagMs;
    this.counters.lastStampAt = new Date();
    logHeadGauge.set(this.counters.head);
    stampedCounter.inc(result.stamped);
    lagHistogram.observe(result.maxLagMs / 1000);
    if (this.logger.isLevelEnabled("debug"))
      this.logger.debug(
        { stamped: result.stamped, head: result.head, maxLagMs: result.maxLagMs },
        "stamped",
      );
    // A full batch: more is waiting, go again as soon as the wake-up gap allows.
    if (result.stamped >= this.batchSize) this.wanted = true;
  }

  /** Sleeps, unless stop() is called meanwhile. */
  private async pause(ms: number): Promise<void> {
    await sleep(ms, undefined, { signal: this.stopping.signal }).catch(() => {});
  }
}
