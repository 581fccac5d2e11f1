/**
 * SQL of housekeeping (DESIGN §7 "the log is pruned by age once every cursor has passed it"):
 * old delivery attempts, old change events below every live cursor, expired access tokens and
 * finished replay requests, and the subscriptions whose `expiresAt` has passed. Every delete is one
 * bounded batch (`batchSize` rows, chosen through an index) so no statement holds locks for long;
 * the job calls them in a loop.
 */
import type { Queryable } from "./database.js";
import { followedScenario } from "./scenario-cursor-repository.js";
import { deleteSubscription } from "./subscription-repository.js";

/** A subscription housekeeping deleted because its `expiresAt` had passed. */
export interface ExpiredSubscription {
  id: number;
  entityName: string;
  expiresAt: Date;
  targetUrl: string;
}

/**
 * Deletes up to `batchSize` subscriptions whose `expiresAt` is at or before `now`, each exactly as a
 * DELETE through the API does (`deleteSubscription`: its attempts, parked events and replays go with
 * it), and only if it is still expired when deleted: a renewal that came in since the read keeps it.
 * Found through webhook_subscriptions_expiry (migration 021), which holds only temporary ones.
 */
export async function deleteExpiredSubscriptions(
  db: Queryable,
  now: Date,
  batchSize: number,
): Promise<ExpiredSubscription[]> {
  const { rows } = await db.query<{
    id: number;
    entity_id: number;
    entity_name: string;
    expires_at: Date;
    target_url: string;
  }>(
    `SELECT s.id, s.entity_id, e.name AS entity_name, s.expires_at, s.target_url
       FROM webhook_subscriptions s JOIN entities e ON e.id = s.entity_id
      WHERE s.expires_at <= $1
      ORDER BY s.expires_at
      LIMIT $2`,
    [now, batchSize],
  );
  const deleted: ExpiredSubscription[] = [];
  for (const row of rows) {
    if (await deleteSubscription(db, row.entity_id, row.id, { expiredBy: now }))
      deleted.push({
        id: row.id,
        entityName: row.entity_name,
        expiresAt: row.expires_at,
        targetUrl: row.target_url,
      });
  }
  return deleted;
}

/** Delivery attempts made before `olderThan`; uses delivery_attempts_time (attempted_at). */
export async function pruneDeliveryAttempts(
  db: Queryable,
  olderThan: Date,
  batchSize: number,
): Promise<number> {
  const { rowCount } = await db.query(
    `DELETE FROM delivery_attempts WHERE id IN (
       SELECT id FROM delivery_attempts WHERE attempted_at < $1 ORDER BY attempted_at LIMIT $2)`,
    [olderThan, batchSize],
  );
  return rowCount;
}

/**
 * The highest log position that no live reader still needs: the lowest watermark of every existing
 * subscription (active or not: re-activating resumes from its watermark, SPEC §6), the lowest cursor
 * of every open replay, just below the lowest parked event, the lowest position of an INCREMENTAL
 * export (migration 025: its next execution reads the events above it), the lowest cursor of an
 * ACTIVE scenario whose start reads the log (migration 027: its starter reads the events above
 * it), and the log head
 * (unstamped events are never candidates). Events at or below
 * it may go; events above it never. A subscription disabled because its table was deleted
 * (TABLE_DELETED, migration 016) needs nothing more: it passed the table's last events before it
 * was disabled, and it cannot be switched on for that table again; once a PUT points it at a live
 * table, it holds the log like any paused subscription.
 */
export async function liveLogFloor(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ floor: number }>(
    `WITH readers AS (
       SELECT id, watermark FROM webhook_subscriptions
        WHERE is_active OR state_reason IS DISTINCT FROM 'TABLE_DELETED'
           -- pointed (paused) at a live table since: it resumes from its watermark there.
           OR EXISTS (SELECT 1 FROM data_tables t WHERE t.id = element_id))
     SELECT LEAST(
              (SELECT position FROM log_head),
              (SELECT min(watermark) FROM readers),
              (SELECT min(cursor) FROM subscription_replays
                WHERE status IN ('PENDING', 'RUNNING')
                  AND subscription_id IN (SELECT id FROM readers)),
              (SELECT min(position) - 1 FROM parked_events
                WHERE subscription_id IN (SELECT id FROM readers)),
              -- An INCREMENTAL export's next execution reads its table's events above this.
              (SELECT min(incremental_position) FROM exports
                WHERE incremental_position IS NOT NULL),
              -- An ACTIVE scenario's starter reads the events above its cursor (docs/scenarios.md).
              -- Only a start that reads the log moves its cursor: an API or DATE start's stays
              -- where its activation put it and must not hold the log.
              (SELECT min(s.log_cursor) FROM scenarios s WHERE ${followedScenario("s")})
            ) AS floor`,
  );
  return rows[0]?.floor ?? 0;
}

/**
 * Stamped change events that occurred before `olderThan` and sit at or below `floor`. Walks the
 * unique index on position from its low end, so the oldest positions go first and the batch stays
 * cheap. Unstamped inbox rows (position NULL) are never touched.
 */
export async function pruneChangeEvents(
  db: Queryable,
  olderThan: Date,
  floor: number,
  batchSize: number,
): Promise<number> {
  const { rowCount } = await db.query(
    `DELETE FROM change_events WHERE id IN (
       SELECT id FROM change_events
        WHERE position IS NOT NULL AND position <= $2 AND occurred_at < $1
        ORDER BY position LIMIT $3)`,
    [olderThan, floor, batchSize],
  );
  return rowCount;
}

/** Access tokens that expired before `now`; uses access_tokens_expiry. */
export async function pruneExpiredAccessTokens(
  db: Queryable,
  now: Date,
  batchSize: number,
): Promise<number> {
  const { rowCount } = await db.query(
    `DELETE FROM access_tokens WHERE token_hash IN (
       SELECT token_hash FROM access_tokens WHERE expires_at < $1 LIMIT $2)`,
    [now, batchSize],
  );
  return rowCount;
}

/** Replay requests that finished (DONE or CANCELLED) before `olderThan`. Few rows: no index needed. */
export async function pruneFinishedReplays(
  db: Queryable,
  olderThan: Date,
  batchSize: number,
): Promise<number> {
  const { rowCount } = await db.query(
    `DELETE FROM subscription_replays WHERE id IN (
       SELECT id FROM subscription_replays
        WHERE status IN ('DONE', 'CANCELLED') AND finished_at < $1 LIMIT $2)`,
    [olderThan, batchSize],
  );
  return rowCount;
}
