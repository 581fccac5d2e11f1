/**
 * Drives one leased subscription (DESIGN §5): reads the log from the watermark, keeps the matching
 * events, hands them to the per-record scheduler, groups them into pushes (one event, or a BULK
 * block), sends them with retries, and moves the durable watermark over the contiguous prefix of
 * finished positions, in batches and only while this worker holds the lease.
 */
import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import type { ChangeEvent } from "../domain/change-event.js";
import type { AttemptOutcome, AttemptResult } from "../domain/delivery-outcome.js";
import { decideOutcome } from "../domain/delivery-outcome.js";
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

/** The ordering key of an event: one record of one source. */
export function recordKeyOf(event: Pick<ChangeEvent, "source" | "sourceId" | "recordKey">): string {
  return `${event.source}\u0000${event.sourceId}\u0000${event.recordKey}`;
}

export class SubscriptionRunner {
  private subscription: Subscription;
  private readonly tracker: WatermarkTracker;
  private readonly scheduler = new RecordScheduler<PendingEvent>();
  private readonly batcher: BulkBatcher<PendingEvent>;
  private readonly logger: Logger;
  private persisted: number;
  private state: RunnerState = "running";
  private inFlight = 0;
  private readonly dueRetries: Push[] = [];
  private readonly retryTimers = new Set<NodeJS.Timeout>();
  private batchTimer: NodeJS.Timeout | undefined;
  private flushTimer: NodeJS.Timeout | undefined;
  private flushChain: Promise<void> = Promise.resolve();
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

  // Reading -------------------------------------------------------------------------------------

