/** The row one push attempt leaves in `delivery_attempts` (live, parked and replayed pushes alike). */
import type { ChangeEvent } from "../domain/change-event.js";
import type { AttemptOutcome, AttemptResult } from "../domain/delivery-outcome.js";
import type { AttemptOutcomeName, AttemptRecord } from "../storage/attempt-repository.js";

const OUTCOME_NAMES: Record<AttemptOutcome["kind"], AttemptOutcomeName> = {
  delivered: "DELIVERED",
  retry: "RETRY",
  failed: "FAILED",
  disable: "DISABLED",
};

export interface AttemptFacts {
  pushId: string;
  /** 1 = first try. */
  attempt: number;
  events: readonly ChangeEvent[];
  startedAt: Date;
  result: AttemptResult;
  outcome: AttemptOutcome;
  /** Defaults to the retry's time (startedAt + delay); null when none is due. */
  nextAttemptAt?: Date | null;
}

export function attemptRecord(
  subscriptionId: number,
  workerId: string,
  facts: AttemptFacts,
): AttemptRecord {
  const { events, result, outcome, startedAt } = facts;
  const first = events[0]?.position ?? 0;
  return {
    subscriptionId,
    pushId: facts.pushId,
    attempt: facts.attempt,
    eventIds: events.map((event) => event.id),
    firstPosition: first,
    lastPosition: events.at(-1)?.position ?? first,
    attemptedAt: startedAt,
    durationMs: result.durationMs,
    outcome: OUTCOME_NAMES[outcome.kind],
    statusCode: result.kind === "response" ? result.status : null,
    errorClass: outcome.kind === "delivered" ? null : outcome.errorClass,
    errorMessage: result.kind === "error" ? result.message : null,
    responseExcerpt: result.kind === "response" && result.excerpt ? result.excerpt : null,
    nextAttemptAt:
      facts.nextAttemptAt !== undefined
        ? facts.nextAttemptAt
        : outcome.kind === "retry"
          ? new Date(startedAt.getTime() + outcome.delayMs)
          : null,
    workerId,
  };
}
