/**
 * Drives one leased subscription (DESIGN §5): reads the log from the watermark, keeps the matching
 * events, hands them to the per-record scheduler, groups them into pushes (one event, or a BULK
 * block), sends them with retries, and moves the durable watermark over the contiguous prefix of
 * finished positions, in batches and only while this worker holds the lease.
 *
 * When the endpoint misbehaves (SPEC §6), what a failed attempt means is decideFailure's
 * (domain/failure-decision.ts):
 * - a push that fails is retried on the retry policy's schedule; its record's later events wait;
 * - a record whose push keeps failing while the endpoint accepts other records is parked
 *   (parked-records.ts) and the stream moves on;
 * - when the endpoint fails everything the circuit opens (circuit-breaker.ts): the subscription is
 *   FAILING, stops reading and sending, and probes with one push on the schedule; nothing is parked
 *   meanwhile, and on the first success everything held is sent again from where it stopped; after
 *   24 h a warning is raised, after 3 days the subscription is deactivated.
 * Failure timing runs on `ctx.clock`, so tests can let days pass in seconds.
 *
 * The runner orchestrates; its pieces do the work: the log follower reads, the record scheduler and
 * the bulk batcher order and group, the push-attempt step sends, the circuit breaker and parking
 * handle failures, the progress writer writes, and the push slots share maxConcurrency with replays.
 */
import type { Logger } from "pino";
import { DatabaseOutageLog } from "../database-outage-log.js";
import type { ChangeEvent } from "../domain/change-event.js";
import type { AttemptOutcome, AttemptResult } from "../domain/delivery-outcome.js";
import { decideFailure } from "../domain/failure-decision.js";
import { matchesSubscription } from "../domain/subscription-matching.js";
import type { Subscription } from "../domain/subscription.js";
import type { StampedEvents } from "../storage/log-channels.js";
import { disableSubscription } from "../storage/subscription-lease-repository.js";
import { CircuitBreaker } from "./circuit-breaker.js";
import type { Clock } from "./clock.js";
import { LogFollower } from "./log-follower.js";
import { ParkedRecords } from "./parked-records.js";
import { ProgressWriter } from "./progress-writer.js";
import type { PendingEvent, Push } from "./push.js";
import { recordKeyOf } from "./push.js";
import { PushAssembler } from "./push-assembler.js";
import { PushAttempts } from "./push-attempt.js";
import { PushRetries } from "./push-retries.js";
import { PushSlots } from "./push-slots.js";
import { RecordScheduler } from "./record-scheduler.js";
import { ReplayExecutor } from "./replay-executor.js";
import { SubscriptionLog } from "./subscription-log.js";
import type { RunnerContext } from "./runner-context.js";
import { WatermarkTracker } from "./watermark-tracker.js";
import { WriteChain } from "./write-chain.js";

export type { RunnerContext } from "./runner-context.js";

type RunnerState = "running" | "stopping" | "stopped";

/** A failed attempt's outcome (what the retry policy decided). */
type Failure = Extract<AttemptOutcome, { kind: "retry" | "failed" }>;

function describeFailure(result: AttemptResult): string {
  return result.kind === "response" ? `HTTP ${result.status}` : result.message;
}

export class SubscriptionRunner {
  private subscription: Subscription;
  private state: RunnerState = "running";
  private readonly logger: Logger;
  private readonly clock: Clock;
  private readonly tracker: WatermarkTracker;
  private readonly scheduler = new RecordScheduler<PendingEvent>();
  /** Makes the stream's pushes: one event each, or BULK blocks. */
  private readonly assembler: PushAssembler;
  /** Reads the log from the watermark and hands the events to the runner (see accept). */
  private readonly follower: LogFollower<Subscription>;
  /** Parked records are loaded (and a FAILING state restored) before the first read. */
  private loaded: Promise<void> | undefined;
  /** Every database write of this runner, in order. */
  private readonly chain = new WriteChain();
  private readonly progress: ProgressWriter;
  /** Signs, sends, judges and records every attempt (live, parked and replayed pushes). */
  private readonly pushes: PushAttempts;
  /** maxConcurrency, shared with the replay's pushes. */
  private readonly slots: PushSlots;
  /** Live pushes waiting for their retry. */
  private readonly retries: PushRetries;
  private readonly parked: ParkedRecords;
  /** Everything about FAILING: the failure evidence, the open circuit, its probes and held pushes. */
  private readonly breaker: CircuitBreaker;
  /** Runs the subscription's replay requests beside live delivery (never moves the watermark). */
  private readonly replays: ReplayExecutor;

