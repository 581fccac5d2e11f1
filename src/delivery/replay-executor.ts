/**
 * Runs a subscription's replay requests (SPEC §4 [ext] `POST …/replay`, docs/delivery-control.md
 * "Replay") beside its live delivery. One executor per subscription runner; the worker kicks it at
 * each lease renewal when the subscription has an open replay.
 *
 * A replay re-reads the log window (cursor, to_position] page by page with the runner's SQL
 * pre-filter, keeps the events the subscription's matching accepts, and sends them as NEW pushes
 * (new push ids; the events keep their ids and positions): one event per push, or BULK blocks of up
 * to maxBlockSize in log order. One replay push is in flight at a time, so per-record order holds
 * trivially and the replay's cursor is simply the last position whose push ended (delivered, or
 * given up on after the retry schedule). Pushes are encoded, signed, sent, retried and recorded
 * exactly as live ones. The subscription's watermark is never touched here.
 */
import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import type { ChangeEvent } from "../domain/change-event.js";
import { matchesSubscription } from "../domain/subscription-matching.js";
import type { Subscription } from "../domain/subscription.js";
import type { AttemptRecord } from "../storage/attempt-repository.js";
import { readLogWindow } from "../storage/log-window-reader.js";
import type { ReplayRequest } from "../storage/replay-repository.js";
import {
  advanceReplay,
  claimPendingReplay,
  completeReplay,
  listReplays,
} from "../storage/replay-repository.js";
import type { Clock } from "./clock.js";
import { systemClock } from "./clock.js";
import { PushAttempts } from "./push-attempt.js";
import { encodePushBody } from "./push-body.js";
import type { RunnerContext } from "./runner-context.js";

/** What the executor uses of the runner's context (a whole RunnerContext fits). */
export type ReplayContext = Pick<
  RunnerContext,
  "db" | "sender" | "logger" | "workerId" | "tuning" | "policy" | "random" | "clock"
>;

export interface ReplayHost {
  readonly ctx: ReplayContext;
  /** The subscription's current definition (a PUT may change it between pushes). */
  subscription(): Subscription;
  /** False while this runner may not push: lease possibly lapsed, circuit open (endpoint FAILING), or stopping. */
  mayPush(): boolean;
  /**
   * Buffers one attempt row (already counted in the metrics); the runner writes it with its next
   * flush (same as live attempts).
   */
  recordAttempt(attempt: AttemptRecord): void;
  /**
   * Optional: a replay push got `410 Gone`. The replay stops (and stays open at its cursor); the
   * runner decides about the subscription. Without it, the executor only stops.
   */
  endpointGone?(reason: string): void;
}

/** How often progress is written (and cancellation noticed) while a replay runs, in real ms. */
export const REPLAY_PROGRESS_MS = 1_000;
/** How often a paused replay asks mayPush() again, in real ms. */
export const REPLAY_PAUSE_POLL_MS = 200;
/** A window spans at most this many read pages' worth of positions (bounds each read's work). */
const WINDOW_PAGES = 5;

/** Why a replay stopped before its end. */
type Halt = "stopping" | "refused" | "endpoint gone";

type PushEnd = "delivered" | "failed" | "halted";

export class ReplayExecutor {
  private active: Promise<void> | undefined;
  private kickedWhileActive = false;
  private stopping = false;
  /** A replay push got 410: this executor runs nothing more (the runner is expected to go). */
  private gone = false;
  private current: ReplayRun | undefined;

  constructor(private readonly host: ReplayHost) {}

  /** Looks for an open replay (claimPendingReplay) and runs it, then the next one, unless already running. Cheap to call often; never throws. */
  kick(): void {
    if (this.stopping || this.gone) return;
    if (this.active) {
      this.kickedWhileActive = true;
      return;
    }
    this.active = this.drain().finally(() => {
      this.active = undefined;
    });
  }

