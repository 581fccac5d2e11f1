/**
 * Both sides of `delivery_attempts`: the engine's batched write (recordAttempts) and the reads of
 * SPEC §4 [ext] `GET …/attempts` and the daily error log `GET …/{yyyy-MM-dd}`. Both reads are
 * served by `delivery_attempts_subscription_time` (subscription_id, attempted_at): a
 * subscription's attempts in a time window.
 */
import type { Queryable } from "./database.js";

/** Outcomes as the engine stores them (the `outcome` column). */
export const ATTEMPT_OUTCOMES = ["DELIVERED", "RETRY", "FAILED", "DISABLED"] as const;
export type AttemptOutcomeName = (typeof ATTEMPT_OUTCOMES)[number];

export interface AttemptRecord {
  subscriptionId: number;
  pushId: string;
  attempt: number;
  eventIds: number[];
  firstPosition: number;
  lastPosition: number;
  attemptedAt: Date;
  durationMs: number;
  outcome: AttemptOutcomeName;
  statusCode: number | null;
  errorClass: string | null;
  errorMessage: string | null;
  responseExcerpt: string | null;
  nextAttemptAt: Date | null;
  workerId: string;
}

/**
 * Appends attempts in one statement (the engine batches them): each attempt's fields in a JSON
 * array, and the event ids of all of them in ONE bigint[] parameter, each attempt naming its slice
 * of it: an array parameter is parsed once, as numbers, where ids in the JSON would each go through
 * jsonb_array_elements_text.
 */
export async function recordAttempts(
  db: Queryable,
  attempts: readonly AttemptRecord[],
): Promise<void> {
  if (attempts.length === 0) return;
  // The array's text is written here: the driver would quote and regex-escape every element.
  let ids = "";
  let count = 0;
  const rows = attempts.map(({ eventIds, ...fields }) => {
    const from = count + 1;
    if (eventIds.length > 0) ids += (count > 0 ? "," : "") + eventIds.join(",");
    count += eventIds.length;
    return { ...fields, from, to: count };
  });
  await db.query(
    `INSERT INTO delivery_attempts
       (subscription_id, push_id, attempt, event_ids, first_position, last_position, attempted_at,
        duration_ms, outcome, status_code, error_class, error_message, response_excerpt,
        next_attempt_at, worker_id)
     SELECT (a->>'subscriptionId')::bigint, (a->>'pushId')::uuid, (a->>'attempt')::int,
            coalesce(($2::bigint[])[(a->>'from')::int : (a->>'to')::int], '{}'),
            (a->>'firstPosition')::bigint, (a->>'lastPosition')::bigint,
            (a->>'attemptedAt')::timestamptz, (a->>'durationMs')::int, a->>'outcome',
            (a->>'statusCode')::int, a->>'errorClass', a->>'errorMessage', a->>'responseExcerpt',
            (a->>'nextAttemptAt')::timestamptz, a->>'workerId'
       FROM jsonb_array_elements($1::jsonb) AS t(a)
       -- A subscription deleted while its pushes were in flight takes its attempts with it (ON
       -- DELETE CASCADE): theirs are dropped here instead of failing the foreign key. The lock
       -- makes a delete committing meanwhile wait for this insert, or drop the rows if it won.
       JOIN webhook_subscriptions s ON s.id = (a->>'subscriptionId')::bigint
        FOR KEY SHARE OF s`,
    [JSON.stringify(rows), `{${ids}}`],
  );
}

/** A stored attempt as the reads answer it (its row id, without the worker). */
export interface AttemptView extends Omit<
  AttemptRecord,
  "subscriptionId" | "workerId" | "outcome"
> {
  id: number;
  outcome: string;
}

export interface AttemptFilter {
  /** attempted_at >= from */
  from?: Date;
  /** attempted_at < to */
  to?: Date;
  outcome?: AttemptOutcomeName;
  errorClass?: string;
  pushId?: string;
  /** Only attempts that did not deliver (the daily error log). */
  failedOnly?: boolean;
}

interface AttemptRow {
  id: number;
  push_id: string;
  attempt: number;
  event_ids: number[];
  first_position: number;
  last_position: number;
  attempted_at: Date;
  duration_ms: number;
  outcome: string;
  status_code: number | null;
  error_class: string | null;
  error_message: string | null;
  response_excerpt: string | null;
  next_attempt_at: Date | null;
}

function toView(r: AttemptRow): AttemptView {
  return {
    id: r.id,
    pushId: r.push_id,
    attempt: r.attempt,
    eventIds: r.event_ids,
    firstPosition: r.first_position,
    lastPosition: r.last_position,
    attemptedAt: r.attempted_at,
    durationMs: r.duration_ms,
    outcome: r.outcome,
    statusCode: r.status_code,
    errorClass: r.error_class,
    errorMessage: r.error_message,
    responseExcerpt: r.response_excerpt,
    nextAttemptAt: r.next_attempt_at,
  };
}

const WHERE = `subscription_id = $1
    AND ($2::timestamptz IS NULL OR attempted_at >= $2)
    AND ($3::timestamptz IS NULL OR attempted_at < $3)
    AND ($4::text IS NULL OR outcome = $4)
    AND ($5::text IS NULL OR error_class = $5)
    AND ($6::uuid IS NULL OR push_id = $6)
    AND (NOT $7::boolean OR outcome <> 'DELIVERED')`;

/**
 * Matching attempts are counted up to this many. A busy subscription has millions of attempts in a
 * retention window, and an exact count is a full scan of them on every page;
 * a capped count reads at most this many index entries.
 */
export const ATTEMPT_COUNT_CAP = 10_000;

/**
 * One page of a subscription's attempts matching `filter`, and how many match in all (`total`, at
 * most ATTEMPT_COUNT_CAP; `capped` says there are more).
 * `order`: "newest" (the attempts API) or "oldest" (the daily log reads like a log file).
 * `pushId` must already be a valid UUID (the caller validates it; a cast error would be a 500).
 */
export async function listSubscriptionAttempts(
  db: Queryable,
  subscriptionId: number,
  filter: AttemptFilter,
  page: { page: number; pageSize: number },
  order: "newest" | "oldest" = "newest",
): Promise<{ items: AttemptView[]; total: number; capped: boolean }> {
  const params = [
    subscriptionId,
    filter.from ?? null,
    filter.to ?? null,
    filter.outcome ?? null,
    filter.errorClass ?? null,
    filter.pushId ?? null,
    filter.failedOnly ?? false,
  ];
  const direction = order === "newest" ? "DESC" : "ASC";
  const { rows } = await db.query<AttemptRow>(
    `SELECT id, push_id::text AS push_id, attempt, event_ids, first_position, last_position,
            attempted_at, duration_ms, outcome, status_code, error_class, error_message,
            response_excerpt, next_attempt_at
       FROM delivery_attempts
      WHERE ${WHERE}
      ORDER BY attempted_at ${direction}, id ${direction}
      LIMIT $8 OFFSET $9`,
    [...params, page.pageSize, page.page * page.pageSize],
  );
  const counted = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n
       FROM (SELECT 1 FROM delivery_attempts WHERE ${WHERE} LIMIT ${ATTEMPT_COUNT_CAP + 1}) AS matching`,
    params,
  );
  const n = counted.rows[0]?.n ?? 0;
  return {
    items: rows.map(toView),
    total: Math.min(n, ATTEMPT_COUNT_CAP),
    capped: n > ATTEMPT_COUNT_CAP,
  };
}