  constructor(
    subscription: Subscription,
    watermark: number,
    private readonly ctx: RunnerContext,
  ) {
    this.subscription = subscription;
    this.tracker = new WatermarkTracker(watermark);
    this.assembler = new PushAssembler(this.scheduler, {
      subscription: () => this.subscription,
      behind: () => this.follower.behind,
      blockDue: () => this.dispatch(),
    });
    this.clock = ctx.clock;
    this.logger = ctx.logger.child({ subscriptionId: subscription.id });
    // A database outage is logged once, not at every read and flush while it lasts.
    const outage = new DatabaseOutageLog(this.logger, "delivery of this subscription");
    this.follower = new LogFollower<Subscription>(
      new SubscriptionLog(ctx.db, () => this.subscription),
      this.tracker,
      {
        prepare: () => this.prepare(),
        // Read-ahead stops when the buffer is full; with the circuit open, as soon as a fresh push
        // could be made (a record other than the held ones): probes alternate between the oldest
        // held push and a fresh one.
        hasRoom: () => !this.bufferFull() && !(this.breaker.isOpen && this.assembler.hasFresh),
        hasRoomAhead: () => !this.bufferFull(0.5) && !this.breaker.isOpen,
        accept: (events, after) => this.accept(events, after),
        windowRead: () => {
          this.dispatch();
          this.progress.schedule();
        },
      },
      { pageSize: ctx.tuning.readBatchSize, outage },
    );
    this.parked = new ParkedRecords({
      ctx,
      logger: this.logger,
      chain: this.chain,
      finished: this.tracker,
      subscription: () => this.subscription,
      mayRetry: () => this.state === "running" && !this.breaker.isOpen,
      headDue: () => this.dispatch(),
      leaseLost: () => this.leaseLost(),
    });
    this.progress = new ProgressWriter({
      ctx,
      subscriptionId: subscription.id,
      watermark,
      chain: this.chain,
      finished: this.tracker,
      parked: this.parked,
      outage,
      leaseLost: () => this.leaseLost(),
    });
    this.pushes = new PushAttempts(ctx, this.progress, subscription.id);
    this.slots = new PushSlots({
      maxConcurrency: () => this.subscription.maxConcurrency,
      replayEnded: () => this.dispatch(),
    });
    this.retries = new PushRetries({ clock: ctx.clock, retryDue: () => this.dispatch() });
    this.breaker = new CircuitBreaker({
      ctx,
      logger: this.logger,
      subscription: () => this.subscription,
      serial: (write) => this.chain.serial(write),
      probeDue: () => {
        this.dispatch();
        // Nothing to probe with yet: read some.
        if (!this.assembler.hasFresh) this.follower.wake();
      },
      deactivate: (why) => void this.disable(why),
      freshPush: () => this.assembler.fresh(),
    });
    this.replays = new ReplayExecutor({
      // Replay pushes share the subscription's maxConcurrency with live ones (bulkhead).
      ctx: {
        ...ctx,
        sender: { send: (push) => this.slots.sendReplay(ctx.sender, push), close: async () => {} },
      },
      subscription: () => this.subscription,
      mayPush: () => this.state === "running" && !this.breaker.isOpen && ctx.leaseValid(),
      recordAttempt: (attempt) => this.progress.recordAttempt(attempt),
      endpointGone: (reason) => void this.disable(reason),
    });
  }

