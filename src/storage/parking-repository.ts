/**
 * SQL of per-record parking (migration 008, DESIGN §5). A parked record has one `parked_records`
 * row (its head push: id, attempts, next attempt) and one `parked_events` row per event waiting, in
 * log order. Writes that take or change parked events are guarded by the lease, like every other
 * delivery write; inserts are idempotent, so a worker that re-reads the log after a crash may park
 * the same positions again harmlessly.
 */
import type { ChangeEvent } from "../domain/change-event.js";
import { CHANGE_EVENT_COLUMNS, toChangeEvent } from "./change-event-repository.js";
import type { Queryable } from "./database.js";

export interface ParkedRecord {
  key: string;
  pushId: string;
  headLastPosition: number;
  attempts: number;
  nextAttemptAt: Date;
  parkedAt: Date;
  lastError: string | null;
}

interface ParkedRecordRow {
  record_key: string;
  push_id: string;
  head_last_position: number;
  attempts: number;
  next_attempt_at: Date;
  parked_at: Date;
  last_error: string | null;
}

type ChangeEventRow = Parameters<typeof toChangeEvent>[0];

const LEASED = `EXISTS (SELECT 1 FROM webhook_subscriptions s WHERE s.id = $1 AND s.lease_owner = $2)`;

/** The subscription's parked records (the runner loads them when it takes the lease). */
export async function loadParkedRecords(
  db: Queryable,
  subscriptionId: number,
): Promise<ParkedRecord[]> {
  const { rows } = await db.query<ParkedRecordRow>(
    `SELECT record_key, push_id, head_last_position, attempts, next_attempt_at, parked_at, last_error
       FROM parked_records WHERE subscription_id = $1 ORDER BY next_attempt_at`,
    [subscriptionId],
  );
  return rows.map((r) => ({
    key: r.record_key,
    pushId: r.push_id,
    headLastPosition: r.head_last_position,
    attempts: r.attempts,
    nextAttemptAt: r.next_attempt_at,
    parkedAt: r.parked_at,
    lastError: r.last_error,
  }));
}

/**
 * Parks a record (its row, if it is not parked yet) and adds events to it. false when this worker
 * no longer holds the lease (nothing written).
 */
export async function parkEvents(
  db: Queryable,
  subscriptionId: number,
  workerId: string,
  record: ParkedRecord,
  positions: readonly number[],
): Promise<boolean> {
  const { rows } = await db.query<{ leased: boolean }>(
    `WITH lease AS (SELECT ${LEASED} AS leased),
     rec AS (
       INSERT INTO parked_records (subscription_id, record_key, push_id, head_last_position, attempts,
                                   next_attempt_at, parked_at, last_error)
       SELECT $1, $3, $4, $5, $6, $7, $8, $9 FROM lease WHERE leased
       ON CONFLICT (subscription_id, record_key) DO NOTHING),
     ev AS (
       INSERT INTO parked_events (subscription_id, record_key, position)
       SELECT $1, $3, p FROM unnest($10::bigint[]) AS p, lease WHERE leased
       ON CONFLICT (subscription_id, position) DO NOTHING)
     SELECT leased FROM lease`,
    [
      subscriptionId,
      workerId,
      record.key,
      record.pushId,
      record.headLastPosition,
      record.attempts,
      record.nextAttemptAt,
      record.parkedAt,
      record.lastError,
      positions,
    ],
  );
  return rows[0]?.leased === true;
}

/** Records the head push's latest failure (or a new head push). false = lease lost. */
export async function updateParkedHead(
  db: Queryable,
  subscriptionId: number,
  workerId: string,
  record: Pick<
    ParkedRecord,
    "key" | "pushId" | "headLastPosition" | "attempts" | "nextAttemptAt" | "lastError"
  >,
): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE parked_records
        SET push_id = $4, head_last_position = $5, attempts = $6, next_attempt_at = $7, last_error = $8
      WHERE subscription_id = $1 AND record_key = $3 AND ${LEASED}`,
    [
      subscriptionId,
      workerId,
      record.key,
      record.pushId,
      record.headLastPosition,
      record.attempts,
      record.nextAttemptAt,
      record.lastError,
    ],
  );
  return rowCount > 0;
}

/**
 * The parked record's first `limit` waiting events (after `after`), in log order. Events the log no
 * longer holds cannot happen: housekeeping never prunes at or above the lowest parked position.
 */
export async function readParkedEvents(
  db: Queryable,
  subscriptionId: number,
  key: string,
  after: number,
  limit: number,
): Promise<ChangeEvent[]> {
  const { rows } = await db.query<ChangeEventRow>(
    `SELECT ${CHANGE_EVENT_COLUMNS} FROM change_events
      WHERE position IN (SELECT position FROM parked_events
                          WHERE subscription_id = $1 AND record_key = $2 AND position > $3
                          ORDER BY position LIMIT $4)
      ORDER BY position`,
    [subscriptionId, key, after, limit],
  );
  return rows.map(toChangeEvent);
}

/**
 * The head push of a parked record ended (delivered, or given up): its events up to `upTo` leave
 * the parking. Returns how many events remain parked for the record; when none do, the record row
 * is removed too (the record is no longer parked). -1 = lease lost (nothing changed).
 */
export async function releaseParkedEvents(
  db: Queryable,
  subscriptionId: number,
  workerId: string,
  key: string,
  upTo: number,
): Promise<number> {
  const { rows } = await db.query<{ leased: boolean; remaining: number }>(
    `WITH lease AS (SELECT ${LEASED} AS leased),
     gone AS (
       DELETE FROM parked_events
        WHERE subscription_id = $1 AND record_key = $3 AND position <= $4
          AND (SELECT leased FROM lease)
       RETURNING position)
     SELECT (SELECT leased FROM lease) AS leased,
            (SELECT count(*)::int FROM parked_events
              WHERE subscription_id = $1 AND record_key = $3 AND position > $4) AS remaining`,
    [subscriptionId, workerId, key, upTo],
  );
  const row = rows[0];
  if (!row?.leased) return -1;
  return row.remaining;
}

/** Unparks a record that has no events left. false = it has some again, or the lease was lost. */
export async function unparkRecord(
  db: Queryable,
  subscriptionId: number,
  workerId: string,
  key: string,
): Promise<boolean> {
  const { rowCount } = await db.query(
    `DELETE FROM parked_records r
      WHERE r.subscription_id = $1 AND r.record_key = $3 AND ${LEASED}
        AND NOT EXISTS (SELECT 1 FROM parked_events p
                         WHERE p.subscription_id = $1 AND p.record_key = $3)`,
    [subscriptionId, workerId, key],
  );
  return rowCount > 0;
}

/** How many records each subscription has parked (for the `status` block). */
export async function countParkedRecords(db: Queryable, subscriptionId: number): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM parked_records WHERE subscription_id = $1",
    [subscriptionId],
  );
  return rows[0]?.n ?? 0;
}
