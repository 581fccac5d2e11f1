/**
 * Per-record parking (DESIGN §5 "a failing record blocks only itself"). A record whose push keeps
 * failing while the endpoint accepts other records leaves the stream: its events, and every later
 * event of it, are written to `parked_events` (after which the watermark may pass them), and its
 * head push is retried on the retry schedule. When the head push ends (delivered, or given up after
 * the schedule), the next parked events follow at once as a new head push; when none are left the
 * record is unparked and its later events flow with the stream again.
 *
 * Every database write goes through the runner's write chain, so a record is unparked only in a
 * turn where nothing of it waits to be written: its later events then cannot overtake parked ones.
 */
import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import type { AttemptOutcome } from "../domain/delivery-outcome.js";
import type { Subscription } from "../domain/subscription.js";
import {
  loadParkedRecords,
  parkEvents,
  readParkedEvents,
  releaseParkedEvents,
  unparkRecord,
  updateParkedHead,
} from "../storage/parking-repository.js";
import type { ParkedState } from "./parked-state.js";
import type { PendingEvent, Push } from "./push.js";
import { encodePushBody } from "./push-body.js";
import type { RunnerContext } from "./runner-context.js";
import type { WriteChain } from "./write-chain.js";
import { LeaseLostError } from "./write-chain.js";

/** What parking needs from the runner that owns it. */
export interface ParkingHost {
  readonly ctx: RunnerContext;
  readonly logger: Logger;
  /** The runner's database writes, in order. */
  readonly chain: WriteChain;
  /** Positions written down as parked are finished here: the watermark may pass them. */
  readonly finished: { finish(position: number): void };
  subscription(): Subscription;
  /** The runner drives the subscription and the circuit is closed: parked records may be retried. */
  mayRetry(): boolean;
  /** A parked record's head push is loaded and due (nextDue): send it when a slot is free. */
  headDue(): void;
  leaseLost(): void;
}

/** The record scheduler, as parking takes a record's queued events out of it. */
export interface QueuedRecords {
  /** Removes a record that is not busy and returns its queued events, in order. */
  drain(key: string): PendingEvent[];
}

/** A failed attempt's outcome as parking handles it: retry later, or given up. */
type Failure = Extract<AttemptOutcome, { kind: "retry" | "failed" }>;

const RELOAD_AFTER_ERROR_MS = 5_000;

export class ParkedRecords {
  private readonly records = new Map<string, ParkedState>();
  /** Events of parked records read from the log, not yet written to `parked_events`. */
  private queue: { key: string; position: number }[] = [];
  /** Head pushes loaded and waiting for a free slot. */
  private due: Push[] = [];

  constructor(private readonly host: ParkingHost) {}

  get size(): number {
    return this.records.size;
  }

  has(key: string): boolean {
    // Asked for every event read: mostly nothing is parked, and then no key is hashed here.
    return this.records.size > 0 && this.records.has(key);
  }

  /** Loads the subscription's parked records (when the runner takes the lease). */
  async load(): Promise<void> {
    const records = await loadParkedRecords(this.host.ctx.db, this.host.subscription().id);
    for (const record of records)
      this.records.set(record.key, {
        ...record,
        nextAttemptAt: record.nextAttemptAt.getTime(),
        timer: undefined,
        busy: false,
      });
    if (records.length > 0)
      this.host.logger.info({ parkedRecords: records.length }, "resuming with parked records");
  }

  /** A later event of a parked record, read from the log: it queues behind the record. */
  enqueue(key: string, position: number): void {
    this.queue.push({ key, position });
  }

  get hasQueued(): boolean {
    return this.queue.length > 0;
  }

  /**
   * A live push keeps failing while others are delivered: its records leave the stream. Each
   * becomes a parked record whose head push holds its events of this push, with its events queued
   * in the scheduler behind it (all written down at the next flush). The push's batch must be
   * completed in the scheduler first.
   */
  parkPush(push: Push, queued: QueuedRecords, delayMs: number, lastError: string): void {
    const byRecord = new Map<string, PendingEvent[]>();
    for (const item of push.events) {
      const items = byRecord.get(item.key);
      if (items) items.push(item);
      else byRecord.set(item.key, [item]);
    }
    for (const [key, items] of byRecord) {
      const positions = [...items, ...queued.drain(key)].map((i) => i.event.position);
      this.park(key, positions, {
        // One record: the push goes on as it was (same webhook-id). Several (a BULK block): each
        // record's share is a new push.
        pushId: byRecord.size === 1 ? push.id : randomUUID(),
        headLastPosition: (items.at(-1) as PendingEvent).event.position,
        attempts: push.attempts,
        delayMs,
        lastError,
      });
    }
    this.host.logger.warn(
      { pushId: push.id, records: byRecord.size, lastError, retryInMs: delayMs },
      "record keeps failing while others are delivered: parked, the stream moves on",
    );
  }

