/**
 * Drives one leased subscription (DESIGN §5): reads the log from the watermark, keeps the matching
 * events, hands them to the per-record scheduler, groups them into pushes (one event, or a BULK
 * block), sends them with retries, and moves the durable watermark over the contiguous prefix of
 * finished positions, in batches and only while this worker holds the lease.
 *
 * When the endpoint misbehaves (SPEC §6):
 * - a push that fails is retried on the retry policy's schedule; its record's later events wait;
 * - a record whose push keeps failing while the endpoint accepts other records is parked
 *   (parked-records.ts) and the stream moves on;
 * - when the endpoint fails everything the circuit opens (endpoint-circuit.ts): the subscription is
 *   FAILING, stops reading and sending, and probes with one push on the schedule; nothing is parked
 *   meanwhile, and on the first success everything held is sent again from where it stopped; after
 *   24 h a warning is raised, after 3 days the subscription is deactivated.
 * Failure timing runs on `ctx.clock`, so tests can let days pass in seconds.
 */
import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import { DatabaseOutageLog } from "../database-outage-log.js";
import type { ChangeEvent } from "../domain/change-event.js";
import type { AttemptOutcome, AttemptResult } from "../domain/delivery-outcome.js";
import { decideFailure } from "../domain/failure-decision.js";
import { matchesSubscription } from "../domain/subscription-matching.js";
import type { Subscription } from "../domain/subscription.js";
import { readLogHead } from "../storage/change-event-repository.js";
import type { Database } from "../storage/database.js";
import type { StampedEvents } from "../storage/log-channels.js";
import type { AttemptRecord } from "../storage/attempt-repository.js";
import { advanceWatermark, disableSubscription } from "../storage/subscription-lease-repository.js";
import { readLogWindow } from "../storage/log-window-reader.js";
import { recordAttempts } from "../storage/attempt-repository.js";
import { BulkBatcher } from "./bulk-batcher.js";
import type { Clock } from "./clock.js";
import { CircuitBreaker } from "./circuit-breaker.js";
import type { OutgoingPush } from "./http-sender.js";
import { LeaseLostError, ParkedRecords } from "./parked-records.js";
import type { PendingEvent, Push } from "./push.js";
import { recordKeyOf } from "./push.js";
import { encodePushBody } from "./push-body.js";
import { LogFollower } from "./log-follower.js";
import { RecordScheduler } from "./record-scheduler.js";
import { PushAttempts } from "./push-attempt.js";
import { PushRetries } from "./push-retries.js";
import { ReplayExecutor } from "./replay-executor.js";
import type { RunnerContext } from "./runner-context.js";
import { WatermarkTracker } from "./watermark-tracker.js";

export type { RunnerContext } from "./runner-context.js";

type RunnerState = "running" | "stopping" | "stopped";

/** A failed attempt's outcome (what the retry policy decided). */
type Failure = Extract<AttemptOutcome, { kind: "retry" | "failed" }>;

/** A window of the log, read with the SQL pre-filter of the subscription's definition. */
function readSubscriptionWindow(
  db: Database,
  after: number,
  upTo: number,
  limit: number,
  sub: Subscription,
): Promise<readonly ChangeEvent[]> {
  return readLogWindow(db, after, upTo, limit, {
    entityId: sub.entityId,
    source: sub.on,
    sourceId: sub.onElementId,
    eventType: sub.eventType,
    onFields: sub.onFields,
    // With neither, events come back lean (state trimmed to what the payload shows).
    conditions: sub.conditions,
    includePrevious: sub.includePrevious,
  });
}

function describeFailure(result: AttemptResult): string {
  return result.kind === "response" ? `HTTP ${result.status}` : result.message;
}

export class SubscriptionRunner {
  private subscription: Subscription;
  private readonly tracker: WatermarkTracker;
  private readonly scheduler = new RecordScheduler<PendingEvent>();
  private readonly batcher: BulkBatcher<PendingEvent>;
  private readonly logger: Logger;
  /** A database outage is logged once, not at every read and flush while it lasts. */
  private readonly outage: DatabaseOutageLog;
  private readonly clock: Clock;
  private persisted: number;
  private state: RunnerState = "running";
  private inFlight = 0;
  /** Live pushes waiting for their retry. */
  private readonly retries: PushRetries;
  private batchTimer: NodeJS.Timeout | undefined;
  private flushTimer: NodeJS.Timeout | undefined;
  /** Every database write of this runner goes through this chain, so writes never cross. */
  private chain: Promise<void> = Promise.resolve();
  private attempts: AttemptRecord[] = [];
  private idleWaiters: (() => void)[] = [];
  /** Reads the log from the watermark and hands the events to the runner (see accept). */
  private readonly follower: LogFollower<Subscription>;
  /** Parked records are loaded (and a FAILING state restored) before the first read. */
  private loaded: Promise<void> | undefined;

