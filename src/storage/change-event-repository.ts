/** SQL of the change log: appending events (capture) and reading them back by position. */
import type {
  ChangeEvent,
  EventSource,
  EventType,
  NewChangeEvent,
} from "../domain/change-event.js";
import type { Queryable } from "./database.js";
import type { InboxNotifyTurns } from "./log-channels.js";
import { INBOX_CHANNEL } from "./log-channels.js";

export { INBOX_CHANNEL, LOG_CHANNEL } from "./log-channels.js";

/** `timestamptz` as JavaScript's `Date#toISOString()` writes it (UTC, milliseconds truncated). */
function isoText(column: string): string {
  return `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;
}

/**
 * The INSERT of change events drafted in JavaScript for the record row that `rowSource` (a CTE
 * with RETURNING record_id, version, created_at, updated_at; one row or none) just wrote, for use
 * inside a single-statement write. The events read from that CTE, so each takes its id only after
 * the row is written and locked (DESIGN §3); when the CTE has no row, no event is inserted.
 * From the row it takes `version` and, for profile events (`profile` is a boolean SQL expression),
 * `recordKey`, `keys.profileId` and `state.profileId/creationMoment/updateMoment` (those names are
 * reserved, so no attribute collides); everything else comes from the drafts (`events`, a JSON
 * array: a parameter, or a column of `rowSource` for a batch), in array order.
 * A batch write (several rows, each with its own drafts) passes `order` "w.n, t.n" so that ids
 * follow its items' order, then each item's array order.
 */
export function insertEventDraftsSql(
  rowSource: string,
  events: string,
  profile: string,
  order = "t.n",
): string {
  return `INSERT INTO change_events
         (entity_id, source, source_id, event_type, record_key, keys, state, fields, previous, extra,
          version, declared_events, origin)
       SELECT (e->>'entityId')::bigint, e->>'source', e->>'sourceId', e->>'eventType',
              CASE WHEN ${profile} THEN w.record_id::text ELSE e->>'recordKey' END,
              CASE WHEN ${profile} THEN (e->'keys') || jsonb_build_object('profileId', w.record_id)
                   ELSE e->'keys' END,
              CASE WHEN ${profile} THEN (e->'state') || jsonb_build_object('profileId', w.record_id,
                     'creationMoment', ${isoText("w.created_at")},
                     'updateMoment', ${isoText("w.updated_at")})
                   ELSE e->'state' END,
              e->'fields', e->'previous', e->'extra', w.version, e->'declaredEvents', e->'origin'
         FROM ${rowSource} AS w, jsonb_array_elements(${events}::jsonb) WITH ORDINALITY AS t(e, n)
        ORDER BY ${order}
       RETURNING 1`;
}

/**
 * Appends events in the caller's transaction, in array order, as one statement. The caller must have
 * written (and so locked) the record rows first (DESIGN §3). The NOTIFY (when `notifyTurns` gives
 * this write the turn) is delivered at commit and wakes the sequencer; a rolled-back transaction
 * sends nothing.
 */
export async function appendChangeEvents(
  tx: Queryable,
  events: readonly NewChangeEvent[],
  notifyTurns: InboxNotifyTurns,
): Promise<void> {
  if (events.length === 0) return;
  const notify = notifyTurns.takeInboxNotifyTurn();
  // One JSON array parameter, expanded WITH ORDINALITY and sorted so ids follow array order; the
  // NOTIFY rides in the same statement (a data-modifying CTE runs whether or not it is read).
  await tx.query(
    `WITH inserted AS (
       INSERT INTO change_events
         (entity_id, source, source_id, event_type, record_key, keys, state, fields, previous, extra,
          version, declared_events, origin)
       SELECT (e->>'entityId')::bigint, e->>'source', e->>'sourceId', e->>'eventType', e->>'recordKey',
              e->'keys', e->'state', e->'fields', e->'previous', e->'extra',
              (e->>'version')::integer, e->'declaredEvents', e->'origin'
         FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS t(e, n)
        ORDER BY n
       RETURNING 1
     )
     SELECT pg_notify('${INBOX_CHANNEL}', '') WHERE $2::boolean`,
    [JSON.stringify(events), notify],
  );
}

/**
 * appendChangeEvents, answering the events' inbox ids in the events' order (a caller that tells its
 * client which event it appended: the trigger call's `{"eventId"}`). The ids follow array order
 * (the INSERT takes them in that order), so sorted they are the events' ids one for one. The NOTIFY
 * CTE is read by a scalar subquery so that it runs (a plain SELECT in a WITH runs only when read).
 */
export async function appendChangeEventsReturningIds(
  tx: Queryable,
  events: readonly NewChangeEvent[],
  notifyTurns: InboxNotifyTurns,
): Promise<number[]> {
  if (events.length === 0) return [];
  const notify = notifyTurns.takeInboxNotifyTurn();
  const { rows } = await tx.query<{ id: number }>(
    `WITH inserted AS (
       INSERT INTO change_events
         (entity_id, source, source_id, event_type, record_key, keys, state, fields, previous, extra,
          version, declared_events, origin)
       SELECT (e->>'entityId')::bigint, e->>'source', e->>'sourceId', e->>'eventType', e->>'recordKey',
              e->'keys', e->'state', e->'fields', e->'previous', e->'extra',
              (e->>'version')::integer, e->'declaredEvents', e->'origin'
         FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS t(e, n)
        ORDER BY n
       RETURNING id
     ),
     notified AS (SELECT pg_notify('${INBOX_CHANNEL}', '') WHERE $2::boolean)
     SELECT id, (SELECT count(*) FROM notified) AS notified FROM inserted ORDER BY id`,
    [JSON.stringify(events), notify],
  );
  return rows.map((row) => row.id);
}

interface ChangeEventRow {
  id: number;
  position: number;
  entity_id: number;
  source: string;
  source_id: string;
  event_type: string;
  record_key: string;
  keys: ChangeEvent["keys"];
  state: ChangeEvent["state"];
  fields: string[];
  previous: ChangeEvent["previous"];
  extra: Record<string, unknown>;
  version: number | null;
  declared_events: string[];
  origin: ChangeEvent["origin"];
  occurred_at: Date;
}

export const CHANGE_EVENT_COLUMNS = `id, position, entity_id, source, source_id, event_type, record_key, keys, state,
  fields, previous, extra, version, declared_events, origin, occurred_at`;

export function toChangeEvent(row: ChangeEventRow): ChangeEvent {
  return {
    id: row.id,
    position: row.position,
    entityId: row.entity_id,
    source: row.source as EventSource,
    sourceId: row.source_id,
    eventType: row.event_type as EventType,
    recordKey: row.record_key,
    keys: row.keys,
    state: row.state,
    fields: row.fields,
    previous: row.previous,
    extra: row.extra,
    version: row.version,
    declaredEvents: row.declared_events,
    origin: row.origin,
    occurredAt: row.occurred_at,
  };
}

export interface LogFilter {
  entityId?: number;
  source?: EventSource;
  sourceId?: string;
  eventType?: EventType;
}

/** Stamped events with position > `after`, in log order. */
export async function readLog(
  db: Queryable,
  after: number,
  limit: number,
  filter: LogFilter = {},
): Promise<ChangeEvent[]> {
  const { rows } = await db.query<ChangeEventRow>(
    `SELECT ${CHANGE_EVENT_COLUMNS}
       FROM change_events
      WHERE position > $1
        AND ($3::bigint IS NULL OR entity_id = $3)
        AND ($4::text IS NULL OR source = $4)
        AND ($5::text IS NULL OR source_id = $5)
        AND ($6::text IS NULL OR event_type = $6)
      ORDER BY position
      LIMIT $2`,
    [
      after,
      limit,
      filter.entityId ?? null,
      filter.source ?? null,
      filter.sourceId ?? null,
      filter.eventType ?? null,
    ],
  );
  return rows.map(toChangeEvent);
}

export async function readLogHead(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ position: number }>("SELECT position FROM log_head");
  return rows[0]?.position ?? 0;
}
