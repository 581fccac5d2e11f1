/**
 * SQL of webhook subscriptions (SPEC §4): the API's create / read / list / replace / delete, and the
 * two reads the delivery engine starts from. Delivery's own cursor and lease statements live with
 * delivery; this file only sets the watermark when a subscription is born.
 *
 * Signing secrets are sealed with the SecretBox on their way in and opened on their way out
 * (secrets at rest, src/storage/sealed-values.ts): the table never holds one in plain text.
 */
import type { EventSource, EventType } from "../domain/change-event.js";
import type { SecretBox } from "../domain/secret-box.js";
import type { Subscription, SubscriptionSettings } from "../domain/subscription.js";
import { SUBSCRIPTION_DEFAULTS } from "../domain/subscription.js";
import type { Queryable } from "./database.js";
import { openStored } from "./sealed-values.js";
import type { SubscriptionRow } from "./subscription-rows.js";
import { SUBSCRIPTION_COLUMNS, SUBSCRIPTION_FROM, toSubscription } from "./subscription-rows.js";

/** A subscription with its delivery cursor and the log head read in the same statement. */
export interface SubscriptionWithCursor extends Subscription {
  /** Every matching event at or below this log position is delivered, parked or failed. */
  watermark: number;
  /** The highest stamped log position when the row was read. */
  logHead: number;
  /** Records parked behind a failing event (DESIGN §5). */
  parkedRecords: number;
}

type CursorRow = SubscriptionRow & { watermark: number; log_head: number; parked_records: number };

const CURSOR_COLUMNS = `${SUBSCRIPTION_COLUMNS}, s.watermark, (SELECT position FROM log_head) AS log_head,
  (SELECT count(*)::int FROM parked_records p WHERE p.subscription_id = s.id) AS parked_records`;

function toSubscriptionWithCursor(row: CursorRow, secrets: SecretBox): SubscriptionWithCursor {
  return {
    ...toSubscription(row, secrets),
    watermark: row.watermark,
    logHead: row.log_head,
    parkedRecords: row.parked_records,
  };
}

/** Parameters $1… of the settings columns, in SETTINGS_COLUMNS order. */
const SETTINGS_COLUMNS = [
  "source",
  "element_id",
  "event_type",
  "on_fields",
  "target_url",
  "headers",
  "is_active",
  "push_mode",
  "max_block_size",
  "linger_ms",
  "max_wait_ms",
  "max_concurrency",
  "include_previous",
  "conditions",
  "payload_version",
  "expires_at",
  "secret",
] as const;

function settingsParams(settings: SubscriptionSettings, secrets: SecretBox): unknown[] {
  return [
    settings.on,
    settings.onElementId,
    settings.eventType,
    JSON.stringify(settings.onFields),
    settings.targetUrl,
    JSON.stringify(settings.headers),
    settings.isActive,
    settings.pushMode,
    settings.maxBlockSize,
    settings.lingerMs,
    settings.maxWaitMs,
    settings.maxConcurrency,
    settings.includePrevious,
    settings.conditions === null ? null : JSON.stringify(settings.conditions),
    settings.payloadVersion ?? SUBSCRIPTION_DEFAULTS.payloadVersion,
    settings.expiresAt ?? null,
    secrets.seal(settings.secret),
  ];
}

/**
 * Creates a subscription whose watermark is the current log head, so it receives every event
 * stamped after it exists. An event committed just before but stamped just after is delivered too:
 * the head only grows, so nothing committed after creation can land at or below the watermark.
 */
export async function insertSubscription(
  db: Queryable,
  secrets: SecretBox,
  entityId: number,
  settings: SubscriptionSettings,
): Promise<SubscriptionWithCursor> {
  const placeholders = SETTINGS_COLUMNS.map((_, i) => `$${i + 2}`).join(", ");
  const { rows } = await db.query<CursorRow>(
    `WITH s AS (
       INSERT INTO webhook_subscriptions (entity_id, ${SETTINGS_COLUMNS.join(", ")}, watermark)
       VALUES ($1, ${placeholders}, (SELECT position FROM log_head))
       RETURNING *)
     SELECT ${CURSOR_COLUMNS} FROM s JOIN entities e ON e.id = s.entity_id`,
    [entityId, ...settingsParams(settings, secrets)],
  );
  return toSubscriptionWithCursor(rows[0]!, secrets);
}

