/**
 * SQL of endpoint-health announcements (SPEC §6, migration 007 `health_announced`): which
 * operational event was last raised for a subscription, switched with a compare-and-set so that
 * one announcement goes out per transition, whichever worker holds the lease and across restarts.
 * Setting FAILING / `failing_since` and deactivating are delivery's own statements.
 */
import type { Queryable } from "./database.js";

/** What has been announced: a warning, a deactivation, or nothing (healthy, or failing < 24 h). */
export type HealthAnnouncement = "warn" | "disable" | null;

/**
 * Switches the subscription's announcement to `next` if it differs and this worker holds the lease.
 * Returns the previous announcement when it switched (the caller then raises the operational event
 * of that transition), or `"unchanged"` when there is nothing to raise. With `next` = "warn" the
 * status reason shown to clients becomes `reason` (the subscription is FAILING meanwhile).
 */
export async function switchHealthAnnouncement(
  db: Queryable,
  subscriptionId: number,
  workerId: string,
  next: HealthAnnouncement,
  reason?: string,
): Promise<HealthAnnouncement | "unchanged"> {
  // The sub-select reads the row before the UPDATE (same snapshot), which gives the previous value;
  // the row lock taken by the UPDATE makes two racing workers see one switch between them.
  const { rows } = await db.query<{ previous: HealthAnnouncement }>(
    `UPDATE webhook_subscriptions s
        SET health_announced = $3::text,
            state_reason = CASE WHEN $3::text = 'warn' AND $4::text IS NOT NULL THEN $4::text
                                ELSE s.state_reason END
       FROM (SELECT id, health_announced AS previous FROM webhook_subscriptions WHERE id = $1) old
      WHERE s.id = $1 AND old.id = s.id AND s.lease_owner = $2
        AND s.health_announced IS DISTINCT FROM $3::text
      RETURNING old.previous`,
    [subscriptionId, workerId, next, reason ?? null],
  );
  return rows[0] ? rows[0].previous : "unchanged";
}

/**
 * The circuit opened (SPEC §6 "marked FAILING"): the endpoint fails everything since `since`.
 * Keeps an earlier `failing_since` (a restart while failing does not reset the 3-day count).
 */
export async function markFailing(
  db: Queryable,
  subscriptionId: number,
  workerId: string,
  since: Date,
  reason: string,
): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE webhook_subscriptions
        SET state = 'FAILING', failing_since = coalesce(failing_since, $3), state_reason = $4
      WHERE id = $1 AND lease_owner = $2 AND is_active`,
    [subscriptionId, workerId, since, reason],
  );
  return rowCount > 0;
}

/** The circuit closed: the endpoint delivered again. */
export async function markActive(
  db: Queryable,
  subscriptionId: number,
  workerId: string,
): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE webhook_subscriptions SET state = 'ACTIVE', failing_since = NULL, state_reason = NULL
      WHERE id = $1 AND lease_owner = $2 AND state = 'FAILING'`,
    [subscriptionId, workerId],
  );
  return rowCount > 0;
}