  get id(): number {
    return this.subscription.id;
  }

  /** Events held in memory (queued, in a block, in flight or waiting for a retry). */
  get buffered(): number {
    return this.scheduler.size;
  }

  /** The circuit is open: the endpoint fails everything (status FAILING). */
  get failing(): boolean {
    return this.breaker.isOpen;
  }

  get parkedRecords(): number {
    return this.parked.size;
  }

  private get maxBuffered(): number {
    const s = this.subscription;
    const perWave = s.pushMode === "BULK" ? s.maxBlockSize * s.maxConcurrency * 2 : 0;
    return Math.max(this.ctx.tuning.maxBufferedEvents, perWave);
  }

  /**
   * Read-ahead stops when too many events are held, or when the positions waiting behind one
   * unfinished event (a record in retries holds the watermark) pass ten times that: memory stays
   * bounded even while one record fails for hours.
   */
  private bufferFull(fraction = 1): boolean {
    const limit = this.maxBuffered * fraction;
    return this.scheduler.size >= limit || this.tracker.span >= limit * 10;
  }

  /** The subscription was re-read (a PUT may have changed it); later pushes use the new definition. */
  update(subscription: Subscription): void {
    this.subscription = subscription;
    this.assembler.update(subscription);
  }

  /**
   * New events may be in the log (NOTIFY, poll, or a renewed lease). `head` and `stamped`, when
   * the sequencer passed them, save reads (see LogFollower.poke).
   */
  poke(head?: number, stamped?: StampedEvents): void {
    if (this.state !== "running") return;
    this.follower.poke(head, stamped);
    this.dispatch();
  }

  /** The subscription has an open replay request: run it beside live delivery. */
  kickReplays(): void {
    if (this.state === "running") this.replays.kick();
  }

  /** Writes pending attempts, parked events and the watermark. */
  flush(): Promise<void> {
    return this.progress.flush();
  }

  // Reading -------------------------------------------------------------------------------------

  /** Before each reading: the first one loads the parked records (a failure is retried at the next). */
  private prepare(): Promise<void> {
    this.loaded ??= this.load().catch((error: unknown) => {
      this.loaded = undefined;
      throw error;
    });
    return this.loaded;
  }

  /** Loads the parked records and restores an open circuit (a FAILING subscription stays failing). */
  private async load(): Promise<void> {
    await this.parked.load();
    if (this.breaker.restore(this.subscription)) this.holdWaiting();
    this.parked.armAll();
  }

  /**
   * Takes the events of a window: each one the subscription matches is held for delivery (or
   * queued behind its parked record). Windows the sequencer handed over are not pre-filtered:
   * matchesSubscription drops everything the SQL pre-filter would.
   */
  private accept(events: readonly ChangeEvent[], after: number): void {
    const sub = this.subscription;
    for (const event of events) {
      if (event.position <= after) continue;
      if (!matchesSubscription(sub, event)) continue;
      this.tracker.add(event.position);
      const key = recordKeyOf(event);
      // Queued behind its parked record, in log order; finished once written down.
      if (this.parked.has(key)) this.parked.enqueue(key, event.position);
      else this.scheduler.enqueue({ key, event });
    }
  }

  private resumeReading(): void {
    if (this.follower.starved && !this.bufferFull(0.75) && !this.breaker.isOpen)
      this.follower.wake();
  }

  // Sending -------------------------------------------------------------------------------------

  private dispatch(): void {
    if (this.state !== "running" || !this.ctx.leaseValid()) return;
    if (this.breaker.isOpen) {
      const probe = this.breaker.nextProbe();
      if (probe) this.launch(probe);
      return;
    }
    const max = this.subscription.maxConcurrency;
    const slots = this.slots;
    if (slots.inFlight < max) slots.admitReplay();
    let next: Push | undefined;
    while (slots.inFlight < max && (next = this.retries.next()) !== undefined) this.launch(next);
    while (slots.inFlight < max && (next = this.parked.nextDue()) !== undefined) this.launch(next);
    if (this.subscription.pushMode !== "BULK") {
      while (slots.inFlight < max && (next = this.assembler.single()) !== undefined)
        this.launch(next);
      return;
    }
    const now = Date.now();
    while ((next = this.assembler.block(now, slots.inFlight < max)) !== undefined)
      this.launch(next);
    this.assembler.armTimer(now);
  }

