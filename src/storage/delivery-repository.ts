/**
 * SQL of the delivery engine: subscription leases, the durable watermark, the attempts log and the
 * worker heartbeats. Every write that belongs to a leased subscription is guarded by
 * `lease_owner = <this worker>`, so a worker that lost its lease (it stalled past the expiry and
 * another worker took over) cannot move a cursor it no longer drives.
 */
import type { ChangeEvent, EventSource, EventType } from "../domain/change-event.js";
import type { Subscription } from "../domain/subscription.js";
import type { Queryable } from "./database.js";
import type { SubscriptionRow } from "./subscription-rows.js";
import { SUBSCRIPTION_COLUMNS, SUBSCRIPTION_FROM, toSubscription } from "./subscription-rows.js";

/** A subscription this worker holds the lease of, with the cursor it resumes from. */
export interface LeasedSubscription {
  subscription: Subscription;
  watermark: number;
}

/** Deliverable = active and not disabled by delivery. */
const DELIVERABLE = "s.is_active AND s.state <> 'DISABLED'";

function toLeased(rows: (SubscriptionRow & { watermark: number })[]): LeasedSubscription[] {
  return rows.map((row) => ({ subscription: toSubscription(row), watermark: row.watermark }));
}

/**
 * Extends every lease this worker holds on a deliverable subscription and returns those
 * subscriptions (fresh definitions: a PUT shows up here). A lease missing from the answer is lost.
 */
export async function renewLeases(
  db: Queryable,
  workerId: string,
  ttlMs: number,
): Promise<LeasedSubscription[]> {
  const { rows } = await db.query<SubscriptionRow & { watermark: number }>(
    `WITH renewed AS (
       UPDATE webhook_subscriptions s
          SET lease_expires_at = now() + make_interval(secs => $2::double precision / 1000)
        WHERE s.lease_owner = $1 AND ${DELIVERABLE}
        RETURNING s.id)
     SELECT ${SUBSCRIPTION_COLUMNS}, s.watermark
       FROM ${SUBSCRIPTION_FROM}
      WHERE s.id IN (SELECT id FROM renewed)
      ORDER BY s.id`,
    [workerId, ttlMs],
  );
  return toLeased(rows);
}

/**
 * Claims up to `limit` deliverable subscriptions whose lease is free or expired. SKIP LOCKED lets
 * workers claim at the same time without waiting on each other or taking the same row.
 */
export async function claimLeases(
  db: Queryable,
  workerId: string,
  ttlMs: number,
  limit: number,
): Promise<LeasedSubscription[]> {
  if (limit <= 0) return [];
  const { rows } = await db.query<SubscriptionRow & { watermark: number }>(
    `WITH claimed AS (
       UPDATE webhook_subscriptions t
          SET lease_owner = $1,
              lease_expires_at = now() + make_interval(secs => $2::double precision / 1000)
        WHERE t.id IN (
                SELECT s.id FROM webhook_subscriptions s
                 WHERE ${DELIVERABLE}
                   AND (s.lease_owner IS NULL OR s.lease_expires_at IS NULL OR s.lease_expires_at < now())
                 ORDER BY s.id
                 LIMIT $3
                   FOR UPDATE SKIP LOCKED)
        RETURNING t.id)
     SELECT ${SUBSCRIPTION_COLUMNS}, s.watermark
       FROM ${SUBSCRIPTION_FROM}
      WHERE s.id IN (SELECT id FROM claimed)
      ORDER BY s.id`,
    [workerId, ttlMs, limit],
  );
  return toLeased(rows);
}

/** Gives leases back at once (stop, rebalance), so another worker can take over without waiting. */
export async function releaseLeases(
  db: Queryable,
  workerId: string,
  subscriptionIds: readonly number[] | "all",
): Promise<void> {
  await db.query(
    `UPDATE webhook_subscriptions
        SET lease_owner = NULL, lease_expires_at = NULL
      WHERE lease_owner = $1 AND ($2::bigint[] IS NULL OR id = ANY ($2::bigint[]))`,
    [workerId, subscriptionIds === "all" ? null : subscriptionIds],
  );
}

