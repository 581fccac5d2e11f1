/**
 * SQL of subscription leases, the durable watermark and the worker heartbeats. Every write that
 * belongs to a leased subscription is guarded by `lease_owner = <this worker>`, so a worker that
 * lost its lease (it stalled past the expiry and another worker took over) cannot move a cursor it
 * no longer drives.
 *
 * On PostgreSQL a worker also holds a liveness lock (liveness-locks.ts) whose key it records with
 * its heartbeat. A worker renews or claims leases only while the key recorded for it is held, and
 * a lease whose holder's recorded key is not held is "orphaned": another worker may take it over
 * before it expires (claimOrphanedLeases).
 */
import type { SecretBox } from "../domain/secret-box.js";
import type { Subscription } from "../domain/subscription.js";
import type { Queryable } from "./database.js";
import { HELD_LIVENESS_KEYS } from "./liveness-locks.js";
import type { SubscriptionRow } from "./subscription-rows.js";
import { SUBSCRIPTION_COLUMNS, SUBSCRIPTION_FROM, toSubscription } from "./subscription-rows.js";

/** A subscription this worker holds the lease of, with the cursor it resumes from. */
export interface LeasedSubscription {
  subscription: Subscription;
  watermark: number;
}

/** Deliverable = active and not disabled by delivery. */
const DELIVERABLE = "s.is_active AND s.state <> 'DISABLED'";

/** The worker row `w` recorded a liveness key and no session holds that key any more. */
const LOCK_GONE = `(w.liveness_key IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM (${HELD_LIVENESS_KEYS}) h WHERE h.key = w.liveness_key))`;

/** Worker `$1` may take or extend leases: the liveness key recorded for it (if any) is held. */
const MAY_LEASE = `NOT EXISTS (SELECT 1 FROM delivery_workers w WHERE w.worker_id = $1 AND ${LOCK_GONE})`;

function toLeased(
  rows: (SubscriptionRow & { watermark: number })[],
  secrets: SecretBox,
): LeasedSubscription[] {
  return rows.map((row) => ({
    subscription: toSubscription(row, secrets),
    watermark: row.watermark,
  }));
}

/**
 * Extends every lease this worker holds on a deliverable subscription and returns those
 * subscriptions (fresh definitions: a PUT shows up here). A lease missing from the answer is lost.
 * Nothing is extended while the liveness key recorded for this worker is not held (its lock
 * session died): other workers may be taking those leases over.
 */
export async function renewLeases(
  db: Queryable,
  secrets: SecretBox,
  workerId: string,
  ttlMs: number,
): Promise<LeasedSubscription[]> {
  const { rows } = await db.query<SubscriptionRow & { watermark: number }>(
    `WITH renewed AS (
       UPDATE webhook_subscriptions s
          SET lease_expires_at = now() + make_interval(secs => $2::double precision / 1000)
        WHERE s.lease_owner = $1 AND ${DELIVERABLE} AND ${MAY_LEASE}
        RETURNING s.id)
     SELECT ${SUBSCRIPTION_COLUMNS}, s.watermark
       FROM ${SUBSCRIPTION_FROM}
      WHERE s.id IN (SELECT id FROM renewed)
      ORDER BY s.id`,
    [workerId, ttlMs],
  );
  return toLeased(rows, secrets);
}

/**
 * Claims up to `limit` deliverable subscriptions whose lease is free or expired. SKIP LOCKED lets
 * workers claim at the same time without waiting on each other or taking the same row. Like a
 * renewal, only while the liveness key recorded for this worker is held.
 */
export async function claimLeases(
  db: Queryable,
  secrets: SecretBox,
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
                   AND ${MAY_LEASE}
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
  return toLeased(rows, secrets);
}

/**
 * A lease that has not expired but whose holder's liveness lock is gone: the holder's process died
 * (or its lock session did). `key` and `expiresAt` (PostgreSQL's text of the timestamp, exact) say
 * which holding this is: a renewal or a new key makes it another one.
 */
export interface OrphanedLease {
  subscriptionId: number;
  owner: string;
  key: number;
  expiresAt: string;
}

/**
 * Leases of other workers that are orphaned right now (PostgreSQL only: see liveness-locks.ts).
 * Workers look often, so the usual answer costs a glance at the few worker rows: the subscriptions
 * are read only when a worker that may still hold leases (its heartbeat is younger than twice
 * `ttlMs`) has lost its lock.
 */
