/**
 * Figures the console's subscription pages show that the JSON API does not give: the stored
 * delivery state behind the API's `status` (whether a DISABLED subscription was paused by a person
 * or switched off by delivery, and since when its endpoint fails), and push counts over the last
 * hour. The pages call these only with ids the API has just returned for the signed-in key, so the
 * key's entity scope was checked before any of this runs.
 *
 * Every statement is bounded: state reads are primary-key lookups of at most a page of ids, and
 * attempt figures read `delivery_attempts_subscription_time` (subscription_id, attempted_at) over a
 * one-hour (or one-minute) range with a LIMIT, so a subscription with millions of attempts costs
 * no more than one with a few hundred. What was read is returned as a sample (how many, how many
 * failed, when the last one read happened); the pages count from it, or estimate a rate from it
 * when the limit was reached (console/pages/subscriptions-throughput.ts).
 */
import type { Queryable } from "./database.js";

/**
 * Newest attempts read per subscription for the list's hourly figure. A subscription busier than
 * this is estimated from the time its newest attempts took, so a page of 100 subscriptions reads
 * at most 100 × LIST_SAMPLE rows.
 */
export const LIST_SAMPLE = 50;
/** Attempts read per minute for the detail page's chart; a busier minute is estimated likewise. */
export const MINUTE_SAMPLE = 200;

export interface StoredDeliveryState {
  /** Delivery's own state column: ACTIVE, FAILING or DISABLED (DISABLED = delivery gave up). */
  state: string;
  isActive: boolean;
  /** When the endpoint started failing everything; null when it is not failing. */
  failingSince: Date | null;
}

/** The stored delivery state of each subscription id (ids that no longer exist are left out). */
export async function readDeliveryStates(
  db: Queryable,
  ids: readonly number[],
): Promise<Map<number, StoredDeliveryState>> {
  if (ids.length === 0) return new Map();
  const { rows } = await db.query<{
    id: number;
    state: string;
    is_active: boolean;
    failing_since: Date | null;
  }>(
    // Primary-key lookups, one per id of the page (at most the API's page size).
    `SELECT id, state, is_active, failing_since
       FROM webhook_subscriptions
      WHERE id = ANY($1::bigint[])`,
    [ids],
  );
  return new Map(
    rows.map((r) => [
      r.id,
      { state: r.state, isActive: r.is_active, failingSince: r.failing_since },
    ]),
  );
}

/** Attempts read from a time window, newest or oldest first, up to a sample size. */
export interface AttemptSample {
  /** Attempts read (at most the sample size). */
  read: number;
  /** Of those, the ones that did not deliver (RETRY, FAILED, DISABLED). */
  failed: number;
  /** The time of the last attempt read (the oldest, or the newest, in reading order). */
  lastReadAt: Date | null;
}

/**
 * The newest attempts (up to LIST_SAMPLE) of each subscription in the last hour. One statement for
 * the page: a LIMITed backward range scan of `delivery_attempts_subscription_time` per id.
 */
export async function readLastHourSamples(
  db: Queryable,
  ids: readonly number[],
): Promise<Map<number, AttemptSample>> {
  const samples = new Map<number, AttemptSample>(
    ids.map((id) => [id, { read: 0, failed: 0, lastReadAt: null }]),
  );
  if (ids.length === 0) return samples;
  const { rows } = await db.query<{
    id: number;
    read: number;
    failed: number;
    last_read_at: Date | null;
  }>(
    `SELECT s.id, c.read, c.failed, c.last_read_at
       FROM unnest($1::bigint[]) AS s(id)
      CROSS JOIN LATERAL (
        SELECT count(*)::int AS read,
               count(*) FILTER (WHERE a.outcome <> 'DELIVERED')::int AS failed,
               min(a.attempted_at) AS last_read_at
          FROM (SELECT outcome, attempted_at FROM delivery_attempts
                 WHERE subscription_id = s.id AND attempted_at >= now() - interval '1 hour'
                 ORDER BY attempted_at DESC
                 LIMIT $2) a) c`,
    [ids, LIST_SAMPLE],
  );
  for (const r of rows)
    samples.set(r.id, { read: r.read, failed: r.failed, lastReadAt: r.last_read_at });
  return samples;
}

export interface MinuteSample extends AttemptSample {
  /** The minute's start. */
  minute: Date;
}

/**
 * The attempts of one subscription per minute over the last hour: 60 minutes, oldest first, the
 * last one being the minute under way, each read from its start up to MINUTE_SAMPLE attempts.
 * The minutes are an integer series (whose row count the planner knows, so the estimate stays small
 * and no JIT compilation is spent on a few milliseconds of work); each is a LIMITed range scan of
 * `delivery_attempts_subscription_time`.
 */
export async function readMinuteSamples(
  db: Queryable,
  subscriptionId: number,
): Promise<{ now: Date; minutes: MinuteSample[] }> {
  const { rows } = await db.query<{
    now: Date;
    minute: Date;
    read: number;
    failed: number;
    last_read_at: Date | null;
  }>(
    `SELECT now() AS now, m.minute, c.read, c.failed, c.last_read_at
       FROM generate_series(59, 0, -1) AS g(back)
      CROSS JOIN LATERAL (
        SELECT date_trunc('minute', now()) - g.back * interval '1 minute' AS minute) m
      CROSS JOIN LATERAL (
        SELECT count(*)::int AS read,
               count(*) FILTER (WHERE a.outcome <> 'DELIVERED')::int AS failed,
               max(a.attempted_at) AS last_read_at
          FROM (SELECT outcome, attempted_at FROM delivery_attempts
                 WHERE subscription_id = $1
                   AND attempted_at >= m.minute AND attempted_at < m.minute + interval '1 minute'
                 ORDER BY attempted_at
                 LIMIT $2) a) c
      ORDER BY m.minute`,
    [subscriptionId, MINUTE_SAMPLE],
  );
  return {
    now: rows[0]?.now ?? new Date(),
    minutes: rows.map((r) => ({
      minute: r.minute,
      read: r.read,
      failed: r.failed,
      lastReadAt: r.last_read_at,
    })),
  };
}