/** Releases this worker's leases on subscriptions that are no longer deliverable (deactivated, deleted state). */
export async function releaseUndeliverable(db: Queryable, workerId: string): Promise<void> {
  await db.query(
    `UPDATE webhook_subscriptions s
        SET lease_owner = NULL, lease_expires_at = NULL
      WHERE s.lease_owner = $1 AND NOT (${DELIVERABLE})`,
    [workerId],
  );
}

export interface WorkerCensus {
  /** Workers with a fresh heartbeat, this one included. */
  liveWorkers: number;
  /** Subscriptions that should be driven by someone. */
  deliverable: number;
  /** The fewest live leases any live worker holds (0 for a worker that just joined). */
  minOwned: number;
}

/** Records this worker as alive and counts what the fair share of leases is computed from. */
export async function heartbeat(
  db: Queryable,
  workerId: string,
  ttlMs: number,
): Promise<WorkerCensus> {
  await db.query(
    `INSERT INTO delivery_workers (worker_id) VALUES ($1)
     ON CONFLICT (worker_id) DO UPDATE SET heartbeat_at = now()`,
    [workerId],
  );
  // Rows of workers gone for an hour are noise; any live worker tidies them.
  await db.query("DELETE FROM delivery_workers WHERE heartbeat_at < now() - interval '1 hour'");
  const { rows } = await db.query<{ live: number; deliverable: number; min_owned: number }>(
    `WITH live AS (
       SELECT w.worker_id,
              (SELECT count(*) FROM webhook_subscriptions s
                WHERE s.lease_owner = w.worker_id AND s.lease_expires_at > now()) AS owned
         FROM delivery_workers w
        WHERE w.heartbeat_at > now() - make_interval(secs => $1::double precision / 1000))
     SELECT (SELECT count(*) FROM live)::int AS live,
            (SELECT coalesce(min(owned), 0) FROM live)::int AS min_owned,
            (SELECT count(*) FROM webhook_subscriptions s WHERE ${DELIVERABLE})::int AS deliverable`,
    [ttlMs],
  );
  const row = rows[0];
  return {
    liveWorkers: Math.max(1, row?.live ?? 1),
    deliverable: row?.deliverable ?? 0,
    minOwned: row?.min_owned ?? 0,
  };
}

export async function removeWorker(db: Queryable, workerId: string): Promise<void> {
  await db.query("DELETE FROM delivery_workers WHERE worker_id = $1", [workerId]);
}

/**
 * Moves a subscription's cursor forward (never back) if this worker still holds its lease.
 * false = the lease is gone: the caller must stop driving the subscription.
 */
