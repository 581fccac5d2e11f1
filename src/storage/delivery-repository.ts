/**
 * SQL of the delivery engine: subscription leases, the durable watermark, the attempts log and the
 * worker heartbeats. Every write that belongs to a leased subscription is guarded by
 * `lease_owner = <this worker>`, so a worker that lost its lease (it stalled past the expiry and
 * another worker took over) cannot move a cursor it no longer drives.
 *
 * On PostgreSQL a worker also holds a liveness lock (liveness-locks.ts) whose key it records with
 * its heartbeat. A worker renews or claims leases only while the key recorded for it is held, and
 * a lease whose holder's recorded key is not held is "orphaned": another worker may take it over
 * before it expires (claimOrphanedLeases).
 */
import type { ChangeEvent, EventSource, EventType } from "../domain/change-event.js";
import type { PrerenderedParts } from "../domain/event-payload.js";
import type { SecretBox } from "../domain/secret-box.js";
import { namesJson, toIso } from "../domain/event-payload.js";
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
 * of it. A block's 500 ids went through JSON and jsonb_array_elements_text before: about 2 µs of
 * PostgreSQL per event; an array parameter is parsed once, as numbers.
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

export interface DeliveryLogFilter {
  entityId: number;
  source: EventSource;
  sourceId: string | null;
  eventType: EventType;
  /** The subscription's `onFields` (empty or null: no field filter). */
  onFields?: readonly string[] | null;
  /**
   * The subscription's `conditions` and `includePrevious`. When the caller passes both and they are
   * `null` and `false`, nothing will read an event's state beyond the attributes its payload shows,
   * nor its previous values, so record events come back lean: `state` holds only the attributes in
   * `fields` (when one or two are listed; a missing one as null) and `previous` is empty. Left out,
   * events come back whole.
   */
  conditions?: unknown;
  includePrevious?: boolean;
}

/** Sources whose payload shows their whole state (trigger events): their state is never trimmed. */
const WHOLE_STATE_SOURCES: readonly EventSource[] = [
  "ETL",
  "EXPORT",
  "FILE_SYNCHRONIZATION",
  "CUSTOM_ACTION",
];

/**
 * Compact JSON of the `_event` parts that repeat from event to event (changed fields, origin,
 * declared events), by their text as PostgreSQL sent it. Bounded: emptied when it grows past
 * CACHE_LIMIT distinct texts.
 */
const CACHE_LIMIT = 10_000;

function cached(cache: Map<string, string>, raw: string, compact: (raw: string) => string): string {
  let text = cache.get(raw);
  if (text === undefined) {
    if (cache.size >= CACHE_LIMIT) cache.clear();
    text = compact(raw);
    cache.set(raw, text);
  }
  return text;
}

const namesCache = new Map<string, string>();
const jsonCache = new Map<string, string>();

const compactNames = (raw: string) => namesJson(JSON.parse(raw));
const compactJson = (raw: string) => JSON.stringify(JSON.parse(raw));

/** Positions of the columns in a line of readLogWindow's page. */
const COLUMN = {
  id: 0,
  position: 1,
  version: 2,
  sourceId: 3,
  recordKey: 4,
  occurredAt: 5,
  keys: 6,
  state: 7,
  fields: 8,
  previous: 9,
  extra: 10,
  declaredEvents: 11,
  origin: 12,
} as const;
const COLUMNS = 13;
/** The first column whose start an event keeps (see PageCuts). */
const FIRST_CUT = COLUMN.occurredAt;
/** Tab positions an event keeps: before occurred_at, …, before origin. */
const CUTS = COLUMNS - FIRST_CUT;

/**
 * The positions of the tabs before columns occurred_at to origin in the lines of one page, CUTS
 * per line, in one typed array the page's events share: no string per column (the page's lines
 * used to be split into 13 strings each, most never read) and no array per event.
 */
type PageCuts = Int32Array;

/** The integer at [from, to) of `line`: digits read in place, anything else through Number. */
function integerAt(line: string, from: number, to: number): number {
  if (to - from > 15 || to === from) return Number(line.slice(from, to));
  let n = 0;
  for (let k = from; k < to; k++) {
    const digit = line.charCodeAt(k) - 48;
    if (digit < 0 || digit > 9) return Number(line.slice(from, to));
    n = n * 10 + digit;
  }
  return n;
}

