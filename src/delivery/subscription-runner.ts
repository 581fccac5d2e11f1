/**
 * Drives one leased subscription (DESIGN §5): reads the log from the watermark, keeps the matching
 * events, hands them to the per-record scheduler, groups them into pushes (one event, or a BULK
 * block), sends them with retries, and moves the durable watermark over the contiguous prefix of
 * finished positions, in batches and only while this worker holds the lease.
 *
 * When the endpoint misbehaves (SPEC §6):
 * - a push that fails is retried on the retry policy's schedule; its record's later events wait;
 * - a record whose push keeps failing while the endpoint accepts other records is PARKED: its events
 *   go to the `parked_events` table (then the watermark may pass them), they are retried there on
 *   the schedule, and the stream moves on;
 * - when the endpoint fails everything, the CIRCUIT opens: the subscription is FAILING, stops
 *   reading and sending, and probes with one push on the schedule; nothing is parked meanwhile, and
 *   on the first success everything held is sent again from where it stopped;
 * - after 24 h of that a warning is raised, after 3 days the subscription is deactivated.
 * Failure timing runs on `ctx.clock`, so tests can let days pass in seconds.
 */
import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import type { ChangeEvent } from "../domain/change-event.js";
import type { AttemptOutcome, AttemptResult } from "../domain/delivery-outcome.js";
import { decideOutcome } from "../domain/delivery-outcome.js";
import type { EndpointHealthKind } from "../domain/endpoint-health.js";
import { endpointHealth, operationalEventFor } from "../domain/endpoint-health.js";
import { jitteredDelay } from "../domain/retry-policy.js";
import type { RandomSource, RetryPolicy } from "../domain/retry-policy.js";
import { matchesSubscription } from "../domain/subscription-matching.js";
import type { Subscription } from "../domain/subscription.js";
import { webhookSignatureHeaders } from "../domain/webhook-signature.js";
import { readLogHead } from "../storage/change-event-repository.js";
import type { Database } from "../storage/database.js";
import type { AttemptOutcomeName, AttemptRecord } from "../storage/delivery-repository.js";
import {
  advanceWatermark,
  disableSubscription,
  readLogWindow,
  recordAttempts,
} from "../storage/delivery-repository.js";
import type { HealthAnnouncement } from "../storage/endpoint-health-repository.js";
import {
  markActive,
  markFailing,
  switchHealthAnnouncement,
} from "../storage/endpoint-health-repository.js";
import type { ParkedRecord } from "../storage/parking-repository.js";
import {
  loadParkedRecords,
  parkEvents,
  readParkedEvents,
  releaseParkedEvents,
  unparkRecord,
  updateParkedHead,
} from "../storage/parking-repository.js";
import type { EndpointHealthThresholds } from "../domain/endpoint-health.js";
import type { OperationsNotifier } from "../jobs/operations-notifier.js";
import { BulkBatcher } from "./bulk-batcher.js";
import type { Clock } from "./clock.js";
import { encodePushBody } from "./push-body.js";
import type { DeliveryTuning } from "./delivery-tuning.js";
import type { HttpSender } from "./http-sender.js";
import { RecordScheduler } from "./record-scheduler.js";
import { WatermarkTracker } from "./watermark-tracker.js";

export interface RunnerContext {
  db: Database;
  sender: HttpSender;
  logger: Logger;
  workerId: string;
  tuning: DeliveryTuning;
  policy: RetryPolicy;
  random: RandomSource;
  /** Retry, parking, probe and endpoint-health timing runs on this clock (scaled in tests). */
  clock: Clock;
  /** Raises operational events (SPEC §6 endpoint health). */
  operations: OperationsNotifier;
  health: EndpointHealthThresholds;
  /** False when this worker's leases may have lapsed: no push may start. */
  leaseValid(): boolean;
  /** The runner can no longer drive its subscription (lease lost, subscription disabled). */
  onGiveUp(subscriptionId: number, why: string): void;
}

interface PendingEvent {
  key: string;
  event: ChangeEvent;
}

interface Push {
  id: string;
  events: PendingEvent[];
  /** UTF-8 bytes of the envelope: encoded once, then signed and sent as they are on every attempt. */
  body: Buffer;
  attempts: number;
  /** How many pushes had been delivered when this one first failed (parking and circuit evidence). */
  deliveriesAtFirstFailure?: number;
  /** The head push of a parked record (its events are in `parked_events`, not in the scheduler). */
  parked?: ParkedState;
  /** Sent as the circuit's probe. */
  probe?: boolean;
}