export async function findSubscription(
  db: Queryable,
  secrets: SecretBox,
  entityId: number,
  id: number,
): Promise<SubscriptionWithCursor | undefined> {
  const { rows } = await db.query<CursorRow>(
    `SELECT ${CURSOR_COLUMNS} FROM ${SUBSCRIPTION_FROM} WHERE s.entity_id = $1 AND s.id = $2`,
    [entityId, id],
  );
  return rows[0] ? toSubscriptionWithCursor(rows[0], secrets) : undefined;
}

export interface SubscriptionFilter {
  on?: EventSource;
  onElementId?: string;
  eventType?: EventType;
  isActive?: boolean;
}

/** One page of an entity's subscriptions in id order, and how many match the filter in all. */
export async function listSubscriptions(
  db: Queryable,
  secrets: SecretBox,
  entityId: number,
  filter: SubscriptionFilter,
  page: { page: number; pageSize: number },
): Promise<{ items: SubscriptionWithCursor[]; total: number }> {
  const where = `s.entity_id = $1
      AND ($2::text IS NULL OR s.source = $2)
      AND ($3::text IS NULL OR s.element_id = $3)
      AND ($4::text IS NULL OR s.event_type = $4)
      AND ($5::boolean IS NULL OR s.is_active = $5)`;
  const params = [
    entityId,
    filter.on ?? null,
    filter.onElementId ?? null,
    filter.eventType ?? null,
    filter.isActive ?? null,
  ];
  // Served by webhook_subscriptions_entity (entity_id, id); an entity has few subscriptions.
  const { rows } = await db.query<CursorRow>(
    `SELECT ${CURSOR_COLUMNS} FROM ${SUBSCRIPTION_FROM}
      WHERE ${where}
      ORDER BY s.id
      LIMIT $6 OFFSET $7`,
    [...params, page.pageSize, page.page * page.pageSize],
  );
  const counted = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM webhook_subscriptions s WHERE ${where}`,
    params,
  );
  return {
    items: rows.map((row) => toSubscriptionWithCursor(row, secrets)),
    total: counted.rows[0]?.n ?? 0,
  };
}

/** How long a secret replaced by a PUT keeps verifying (the rotation grace period of SPEC §4). */
export const SECRET_GRACE_INTERVAL = "24 hours";

/**
 * Replaces a subscription's settings. The watermark, lease and failure tracking are delivery's and
 * stay as they are, so switching `isActive` off and on again skips nothing. `isActive: true` clears a
 * DISABLED state (the endpoint gets a fresh chance); FAILING is left to delivery's probes. A new secret keeps the old one as the previous
 * secret for SECRET_GRACE_INTERVAL, like a rotation.
 */
export async function replaceSubscription(
  db: Queryable,
  secrets: SecretBox,
  entityId: number,
  id: number,
  settings: SubscriptionSettings,
): Promise<SubscriptionWithCursor | undefined> {
  const assignments = SETTINGS_COLUMNS.filter((c) => c !== "secret")
    .map((column) => `${column} = $${SETTINGS_COLUMNS.indexOf(column) + 3}`)
    .join(", ");
  const secret = `$${SETTINGS_COLUMNS.indexOf("secret") + 3}`;
  const isActive = `$${SETTINGS_COLUMNS.indexOf("is_active") + 3}::boolean`;
  const unchanged = `$${SETTINGS_COLUMNS.length + 3}::boolean`;
  const stored = `$${SETTINGS_COLUMNS.length + 4}::text`;
  // Switched on again after delivery disabled it or a client paused it: a fresh start (a pause also
  // ends a FAILING episode, so its 3-day count starts over).
  const reactivated = `(${isActive} AND (state = 'DISABLED' OR NOT is_active))`;
  // A sealed secret differs at every seal, so SQL cannot tell whether the secret changes: it is
  // decided here on the row's secret as read, and the UPDATE applies only while that is still the
  // row's secret (compare-and-set); a rotation in between makes it read the row again.
  for (;;) {
    const read = await db.query<{ secret: string }>(
      "SELECT secret FROM webhook_subscriptions WHERE entity_id = $1 AND id = $2",
      [entityId, id],
    );
    if (!read.rows[0]) return undefined;
    const current = read.rows[0].secret;
    const same = openStored(secrets, current) === settings.secret;
    // The CASEs read the row's values before this UPDATE (PostgreSQL evaluates SET against the old row).
    const { rows } = await db.query<CursorRow>(
      `WITH s AS (
         UPDATE webhook_subscriptions
            SET ${assignments},
                previous_secret = CASE WHEN ${unchanged} THEN previous_secret ELSE secret END,
                previous_secret_expires_at = CASE WHEN ${unchanged} THEN previous_secret_expires_at
                                                  ELSE now() + interval '${SECRET_GRACE_INTERVAL}' END,
                secret = CASE WHEN ${unchanged} THEN secret ELSE ${secret} END,
                state = CASE WHEN ${reactivated} THEN 'ACTIVE' ELSE state END,
                state_reason = CASE WHEN ${reactivated} THEN NULL ELSE state_reason END,
                failing_since = CASE WHEN ${reactivated} THEN NULL ELSE failing_since END,
                updated_at = now()
          WHERE entity_id = $1 AND id = $2 AND secret = ${stored}
          RETURNING *)
       SELECT ${CURSOR_COLUMNS} FROM s JOIN entities e ON e.id = s.entity_id`,
      [entityId, id, ...settingsParams(settings, secrets), same, current],
    );
    if (rows[0]) return toSubscriptionWithCursor(rows[0], secrets);
  }
}

/** `POST …/rotate-secret`: the grace period of the old secret, in seconds (default = SECRET_GRACE_INTERVAL). */
export const ROTATION_GRACE_SECONDS = { default: 24 * 3600, min: 0, max: 7 * 24 * 3600 } as const;

/**
 * Rotates a subscription's signing secret: `newSecret` becomes the secret, the current one becomes
 * the previous secret until now + `graceSeconds` (a previous secret still in its grace period is
 * dropped: two secrets sign at most). Undefined when the entity has no such subscription.
 */
export async function rotateSubscriptionSecret(
  db: Queryable,
  secrets: SecretBox,
  entityId: number,
  id: number,
  newSecret: string,
  graceSeconds: number,
): Promise<SubscriptionWithCursor | undefined> {
  const { rows } = await db.query<CursorRow>(
    `WITH s AS (
       UPDATE webhook_subscriptions
          SET previous_secret = secret,
              previous_secret_expires_at = now() + make_interval(secs => $4::double precision),
              secret = $3,
              updated_at = now()
        WHERE entity_id = $1 AND id = $2
        RETURNING *)
     SELECT ${CURSOR_COLUMNS} FROM s JOIN entities e ON e.id = s.entity_id`,
    [entityId, id, secrets.seal(newSecret), graceSeconds],
  );
  return rows[0] ? toSubscriptionWithCursor(rows[0], secrets) : undefined;
}

/**
 * Deletes a subscription; false when the entity has no such subscription. Its delivery state
 * (attempts, parked events, replays) goes with it (ON DELETE CASCADE), and a worker pushing for it
 * lets it go at its next look. `expiredBy` (housekeeping) deletes it only if its `expiresAt` is at or
 * before that time, so a renewal that came in meanwhile keeps it.
 */
export async function deleteSubscription(
  db: Queryable,
  entityId: number,
  id: number,
  options: { expiredBy?: Date } = {},
): Promise<boolean> {
  const { rowCount } = await db.query(
    `DELETE FROM webhook_subscriptions
      WHERE entity_id = $1 AND id = $2 AND ($3::timestamptz IS NULL OR expires_at <= $3)`,
    [entityId, id, options.expiredBy ?? null],
  );
  return rowCount > 0;
}

// --- For the delivery engine ------------------------------------------------------------------

/** Ids of the subscriptions delivery should drive (isActive), in id order. */
export async function listActiveSubscriptionIds(db: Queryable): Promise<number[]> {
  const { rows } = await db.query<{ id: number }>(
    "SELECT id FROM webhook_subscriptions WHERE is_active ORDER BY id",
  );
  return rows.map((r) => r.id);
}

/** One subscription of any entity, with its watermark; undefined once deleted. */
export async function loadSubscription(
  db: Queryable,
  secrets: SecretBox,
  id: number,
): Promise<SubscriptionWithCursor | undefined> {
  const { rows } = await db.query<CursorRow>(
    `SELECT ${CURSOR_COLUMNS} FROM ${SUBSCRIPTION_FROM} WHERE s.id = $1`,
    [id],
  );
  return rows[0] ? toSubscriptionWithCursor(rows[0], secrets) : undefined;
}