/** Where column `k` of a line begins and ends, given its tabs (see readLogWindow). */
function from(tabs: readonly number[], k: number): number {
  return (tabs[k] as number) + 1;
}
function to(tabs: readonly number[], k: number): number {
  return tabs[k + 1] as number;
}

/** The text of column `k` of a line. */
function cut(line: string, tabs: readonly number[], k: number): string {
  return line.slice(from(tabs, k), to(tabs, k));
}

/** Column `k` of a line is exactly `text` (compared in place: no string is cut out). */
function holds(line: string, tabs: readonly number[], k: number, text: string): boolean {
  const start = from(tabs, k);
  return to(tabs, k) - start === text.length && line.startsWith(text, start);
}

/**
 * occurred_at as the page sends it: `toIso` of it (`2026-12-01T01:58:47.009Z`, milliseconds
 * truncated as the driver's own parser does) for years 1000 to 9999, else `j` and its JSON text.
 */
function occurredAtOf(text: string): Date {
  return text.charCodeAt(0) === 106 // j
    ? new Date(JSON.parse(text.slice(1)) as string)
    : new Date(text);
}

/**
 * The state column of a page line: the state's JSON text, or (lean reads) `=` and the JSON texts of
 * the values of the changed attributes `names`, separated by U+001F, an empty one for a missing
 * attribute (null, as jsonb_build_object made it).
 */
