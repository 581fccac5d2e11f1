/**
 * What one push attempt came to (DESIGN §5 "outcomes are data"): the sender reports what happened on
 * the wire (`AttemptResult`), `classifyResult` maps it to delivered or a failure class, and
 * `decideOutcome` combines that with the retry policy into what the engine does next.
 */
import type { ErrorClass, RandomSource, RetryPolicy } from "./retry-policy.js";
import { DEFAULT_RETRY_POLICY, nextRetry } from "./retry-policy.js";

/** What the wire said: an HTTP answer, or an error before one arrived. */
export type AttemptResult =
  | {
      kind: "response";
      status: number;
      /** Raw `Retry-After` header, if any. */
      retryAfter: string | undefined;
      /** The first bytes of the response body (capped). */
      excerpt: string;
      durationMs: number;
    }
  | { kind: "error"; errorClass: ErrorClass; message: string; durationMs: number };

export type AttemptOutcome =
  | { kind: "delivered" }
  | { kind: "retry"; delayMs: number; errorClass: ErrorClass }
  | { kind: "failed"; errorClass: ErrorClass; reason: string }
  | { kind: "disable"; errorClass: ErrorClass; reason: string };

/** Status classes, in the order they are checked. */
const STATUS_CLASSES: readonly { from: number; to: number; errorClass: ErrorClass | null }[] = [
  { from: 200, to: 299, errorClass: null },
  { from: 300, to: 399, errorClass: "redirect" },
  { from: 410, to: 410, errorClass: "http_410" },
  { from: 429, to: 429, errorClass: "http_429" },
  { from: 400, to: 499, errorClass: "http_4xx" },
  { from: 100, to: 199, errorClass: "http_5xx" },
  { from: 500, to: 599, errorClass: "http_5xx" },
];

/** null = delivered; otherwise the failure class of an HTTP status. */
export function statusClass(status: number): ErrorClass | null {
  for (const entry of STATUS_CLASSES)
    if (status >= entry.from && status <= entry.to) return entry.errorClass;
  return "http_5xx";
}

/** `Retry-After` as milliseconds from `now`: delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | undefined, now: Date): number | undefined {
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const at = Date.parse(trimmed);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now.getTime());
}

/** The failure class of a result, or null when it is a delivery. */
export function classifyResult(result: AttemptResult): ErrorClass | null {
  return result.kind === "error" ? result.errorClass : statusClass(result.status);
}

/**
 * The outcome of the `attemptNumber`-th attempt (1-based) of a push.
 * 410 Gone disables the subscription; an exhausted schedule fails the push.
 */
export function decideOutcome(
  result: AttemptResult,
  attemptNumber: number,
  now: Date,
  random: RandomSource = Math.random,
  policy: RetryPolicy = DEFAULT_RETRY_POLICY,
): AttemptOutcome {
  const errorClass = classifyResult(result);
  if (errorClass === null) return { kind: "delivered" };
  const retryAfterMs =
    result.kind === "response" ? parseRetryAfter(result.retryAfter, now) : undefined;
  const decision = nextRetry(attemptNumber, { errorClass, retryAfterMs }, random, policy);
  const what = result.kind === "response" ? `HTTP ${result.status}` : result.message;
  switch (decision.kind) {
    case "retry":
      return { kind: "retry", delayMs: decision.delayMs, errorClass };
    case "terminal":
      return {
        kind: "disable",
        errorClass,
        reason: `the endpoint answered ${what}: it asked not to be called again`,
      };
    case "exhausted":
      return {
        kind: "failed",
        errorClass,
        reason: `gave up after ${attemptNumber} attempts; last: ${what}`,
      };
  }
}
