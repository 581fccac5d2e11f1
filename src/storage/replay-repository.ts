/**
 * SQL of replay requests (`subscription_replays`, migration 007; SPEC §4 [ext] `POST …/replay`).
 * The API records a request; the delivery worker that holds the subscription's lease claims it,
 * re-sends the matching events of [from_position, to_position] as new pushes, moves the replay's
 * own `cursor` as it goes, and completes it. The subscription's watermark is never touched here.
 * Every engine-side write is guarded by the lease (`lease_owner = workerId`), like delivery's own.
 */
import type { Queryable } from "./database.js";

export const REPLAY_STATUSES = ["PENDING", "RUNNING", "DONE", "CANCELLED"] as const;
export type ReplayStatus = (typeof REPLAY_STATUSES)[number];

/** Open (PENDING or RUNNING) replays one subscription may have at once. */
export const MAX_OPEN_REPLAYS = 10;

export interface ReplayRequest {
  id: number;
  subscriptionId: number;
  /** First log position to re-send (inclusive). */
  fromPosition: number;
  /** Last log position to re-send (inclusive): the log head when the request was made, or less. */
  toPosition: number;
  /** Every matching event at or below this position has been re-sent (from_position − 1 at first). */
  cursor: number;
  fromTime: Date | null;
  status: ReplayStatus;
  statusReason: string | null;
  eventsSent: number;
  requestedAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  workerId: string | null;
}

interface ReplayRow {
  id: number;
  subscription_id: number;
  from_position: number;
  to_position: number;
  cursor: number;
  from_time: Date | null;
  status: ReplayStatus;
  status_reason: string | null;
  events_sent: number;
  requested_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  worker_id: string | null;
}

const COLUMNS = `id, subscription_id, from_position, to_position, cursor, from_time, status, status_reason,
  events_sent, requested_at, started_at, finished_at, worker_id`;

function toReplay(r: ReplayRow): ReplayRequest {
  return {
    id: r.id,
    subscriptionId: r.subscription_id,
    fromPosition: r.from_position,
    toPosition: r.to_position,
    cursor: r.cursor,
    fromTime: r.from_time,
    status: r.status,
    statusReason: r.status_reason,
    eventsSent: r.events_sent,
    requestedAt: r.requested_at,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    workerId: r.worker_id,
  };
}

// --- For the API ------------------------------------------------------------------------------

/** The log as a replay sees it: the head, and the oldest stamped event still kept (none: empty log). */
export interface LogBounds {
  head: number;
  oldest: { position: number; occurredAt: Date } | undefined;
}

export async function readLogBounds(db: Queryable): Promise<LogBounds> {
  // min(position) walks the unique index on position from its low end: one index probe.
  const { rows } = await db.query<{
    head: number;
    position: number | null;
    occurred_at: Date | null;
  }>(
    `SELECT (SELECT position FROM log_head) AS head, o.position, o.occurred_at
       FROM (SELECT 1) AS one
       LEFT JOIN LATERAL (SELECT position, occurred_at FROM change_events
                           WHERE position IS NOT NULL ORDER BY position LIMIT 1) o ON true`,
  );
  const row = rows[0]!;
  return {
    head: row.head,
    oldest:
      row.position === null ? undefined : { position: row.position, occurredAt: row.occurred_at! },
  };
}

/**
 * The first log position of the entity's events that occurred at or after `time`; undefined when
 * there is none. Commit order and occurrence time differ slightly, so a few events just older than
 * `time` may sit above the answer: a replay from it re-sends a little more, never less.
 */
export async function firstPositionAtOrAfter(
  db: Queryable,
  entityId: number,
  time: Date,
): Promise<number | undefined> {
  // change_events_occurred (occurred_at) narrows to the events since `time`; cost grows with them.
  const { rows } = await db.query<{ position: number | null }>(
    `SELECT min(position) AS position FROM change_events
      WHERE occurred_at >= $2 AND entity_id = $1 AND position IS NOT NULL`,
    [entityId, time],
  );
  return rows[0]?.position ?? undefined;
}

/**
 * Records a replay request; undefined when the subscription already has MAX_OPEN_REPLAYS open ones.
 * The cap is checked in the same statement; two racing requests may both pass it, which is harmless.
 */
export async function insertReplay(
  db: Queryable,
  request: {
    subscriptionId: number;
    fromPosition: number;
    toPosition: number;
    fromTime: Date | null;
  },
): Promise<ReplayRequest | undefined> {
  const { rows } = await db.query<ReplayRow>(
    `INSERT INTO subscription_replays (subscription_id, from_position, to_position, cursor, from_time)
     SELECT $1::bigint, $2::bigint, $3::bigint, $2::bigint - 1, $4::timestamptz
      WHERE (SELECT count(*) FROM subscription_replays
              WHERE subscription_id = $1::bigint AND status IN ('PENDING', 'RUNNING')) < $5::int
     RETURNING ${COLUMNS}`,
    [
      request.subscriptionId,
      request.fromPosition,
      request.toPosition,
      request.fromTime,
      MAX_OPEN_REPLAYS,
    ],
  );
  return rows[0] ? toReplay(rows[0]) : undefined;
}

