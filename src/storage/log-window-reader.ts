/**
 * The delivery engine's read of the change log: one window of positions for one subscription,
 * pre-filtered in SQL, decoded from a compact text page (log-page-codec.ts) into change events.
 */
import type { ChangeEvent, EventSource, EventType } from "../domain/change-event.js";
import { decodeLogPage } from "./log-page-codec.js";
import type { Queryable } from "./database.js";

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
 * Lines per text of a page (the last part takes the rest). A text past about 128 KB is a "large
 * object" for V8, given its own memory mapping, faulted in and unmapped again; texts of 256 lines
 * stay below that (docs/performance-notes.md, "Log window reads").
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
 * time is PostgreSQL work per event for nothing): they join the lines as the subquery yields them,
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
  // One concat_ws instead of a chain of ||, each of which copies the line so far again; no argument
  // is ever NULL (version is coalesced), so none is skipped.
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
  // analysed do) then sorts nothing: sorting the page's rows, jsonb columns and all, is a large share
  // of PostgreSQL's time in a BULK drain. Its parts are then cut by position (no more than PAGE_PART
  // positions, so lines, each) instead of by a row number, whose window function copies every row
  // into a tuplestore first.
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
  return decodeLogPage(lines, filter);
}