  private async pump(): Promise<void> {
    if (this.reading) {
      this.readAgain = true;
      return;
    }
    this.reading = true;
    try {
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
   */
  private async readAhead(): Promise<void> {
    const batch = this.ctx.tuning.readBatchSize;
    let ahead: PendingRead | undefined;
    while (this.state === "running") {
      if (this.bufferFull()) {
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
      if (read.upTo < head && !this.bufferFull(0.5))
        ahead = this.startRead(read.upTo, Math.min(head, read.upTo + this.windowSize));
      const events = await read.events;
      if (this.state !== "running") return;
      const sub = this.subscription;
      for (const event of events) {
        if (event.position <= this.tracker.cursor) continue;
        if (!matchesSubscription(sub, event)) continue;
        this.tracker.add(event.position);
        this.scheduler.enqueue({ key: recordKeyOf(event), event });
      }
      // A full page may stop short of its window; otherwise the whole window has been examined.
      const cut = events.length === batch && (events.at(-1)?.position ?? read.upTo) < read.upTo;
      this.tracker.readUpTo(cut ? (events.at(-1)?.position ?? cursor) : read.upTo);
      if (cut || events.length > batch / 2) this.windowSize = batch;
      else this.windowSize = Math.min(batch * 5, this.windowSize * 2);
      this.behind = this.tracker.cursor < head;
      this.dispatch();
      this.scheduleFlush();
    }
  }

  // Sending -------------------------------------------------------------------------------------

  private dispatch(): void {
    if (this.state !== "running" || !this.ctx.leaseValid()) return;
    const max = this.subscription.maxConcurrency;
    while (this.inFlight < max && this.dueRetries.length > 0)
      this.launch(this.dueRetries.shift() as Push);
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
    const startedAt = new Date();
    let result: AttemptResult;
    try {
      result = await this.ctx.sender.send({
        url: sub.targetUrl,
        body: push.body,
        headers: sub.headers,
        signatureHeaders: webhookSignatureHeaders(sub, push.id, push.body, startedAt),
      });
    } finally {
      this.inFlight--;
    }
    const outcome = decideOutcome(
      result,
      push.attempts,
      new Date(),
      this.ctx.random,
      this.ctx.policy,
    );
    this.recordAttempt(push, startedAt, result, outcome);
    switch (outcome.kind) {
      case "delivered":
        this.finish(push);
        break;
      case "failed":
        this.logger.warn({ pushId: push.id, reason: outcome.reason }, "push failed for good");
        this.finish(push);
        break;
      case "retry":
        if (push.attempts === 1 || this.logger.isLevelEnabled("debug"))
          this.logger.info(
            { pushId: push.id, errorClass: outcome.errorClass, delayMs: outcome.delayMs },
            "push failed; retrying later",
          );
        this.scheduleRetry(push, outcome.delayMs);
        break;
      case "disable":
        await this.disable(outcome.reason);
        break;
    }
    this.dispatch();
    this.notifyIdle();
  }

  private recordAttempt(
    push: Push,
    startedAt: Date,
    result: AttemptResult,
    outcome: AttemptOutcome,
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
      nextAttemptAt:
        outcome.kind === "retry" ? new Date(startedAt.getTime() + outcome.delayMs) : null,
      workerId: this.ctx.workerId,
    });
    this.scheduleFlush();
  }

  /** The record(s) of the push stay busy meanwhile: their later events wait behind it. */
  private scheduleRetry(push: Push, delayMs: number): void {
    if (this.state !== "running") return; // handed back: the watermark stays below it
    const timer = setTimeout(() => {
      this.retryTimers.delete(timer);
      if (this.state !== "running") return;
      this.dueRetries.push(push);
      this.dispatch();
    }, delayMs);
    this.retryTimers.add(timer);
  }

  private finish(push: Push): void {
    this.scheduler.complete(push.events);
    for (const item of push.events) this.tracker.finish(item.event.position);
    this.scheduleFlush();
    if (this.starved && !this.bufferFull(0.75)) {
      this.starved = false;
      void this.pump();
    }
  }

  private async disable(reason: string): Promise<void> {
    if (this.state !== "running") return;
    this.logger.warn({ reason }, "subscription disabled by its endpoint");
    this.state = "stopping";
    try {
      await disableSubscription(this.ctx.db, this.subscription.id, this.ctx.workerId, reason);
    } catch (error) {
      this.logger.error({ err: error }, "could not mark the subscription disabled");
    }
    this.ctx.onGiveUp(this.subscription.id, "disabled");
  }

  // Watermark -----------------------------------------------------------------------------------

  private scheduleFlush(): void {
    if (this.flushTimer || this.state === "stopped") return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      void this.flush();
    }, this.ctx.tuning.watermarkFlushMs);
  }

  /** Writes pending attempts and the watermark; serialised so writes never cross. */
  flush(): Promise<void> {
    this.flushChain = this.flushChain.then(async () => {
      const attempts = this.attempts;
      this.attempts = [];
      const safe = this.tracker.safe;
      try {
        await recordAttempts(this.ctx.db, attempts);
        if (safe > this.persisted) {
          const held = await advanceWatermark(
            this.ctx.db,
            this.subscription.id,
            this.ctx.workerId,
            safe,
          );
          if (held) this.persisted = safe;
          else if (this.state === "running") {
            this.logger.warn("lease lost: another worker drives this subscription now");
            this.state = "stopping";
            this.ctx.onGiveUp(this.subscription.id, "lease lost");
          }
        }
      } catch (error) {
        this.logger.warn({ err: error }, "could not persist delivery progress; will retry");
        this.attempts = attempts.concat(this.attempts);
        this.scheduleFlush();
      }
    });
    return this.flushChain;
  }

  // Stopping ------------------------------------------------------------------------------------

  private notifyIdle(): void {
    if (this.inFlight > 0) return;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  /**
   * Stops taking work: nothing more is read or sent, pushes waiting for a retry and the open block
   * are handed back (the watermark stays below them, so they are sent again later), in-flight pushes
   * get `timeoutMs` to finish, then the progress is written.
   */
  async stop(timeoutMs: number): Promise<void> {
    if (this.state === "stopped") return;
    this.state = "stopping";
    if (this.batchTimer) clearTimeout(this.batchTimer);
    for (const timer of this.retryTimers) clearTimeout(timer);
    this.retryTimers.clear();
    this.dueRetries.length = 0;
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