/** A subscription's replays, newest first. */
export async function listReplays(
  db: Queryable,
  subscriptionId: number,
  limit = 50,
): Promise<ReplayRequest[]> {
  const { rows } = await db.query<ReplayRow>(
    `SELECT ${COLUMNS} FROM subscription_replays WHERE subscription_id = $1 ORDER BY id DESC LIMIT $2`,
    [subscriptionId, limit],
  );
  return rows.map(toReplay);
}

/** Cancels an open replay; undefined when the subscription has no such replay. */
export async function cancelReplay(
  db: Queryable,
  subscriptionId: number,
  replayId: number,
): Promise<ReplayRequest | undefined> {
  const { rows } = await db.query<ReplayRow>(
    `UPDATE subscription_replays
        SET status = CASE WHEN status IN ('PENDING', 'RUNNING') THEN 'CANCELLED' ELSE status END,
            status_reason = CASE WHEN status IN ('PENDING', 'RUNNING') THEN 'cancelled by a client'
                                 ELSE status_reason END,
            finished_at = CASE WHEN status IN ('PENDING', 'RUNNING') THEN now() ELSE finished_at END
      WHERE subscription_id = $1 AND id = $2
      RETURNING ${COLUMNS}`,
    [subscriptionId, replayId],
  );
  return rows[0] ? toReplay(rows[0]) : undefined;
}

// --- For the delivery engine ------------------------------------------------------------------

/**
 * Which of `subscriptionIds` have an open (PENDING or RUNNING) replay: one query per lease renewal
 * for all the subscriptions a worker drives (the partial index subscription_replays_open).
 */
export async function subscriptionsWithOpenReplays(
  db: Queryable,
  subscriptionIds: readonly number[],
): Promise<number[]> {
  if (subscriptionIds.length === 0) return [];
  const { rows } = await db.query<{ subscription_id: number }>(
    `SELECT DISTINCT subscription_id FROM subscription_replays
      WHERE subscription_id = ANY($1::bigint[]) AND status IN ('PENDING', 'RUNNING')`,
    [subscriptionIds],
  );
  return rows.map((row) => row.subscription_id);
}

/**
 * The replay this worker should run next for a subscription it leases: the oldest open one. A
 * RUNNING replay left by a worker that lost the lease is taken over and resumes at its cursor.
 * undefined when there is none, or when `workerId` does not hold the subscription's lease.
 */
export async function claimPendingReplay(
  db: Queryable,
  subscriptionId: number,
  workerId: string,
): Promise<ReplayRequest | undefined> {
  const { rows } = await db.query<ReplayRow>(
    `UPDATE subscription_replays r
        SET status = 'RUNNING', worker_id = $2, started_at = coalesce(r.started_at, now())
      WHERE r.id = (SELECT id FROM subscription_replays
                     WHERE subscription_id = $1 AND status IN ('PENDING', 'RUNNING')
                     ORDER BY id LIMIT 1)
        AND EXISTS (SELECT 1 FROM webhook_subscriptions s WHERE s.id = $1 AND s.lease_owner = $2)
      RETURNING ${COLUMNS}`,
    [subscriptionId, workerId],
  );
  return rows[0] ? toReplay(rows[0]) : undefined;
}

/**
 * Records a replay's progress: every matching event at or below `cursor` was re-sent (delivered or
 * failed for good, like the watermark's rule), `sent` more events went out since the last call.
 * false = stop: the replay was cancelled, or this worker no longer holds the lease.
 */
export async function advanceReplay(
  db: Queryable,
  replayId: number,
  workerId: string,
  cursor: number,
  sent: number,
): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE subscription_replays r
        SET cursor = GREATEST(r.cursor, LEAST($3, r.to_position)), events_sent = r.events_sent + $4
      WHERE r.id = $1 AND r.status = 'RUNNING' AND r.worker_id = $2
        AND EXISTS (SELECT 1 FROM webhook_subscriptions s
                     WHERE s.id = r.subscription_id AND s.lease_owner = $2)`,
    [replayId, workerId, cursor, sent],
  );
  return rowCount > 0;
}

/** Marks a replay DONE (its cursor at to_position). false = it was cancelled or taken over meanwhile. */
export async function completeReplay(
  db: Queryable,
  replayId: number,
  workerId: string,
  sent = 0,
): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE subscription_replays
        SET status = 'DONE', cursor = to_position, events_sent = events_sent + $3, finished_at = now()
      WHERE id = $1 AND status = 'RUNNING' AND worker_id = $2
        AND EXISTS (SELECT 1 FROM webhook_subscriptions s
                     WHERE s.id = subscription_replays.subscription_id AND s.lease_owner = $2)`,
    [replayId, workerId, sent],
  );
  return rowCount > 0;
}