  /** Stops: no new push starts; resolves once the push in flight (if any) has ended. Progress already made stays in the cursor. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.current?.halt("stopping");
    await this.active;
  }

  private async drain(): Promise<void> {
    const { ctx } = this.host;
    try {
      for (;;) {
        this.kickedWhileActive = false;
        // A replay is claimed only when it could start pushing: otherwise it stays PENDING.
        if (this.stopping || this.gone || !this.host.mayPush()) return;
        const subscriptionId = this.host.subscription().id;
        const replay = await claimPendingReplay(ctx.db, subscriptionId, ctx.workerId);
        if (!replay) {
          if (this.kickedWhileActive) continue;
          return;
        }
        // Stopped meanwhile: the claimed replay stays RUNNING and resumes at its cursor later.
        if (this.stopping) return;
        this.current = new ReplayRun(this.host, replay);
        const halt = await this.current.run();
        this.current = undefined;
        if (halt === "endpoint gone") this.gone = true;
        // A cancelled replay (or a lost lease, which the next claim finds out) moves on to the next.
        if (halt === "stopping" || halt === "endpoint gone") return;
      }
    } catch (error) {
      this.current = undefined;
      ctx.logger.warn(
        { err: error, subscriptionId: this.host.subscription().id },
        "replay interrupted by a database error; it resumes at its cursor on the next poll",
      );
    }
  }
}

/** One claimed replay, from its cursor to its end (or until halted). */
class ReplayRun {
  private readonly logger: Logger;
  /** Every matching event at or below this position has been pushed (delivered or given up on). */
  private cursor: number;
  /** Delivered events not yet added to the row's events_sent. */
  private unreported = 0;
  private delivered = 0;
  private pushes = 0;
  private failedEvents = 0;
  private halted: Halt | undefined;
  /** Ends the wait in progress (retry delay, paused circuit) when the run is halted. */
  private wake: (() => void) | undefined;
  /** Progress writes, serialised so they never cross. */
  private writes: Promise<void> = Promise.resolve();
  private readonly attempts: PushAttempts;

  constructor(
    private readonly host: ReplayHost,
    private readonly replay: ReplayRequest,
  ) {
    this.attempts = new PushAttempts(host.ctx, host, replay.subscriptionId);
    this.cursor = replay.cursor;
    this.logger = host.ctx.logger.child({
      subscriptionId: replay.subscriptionId,
      replayId: replay.id,
    });
  }

  halt(why: Halt): void {
    this.halted ??= why;
    this.wake?.();
  }

  /** undefined when the replay ran to its end, else why it stopped. */
  async run(): Promise<Halt | undefined> {
    const { replay } = this;
    const startedAt = Date.now();
    this.logger.info(
      {
        fromPosition: replay.fromPosition,
        toPosition: replay.toPosition,
        cursor: replay.cursor,
        eventsSentBefore: replay.eventsSent,
      },
      replay.cursor >= replay.fromPosition || replay.eventsSent > 0
        ? "replay resumed at its cursor"
        : "replay started",
    );
    const progress = setInterval(() => void this.writeProgress(), REPLAY_PROGRESS_MS);
    try {
      await this.walk();
    } finally {
      clearInterval(progress);
    }
    const counts = {
      eventsDelivered: this.delivered,
      pushes: this.pushes,
      eventsFailed: this.failedEvents,
      cursor: this.cursor,
      durationMs: Date.now() - startedAt,
    };
    if (this.halted === undefined) {
      await this.writes;
      const done = await completeReplay(
        this.host.ctx.db,
        replay.id,
        this.host.ctx.workerId,
        this.unreported,
      );
      if (done) {
        if (this.failedEvents === 0) this.logger.info(counts, "replay finished");
        else
          this.logger.warn(
            counts,
            "replay finished, but some pushes were given up on (outcome FAILED in …/attempts); a new replay can re-send them",
          );
        return undefined;
      }
      this.halt("refused");
    } else {
      await this.writeProgress(); // keeps what was pushed in the cursor (refused if cancelled)
    }
    await this.logHalt(counts);
    return this.halted;
  }

  private async logHalt(counts: Record<string, number>): Promise<void> {
    switch (this.halted) {
      case "stopping":
        this.logger.info(counts, "replay paused: the worker is handing the subscription back");
        return;
      case "endpoint gone":
        this.logger.warn(
          counts,
          "replay stopped: the endpoint answered 410 Gone; it stays open at its cursor",
        );
        return;
      case "refused": {
        const row = (
          await listReplays(this.host.ctx.db, this.replay.subscriptionId).catch(() => [])
        ).find((r) => r.id === this.replay.id);
        if (row?.status === "CANCELLED") this.logger.info(counts, "replay cancelled by a client");
        else
          this.logger.warn(
            counts,
            "replay stopped: this worker no longer holds the subscription's lease; the new holder resumes it at its cursor",
          );
        return;
      }
    }
  }

