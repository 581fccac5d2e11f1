/**
 * The retry policy (SPEC §6), as data read by one pure function: after the n-th failed attempt of a
 * push, wait RETRY_SCHEDULE_MS[n] (±20 % jitter), never less than the error class's floor, and at
 * least what the receiver asked for with `Retry-After` (clamped). When the schedule is used up the
 * push is exhausted: its events are recorded as failed and stay replayable.
 */

/** Delay before attempt n+1 (index 0 is the first attempt: immediately). About 3 days in total. */
export const RETRY_SCHEDULE_MS: readonly number[] = [
  0,
  5_000,
  30_000,
  2 * 60_000,
  10 * 60_000,
  30 * 60_000,
  60 * 60_000,
  3 * 60 * 60_000,
  6 * 60 * 60_000,
  12 * 60 * 60_000,
  24 * 60 * 60_000,
  24 * 60 * 60_000,
];

/** Relative jitter applied to every scheduled delay: ±20 %. */
export const RETRY_JITTER = 0.2;

/** The longest `Retry-After` honoured; a larger value is clamped to it. */
export const MAX_RETRY_AFTER_MS = 6 * 60 * 60_000;

/** Why an attempt failed. Closed set: attempts store it, the attempts API and metrics show it. */
export const ERROR_CLASSES = [
  "http_4xx",
  "http_5xx",
  "http_429",
  "http_410",
  "redirect",
  "timeout",
  "connection_refused",
  "connection_reset",
  "dns",
  "tls",
  "blocked_target",
  "network",
] as const;
export type ErrorClass = (typeof ERROR_CLASSES)[number];

export interface ErrorClassRule {
  /** false: no retry helps (the receiver said the endpoint is gone). */
  retryable: boolean;
  /** Never retry sooner than this (a timed-out or rate-limited receiver needs air). */
  minDelayMs: number;
  /** The receiver's `Retry-After` is honoured for this class. */
  honoursRetryAfter: boolean;
}

export const ERROR_CLASS_RULES: Record<ErrorClass, ErrorClassRule> = {
  http_4xx: { retryable: true, minDelayMs: 0, honoursRetryAfter: false },
  http_5xx: { retryable: true, minDelayMs: 0, honoursRetryAfter: true },
  http_429: { retryable: true, minDelayMs: 60_000, honoursRetryAfter: true },
  http_410: { retryable: false, minDelayMs: 0, honoursRetryAfter: false },
  redirect: { retryable: true, minDelayMs: 0, honoursRetryAfter: false },
  timeout: { retryable: true, minDelayMs: 60_000, honoursRetryAfter: false },
  connection_refused: { retryable: true, minDelayMs: 0, honoursRetryAfter: false },
  connection_reset: { retryable: true, minDelayMs: 0, honoursRetryAfter: false },
  dns: { retryable: true, minDelayMs: 0, honoursRetryAfter: false },
  tls: { retryable: true, minDelayMs: 0, honoursRetryAfter: false },
  blocked_target: { retryable: true, minDelayMs: 0, honoursRetryAfter: false },
  network: { retryable: true, minDelayMs: 0, honoursRetryAfter: false },
};

export interface RetryPolicy {
  scheduleMs: readonly number[];
  jitter: number;
  rules: Record<ErrorClass, ErrorClassRule>;
  maxRetryAfterMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  scheduleMs: RETRY_SCHEDULE_MS,
  jitter: RETRY_JITTER,
  rules: ERROR_CLASS_RULES,
  maxRetryAfterMs: MAX_RETRY_AFTER_MS,
};

export interface AttemptFailure {
  errorClass: ErrorClass;
  /** The receiver's `Retry-After`, in milliseconds from now. */
  retryAfterMs?: number | undefined;
}

export type RetryDecision =
  { kind: "retry"; delayMs: number } | { kind: "exhausted" } | { kind: "terminal" };

/** A value in [0, 1). Injectable so tests and properties are deterministic. */
export type RandomSource = () => number;

/** The scheduled delay before the next attempt, jittered by `random`. */
export function jitteredDelay(baseMs: number, jitter: number, random: RandomSource): number {
  const factor = 1 + (random() * 2 - 1) * jitter;
  return Math.round(baseMs * factor);
}

/**
 * What to do after `failedAttempts` attempts of one push have failed, the last with `failure`.
 * Pure: the same inputs (and random values) give the same decision.
 */
export function nextRetry(
  failedAttempts: number,
  failure: AttemptFailure,
  random: RandomSource = Math.random,
  policy: RetryPolicy = DEFAULT_RETRY_POLICY,
): RetryDecision {
  const rule = policy.rules[failure.errorClass];
  if (!rule.retryable) return { kind: "terminal" };
  const base = policy.scheduleMs[failedAttempts];
  if (base === undefined) return { kind: "exhausted" };
  let delayMs = Math.max(jitteredDelay(base, policy.jitter, random), rule.minDelayMs);
  if (rule.honoursRetryAfter && failure.retryAfterMs !== undefined) {
    const asked = Math.min(Math.max(0, failure.retryAfterMs), policy.maxRetryAfterMs);
    delayMs = Math.max(delayMs, asked);
  }
  return { kind: "retry", delayMs };
}