  /**
   * Parks a record: `positions` (its events of the failed push, then its queued ones, in log order)
   * are written down at the next flush. `head` is the failed push as the record's head push.
   */
  private park(
    key: string,
    positions: readonly number[],
    head: {
      pushId: string;
      headLastPosition: number;
      attempts: number;
      delayMs: number;
      lastError: string;
    },
  ): void {
    const clock = this.host.ctx.clock;
    const now = clock.now();
    const state: ParkedState = {
      key,
      pushId: head.pushId,
      headLastPosition: head.headLastPosition,
      attempts: head.attempts,
      nextAttemptAt: now + head.delayMs,
      parkedAt: new Date(now),
      lastError: head.lastError,
      timer: undefined,
      busy: false,
    };
    this.records.set(key, state);
    for (const position of positions) this.queue.push({ key, position });
    this.arm(state);
  }

  /** (Re-)arms every record's retry timer; with the circuit open this only clears them. */
  armAll(): void {
    for (const state of this.records.values()) this.arm(state);
  }

  /**
   * Stops every timer and forgets the head pushes waiting for a slot (stop, deactivation). Parked
   * records stay parked in the database.
   */
  stop(): void {
    for (const state of this.records.values()) {
      if (state.timer) this.host.ctx.clock.clearTimer(state.timer);
      state.timer = undefined;
    }
    this.due = [];
  }

  /** The next head push loaded and due, if any. */
  nextDue(): Push | undefined {
    return this.due.length > 0 ? this.due.shift() : undefined;
  }

  /**
   * The circuit opened: head pushes waiting for a slot wait for their timers again, and no timer
   * runs while it is open (armAll clears them).
   */
  pause(): void {
    for (const push of this.due.splice(0)) if (push.parked) this.released(push.parked);
    this.armAll();
  }

  private arm(state: ParkedState): void {
    const clock = this.host.ctx.clock;
    if (state.timer) clock.clearTimer(state.timer);
    state.timer = undefined;
    if (state.busy || !this.host.mayRetry()) return;
    state.timer = clock.setTimer(() => {
      state.timer = undefined;
      this.send(state);
    }, state.nextAttemptAt - clock.now());
  }

  /** The circuit opened while this record's head push waited for a slot: it waits for the timer. */
  private released(state: ParkedState): void {
    state.busy = false;
    this.arm(state);
  }

  /** Loads a parked record's head push and hands it to the runner. */
  private send(state: ParkedState): void {
    if (state.busy || !this.host.mayRetry()) return;
    state.busy = true;
    const host = this.host;
    const subscription = host.subscription();
    const bulk = subscription.pushMode === "BULK";
    host.chain
      .serial(async () => {
        await this.writeQueue();
        const limit = bulk ? subscription.maxBlockSize : 1;
        return readParkedEvents(host.ctx.db, subscription.id, state.key, 0, limit);
      })
      .then((events) => {
        if (!host.mayRetry()) {
          state.busy = false;
          return;
        }
        const head = events.filter((e) => e.position <= state.headLastPosition);
        if (head.length === 0) {
          // Nothing left under this head (a restart between delivery and release): move on.
          this.done(state);
          return;
        }
        this.due.push({
          id: state.pushId,
          events: head.map((event) => ({ key: state.key, event })),
          body: encodePushBody(state.pushId, subscription, head, bulk),
          attempts: state.attempts,
          parked: state,
        });
        host.headDue();
      })
      .catch((error: unknown) => {
        host.logger.warn({ err: error, record: state.key }, "could not load a parked record");
        state.busy = false;
        state.nextAttemptAt = host.ctx.clock.now() + RELOAD_AFTER_ERROR_MS;
        this.arm(state);
      });
  }

