/**
 * Push counts from the bounded samples of storage/console-subscription-reads.ts. A sample that did
 * not reach its limit is the exact count; one that did is scaled to its window by the time its
 * attempts took (the rate of the attempts read), and says it is an estimate. Pure functions.
 */
import type { AttemptSample, MinuteSample } from "../../storage/console-subscription-reads.js";

export interface PushCounts {
  delivered: number;
  /** Attempts that did not deliver (RETRY, FAILED, DISABLED). */
  failed: number;
  /** True when the counts are scaled from a sample rather than counted. */
  estimated: boolean;
}

export interface MinuteCounts extends PushCounts {
  minute: Date;
}

const HOUR_MS = 60 * 60_000;
const MINUTE_MS = 60_000;

function scaled(sample: AttemptSample, factor: number): PushCounts {
  const total = Math.max(sample.read, Math.round(sample.read * factor));
  const failed = Math.round((total * sample.failed) / sample.read);
  return { delivered: total - failed, failed, estimated: true };
}

function counted(sample: AttemptSample): PushCounts {
  return { delivered: sample.read - sample.failed, failed: sample.failed, estimated: false };
}

/**
 * The last hour of a subscription from its newest attempts (read newest first, so `lastReadAt` is
 * the oldest one read): when the limit was reached, the hour at the rate of those attempts.
 */
export function hourCounts(sample: AttemptSample, limit: number, now: Date): PushCounts {
  if (sample.read < limit || sample.lastReadAt === null) return counted(sample);
  const span = Math.max(1, now.getTime() - sample.lastReadAt.getTime());
  return scaled(sample, HOUR_MS / span);
}

/**
 * One minute from its attempts read oldest first (`lastReadAt` is the newest one read): when the
 * limit was reached, the minute (or its part that has passed) at the rate of those attempts.
 */
export function minuteCounts(sample: MinuteSample, limit: number, now: Date): MinuteCounts {
  if (sample.read < limit || sample.lastReadAt === null)
    return { minute: sample.minute, ...counted(sample) };
  const start = sample.minute.getTime();
  const elapsed = Math.min(MINUTE_MS, Math.max(1, now.getTime() - start));
  const span = Math.max(1, sample.lastReadAt.getTime() - start);
  return { minute: sample.minute, ...scaled(sample, elapsed / span) };
}

/** One formatter for every figure (`toLocaleString` builds a new one on each call). */
const NUMBERS = new Intl.NumberFormat("en-US");

/** A figure for a person: "1,234". */
export function numberText(n: number): string {
  return NUMBERS.format(n);
}

/** A count for a person: "1,234", or "≈ 9,000" for an estimate. */
export function countText(n: number, estimated: boolean): string {
  return `${estimated ? "≈ " : ""}${NUMBERS.format(n)}`;
}