  // Failure handling
  private readonly parked: ParkedRecords;
  /** Head pushes of parked records, loaded and waiting for a free slot. */
  private readonly dueParked: Push[] = [];
  /** Everything about FAILING: the failure evidence, the open circuit, its probes and held pushes. */
  private readonly breaker: CircuitBreaker;
  /** Signs, sends, judges and records every attempt (live, parked and replayed pushes). */
  private readonly pushes: PushAttempts;
  /** Runs the subscription's replay requests beside live delivery (never moves the watermark). */
  private readonly replays: ReplayExecutor;
  /** A replay push waiting for a slot of the subscription's maxConcurrency (see sendReplayPush). */
  private replayWaiting: (() => void) | undefined;

  constructor(
    subscription: Subscription,
    watermark: number,
    private readonly ctx: RunnerContext,
  ) {
    this.subscription = subscription;
    this.persisted = watermark;
    this.tracker = new WatermarkTracker(watermark);
    this.batcher = new BulkBatcher(this.limits());
    this.clock = ctx.clock;
    this.logger = ctx.logger.child({ subscriptionId: subscription.id });
    this.outage = new DatabaseOutageLog(this.logger, "delivery of this subscription");
    this.follower = new LogFollower<Subscription>(
      {
        definition: () => this.subscription,
        read: (after, upTo, limit, sub) => readSubscriptionWindow(ctx.db, after, upTo, limit, sub),
        head: () => readLogHead(ctx.db),
      },
      this.tracker,
      {
        prepare: () => this.prepare(),
        // Read-ahead stops when the buffer is full; with the circuit open, as soon as a fresh push
        // could be made (a record other than the held ones): probes alternate between the oldest
        // held push and a fresh one.
        hasRoom: () => !this.bufferFull() && !(this.breaker.isOpen && this.hasFreshWork()),
        hasRoomAhead: () => !this.bufferFull(0.5) && !this.breaker.isOpen,
        accept: (events, after) => this.accept(events, after),
        windowRead: () => {
          this.dispatch();
          this.scheduleFlush();
        },
      },
      { pageSize: ctx.tuning.readBatchSize, outage: this.outage },
    );
    this.pushes = new PushAttempts(ctx, {
      recordAttempt: (attempt) => this.bufferAttempt(attempt),
    });
    this.retries = new PushRetries({ clock: ctx.clock, retryDue: () => this.dispatch() });
    this.breaker = new CircuitBreaker({
      ctx,
      logger: this.logger,
      subscription: () => this.subscription,
      serial: (write) => this.serial(write),
      probeDue: () => {
        this.dispatch();
        // Nothing to probe with yet: read some.
        if (!this.hasFreshWork()) this.follower.wake();
      },
      deactivate: (why) => void this.disable(why),
      freshPush: () => this.freshPush(),
    });
    this.replays = new ReplayExecutor({
      // Replay pushes share the subscription's maxConcurrency with live ones (bulkhead).
      ctx: { ...ctx, sender: { send: (push) => this.sendReplayPush(push), close: async () => {} } },
      subscription: () => this.subscription,
      mayPush: () => this.state === "running" && !this.breaker.isOpen && ctx.leaseValid(),
      recordAttempt: (attempt) => this.bufferAttempt(attempt),
      endpointGone: (reason) => void this.disable(reason),
    });
    this.parked = new ParkedRecords({
      ctx,
      logger: this.logger,
      subscription: () => this.subscription,
      mayRetry: () => this.state === "running" && !this.breaker.isOpen,
      serial: (write) => this.serial(write),
      sendWhenFree: (push) => {
        this.dueParked.push(push);
        this.dispatch();
      },
      writtenDown: (positions) => {
        for (const position of positions) this.tracker.finish(position);
      },
      leaseLost: () => this.leaseLost(),
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

  private limits() {
    const s = this.subscription;
    return { maxBlockSize: s.maxBlockSize, lingerMs: s.lingerMs, maxWaitMs: s.maxWaitMs };
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
    this.batcher.setLimits(this.limits());
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

  // Starting ------------------------------------------------------------------------------------

  /** Loads the parked records and restores an open circuit (a FAILING subscription stays failing). */
  private async load(): Promise<void> {
    await this.parked.load();
    if (this.breaker.restore(this.subscription)) this.holdWaiting();
    this.parked.armAll();
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

  // Sending -------------------------------------------------------------------------------------

  private dispatch(): void {
    if (this.state !== "running" || !this.ctx.leaseValid()) return;
    if (this.breaker.isOpen) {
      const probe = this.breaker.nextProbe();
      if (probe) this.launch(probe);
      return;
    }
    const max = this.subscription.maxConcurrency;
    if (this.replayWaiting && this.inFlight < max) this.admitReplay();
    let retry: Push | undefined;
    while (this.inFlight < max && (retry = this.retries.next()) !== undefined) this.launch(retry);
    while (this.inFlight < max && this.dueParked.length > 0)
      this.launch(this.dueParked.shift() as Push);
    if (this.subscription.pushMode !== "BULK") {
      while (this.inFlight < max) {
        const items = this.scheduler.take(1);
        if (items.length === 0) break;
        this.launch(this.newPush(items, false));
      }
      return;
    }
    const now = Date.now();
    for (;;) {
      if (this.batcher.room > 0) this.batcher.add(this.scheduler.take(this.batcher.room), now);
      // Lingering waits for events still to come; with a backlog they are already here, so a
      // block that nothing ready can join leaves at once instead of idling for lingerMs.
      const nothingToAdd = this.follower.behind && this.scheduler.readyRecords === 0;
      if (
        this.batcher.length > 0 &&
        (this.batcher.isDue(now) || nothingToAdd) &&
        this.inFlight < max
      ) {
        this.launch(this.newPush(this.batcher.take(), true));
        continue;
      }
      break;
    }
    this.armBatchTimer(now);
  }

  private armBatchTimer(now: number): void {
    if (this.batchTimer) clearTimeout(this.batchTimer);
    this.batchTimer = undefined;
    const due = this.batcher.dueAt();
    if (due === undefined || this.batcher.isFull) return;
    this.batchTimer = setTimeout(
      () => {
        this.batchTimer = undefined;
        this.dispatch();
      },
      Math.max(0, due - now),
    );
  }

  private newPush(items: PendingEvent[], bulk: boolean): Push {
    const id = randomUUID();
    const events = items.map((item) => item.event);
    return {
      id,
      events: items,
      body: encodePushBody(id, this.subscription, events, bulk),
      attempts: 0,
    };
  }

  /**
   * Bulkhead (docs/delivery.md): a replay push is one of the subscription's maxConcurrency requests
   * in flight, like a live one. With every slot taken it waits, and the next slot freed goes to it
   * before live work takes it again (dispatch), so neither starves the other.
   */
  private async sendReplayPush(push: OutgoingPush): Promise<AttemptResult> {
    if (this.inFlight < this.subscription.maxConcurrency) this.inFlight++;
    else await new Promise<void>((resolve) => (this.replayWaiting = resolve));
    try {
      return await this.ctx.sender.send(push);
    } finally {
      this.inFlight--;
      this.dispatch();
      this.notifyIdle();
    }
  }

  /** The waiting replay push takes a slot and goes. */
  private admitReplay(): void {
    const admit = this.replayWaiting;
    this.replayWaiting = undefined;
    if (!admit) return;
    this.inFlight++;
    admit();
  }

  private launch(push: Push): void {
    this.inFlight++;
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
      this.inFlight--;
    }
    const outcome = this.pushes.judge(result, push.attempts);
    if (outcome.kind === "delivered") {
      this.recordAttempt(push, startedAt, result, outcome);
      this.delivered(push);
    } else if (outcome.kind === "disable") {
      this.recordAttempt(push, startedAt, result, outcome);
      await this.disable(outcome.reason);
    } else if (push.parked) {
      this.recordAttempt(push, startedAt, result, outcome);
      this.parked.failed(push, push.parked, outcome, describeFailure(result));
    } else this.liveFailed(push, outcome, startedAt, result);
    this.dispatch();
    this.notifyIdle();
  }

  /**
   * Buffers the attempt's row. `nextAttemptAt` defaults to the retry's time (a push held by an open
   * circuit passes the next probe's time instead).
   */
  private recordAttempt(
    push: Push,
    startedAt: Date,
    result: AttemptResult,
    outcome: AttemptOutcome,
    nextAttemptAt?: Date | null,
  ): void {
    this.pushes.record({
      subscriptionId: this.subscription.id,
      pushId: push.id,
      attempt: push.attempts,
      events: push.events.map((item) => item.event),
      startedAt,
      result,
      outcome,
      nextAttemptAt,
    });
  }

  private bufferAttempt(attempt: AttemptRecord): void {
    this.attempts.push(attempt);
    this.scheduleFlush();
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
   * A live push failed: retry it in memory, park its records, or open the circuit, and record the
   * attempt accordingly. While the circuit is open a push is never given up: it waits for the
   * endpoint to come back.
   */
  private liveFailed(push: Push, outcome: Failure, startedAt: Date, result: AttemptResult): void {
    const facts = this.breaker.liveFailure(push, startedAt.getTime());
    const what = describeFailure(result);
    if (this.state !== "running") {
      // Handed back meanwhile: the watermark stays below the push, the next driver sends it again.
      this.recordAttempt(push, startedAt, result, outcome);
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
      this.openCircuit(`the endpoint fails every push; last: ${what}`, delayMs, push.attempts);
      return this.hold(push, startedAt, result, outcome, delayMs);
    }
    this.recordAttempt(push, startedAt, result, outcome);
    if (outcome.kind === "failed") {
      // give-up: the schedule is used up.
      this.logger.warn({ pushId: push.id, reason: outcome.reason }, "push failed for good");
      this.finish(push);
    } else if (action === "park") {
      this.park(push, outcome.delayMs, what);
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
    this.recordAttempt(push, startedAt, result, recorded, new Date(next));
  }

  private finish(push: Push): void {
    this.scheduler.complete(push.events);
    for (const item of push.events) this.tracker.finish(item.event.position);
    if (this.scheduler.size === 0 && this.inFlight === 0 && this.follower.backlogCaughtUp()) {
      // The last push of a backlog was answered and the log has been read to its head: the
      // watermark is written now rather than at the next tick (up to watermarkFlushMs later), so a
      // restart right after a backlog re-sends nothing. Live traffic, read as it comes, never was
      // behind, and keeps its batched writes.
      if (this.flushTimer) clearTimeout(this.flushTimer);
      this.flushTimer = undefined;
      void this.flush();
    } else this.scheduleFlush();
    this.resumeReading();
  }

  private resumeReading(): void {
    if (this.follower.starved && !this.bufferFull(0.75) && !this.breaker.isOpen)
      this.follower.wake();
  }

  /** Deactivates the subscription (410 Gone, or 3 days of failure) and hands it back. */
  private async disable(reason: string): Promise<void> {
    if (this.state !== "running") return;
    this.logger.warn({ reason }, "subscription deactivated");
    this.state = "stopping";
    this.follower.stop();
    this.clearFailureTimers();
    try {
      await this.serial(() =>
        disableSubscription(this.ctx.db, this.subscription.id, this.ctx.workerId, reason),
      );
      await this.breaker.announceDisabled(reason);
    } catch (error) {
      this.logger.error({ err: error }, "could not mark the subscription disabled");
    }
    this.ctx.onGiveUp(this.subscription.id, "disabled");
  }

  /**
   * The push's records leave the stream: each becomes a parked record whose head push holds its
   * events of this push, with its queued events behind it (written down at the next flush).
   */
  private park(push: Push, delayMs: number, lastError: string): void {
    this.scheduler.complete(push.events);
    const byRecord = new Map<string, PendingEvent[]>();
    for (const item of push.events) {
      const items = byRecord.get(item.key);
      if (items) items.push(item);
      else byRecord.set(item.key, [item]);
    }
    for (const [key, items] of byRecord) {
      const positions = [...items, ...this.scheduler.drain(key)].map((i) => i.event.position);
      this.parked.park(key, positions, {
        // One record: the push goes on as it was (same webhook-id). Several (a BULK block): each
        // record's share is a new push.
        pushId: byRecord.size === 1 ? push.id : randomUUID(),
        headLastPosition: (items.at(-1) as PendingEvent).event.position,
        attempts: push.attempts,
        delayMs,
        lastError,
      });
    }
    this.logger.warn(
      { pushId: push.id, records: byRecord.size, lastError, retryInMs: delayMs },
      "record keeps failing while others are delivered: parked, the stream moves on",
    );
    this.scheduleFlush();
    this.resumeReading();
  }

  // Circuit breaker -----------------------------------------------------------------------------

  /** The endpoint fails everything: the circuit opens and holds every push waiting for a retry. */
  private openCircuit(reason: string, probeInMs: number, step: number): void {
    if (this.breaker.open(reason, probeInMs, step)) this.holdWaiting();
  }

  /** The circuit opened: what waits for a retry is held, parked records wait for it to close. */
  private holdWaiting(): void {
    this.breaker.holdAll(this.retries.takeAll());
    for (const push of this.dueParked.splice(0)) if (push.parked) this.parked.released(push.parked);
    this.parked.armAll(); // clears their timers while the circuit is open
  }

  /** Events ready to go that no held push carries (a fresh probe could be made of them). */
  private hasFreshWork(): boolean {
    return this.scheduler.readyRecords > 0 || this.batcher.length > 0;
  }

  /** A push of the stream's next ready events (what a fresh probe is made of). */
  private freshPush(): Push | undefined {
    if (this.batcher.length > 0) return this.newPush(this.batcher.take(), true);
    const bulk = this.subscription.pushMode === "BULK";
    const items = this.scheduler.take(bulk ? this.subscription.maxBlockSize : 1);
    return items.length > 0 ? this.newPush(items, bulk) : undefined;
  }

  private clearFailureTimers(): void {
    this.retries.clear();
    this.parked.stop();
    this.breaker.stop();
  }

  // Watermark -----------------------------------------------------------------------------------

  /** Runs `write` after every database write queued before it. */
  private serial<T>(write: () => Promise<T>): Promise<T> {
    const result = this.chain.then(write);
    this.chain = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }

  private scheduleFlush(): void {
    if (this.flushTimer || this.state === "stopped") return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      void this.flush();
    }, this.ctx.tuning.watermarkFlushMs);
  }

  private leaseLost(): void {
    if (this.state !== "running") return;
    this.logger.warn("lease lost: another worker drives this subscription now");
    this.state = "stopping";
    this.follower.stop();
    this.ctx.onGiveUp(this.subscription.id, "lease lost");
  }

  /** Writes pending attempts, parked events and the watermark. */
  flush(): Promise<void> {
    return this.serial(async () => {
      const attempts = this.attempts;
      this.attempts = [];
      try {
        await recordAttempts(this.ctx.db, attempts);
      } catch (error) {
        this.outage.failed(error, "could not record push attempts; will retry");
        this.attempts = attempts.concat(this.attempts);
        this.scheduleFlush();
        return;
      }
      try {
        await this.parked.writeQueue();
        const safe = this.tracker.safe;
        if (safe > this.persisted) {
          const held = await advanceWatermark(
            this.ctx.db,
            this.subscription.id,
            this.ctx.workerId,
            safe,
          );
          if (held) this.persisted = safe;
          else this.leaseLost();
        }
      } catch (error) {
        if (error instanceof LeaseLostError) this.leaseLost();
        else {
          this.outage.failed(error, "could not persist delivery progress; will retry");
          this.scheduleFlush();
        }
      }
    });
  }

  // Stopping ------------------------------------------------------------------------------------

  private notifyIdle(): void {
    if (this.inFlight > 0) return;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  /**
   * Stops taking work: nothing more is read or sent, pushes waiting for a retry and the open block
   * are handed back (the watermark stays below them, so they are sent again later; parked records
   * stay parked in the database), in-flight pushes get `timeoutMs` to finish, then the progress is
   * written.
   */
  async stop(timeoutMs: number): Promise<void> {
    if (this.state === "stopped") return;
    this.state = "stopping";
    this.follower.stop();
    if (this.batchTimer) clearTimeout(this.batchTimer);
    this.clearFailureTimers();
    this.dueParked.length = 0;
    this.batcher.take();
    // A replay push waiting for a slot had passed its checks: it goes now (as it would have a moment
    // earlier with a slot free), counted in flight, rather than hanging the replay's stop.
    this.admitReplay();
    const replays = this.replays.stop();
    if (this.inFlight > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => this.idleWaiters.push(resolve)),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs))),
      ]);
      clearTimeout(timer);
    }
    await replays;
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    await this.flush();
    this.state = "stopped";
  }
}