  private launch(push: Push): void {
    this.slots.inFlight++;
    this.attempt(push).catch((error: unknown) => {
      this.logger.error({ err: error, pushId: push.id }, "push attempt crashed");
    });
  }

  private async attempt(push: Push): Promise<void> {
    push.attempts++;
    const startedAt = this.pushes.startedAt();
    let result: AttemptResult;
    try {
      result = await this.pushes.send(this.subscription, push.id, push.body);
    } finally {
      this.slots.inFlight--;
    }
    const outcome = this.pushes.judge(result, push.attempts);
    if (outcome.kind === "delivered") {
      this.pushes.recordPush(push, startedAt, result, outcome);
      this.delivered(push);
    } else if (outcome.kind === "disable") {
      this.pushes.recordPush(push, startedAt, result, outcome);
      await this.disable(outcome.reason);
    } else this.failed(push, outcome, startedAt, result);
    this.dispatch();
    this.slots.notifyIdle();
  }

  // Outcomes ------------------------------------------------------------------------------------

  private delivered(push: Push): void {
    const released = this.breaker.delivered();
    // The circuit closed: everything held goes again at once, reading resumes, parked records too.
    if (released) {
      this.retries.retryNow(released);
      this.parked.armAll();
      this.follower.wake();
    }
    if (push.parked) this.parked.done(push.parked);
    else this.finish(push);
  }

  /**
   * A push failed: retry it, park its records, or open the circuit, as the failure decision says,
   * and record the attempt accordingly. While the circuit is open a live push is never given up:
   * it waits for the endpoint to come back. A parked record's head push runs on its own schedule,
   * outside the stream: it is retried or given up (then the record's next events follow).
   */
  private failed(push: Push, outcome: Failure, startedAt: Date, result: AttemptResult): void {
    const what = describeFailure(result);
    const facts = push.parked
      ? this.breaker.parkedFailure(push)
      : this.breaker.liveFailure(push, startedAt.getTime());
    if (!push.parked && this.state !== "running") {
      // Handed back meanwhile: the watermark stays below the push, the next driver sends it again.
      this.pushes.recordPush(push, startedAt, result, outcome);
      return;
    }
    const action = decideFailure(facts, outcome.kind, this.ctx.tuning);
    if (action === "hold") return this.hold(push, startedAt, result, outcome);
    if (action === "probe-failed") {
      const delayMs = this.breaker.probeFailed(push, outcome, result);
      return this.hold(push, startedAt, result, outcome, delayMs);
    }
    if (action === "open-circuit") {
      const delayMs = this.breaker.probeDelay(push.attempts, outcome, result);
      if (this.breaker.open(`the endpoint fails every push; last: ${what}`, delayMs, push.attempts))
        this.holdWaiting();
      return this.hold(push, startedAt, result, outcome, delayMs);
    }
    this.pushes.recordPush(push, startedAt, result, outcome);
    if (push.parked) {
      // retry or give-up, as the retry policy said, on the record's own schedule.
      this.parked.failed(push, push.parked, outcome, what);
    } else if (outcome.kind === "failed") {
      // give-up: the schedule is used up.
      this.logger.warn({ pushId: push.id, reason: outcome.reason }, "push failed for good");
      this.finish(push);
    } else if (action === "park") {
      this.scheduler.complete(push.events);
      this.parked.parkPush(push, this.scheduler, outcome.delayMs, what);
      this.progress.schedule();
      this.resumeReading();
    } else {
      if (push.attempts === 1 || this.logger.isLevelEnabled("debug"))
        this.logger.info(
          { pushId: push.id, errorClass: outcome.errorClass, delayMs: outcome.delayMs },
          "push failed; retrying later",
        );
      // The record(s) of the push stay busy meanwhile: their later events wait behind it.
      this.retries.schedule(push, outcome.delayMs);
    }
  }

