/**
 * One attempt of a push, the same for live pushes, parked records' head pushes and replays: signed
 * with the subscription's secret and sent to its target, its answer judged by the retry policy, and
 * written down as its `delivery_attempts` row (counted in the metrics). What the outcome means for
 * the stream is the caller's: the runner asks the failure decision, a replay retries in place.
 *
 * Sending, judging and recording are separate calls, not one async function, so that the runner's
 * push path keeps a single await per attempt (the send's) and allocates nothing more per push.
 */
import type { AttemptOutcome, AttemptResult } from "../domain/delivery-outcome.js";
import { decideOutcome } from "../domain/delivery-outcome.js";
import type { Subscription } from "../domain/subscription.js";
import { webhookSignatureHeaders } from "../domain/webhook-signature.js";
import type { AttemptRecord } from "../storage/attempt-repository.js";
import type { AttemptFacts } from "./attempt-record.js";
import { attemptRecord } from "./attempt-record.js";
import { countAttempt } from "./delivery-metrics.js";
import type { Push } from "./push.js";
import type { RunnerContext } from "./runner-context.js";

/** What an attempt uses of the runner's context (a whole RunnerContext fits). */
export type AttemptContext = Pick<
  RunnerContext,
  "sender" | "workerId" | "policy" | "random" | "clock"
>;

/** Where attempt rows go (the runner's progress writer writes them at its next flush). */
export interface AttemptRows {
  recordAttempt(attempt: AttemptRecord): void;
}

/** The attempts of one subscription's pushes. */
export class PushAttempts {
  constructor(
    private readonly ctx: AttemptContext,
    private readonly rows: AttemptRows,
    private readonly subscriptionId: number,
  ) {}

  /** When an attempt starts, on the failure clock: its row shows it, its retry counts from it. */
  startedAt(): Date {
    return new Date(this.ctx.clock.now());
  }

  /** Signs the push with the subscription's secret and sends it to the subscription's target. */
  send(subscription: Subscription, pushId: string, body: Buffer): Promise<AttemptResult> {
    return this.ctx.sender.send({
      url: subscription.targetUrl,
      body,
      headers: subscription.headers,
      // Receivers check the signature's timestamp against their own (real) clock.
      signatureHeaders: webhookSignatureHeaders(subscription, pushId, body, new Date()),
    });
  }

  /** What the retry policy makes of the `attempt`-th attempt's result (1 = the first try). */
  judge(result: AttemptResult, attempt: number): AttemptOutcome {
    const { clock, random, policy } = this.ctx;
    return decideOutcome(result, attempt, new Date(clock.now()), random, policy);
  }

  /** Writes the attempt down: its row, counted in the metrics, handed to the rows' writer. */
  record(facts: AttemptFacts): void {
    const attempt = attemptRecord(this.subscriptionId, this.ctx.workerId, facts);
    countAttempt(attempt);
    this.rows.recordAttempt(attempt);
  }

  /**
   * Writes down the latest attempt of a runner's push. `nextAttemptAt` defaults to the retry's
   * time (a push held by an open circuit passes the next probe's time instead).
   */
  recordPush(
    push: Push,
    startedAt: Date,
    result: AttemptResult,
    outcome: AttemptOutcome,
    nextAttemptAt?: Date | null,
  ): void {
    const events = push.events.map((item) => item.event);
    this.record({
      pushId: push.id,
      attempt: push.attempts,
      events,
      startedAt,
      result,
      outcome,
      nextAttemptAt,
    });
  }
}