export async function orphanedLeases(
  db: Queryable,
  workerId: string,
  ttlMs: number,
): Promise<OrphanedLease[]> {
  const gone = await db.query<{ worker_id: string }>(
    `SELECT w.worker_id FROM delivery_workers w
      WHERE w.worker_id <> $1 AND ${LOCK_GONE}
        AND w.heartbeat_at > now() - make_interval(secs => 2 * $2::double precision / 1000)`,
    [workerId, ttlMs],
  );
  if (gone.rows.length === 0) return [];
  const { rows } = await db.query<{ id: number; owner: string; key: number; expires_at: string }>(
    `SELECT s.id, s.lease_owner AS owner, w.liveness_key AS key, s.lease_expires_at::text AS expires_at
       FROM webhook_subscriptions s
       JOIN delivery_workers w ON w.worker_id = s.lease_owner
      WHERE ${DELIVERABLE} AND s.lease_owner = ANY ($1::text[]) AND s.lease_expires_at > now()
        AND ${LOCK_GONE}
      ORDER BY s.id`,
    [gone.rows.map((r) => r.worker_id)],
  );
  return rows.map((r) => ({
    subscriptionId: r.id,
    owner: r.owner,
    key: r.key,
    expiresAt: r.expires_at,
  }));
}

/**
 * Takes over up to `limit` of the given orphaned leases, each only if it is still exactly that
 * holding (same owner, same recorded key, same expiry: the holder neither renewed it nor took a new
 * lock since it was seen) and still orphaned now. The caller must have seen each one orphaned for
 * at least the liveness grace (worker-liveness.ts), so that a holder that is alive but lost its
 * lock session has stopped pushing by then.
 */
export async function claimOrphanedLeases(
  db: Queryable,
  secrets: SecretBox,
  workerId: string,
  ttlMs: number,
  orphans: readonly OrphanedLease[],
  limit: number,
): Promise<LeasedSubscription[]> {
  if (limit <= 0 || orphans.length === 0) return [];
  const { rows } = await db.query<SubscriptionRow & { watermark: number }>(
    `WITH claimed AS (
       UPDATE webhook_subscriptions t
          SET lease_owner = $1,
              lease_expires_at = now() + make_interval(secs => $2::double precision / 1000)
        WHERE t.id IN (
                SELECT s.id
                  FROM webhook_subscriptions s
                  JOIN unnest($3::bigint[], $4::text[], $5::bigint[], $6::timestamptz[])
                       AS o(id, owner, key, expires_at) ON o.id = s.id
                  JOIN delivery_workers w ON w.worker_id = s.lease_owner
                 WHERE ${DELIVERABLE} AND s.lease_owner = o.owner AND s.lease_expires_at = o.expires_at
                   AND w.liveness_key = o.key AND ${LOCK_GONE} AND ${MAY_LEASE}
                 ORDER BY s.id
                 LIMIT $7
                   FOR UPDATE OF s SKIP LOCKED)
        RETURNING t.id)
     SELECT ${SUBSCRIPTION_COLUMNS}, s.watermark
       FROM ${SUBSCRIPTION_FROM}
      WHERE s.id IN (SELECT id FROM claimed)
      ORDER BY s.id`,
    [
      workerId,
      ttlMs,
      orphans.map((o) => o.subscriptionId),
      orphans.map((o) => o.owner),
      orphans.map((o) => o.key),
      orphans.map((o) => o.expiresAt),
      limit,
    ],
  );
  return toLeased(rows, secrets);
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

/**
 * Records this worker as alive (with the key of its liveness lock: null when it holds none) and
 * counts what the fair share of leases is computed from. A worker whose recorded liveness key is
 * not held is not counted as live, whatever its heartbeat says: it died, or it is between lock
 * sessions and drives nothing.
 */
export async function heartbeat(
  db: Queryable,
  workerId: string,
  ttlMs: number,
  livenessKey: number | null = null,
): Promise<WorkerCensus> {
  await db.query(
    `INSERT INTO delivery_workers (worker_id, liveness_key) VALUES ($1, $2)
     ON CONFLICT (worker_id) DO UPDATE SET heartbeat_at = now(), liveness_key = excluded.liveness_key`,
    [workerId, livenessKey],
  );
  // Rows of workers gone for an hour are noise; any live worker tidies them.
  await db.query("DELETE FROM delivery_workers WHERE heartbeat_at < now() - interval '1 hour'");
  const { rows } = await db.query<{ live: number; deliverable: number; min_owned: number }>(
    `WITH live AS (
       SELECT w.worker_id,
              (SELECT count(*) FROM webhook_subscriptions s
                WHERE s.lease_owner = w.worker_id AND s.lease_expires_at > now()) AS owned
         FROM delivery_workers w
        WHERE w.heartbeat_at > now() - make_interval(secs => $1::double precision / 1000)
          AND NOT ${LOCK_GONE})
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