function stateOf(text: string, names: readonly string[]): ChangeEvent["state"] {
  if (text.charCodeAt(0) !== 61 /* = */) return JSON.parse(text) as ChangeEvent["state"];
  const values = text.slice(1).split("\u001f");
  const state: Record<string, unknown> = {};
  for (let i = 0; i < values.length; i++) {
    const value = values[i] === "" ? null : (JSON.parse(values[i] as string) as unknown);
    const name = names[i] as string;
    if (name === "__proto__")
      Object.defineProperty(state, name, {
        value,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    else state[name] = value;
  }
  return state as ChangeEvent["state"];
}

/** A JSON string's value: cut from between the quotes unless it holds an escape. */
function jsonString(text: string): string {
  return text.includes("\\") ? (JSON.parse(text) as string) : text.slice(1, -1);
}

/**
 * An event read by readLogWindow. The columns the engine reads for every event (positions, ordering
 * key) are parsed at once; the JSON columns are kept as the text PostgreSQL sent and parsed on first
 * use, and the `_event` parts of the push body are taken from that text (see prerenderedParts), so
 * an event pushed without conditions or previous values never has its state built as an object
 * beyond its keys and changed attributes.
 */
class LogEvent implements ChangeEvent, PrerenderedParts {
  #keys: ChangeEvent["keys"] | undefined;
  #state: ChangeEvent["state"] | undefined;
  #fields: string[] | undefined;
  #previous: ChangeEvent["previous"] | undefined;
  #extra: ChangeEvent["extra"] | undefined;
  #declaredEvents: string[] | undefined;
  #origin: ChangeEvent["origin"] | undefined;
  #occurredAt: Date | undefined;
  /** A part the `_event` texts come from was set from outside: those texts may be stale. */
  #replaced = false;
  /** `keys` or `state` was set from outside: their texts (keysJson, changedValuesJson) are stale. */
  #attributesReplaced = false;

  constructor(
    public id: number,
    public position: number,
    public entityId: number,
    public source: EventSource,
    public sourceId: string,
    public eventType: EventType,
    public recordKey: string,
    public version: number | null,
    /**
     * The event's line of the page as PostgreSQL sent it, and where its columns from occurred_at on
     * begin in it (see COLUMN): the JSON columns are cut out of the line when first read.
     */
    private readonly line: string,
    private readonly cuts: PageCuts,
    /** Where this event's tab positions begin in `cuts`. */
    private readonly cutsAt: number,
    readonly occurredAtText: string,
    readonly changedFieldNames: readonly string[],
    readonly changedFieldsJson: string,
    readonly declaredEventsJson: string,
    readonly originJson: string,
  ) {}

  get keys(): ChangeEvent["keys"] {
    return (this.#keys ??= JSON.parse(this.column(COLUMN.keys)) as ChangeEvent["keys"]);
  }
  set keys(value: ChangeEvent["keys"]) {
    this.#keys = value;
    this.#attributesReplaced = true;
  }
  get state(): ChangeEvent["state"] {
    return (this.#state ??= stateOf(this.column(COLUMN.state), this.changedFieldNames));
  }
  set state(value: ChangeEvent["state"]) {
    this.#state = value;
    this.#attributesReplaced = true;
  }
  get fields(): string[] {
    return (this.#fields ??= JSON.parse(this.column(COLUMN.fields)) as string[]);
  }
  set fields(value: string[]) {
    this.#fields = value;
    this.#replaced = true;
  }
  get previous(): ChangeEvent["previous"] {
    return (this.#previous ??= JSON.parse(this.column(COLUMN.previous)) as ChangeEvent["previous"]);
  }
  set previous(value: ChangeEvent["previous"]) {
    this.#previous = value;
  }
  get extra(): ChangeEvent["extra"] {
    return (this.#extra ??= JSON.parse(this.column(COLUMN.extra)) as ChangeEvent["extra"]);
  }
  set extra(value: ChangeEvent["extra"]) {
    this.#extra = value;
  }
  get declaredEvents(): string[] {
    return (this.#declaredEvents ??= JSON.parse(this.column(COLUMN.declaredEvents)) as string[]);
  }
  set declaredEvents(value: string[]) {
    this.#declaredEvents = value;
    this.#replaced = true;
  }
  get origin(): ChangeEvent["origin"] {
    return (this.#origin ??= JSON.parse(this.column(COLUMN.origin)) as ChangeEvent["origin"]);
  }
  set origin(value: ChangeEvent["origin"]) {
    this.#origin = value;
    this.#replaced = true;
  }
  get occurredAt(): Date {
    return (this.#occurredAt ??= occurredAtOf(this.column(COLUMN.occurredAt)));
  }
  set occurredAt(value: Date) {
    this.#occurredAt = value;
    this.#replaced = true;
  }

  /** The text of column `index` (occurred_at or a later one) of the event's line. */
  private column(index: number): string {
    const at = this.cutsAt - FIRST_CUT;
    const start = (this.cuts[at + index] as number) + 1;
    const end = index + 1 < COLUMNS ? (this.cuts[at + index + 1] as number) : this.line.length;
    return this.line.slice(start, end);
  }

  /**
   * The state column holds the changed attributes' value texts (a lean page; see stateOf), and
   * neither `keys` nor `state` was set from outside: keysJson and changedValuesJson hold.
   */
  private get leanTexts(): boolean {
    const start = (this.cuts[this.cutsAt + COLUMN.state - FIRST_CUT] as number) + 1;
    return !this.#attributesReplaced && this.line.charCodeAt(start) === 61; /* = */
  }

  /** The `keys` column's text, on a lean page (see PrerenderedParts). */
  get keysJson(): string | undefined {
    return this.leanTexts ? this.column(COLUMN.keys) : undefined;
  }

  /** The state column's text after its `=`, on a lean page (see PrerenderedParts). */
  get changedValuesJson(): string | undefined {
    if (!this.leanTexts) return undefined;
    const at = this.cutsAt - FIRST_CUT;
    const start = (this.cuts[at + COLUMN.state] as number) + 2;
    return this.line.slice(start, this.cuts[at + COLUMN.state + 1] as number);
  }

  /** False once a part the `_event` texts come from was set from outside. */
  get partsHold(): boolean {
    return !this.#replaced;
  }

  /** The whole event as a plain object (logs, JSON). */
  toJSON(): ChangeEvent {
    return {
      id: this.id,
      position: this.position,
      entityId: this.entityId,
      source: this.source,
      sourceId: this.sourceId,
      eventType: this.eventType,
      recordKey: this.recordKey,
      keys: this.keys,
      state: this.state,
      fields: this.fields,
      previous: this.previous,
      extra: this.extra,
      version: this.version,
      declaredEvents: this.declaredEvents,
      origin: this.origin,
      occurredAt: this.occurredAt,
    };
  }
}

/**
 * The `_event` texts readLogWindow already holds for one of its events (undefined for any other
 * event): dataText uses them instead of serialising those parts again.
 */
export function prerenderedParts(event: ChangeEvent): PrerenderedParts | undefined {
  return event instanceof LogEvent && event.partsHold ? event : undefined;
}

/**
 * Lines per text of a page (the last part takes the rest). A text past about 128 KB is a "large
 * object" for V8, given its own memory mapping, faulted in and unmapped again: a 1,000-event page
 * in one text cost the worker about 0.7 µs per event more than the same page in parts of 256.
 */
const PAGE_PART = 256;
const PAGE_PART_BOUNDS: [number, number | undefined][] = [
  [0, PAGE_PART],
  [PAGE_PART, 2 * PAGE_PART],
  [2 * PAGE_PART, 3 * PAGE_PART],
  [3 * PAGE_PART, undefined],
];

/**
 * A subscription's candidate events in the position window (after, upTo], in log order, at most
 * `limit`. The window bounds the work of every read whatever plan PostgreSQL picks: right after a
 * large import, before autovacuum has analysed the table, the planner misjudges the filter and may
 * scan and sort every later row of the entity instead of walking the position index.
 *
 * The page comes back as a few texts (PAGE_PART lines each), a line per event and its columns
 * separated by tabs (JSON text never holds a raw tab or newline: jsonb and to_json escape them),
 * each split once. The aggregates have no ORDER BY of their own (sorting the page's texts a second
 * time cost about 1 µs of PostgreSQL per event): they join the lines as the subquery yields them,
 * and the lines are put back in order here should they ever come otherwise. The JSON columns stay
 * text until something reads them (LogEvent): a BULK drain parses only what the payload shows.
 * occurred_at comes as the ISO text `_event.occurredAt` shows (milliseconds, truncated like the
 * driver's own parser; see occurredAtOf), the source id only when the filter does not fix it, and
 * entity, source and event type are the filter's (the SQL selects only those). The changed fields,
 * declared events and origin come with their compact JSON (LogEvent's PrerenderedParts), so a push
 * body is assembled from texts (dataText), not from objects stringified again.
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
  const lean =
    filter.conditions === null &&
    filter.includePrevious === false &&
    !WHOLE_STATE_SOURCES.includes(filter.source);
  // Lean: the values of the one or two changed attributes (most updates), after `=` and separated
  // by a unit separator (JSON text escapes control characters, so none is inside a value; an empty
  // value is a missing attribute), else the whole state, whose JSON text never begins with `=`.
  const state = lean
    ? `(CASE WHEN jsonb_typeof(fields) <> 'array' THEN state::text
             WHEN jsonb_array_length(fields) = 1 AND jsonb_typeof(fields -> 0) = 'string'
               THEN '=' || coalesce((state -> (fields ->> 0))::text, '')
             WHEN jsonb_array_length(fields) = 2 AND jsonb_typeof(fields -> 0) = 'string'
                  AND jsonb_typeof(fields -> 1) = 'string'
               THEN '=' || coalesce((state -> (fields ->> 0))::text, '') || E'\\x1f'
                    || coalesce((state -> (fields ->> 1))::text, '')
             ELSE state::text END)`
    : "state::text";
  const previous = lean ? "'{}'" : "previous::text";
  // One concat_ws instead of a chain of ||, each of which copied the line so far again (about 0.3 µs
  // of PostgreSQL per event); no argument is ever NULL (version is coalesced), so none is skipped.
  const line = `concat_ws(E'\t', id, position, coalesce(version::text, ''),
                CASE WHEN $6::text IS NULL THEN to_json(source_id)::text ELSE '' END,
                to_json(record_key),
                CASE WHEN occurred_at >= '1000-01-01 00:00:00+00' AND occurred_at < '10000-01-01 00:00:00+00'
                     THEN to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
                     ELSE 'j' || to_json(occurred_at)::text END,
                keys, ${state}, fields, ${previous}, extra, declared_events, origin)`;
  // Positions are unique: a window no wider than the limit holds at most `limit` events, so the
  // page is all of them and needs no order from PostgreSQL (the lines are put in order below). A
  // plan that reaches the rows through a bitmap of the index (as plans made before the table was
  // analysed do) then sorts nothing: sorting the page's rows, jsonb columns and all, was about a fifth
  // of PostgreSQL's time in a BULK drain. Its parts are then cut by position (no more than PAGE_PART
  // positions, so lines, each) instead of by a row number, whose window function copied every row
  // into a tuplestore first (about 0.2 µs of PostgreSQL per event).
  const fits = upTo - after <= limit;
  const order = fits ? "" : "ORDER BY position";
  const rank = fits ? "position - $1::bigint" : "n";
  // The page in parts of PAGE_PART lines (the last one takes the rest), each its own text.
  const parts = PAGE_PART_BOUNDS.map(
    ([low, high], i) =>
      `string_agg(${line}, E'\n') FILTER (WHERE ${rank} > ${low}${high ? ` AND ${rank} <= ${high}` : ""}) AS part${i}`,
  );
  const numbered = fits ? "e.*" : `e.*, row_number() OVER (${order}) AS n`;
  const { rows } = await db.query<Record<string, string | null>>(
    `SELECT ${parts.join(",\n")}
       FROM (SELECT ${numbered}
               FROM (SELECT id, position, source_id, record_key, keys, state, fields, previous, extra,
                            version, declared_events, origin, occurred_at
                       FROM change_events
                      WHERE position > $1 AND position <= $2
                        AND entity_id = $4 AND source = $5 AND ($6::text IS NULL OR source_id = $6)
                        AND event_type = $7
                        AND ($8::text[] IS NULL OR event_type NOT IN ('CREATE', 'UPDATE') OR fields ?| $8::text[])
                      ${order}
                      LIMIT $3) e) e`,
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
    // Prepared once per connection: planning this statement costs about as much as running it for
    // the one or two events a live subscription reads per notification. Whatever plan PostgreSQL
    // settles on, the position window bounds its work.
    `delivery_read_log_window${lean ? "_lean" : ""}${fits ? "_unordered" : ""}`,
  );
  const row = rows[0] ?? {};
  const lines: string[] = [];
  for (let i = 0; i < PAGE_PART_BOUNDS.length; i++) {
    const part = row[`part${i}`];
    if (part) for (const text of part.split("\n")) lines.push(text);
  }
  if (lines.length === 0) return [];
  const events = new Array<ChangeEvent>(lines.length);
  // Consecutive events mostly share their changed fields, declared events, origin and time: their
  // compact JSON (and text) is the previous line's when the text is the same, found without cutting
  // the text out of the line.
  let fields = "";
  let fieldNames: readonly string[] = [];
  let fieldsJson = "[]";
  let declared = "";
  let declaredJson = "[]";
  let origin = "";
  let originJson = "{}";
  let at = "";
  let atIso = "";
  let ordered = true;
  let last = -Infinity;
  const tabs = new Array<number>(COLUMNS + 1).fill(0);
  const cuts: PageCuts = new Int32Array(lines.length * CUTS);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    tabs[0] = -1;
    for (let k = 1; k < COLUMNS; k++) tabs[k] = line.indexOf("\t", (tabs[k - 1] as number) + 1);
    tabs[COLUMNS] = line.length;
    for (let k = 0; k < CUTS; k++) cuts[i * CUTS + k] = tabs[FIRST_CUT + k] as number;
    const position = integerAt(line, from(tabs, COLUMN.position), to(tabs, COLUMN.position));
    if (position <= last) ordered = false;
    last = position;
    if (!holds(line, tabs, COLUMN.fields, fields)) {
      fields = cut(line, tabs, COLUMN.fields);
      fieldsJson = cached(namesCache, fields, compactNames);
      fieldNames = Object.freeze(JSON.parse(fieldsJson) as string[]);
    }
    if (!holds(line, tabs, COLUMN.declaredEvents, declared)) {
      declared = cut(line, tabs, COLUMN.declaredEvents);
      declaredJson = cached(namesCache, declared, compactNames);
    }
    if (!holds(line, tabs, COLUMN.origin, origin)) {
      origin = cut(line, tabs, COLUMN.origin);
      originJson = cached(jsonCache, origin, compactJson);
    }
    if (!holds(line, tabs, COLUMN.occurredAt, at)) {
      at = cut(line, tabs, COLUMN.occurredAt);
      atIso = at.charCodeAt(0) === 106 ? toIso(occurredAtOf(at)) : at;
    }
    events[i] = new LogEvent(
      integerAt(line, 0, to(tabs, COLUMN.id)),
      position,
      filter.entityId,
      filter.source,
      // Empty: the filter fixes it.
      from(tabs, COLUMN.sourceId) === to(tabs, COLUMN.sourceId)
        ? (filter.sourceId as string)
        : jsonString(cut(line, tabs, COLUMN.sourceId)),
      filter.eventType,
      jsonString(cut(line, tabs, COLUMN.recordKey)),
      from(tabs, COLUMN.version) === to(tabs, COLUMN.version)
        ? null
        : integerAt(line, from(tabs, COLUMN.version), to(tabs, COLUMN.version)),
      line,
      cuts,
      i * CUTS,
      atIso,
      fieldNames,
      fieldsJson,
      declaredJson,
      originJson,
    );
  }
  // A window that fits the page comes in the order PostgreSQL found the rows; otherwise the aggregate takes them
  // in the order the sorted subquery yields them (PostgreSQL does so, and does not promise it):
  // checked here, so the log order never rests on it.
  if (!ordered) events.sort((a, b) => a.position - b.position);
  return events;
}