  /** Reads (cursor, to] in windows and pushes the matching events in log order. */
  private async walk(): Promise<void> {
    const { ctx } = this.host;
    const to = this.replay.toPosition;
    const page = ctx.tuning.readBatchSize;
    /** Matching events read but not pushed yet (the start of a BULK block). */
    let waiting: ChangeEvent[] = [];
    let examined = this.cursor;
    while (this.halted === undefined && (examined < to || waiting.length > 0)) {
      const sub = this.host.subscription();
      if (examined < to) {
        const upTo = Math.min(to, examined + page * WINDOW_PAGES);
        const events = await readLogWindow(ctx.db, examined, upTo, page, {
          entityId: sub.entityId,
          source: sub.on,
          sourceId: sub.onElementId,
          eventType: sub.eventType,
          onFields: sub.onFields,
        });
        // A full page may stop short of its window; otherwise the whole window was examined.
        const last = events.at(-1)?.position ?? upTo;
        examined = events.length === page && last < upTo ? last : upTo;
        for (const event of events) if (matchesSubscription(sub, event)) waiting.push(event);
      }
      const bulk = sub.pushMode === "BULK";
      const size = bulk ? Math.max(1, sub.maxBlockSize) : 1;
      // A block short of maxBlockSize waits for the next page unless the range is used up.
      while (waiting.length >= size || (examined >= to && waiting.length > 0)) {
        const events = waiting.slice(0, size);
        const end = await this.push(events, bulk);
        if (end === "halted") return;
        waiting = waiting.slice(size);
        this.cursor = (events.at(-1) as ChangeEvent).position;
        if (end === "delivered") {
          this.delivered += events.length;
          this.unreported += events.length;
        } else this.failedEvents += events.length;
      }
      this.cursor = waiting.length > 0 ? (waiting[0] as ChangeEvent).position - 1 : examined;
      await this.writeProgress();
    }
  }

  /** Sends one push until it is delivered, given up on, or the run halts. */
  private async push(events: ChangeEvent[], bulk: boolean): Promise<PushEnd> {
    const { ctx } = this.host;
    const id = randomUUID();
    const body = encodePushBody(id, this.host.subscription(), events, bulk);
    this.pushes++;
    for (let attempt = 1; ; attempt++) {
      if (!(await this.untilMayPush())) return "halted";
      const startedAt = this.attempts.startedAt();
      const result = await this.attempts.send(this.host.subscription(), id, body);
      const outcome = this.attempts.judge(result, attempt);
      this.attempts.record({
        pushId: id,
        attempt,
        events,
        startedAt,
        result,
        outcome,
      });
      const about = { pushId: id, attempt, firstPosition: events[0]?.position };
      switch (outcome.kind) {
        case "delivered":
          return "delivered";
        case "failed":
          this.logger.warn(
            { ...about, events: events.length, errorClass: outcome.errorClass },
            `replay push given up: ${outcome.reason}; the replay moves on (a new replay can re-send these events)`,
          );
          return "failed";
        case "disable":
          this.logger.warn({ ...about, errorClass: outcome.errorClass }, outcome.reason);
          this.halt("endpoint gone");
          this.host.endpointGone?.(outcome.reason);
          return "halted";
        case "retry":
          if (attempt === 1 || this.logger.isLevelEnabled("debug"))
            this.logger.warn(
              { ...about, errorClass: outcome.errorClass, delayMs: outcome.delayMs },
              "replay push failed; retrying it on the retry schedule",
            );
          await this.sleep(outcome.delayMs, ctx.clock);
          if (this.halted !== undefined) return "halted";
      }
    }
  }

  /** Waits (polling, never spinning) until the runner may push; false when the run halted. */
  private async untilMayPush(): Promise<boolean> {
    while (this.halted === undefined && !this.host.mayPush())
      await this.sleep(REPLAY_PAUSE_POLL_MS, systemClock);
    return this.halted === undefined;
  }

  /** Sleeps `ms` of `clock`'s time, or until the run is halted. */
  private sleep(ms: number, clock: Clock): Promise<void> {
    if (this.halted !== undefined) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = clock.setTimer(() => {
        this.wake = undefined;
        resolve();
      }, ms);
      this.wake = () => {
        clock.clearTimer(timer);
        this.wake = undefined;
        resolve();
      };
    });
  }

  /**
   * Writes the cursor and the delivered count; a refusal (cancelled, or the lease moved) halts the
   * run. Called after every window and every REPLAY_PROGRESS_MS, so a cancel is noticed within a
   * second even while a push waits for its next retry. A database error is logged and retried.
   */
  private writeProgress(): Promise<void> {
    this.writes = this.writes.then(async () => {
      const { ctx } = this.host;
      const cursor = this.cursor;
      const sent = this.unreported;
      try {
        const held = await advanceReplay(ctx.db, this.replay.id, ctx.workerId, cursor, sent);
        if (held) this.unreported -= sent;
        else this.halt("refused");
      } catch (error) {
        this.logger.warn(
          { err: error, cursor },
          "could not write the replay's progress; will try again",
        );
      }
    });
    return this.writes;
  }
}