  /** The head push failed again: retried on the schedule, or given up (then the next one goes). */
  failed(push: Push, state: ParkedState, outcome: Failure, lastError: string): void {
    const host = this.host;
    if (outcome.kind === "failed") {
      host.logger.warn(
        { pushId: push.id, record: state.key, reason: outcome.reason },
        "parked record's push failed for good; its events are recorded as failed (replayable)",
      );
      this.done(state);
      return;
    }
    state.attempts = push.attempts;
    state.nextAttemptAt = host.ctx.clock.now() + outcome.delayMs;
    state.lastError = lastError;
    const row = { ...state, nextAttemptAt: new Date(state.nextAttemptAt) };
    void host.chain
      .serial(() => updateParkedHead(host.ctx.db, host.subscription().id, host.ctx.workerId, row))
      .catch((error: unknown) =>
        host.logger.warn({ err: error }, "could not record a parked record's attempt"),
      );
    state.busy = false;
    this.arm(state);
  }

  /**
   * The head push ended (delivered, or given up): its events leave the parking. The next ones
   * follow at once as a new head push; with none left, the record is unparked.
   */
  done(state: ParkedState): void {
    const host = this.host;
    const { db, workerId } = host.ctx;
    const subscription = host.subscription();
    const limit = subscription.pushMode === "BULK" ? subscription.maxBlockSize : 1;
    host.chain
      .serial(async () => {
        for (;;) {
          await this.writeQueue();
          const remaining = await releaseParkedEvents(
            db,
            subscription.id,
            workerId,
            state.key,
            state.headLastPosition,
          );
          if (remaining < 0) throw new LeaseLostError();
          if (remaining > 0) break;
          // Events of the record read meanwhile are written first; it is unparked in a turn with
          // nothing of it queued, so every later event goes to the scheduler behind everything parked.
          if (this.queue.some((entry) => entry.key === state.key)) continue;
          this.records.delete(state.key);
          await unparkRecord(db, subscription.id, workerId, state.key);
          host.logger.info({ record: state.key }, "parked record delivered: unparked");
          return false;
        }
        const next = await readParkedEvents(
          db,
          subscription.id,
          state.key,
          state.headLastPosition,
          limit,
        );
        Object.assign(state, {
          pushId: randomUUID(),
          headLastPosition: next.at(-1)?.position ?? state.headLastPosition,
          attempts: 0,
          nextAttemptAt: host.ctx.clock.now(),
          lastError: null,
        });
        const row = { ...state, nextAttemptAt: new Date(state.nextAttemptAt) };
        await updateParkedHead(db, subscription.id, workerId, row);
        return true;
      })
      .then((more) => {
        if (!more) return;
        state.busy = false;
        this.send(state);
      })
      .catch((error: unknown) => {
        if (error instanceof LeaseLostError) return host.leaseLost();
        host.logger.warn({ err: error, record: state.key }, "could not release parked events");
        state.busy = false;
        state.nextAttemptAt = host.ctx.clock.now() + RELOAD_AFTER_ERROR_MS;
        this.arm(state);
      });
  }

  /**
   * Writes the events queued behind parked records (call it inside the serial chain); only then may
   * the watermark pass them. Throws LeaseLostError when the lease is gone.
   */
  async writeQueue(): Promise<void> {
    if (this.queue.length === 0) return;
    const queue = this.queue;
    this.queue = [];
    const host = this.host;
    try {
      const byRecord = new Map<string, number[]>();
      for (const { key, position } of queue) {
        const positions = byRecord.get(key);
        if (positions) positions.push(position);
        else byRecord.set(key, [position]);
      }
      for (const [key, positions] of byRecord) {
        // A record is unparked only with nothing queued for it, so its state is always here.
        const state = this.records.get(key);
        if (!state) throw new Error(`parked record ${key} vanished with events queued behind it`);
        const row = { ...state, nextAttemptAt: new Date(state.nextAttemptAt) };
        const id = host.subscription().id;
        if (!(await parkEvents(host.ctx.db, id, host.ctx.workerId, row, positions)))
          throw new LeaseLostError();
        for (const position of positions) host.finished.finish(position);
      }
    } catch (error) {
      this.queue = queue.concat(this.queue);
      throw error;
    }
  }
}