  /**
   * The open circuit holds the push: it goes again after the probe that closes it, so no sooner
   * than the next probe (or `delayMs` after this attempt, when it was the probe or opened the circuit).
   */
  private hold(
    push: Push,
    startedAt: Date,
    result: AttemptResult,
    failure: Failure,
    delayMs?: number,
  ): void {
    const next =
      delayMs === undefined
        ? (this.breaker.nextProbeAt ?? this.clock.now())
        : startedAt.getTime() + delayMs;
    const recorded: AttemptOutcome = {
      kind: "retry",
      delayMs: delayMs ?? 0,
      errorClass: failure.errorClass,
    };
    this.breaker.hold(push);
    this.pushes.recordPush(push, startedAt, result, recorded, new Date(next));
  }

  /** The circuit opened: what waits for a retry is held, parked records wait for it to close. */
  private holdWaiting(): void {
    this.breaker.holdAll(this.retries.takeAll());
    this.parked.pause();
  }

  private finish(push: Push): void {
    this.scheduler.complete(push.events);
    for (const item of push.events) this.tracker.finish(item.event.position);
    if (this.scheduler.size === 0 && this.slots.inFlight === 0 && this.follower.backlogCaughtUp()) {
      // The last push of a backlog was answered and the log has been read to its head: the
      // watermark is written now rather than at the next tick (up to watermarkFlushMs later), so a
      // restart right after a backlog re-sends nothing. Live traffic, read as it comes, never was
      // behind, and keeps its batched writes.
      this.progress.flushNow();
    } else this.progress.schedule();
    this.resumeReading();
  }

  // Stopping ------------------------------------------------------------------------------------

  /** Deactivates the subscription (410 Gone, or 3 days of failure) and hands it back. */
  private async disable(reason: string): Promise<void> {
    if (this.state !== "running") return;
    this.logger.warn({ reason }, "subscription deactivated");
    this.halt();
    try {
      const { db, workerId } = this.ctx;
      await this.chain.serial(() =>
        disableSubscription(db, this.subscription.id, workerId, reason),
      );
      await this.breaker.announceDisabled(reason);
    } catch (error) {
      this.logger.error({ err: error }, "could not mark the subscription disabled");
    }
    this.ctx.onGiveUp(this.subscription.id, "disabled");
  }

  private leaseLost(): void {
    if (this.state !== "running") return;
    this.logger.warn("lease lost: another worker drives this subscription now");
    this.state = "stopping";
    this.follower.stop();
    this.ctx.onGiveUp(this.subscription.id, "lease lost");
  }

  /** Stops reading, and every timer of a push waiting for a retry, a parked record or a probe. */
  private halt(): void {
    this.state = "stopping";
    this.follower.stop();
    this.retries.clear();
    this.parked.stop();
    this.breaker.stop();
  }

  /**
   * Stops taking work: nothing more is read or sent, pushes waiting for a retry and the open block
   * are handed back (the watermark stays below them, so they are sent again later; parked records
   * stay parked in the database), in-flight pushes get `timeoutMs` to finish, then the progress is
   * written.
   */
  async stop(timeoutMs: number): Promise<void> {
    if (this.state === "stopped") return;
    this.halt();
    this.assembler.stop();
    // A replay push waiting for a slot had passed its checks: it goes now (as it would have a moment
    // earlier with a slot free), counted in flight, rather than hanging the replay's stop.
    this.slots.admitReplay();
    const replays = this.replays.stop();
    await this.slots.drained(timeoutMs);
    await replays;
    await this.progress.close();
    this.state = "stopped";
  }
}