/** A parked record, mirrored in memory (the `parked_records` row plus what is in flight). */
interface ParkedState extends Omit<ParkedRecord, "nextAttemptAt"> {
  /** Clock time of the next attempt. */
  nextAttemptAt: number;
  timer: NodeJS.Timeout | undefined;
  /** Its head push is being loaded, waits for a slot, or is in flight. */
  busy: boolean;
}

/** The open circuit: the endpoint fails everything (SPEC §6 FAILING). */
interface Circuit {
  /** Clock time of the first failure of the streak that opened it. */
  since: number;
  probeTimer: NodeJS.Timeout | undefined;
  /** Clock time the next probe is due (what held pushes show as their next attempt). */
  nextProbeAt: number;
  /** The next probe may go. */
  probeDue: boolean;
  /** A probe is in flight. */
  probing: boolean;
  /**
   * The last probe was a held push: the next one tries a fresh record first, so one record the
   * endpoint rejects cannot keep a working endpoint FAILING.
   */
  lastProbeHeld: boolean;
  healthTimers: NodeJS.Timeout[];
}

interface PendingRead {
  after: number;
  upTo: number;
  /** The definition the read's SQL pre-filter was built from. */
  subscription: Subscription;
  events: Promise<ChangeEvent[]>;
}

type RunnerState = "running" | "stopping" | "stopped";

const OUTCOME_NAMES: Record<AttemptOutcome["kind"], AttemptOutcomeName> = {
  delivered: "DELIVERED",
  retry: "RETRY",
  failed: "FAILED",
  disable: "DISABLED",
};

/** What an announcement means as an endpoint-health state (null: failing, or nothing said yet). */
const ANNOUNCED_HEALTH: Record<"warn" | "disable", EndpointHealthKind> = {
  warn: "warn",
  disable: "disable",
};

/**
 * The ordering key of an event: one record of one source. The unit separator keeps it storable in
 * PostgreSQL text (parked records).
 */