export async function advanceWatermark(
  db: Queryable,
  subscriptionId: number,
  workerId: string,
  watermark: number,
): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE webhook_subscriptions SET watermark = GREATEST(watermark, $3)
      WHERE id = $1 AND lease_owner = $2`,
    [subscriptionId, workerId, watermark],
  );
  return rowCount > 0;
}

/** Switches a subscription off for delivery (410 Gone): isActive false, DISABLED with a reason. */
export async function disableSubscription(
  db: Queryable,
  subscriptionId: number,
  workerId: string,
  reason: string,
): Promise<void> {
  await db.query(
    `UPDATE webhook_subscriptions
        SET is_active = false, state = 'DISABLED', state_reason = $3, updated_at = now()
      WHERE id = $1 AND lease_owner = $2`,
    [subscriptionId, workerId, reason],
  );
}

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

/** Appends attempts in one statement (a JSON array parameter; the engine batches them). */
export async function recordAttempts(
  db: Queryable,
  attempts: readonly AttemptRecord[],
): Promise<void> {
  if (attempts.length === 0) return;
  await db.query(
    `INSERT INTO delivery_attempts
       (subscription_id, push_id, attempt, event_ids, first_position, last_position, attempted_at,
        duration_ms, outcome, status_code, error_class, error_message, response_excerpt,
        next_attempt_at, worker_id)
     SELECT (a->>'subscriptionId')::bigint, (a->>'pushId')::uuid, (a->>'attempt')::int,
            ARRAY(SELECT jsonb_array_elements_text(a->'eventIds')::bigint),
            (a->>'firstPosition')::bigint, (a->>'lastPosition')::bigint,
            (a->>'attemptedAt')::timestamptz, (a->>'durationMs')::int, a->>'outcome',
            (a->>'statusCode')::int, a->>'errorClass', a->>'errorMessage', a->>'responseExcerpt',
            (a->>'nextAttemptAt')::timestamptz, a->>'workerId'
       FROM jsonb_array_elements($1::jsonb) AS t(a)`,
    [JSON.stringify(attempts)],
  );
}

export interface DeliveryLogFilter {
  entityId: number;
  source: EventSource;
  sourceId: string | null;
  eventType: EventType;
  /** The subscription's `onFields` (empty or null: no field filter). */
  onFields?: readonly string[] | null;
}

/** One event of a page, as `readLogWindow`'s SQL lists its columns (json_build_array below). */
type EventTuple = [
  id: number,
  position: number,
  entityId: number,
  source: EventSource,
  sourceId: string,
  eventType: EventType,
  recordKey: string,
  keys: ChangeEvent["keys"],
  state: ChangeEvent["state"],
  fields: string[],
  previous: ChangeEvent["previous"],
  extra: ChangeEvent["extra"],
  version: number | null,
  declaredEvents: string[],
  origin: ChangeEvent["origin"],
  occurredAt: string,
];

/**
 * A subscription's candidate events in the position window (after, upTo], in log order, at most
 * `limit`. The window bounds the work of every read whatever plan PostgreSQL picks: right after a
 * large import, before autovacuum has analysed the table, the planner misjudges the filter and may
 * scan and sort every later row of the entity instead of walking the position index.
 *
 * The page comes back as ONE json text (an array of per-event arrays) parsed with one JSON.parse:
 * row by row, the driver parsed seven jsonb columns per event separately plus the row framing, the
 * largest part of a BULK drain's CPU time. jsonb renders the same text inside json_agg as on its own,
 * so the objects are the same; occurred_at arrives as ISO text and is truncated to milliseconds like
 * the driver's own timestamptz parser.
 *
 * `onFields` (when not null) is rule 2 of subscription matching done in SQL: CREATE and UPDATE
 * events none of whose `fields` is listed never leave the database. It only drops what
 * matchesSubscription would drop; the engine still applies matchesSubscription to every event.
 */
export async function readLogWindow(
  db: Queryable,
  after: number,
  upTo: number,
  limit: number,
  filter: DeliveryLogFilter,
): Promise<ChangeEvent[]> {
  const { rows } = await db.query<{ page: string }>(
    `SELECT coalesce(json_agg(json_build_array(id, position, entity_id, source, source_id, event_type,
              record_key, keys, state, fields, previous, extra, version, declared_events, origin,
              occurred_at) ORDER BY position), '[]')::text AS page
       FROM (SELECT id, position, entity_id, source, source_id, event_type, record_key, keys, state,
                    fields, previous, extra, version, declared_events, origin, occurred_at
               FROM change_events
              WHERE position > $1 AND position <= $2
                AND entity_id = $4 AND source = $5 AND ($6::text IS NULL OR source_id = $6)
                AND event_type = $7
                AND ($8::text[] IS NULL OR event_type NOT IN ('CREATE', 'UPDATE') OR fields ?| $8::text[])
              ORDER BY position
              LIMIT $3) e`,
    [
      after,
      upTo,
      limit,
      filter.entityId,
      filter.source,
      filter.sourceId,
      filter.eventType,
      filter.onFields && filter.onFields.length > 0 ? filter.onFields : null,
    ],
  );
  const tuples = JSON.parse(rows[0]?.page ?? "[]") as EventTuple[];
  const events = new Array<ChangeEvent>(tuples.length);
  for (let i = 0; i < tuples.length; i++) {
    const t = tuples[i] as EventTuple;
    events[i] = {
      id: t[0],
      position: t[1],
      entityId: t[2],
      source: t[3],
      sourceId: t[4],
      eventType: t[5],
      recordKey: t[6],
      keys: t[7],
      state: t[8],
      fields: t[9],
      previous: t[10],
      extra: t[11],
      version: t[12],
      declaredEvents: t[13],
      origin: t[14],
      occurredAt: new Date(t[15]),
    };
  }
  return events;
}