export function recordKeyOf(event: Pick<ChangeEvent, "source" | "sourceId" | "recordKey">): string {
  return `${event.source}\u001f${event.sourceId}\u001f${event.recordKey}`;
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
  private readonly clock: Clock;
  private persisted: number;
  private state: RunnerState = "running";
  private inFlight = 0;
  private readonly dueRetries: Push[] = [];
  private readonly retryTimers = new Map<NodeJS.Timeout, Push>();
  private batchTimer: NodeJS.Timeout | undefined;
  private flushTimer: NodeJS.Timeout | undefined;
  /** Every database write of this runner goes through this chain, so writes never cross. */
  private chain: Promise<void> = Promise.resolve();
  private attempts: AttemptRecord[] = [];
  private reading = false;
  private readAgain = false;
  private starved = false;
  /** The last read filled its page or stopped at the buffer limit: more of the log is waiting. */
  private behind = false;
  /** The highest log head known (NOTIFY payload or a read of log_head). */
  private knownHead = 0;
  private idleWaiters: (() => void)[] = [];
  /** Positions per read (see readAhead). */
  private windowSize: number;
  /** Parked records are loaded (and a FAILING state restored) before the first read. */
  private loaded: Promise<void> | undefined;

  // Failure handling
  private readonly parked = new Map<string, ParkedState>();
  /** Events of parked records read from the log, not yet written to `parked_events`. */
  private parkQueue: { key: string; position: number }[] = [];
  /** Head pushes of parked records, loaded and waiting for a free slot. */
  private readonly dueParked: Push[] = [];
  private deliveredPushes = 0;
  private failureStreak = 0;
  /** Clock time of the first failure of the current streak. */
  private streakStartedAt = 0;
  private circuit: Circuit | undefined;
  /** Live pushes that failed while the circuit is open: sent again when it closes. */
  private held: Push[] = [];
  /** The recovery of an earlier warning or deactivation has been checked since the last failure. */
  private healthSettled = false;

  constructor(
    subscription: Subscription,
    watermark: number,
    private readonly ctx: RunnerContext,
  ) {
    this.subscription = subscription;
    this.persisted = watermark;
    this.tracker = new WatermarkTracker(watermark);
    this.batcher = new BulkBatcher(this.limits());
    this.windowSize = ctx.tuning.readBatchSize;
    this.clock = ctx.clock;
    this.logger = ctx.logger.child({ subscriptionId: subscription.id });
  }

  get id(): number {
    return this.subscription.id;
  }

  /** Events held in memory (queued, in a block, in flight or waiting for a retry). */
  get buffered(): number {
    return this.scheduler.size;
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
   * New events may be in the log (NOTIFY, poll, or a renewed lease). `head`, when known (the
   * sequencer's NOTIFY payload), saves reading it: every position up to it is stamped and committed.
   */
  poke(head?: number): void {
    if (this.state !== "running") return;
    if (head !== undefined && head > this.knownHead) this.knownHead = head;
    void this.pump();
    this.dispatch();
  }

  // Starting ------------------------------------------------------------------------------------

  /** Loads the parked records and restores an open circuit (a FAILING subscription stays failing). */
  private async load(): Promise<void> {
    const records = await loadParkedRecords(this.ctx.db, this.subscription.id);
    for (const record of records) {
      const state: ParkedState = {
        ...record,
        nextAttemptAt: record.nextAttemptAt.getTime(),
        timer: undefined,
        busy: false,
      };
      this.parked.set(record.key, state);
    }
    if (records.length > 0)
      this.logger.info({ parkedRecords: records.length }, "resuming with parked records");
    const sub = this.subscription;
    if (sub.state === "FAILING") {
      this.streakStartedAt = sub.failingSince?.getTime() ?? this.clock.now();
      const probeInMs = this.ctx.policy.scheduleMs[1] ?? 5_000;
      this.openCircuit(sub.stateReason ?? "the endpoint failed every push", probeInMs);
    }
    for (const state of this.parked.values()) this.armParked(state);
  }

  // Reading -------------------------------------------------------------------------------------

  private async pump(): Promise<void> {
    if (this.reading) {
      this.readAgain = true;
      return;
    }
    this.reading = true;
    try {
      this.loaded ??= this.load().catch((error: unknown) => {
        this.loaded = undefined;
        throw error;
      });
      await this.loaded;
      do {
        this.readAgain = false;
        await this.readAhead();
      } while (this.readAgain && this.state === "running");
    } catch (error) {
      this.logger.warn({ err: error }, "reading the log failed; retrying at the next poll");
    } finally {
      this.reading = false;
    }
  }

  /** Starts reading the window (after, upTo] of the log with the subscription's SQL pre-filter. */
  private startRead(after: number, upTo: number): PendingRead {
    const sub = this.subscription;
    const events = readLogWindow(this.ctx.db, after, upTo, this.ctx.tuning.readBatchSize, {
      entityId: sub.entityId,
      source: sub.on,
      sourceId: sub.onElementId,
      eventType: sub.eventType,
      onFields: sub.onFields,
    });
    // A read started ahead may be dropped unread (stop, full buffer); its failure is then nobody's.
    events.catch(() => undefined);
    return { after, upTo, subscription: sub, events };
  }

  /**
   * Reads the log in position windows while the buffer has room. While a backlog exists the next
   * window is read while this one is handled (one read ahead), so the engine does not wait for the
   * database between pages. Windows are `readBatchSize` positions wide while the log is dense (a
   * window then cannot hold more than one page, so the next one is known before this one returns)
   * and grow up to five times that while few events match (fewer queries for a sparse subscription).
   * With the circuit open, reading stops as soon as something is held to probe with.
   */
  private async readAhead(): Promise<void> {
    const batch = this.ctx.tuning.readBatchSize;
    let ahead: PendingRead | undefined;
    while (this.state === "running") {
      if (this.bufferFull() || (this.circuit && this.scheduler.size > 0)) {
        this.starved = true;
        this.behind = true;
        return;
      }
      const cursor = this.tracker.cursor;
      // Every position up to a head we know of is stamped and committed; ask the database only when
      // we have caught up with it.
      if (this.knownHead <= cursor)
        this.knownHead = Math.max(this.knownHead, await readLogHead(this.ctx.db));
      const head = this.knownHead;
      if (head <= cursor) {
        this.behind = false;
        return;
      }
      const read =
        ahead && ahead.after === cursor && ahead.subscription === this.subscription
          ? ahead
          : this.startRead(cursor, Math.min(head, cursor + this.windowSize));
      ahead = undefined;
      if (read.upTo < head && !this.bufferFull(0.5) && !this.circuit)
        ahead = this.startRead(read.upTo, Math.min(head, read.upTo + this.windowSize));
      const events = await read.events;
      if (this.state !== "running") return;
      const sub = this.subscription;
      let parkedSome = false;
      for (const event of events) {
        if (event.position <= this.tracker.cursor) continue;
        if (!matchesSubscription(sub, event)) continue;
        this.tracker.add(event.position);
        const key = recordKeyOf(event);
        if (this.parked.has(key)) {
          // Queued behind its parked record, in log order; finished once written down.
          this.parkQueue.push({ key, position: event.position });
          parkedSome = true;
        } else this.scheduler.enqueue({ key, event });
      }
      // A full page may stop short of its window; otherwise the whole window has been examined.
      const cut = events.length === batch && (events.at(-1)?.position ?? read.upTo) < read.upTo;
      this.tracker.readUpTo(cut ? (events.at(-1)?.position ?? cursor) : read.upTo);
      if (cut || events.length > batch / 2) this.windowSize = batch;
      else this.windowSize = Math.min(batch * 5, this.windowSize * 2);
      this.behind = this.tracker.cursor < head;
      this.dispatch();
      if (parkedSome || !this.flushTimer) this.scheduleFlush();
    }
  }

  // Sending -------------------------------------------------------------------------------------

  private dispatch(): void {
    if (this.state !== "running" || !this.ctx.leaseValid()) return;
    if (this.circuit) {
      this.dispatchProbe();
      return;
    }
    const max = this.subscription.maxConcurrency;
    while (this.inFlight < max && this.dueRetries.length > 0)
      this.launch(this.dueRetries.shift() as Push);
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
      const nothingToAdd = this.behind && this.scheduler.readyRecords === 0;
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

  private launch(push: Push): void {
    this.inFlight++;
    this.attempt(push).catch((error: unknown) => {
      this.logger.error({ err: error, pushId: push.id }, "push attempt crashed");
    });
  }

  private async attempt(push: Push): Promise<void> {
    push.attempts++;
    const sub = this.subscription;
    const startedAt = new Date(this.clock.now());
    let result: AttemptResult;
    try {
      result = await this.ctx.sender.send({
        url: sub.targetUrl,
        body: push.body,
        headers: sub.headers,
        // Receivers check the signature's timestamp against their own (real) clock.
        signatureHeaders: webhookSignatureHeaders(sub, push.id, push.body, new Date()),
      });
    } finally {
      this.inFlight--;
    }
    const now = new Date(this.clock.now());
    const outcome = decideOutcome(result, push.attempts, now, this.ctx.random, this.ctx.policy);
    if (outcome.kind === "delivered") {
      this.recordAttempt(push, startedAt, result, outcome);
      this.delivered(push);
    } else if (outcome.kind === "disable") {
      this.recordAttempt(push, startedAt, result, outcome);
      await this.disable(outcome.reason);
    } else if (push.parked) {
      this.recordAttempt(push, startedAt, result, outcome);
      this.parkedFailed(push, push.parked, outcome, describeFailure(result));
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
    nextAttemptAt: Date | null = outcome.kind === "retry"
      ? new Date(startedAt.getTime() + outcome.delayMs)
      : null,
  ): void {
    const first = push.events[0]?.event.position ?? 0;
    const last = push.events.at(-1)?.event.position ?? first;
    this.attempts.push({
      subscriptionId: this.subscription.id,
      pushId: push.id,
      attempt: push.attempts,
      eventIds: push.events.map((item) => item.event.id),
      firstPosition: first,
      lastPosition: last,
      attemptedAt: startedAt,
      durationMs: result.durationMs,
      outcome: OUTCOME_NAMES[outcome.kind],
      statusCode: result.kind === "response" ? result.status : null,
      errorClass: outcome.kind === "delivered" ? null : outcome.errorClass,
      errorMessage: result.kind === "error" ? result.message : null,
      responseExcerpt: result.kind === "response" && result.excerpt ? result.excerpt : null,
      nextAttemptAt,
      workerId: this.ctx.workerId,
    });
    this.scheduleFlush();
  }

  // Outcomes ------------------------------------------------------------------------------------

  private delivered(push: Push): void {
    this.deliveredPushes++;
    this.failureStreak = 0;
    if (this.circuit) this.closeCircuit();
    if (!this.healthSettled) {
      this.healthSettled = true;
      this.announceHealth(null, "the endpoint accepts pushes again");
    }
    if (push.parked) this.parkedDone(push.parked);
    else this.finish(push);
  }

  /**
   * A live push failed: retry it in memory, park its records, or open the circuit, and record the
   * attempt accordingly. While the circuit is open a push is never given up: it waits for the
   * endpoint to come back.
   */
  private liveFailed(
    push: Push,
    outcome: Exclude<AttemptOutcome, { kind: "delivered" | "disable" }>,
    startedAt: Date,
    result: AttemptResult,
  ): void {
    if (this.failureStreak++ === 0) this.streakStartedAt = startedAt.getTime();
    push.deliveriesAtFirstFailure ??= this.deliveredPushes;
    const othersDelivered = this.deliveredPushes > push.deliveriesAtFirstFailure;
    const what = describeFailure(result);
    // A push held by the open circuit goes again after the probe that closes it: no sooner than
    // the next probe.
    const waiting = (delayMs?: number): void => {
      const next = new Date(
        delayMs === undefined
          ? (this.circuit?.nextProbeAt ?? this.clock.now())
          : startedAt.getTime() + delayMs,
      );
      const recorded: AttemptOutcome = {
        kind: "retry",
        delayMs: delayMs ?? 0,
        errorClass: outcome.errorClass,
      };
      this.recordAttempt(push, startedAt, result, recorded, next);
    };
    if (this.state !== "running") {
      // Handed back meanwhile: the watermark stays below the push, the next driver sends it again.
      this.recordAttempt(push, startedAt, result, outcome);
      return;
    }
    if (this.circuit) {
      this.held.push(push);
      if (!push.probe) return waiting();
      this.circuit.probing = false;
      push.probe = false;
      const delayMs = this.probeDelay(outcome);
      this.scheduleProbe(delayMs);
      return waiting(delayMs);
    }
    const everythingFails =
      this.failureStreak >= this.ctx.tuning.circuitBreakerFailures ||
      (push.attempts >= 3 && !othersDelivered);
    if (everythingFails) {
      const delayMs = this.probeDelay(outcome);
      this.held.push(push);
      this.openCircuit(`the endpoint fails every push; last: ${what}`, delayMs);
      return waiting(delayMs);
    }
    this.recordAttempt(push, startedAt, result, outcome);
    if (outcome.kind === "failed") {
      this.logger.warn({ pushId: push.id, reason: outcome.reason }, "push failed for good");
      this.finish(push);
    } else if (push.attempts >= 2 && othersDelivered) {
      this.park(push, outcome.delayMs, what);
    } else {
      if (push.attempts === 1 || this.logger.isLevelEnabled("debug"))
        this.logger.info(
          { pushId: push.id, errorClass: outcome.errorClass, delayMs: outcome.delayMs },
          "push failed; retrying later",
        );
      this.scheduleRetry(push, outcome.delayMs);
    }
  }

  /** The record(s) of the push stay busy meanwhile: their later events wait behind it. */
  private scheduleRetry(push: Push, delayMs: number): void {
    const timer = this.clock.setTimer(() => {
      this.retryTimers.delete(timer);
      if (this.state !== "running") return;
      this.dueRetries.push(push);
      this.dispatch();
    }, delayMs);
    this.retryTimers.set(timer, push);
  }

  private finish(push: Push): void {
    this.scheduler.complete(push.events);
    for (const item of push.events) this.tracker.finish(item.event.position);
    this.scheduleFlush();
    this.resumeReading();
  }

  private resumeReading(): void {
    if (this.starved && !this.bufferFull(0.75) && !this.circuit) {
      this.starved = false;
      void this.pump();
    }
  }

  private async disable(reason: string): Promise<void> {
    if (this.state !== "running") return;
    this.logger.warn({ reason }, "subscription deactivated");
    this.state = "stopping";
    this.clearFailureTimers();
    try {
      await this.serial(() =>
        disableSubscription(this.ctx.db, this.subscription.id, this.ctx.workerId, reason),
      );
      await this.announce("disable", reason);
    } catch (error) {
      this.logger.error({ err: error }, "could not mark the subscription disabled");
    }
    this.ctx.onGiveUp(this.subscription.id, "disabled");
  }

  // Parking -------------------------------------------------------------------------------------

  /**
   * The push's records leave the stream: each becomes a parked record whose head push holds its
   * events of this push, with its queued events behind it. They are written down at the next flush;
   * only then may the watermark pass them.
   */
  private park(push: Push, delayMs: number, lastError: string): void {
    this.scheduler.complete(push.events);
    const byRecord = new Map<string, PendingEvent[]>();
    for (const item of push.events) {
      const items = byRecord.get(item.key);
      if (items) items.push(item);
      else byRecord.set(item.key, [item]);
    }
    const now = this.clock.now();
    for (const [key, items] of byRecord) {
      const state: ParkedState = {
        key,
        // One record: the push goes on as it was (same webhook-id). Several (a BULK block): each
        // record's share is a new push.
        pushId: byRecord.size === 1 ? push.id : randomUUID(),
        headLastPosition: (items.at(-1) as PendingEvent).event.position,
        attempts: push.attempts,
        nextAttemptAt: now + delayMs,
        parkedAt: new Date(now),
        lastError,
        timer: undefined,
        busy: false,
      };
      this.parked.set(key, state);
      for (const item of [...items, ...this.scheduler.drain(key)])
        this.parkQueue.push({ key, position: item.event.position });
      this.armParked(state);
    }
    this.logger.warn(
      { pushId: push.id, records: byRecord.size, lastError, retryInMs: delayMs },
      "record keeps failing while others are delivered: parked, the stream moves on",
    );
    this.scheduleFlush();
    this.resumeReading();
  }

  private armParked(state: ParkedState): void {
    if (state.timer) this.clock.clearTimer(state.timer);
    state.timer = undefined;
    if (this.state !== "running" || state.busy || this.circuit) return;
    state.timer = this.clock.setTimer(() => {
      state.timer = undefined;
      this.sendParked(state);
    }, state.nextAttemptAt - this.clock.now());
  }

  /** Loads a parked record's head push and queues it for a free slot. */
  private sendParked(state: ParkedState): void {
    if (this.state !== "running" || state.busy || this.circuit) return;
    state.busy = true;
    const bulk = this.subscription.pushMode === "BULK";
    this.serial(async () => {
      await this.writeParkQueue();
      const limit = bulk ? this.subscription.maxBlockSize : 1;
      return readParkedEvents(this.ctx.db, this.subscription.id, state.key, 0, limit);
    })
      .then((events) => {
        if (this.state !== "running") return;
        const head = events.filter((e) => e.position <= state.headLastPosition);
        if (head.length === 0) {
          // Nothing left under this head (a restart between delivery and release): move on.
          this.parkedDone(state);
          return;
        }
        const items = head.map((event) => ({ key: state.key, event }));
        this.dueParked.push({
          id: state.pushId,
          events: items,
          body: encodePushBody(state.pushId, this.subscription, head, bulk),
          attempts: state.attempts,
          parked: state,
        });
        this.dispatch();
      })
      .catch((error: unknown) => {
        this.logger.warn({ err: error, record: state.key }, "could not load a parked record");
        state.busy = false;
        state.nextAttemptAt = this.clock.now() + 5_000;
        this.armParked(state);
      });
  }

  private parkedFailed(
    push: Push,
    state: ParkedState,
    outcome: Exclude<AttemptOutcome, { kind: "delivered" | "disable" }>,
    lastError: string,
  ): void {
    if (outcome.kind === "failed") {
      this.logger.warn(
        { pushId: push.id, record: state.key, reason: outcome.reason },
        "parked record's push failed for good; its events are recorded as failed (replayable)",
      );
      this.parkedDone(state);
      return;
    }
    state.attempts = push.attempts;
    state.nextAttemptAt = this.clock.now() + outcome.delayMs;
    state.lastError = lastError;
    void this.serial(() =>
      updateParkedHead(this.ctx.db, this.subscription.id, this.ctx.workerId, {
        ...state,
        nextAttemptAt: new Date(state.nextAttemptAt),
      }),
    ).catch((error: unknown) =>
      this.logger.warn({ err: error }, "could not record a parked record's attempt"),
    );
    state.busy = false;
    this.armParked(state);
  }

  /**
   * The parked record's head push ended (delivered, or given up): its events leave the parking. The
   * next ones follow at once as a new head push; with none left, the record is unparked and its
   * later events flow with the stream again.
   */
  private parkedDone(state: ParkedState): void {
    const bulk = this.subscription.pushMode === "BULK";
    const { db, workerId } = this.ctx;
    const id = this.subscription.id;
    this.serial(async () => {
      for (;;) {
        await this.writeParkQueue();
        const remaining = await releaseParkedEvents(
          db,
          id,
          workerId,
          state.key,
          state.headLastPosition,
        );
        if (remaining < 0) return "lease lost";
        if (remaining > 0) break;
        // Events of the record read meanwhile are written first; then it is unparked in the same
        // turn, so every later event of it goes to the scheduler behind everything parked.
        if (this.parkQueue.some((entry) => entry.key === state.key)) continue;
        this.parked.delete(state.key);
        await unparkRecord(db, id, workerId, state.key);
        this.logger.info({ record: state.key }, "parked record delivered: unparked");
        return "unparked";
      }
      const next = await readParkedEvents(
        db,
        id,
        state.key,
        state.headLastPosition,
        bulk ? this.subscription.maxBlockSize : 1,
      );
      Object.assign(state, {
        pushId: randomUUID(),
        headLastPosition: next.at(-1)?.position ?? state.headLastPosition,
        attempts: 0,
        nextAttemptAt: this.clock.now(),
        lastError: null,
      });
      await updateParkedHead(db, id, workerId, {
        ...state,
        nextAttemptAt: new Date(state.nextAttemptAt),
      });
      return "next";
    })
      .then((what) => {
        if (what === "lease lost") return this.leaseLost();
        if (what === "next") {
          state.busy = false;
          this.sendParked(state);
        }
      })
      .catch((error: unknown) => {
        this.logger.warn({ err: error, record: state.key }, "could not release parked events");
        state.busy = false;
        state.nextAttemptAt = this.clock.now() + 5_000;
        this.armParked(state);
      });
  }

  /** Writes the events queued behind parked records; only then may the watermark pass them. */
  private async writeParkQueue(): Promise<void> {
    if (this.parkQueue.length === 0) return;
    const queue = this.parkQueue;
    this.parkQueue = [];
    try {
      const byRecord = new Map<string, number[]>();
      for (const { key, position } of queue) {
        const positions = byRecord.get(key);
        if (positions) positions.push(position);
        else byRecord.set(key, [position]);
      }
      for (const [key, positions] of byRecord) {
        const state = this.parked.get(key);
        // A record is unparked only with nothing queued for it, so its state is always here.
        if (!state) throw new Error(`parked record ${key} vanished with events queued behind it`);
        const held = await parkEvents(
          this.ctx.db,
          this.subscription.id,
          this.ctx.workerId,
          { ...state, nextAttemptAt: new Date(state.nextAttemptAt) },
          positions,
        );
        if (!held) throw new LeaseLostError();
        for (const position of positions) this.tracker.finish(position);
      }
    } catch (error) {
      this.parkQueue = queue.concat(this.parkQueue);
      throw error;
    }
  }

  // Circuit breaker -----------------------------------------------------------------------------

  /** The next probe's delay after a failure: the schedule's, and at most its last step. */
  private probeDelay(outcome: Exclude<AttemptOutcome, { kind: "delivered" }>): number {
    if (outcome.kind === "retry") return outcome.delayMs;
    const last = this.ctx.policy.scheduleMs.at(-1) ?? 60_000;
    return jitteredDelay(last, this.ctx.policy.jitter, this.ctx.random);
  }

  /**
   * The endpoint fails everything: stop reading and sending, hold what failed, probe with one push
   * after `probeInMs`, and watch the endpoint's health (warning at 24 h, deactivation at 3 days).
   */
  private openCircuit(reason: string, probeInMs: number): void {
    if (this.circuit) return;
    const since = this.streakStartedAt || this.clock.now();
    this.circuit = {
      since,
      probeTimer: undefined,
      nextProbeAt: this.clock.now() + probeInMs,
      probeDue: false,
      probing: false,
      lastProbeHeld: false,
      healthTimers: [],
    };
    this.healthSettled = false;
    for (const [timer, push] of this.retryTimers) {
      this.clock.clearTimer(timer);
      this.held.push(push);
    }
    this.retryTimers.clear();
    this.held.push(...this.dueRetries.splice(0));
    for (const push of this.dueParked.splice(0)) if (push.parked) push.parked.busy = false;
    for (const state of this.parked.values()) this.armParked(state); // clears their timers
    this.scheduleProbe(probeInMs);
    const health = this.ctx.health;
    for (const after of [health.warnAfterMs, health.disableAfterMs])
      this.circuit.healthTimers.push(
        this.clock.setTimer(() => void this.checkHealth(), since + after - this.clock.now()),
      );
    this.logger.warn(
      { reason, failingSince: new Date(since).toISOString(), probeInMs },
      "endpoint fails every push: subscription FAILING, probing it on the retry schedule",
    );
    void this.serial(() =>
      markFailing(this.ctx.db, this.subscription.id, this.ctx.workerId, new Date(since), reason),
    ).catch((error: unknown) => this.logger.warn({ err: error }, "could not record FAILING"));
  }

  private scheduleProbe(delayMs: number): void {
    const circuit = this.circuit;
    if (!circuit) return;
    if (circuit.probeTimer) this.clock.clearTimer(circuit.probeTimer);
    circuit.nextProbeAt = this.clock.now() + delayMs;
    circuit.probeTimer = this.clock.setTimer(() => {
      circuit.probeTimer = undefined;
      circuit.probeDue = true;
      this.dispatch();
      if (this.scheduler.size === 0 && this.held.length === 0) void this.pump(); // nothing to probe with yet
    }, delayMs);
  }

  /**
   * Sends the probe: the oldest held push, or the next push the stream has; they take turns while
   * both exist (a push of one rejected record must not be the only probe).
   */
  private dispatchProbe(): void {
    const circuit = this.circuit as Circuit;
    if (!circuit.probeDue || circuit.probing) return;
    const bulk = this.subscription.pushMode === "BULK";
    const fresh = (): Push | undefined => {
      if (this.batcher.length > 0) return this.newPush(this.batcher.take(), true);
      const items = this.scheduler.take(bulk ? this.subscription.maxBlockSize : 1);
      return items.length > 0 ? this.newPush(items, bulk) : undefined;
    };
    const oldestHeld = (): Push | undefined => {
      this.held.sort((a, b) => firstPosition(a) - firstPosition(b));
      return this.held.shift();
    };
    let push = circuit.lastProbeHeld ? fresh() : undefined;
    let fromHeld = false;
    if (!push) {
      push = oldestHeld();
      fromHeld = push !== undefined;
    }
    push ??= fresh();
    if (!push) return;
    circuit.lastProbeHeld = fromHeld;
    circuit.probeDue = false;
    circuit.probing = true;
    push.probe = true;
    this.launch(push);
  }

  /** The endpoint delivered: everything held goes again at once, reading resumes, parked records too. */
  private closeCircuit(): void {
    const circuit = this.circuit;
    if (!circuit) return;
    this.circuit = undefined;
    if (circuit.probeTimer) this.clock.clearTimer(circuit.probeTimer);
    for (const timer of circuit.healthTimers) this.clock.clearTimer(timer);
    this.held.sort((a, b) => firstPosition(a) - firstPosition(b));
    for (const push of this.held.splice(0)) {
      push.probe = false;
      this.dueRetries.push(push);
    }
    for (const state of this.parked.values()) this.armParked(state);
    this.logger.info(
      { failedForMs: this.clock.now() - circuit.since },
      "endpoint delivers again: subscription ACTIVE, resuming from where it stopped",
    );
    void this.serial(() => markActive(this.ctx.db, this.subscription.id, this.ctx.workerId)).catch(
      (error: unknown) => this.logger.warn({ err: error }, "could not record ACTIVE"),
    );
    this.starved = false;
    void this.pump();
  }

  // Endpoint health (SPEC §6) -------------------------------------------------------------------

  private async checkHealth(): Promise<void> {
    const circuit = this.circuit;
    if (!circuit || this.state !== "running") return;
    const now = this.clock.now();
    const health = endpointHealth(new Date(circuit.since), new Date(now), this.ctx.health);
    if (health.kind === "disable") {
      await this.disable(health.reason);
    } else if (health.kind === "warn") {
      const reason = `the endpoint has failed every push since ${new Date(circuit.since).toISOString()}; Herald keeps probing it and deactivates the subscription after ${Math.round(this.ctx.health.disableAfterMs / 3_600_000)} hours of continuous failure`;
      this.announceHealth("warn", reason);
    }
  }

  /** Switches the announced health (once per transition, across workers) and raises its event. */
  private announceHealth(next: HealthAnnouncement, reason: string): void {
    void this.announce(next, reason).catch((error: unknown) =>
      this.logger.warn({ err: error }, "could not record the endpoint's health"),
    );
  }

  private async announce(next: HealthAnnouncement, reason: string): Promise<void> {
    const sub = this.subscription;
    const previous = await this.serial(() =>
      switchHealthAnnouncement(this.ctx.db, sub.id, this.ctx.workerId, next, reason),
    );
    if (previous === "unchanged") return;
    const before: EndpointHealthKind = previous === null ? "failing" : ANNOUNCED_HEALTH[previous];
    const after: EndpointHealthKind = next === null ? "healthy" : ANNOUNCED_HEALTH[next];
    const type = operationalEventFor(before, after);
    if (!type) return;
    void this.ctx.operations.notify({
      type,
      subscriptionId: sub.id,
      entity: sub.entityName,
      reason,
      at: new Date(this.clock.now()),
    });
  }

  private clearFailureTimers(): void {
    for (const timer of this.retryTimers.keys()) this.clock.clearTimer(timer);
    this.retryTimers.clear();
    for (const state of this.parked.values()) {
      if (state.timer) this.clock.clearTimer(state.timer);
      state.timer = undefined;
    }
    const circuit = this.circuit;
    if (circuit) {
      if (circuit.probeTimer) this.clock.clearTimer(circuit.probeTimer);
      for (const timer of circuit.healthTimers) this.clock.clearTimer(timer);
    }
  }

  // Watermark -----------------------------------------------------------------------------------

  /** Runs `write` after every write queued before it. */
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
        this.logger.warn({ err: error }, "could not record push attempts; will retry");
        this.attempts = attempts.concat(this.attempts);
        this.scheduleFlush();
        return;
      }
      try {
        await this.writeParkQueue();
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
          this.logger.warn({ err: error }, "could not persist delivery progress; will retry");
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
    if (this.batchTimer) clearTimeout(this.batchTimer);
    this.clearFailureTimers();
    this.dueRetries.length = 0;
    this.dueParked.length = 0;
    this.held = [];
    this.batcher.take();
    if (this.inFlight > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => this.idleWaiters.push(resolve)),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs))),
      ]);
      clearTimeout(timer);
    }
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    await this.flush();
    this.state = "stopped";
  }
}

class LeaseLostError extends Error {
  constructor() {
    super("this worker no longer holds the subscription's lease");
  }
}

function firstPosition(push: Push): number {
  return push.events[0]?.event.position ?? 0;
}
