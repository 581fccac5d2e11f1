/**
 * Figures the console shows that no API call gives: how many records a table holds, when a table's
 * last event was written, and which log positions a page of the change-log browser covers. The
 * console calls these only after the API has answered for the entity or table (which checks the
 * key's scope), with ids taken from that answer.
 *
 * Every statement here is bounded, so that a page stays fast on a log of millions of events and a
 * table of millions of records: counts stop at a cap, and log searches look at a fixed number of
 * the entity's events through change_events_entity_position (entity_id, position). There is no
 * index by table on the log, so "the last events of table T" is answered among the entity's most
 * recent events only, and the page says so.
 */
import type { Queryable } from "./database.js";

/**
 * How many records a table holds, as the console can tell cheaply: exact up to a cap; beyond it,
 * the planner's estimate when PostgreSQL's statistics know the table, else only "more than".
 */
export type RecordCount =
  | { kind: "exact"; count: number }
  | { kind: "about"; count: number }
  | { kind: "more"; count: number };

/**
 * The number of records of each table. Each count walks at most cap + 1 entries of records_table
 * (table_id, record_id), an index-only scan when the visibility map is current; an exact count(*)
 * of a table of millions would walk all of them. Past the cap the estimate is the one the planner
 * would make: records holds every table, so pg_class.reltuples (the rows of records) is scaled by
 * the table's share in the statistics of records.table_id (its most common values, kept by ANALYZE
 * and autovacuum). A table missing from them is only "more than the cap".
 */
export async function countRecords(
  db: Queryable,
  tableIds: readonly string[],
  cap: number,
): Promise<Map<string, RecordCount>> {
  const counts = new Map<string, RecordCount>();
  if (tableIds.length === 0) return counts;
  const { rows } = await db.query<{ id: string; n: number; estimate: number | null }>(
    `SELECT t.id,
            (SELECT count(*) FROM (SELECT 1 FROM records r WHERE r.table_id = t.id LIMIT $2) s)::int AS n,
            (SELECT round(c.reltuples * v.freq)::float8
               FROM pg_stats st
              CROSS JOIN LATERAL unnest(st.most_common_vals::text::text[], st.most_common_freqs)
                      AS v (id, freq)
              CROSS JOIN pg_class c
              WHERE st.schemaname = current_schema() AND st.tablename = 'records'
                AND st.attname = 'table_id' AND c.oid = 'records'::regclass AND v.id = t.id
              LIMIT 1) AS estimate
       FROM unnest($1::text[]) AS t (id)`,
    [tableIds, cap + 1],
  );
  for (const row of rows) {
    if (row.n <= cap) counts.set(row.id, { kind: "exact", count: row.n });
    else if (row.estimate !== null && row.estimate > cap)
      counts.set(row.id, { kind: "about", count: row.estimate });
    else counts.set(row.id, { kind: "more", count: cap });
  }
  return counts;
}

/** The key of a source in the maps below: `PROFILE_TABLE:3`, `CUSTOM_TABLE:<uuid>`. */
export function sourceKey(source: string, sourceId: string): string {
  return `${source}:${sourceId}`;
}

/**
 * When each source (table, ETL…) last had an event among the entity's `window` most recent events,
 * keyed by sourceKey. A source absent from the map had none in that window.
 */
export async function lastEventTimes(
  db: Queryable,
  entityId: number,
  window: number,
): Promise<Map<string, Date>> {
  const { rows } = await db.query<{ source: string; source_id: string; last: Date }>(
    `SELECT source, source_id, max(occurred_at) AS last
       FROM (SELECT source, source_id, occurred_at
               FROM change_events
              WHERE entity_id = $1 AND position IS NOT NULL
              ORDER BY position DESC
              LIMIT $2) recent
      GROUP BY source, source_id`,
    [entityId, window],
  );
  return new Map(rows.map((r) => [sourceKey(r.source, r.source_id), r.last]));
}

/** The change-log filters of the pull API (GET /v5/entities/{entity}/change-events). */
export interface LogFilter {
  source?: string | undefined;
  sourceId?: string | undefined;
  eventType?: string | undefined;
}

export interface LogSearch {
  entityId: number;
  filter: LogFilter;
  /** `after`: the events following position `from`, in log order; `before`: those preceding it. */
  direction: "after" | "before";
  from: number;
  /** Matching positions wanted. */
  count: number;
  /** The entity's events looked at, at most, whatever the filter. */
  window: number;
}

export interface LogSearchResult {
  /** The matching positions found, ascending; at most `count`. */
  positions: number[];
  /**
   * When fewer than `count` matched because the window ran out (the entity has more events in
   * that direction): the last position looked at, from where a search can go on.
   */
  searchedTo: number | undefined;
}

/**
 * Finds up to `count` positions of the entity's events that pass `filter`, next to `from` in the
 * given direction, looking at no more than `window` of the entity's events. The scan walks
 * change_events_entity_position in order and stops at the count-th match, so an unfiltered page
 * reads `count` rows and a filter on a rare table reads at most `window`.
 */
export async function searchLog(db: Queryable, search: LogSearch): Promise<LogSearchResult> {
  const forward = search.direction === "after";
  const compare = forward ? ">" : "<";
  const order = forward ? "ASC" : "DESC";
  const { rows } = await db.query<{ position: number }>(
    `SELECT position
       FROM (SELECT position, source, source_id, event_type
               FROM change_events
              WHERE entity_id = $1 AND position IS NOT NULL AND position ${compare} $2
              ORDER BY position ${order}
              LIMIT $3) scanned
      WHERE ($5::text IS NULL OR source = $5)
        AND ($6::text IS NULL OR source_id = $6)
        AND ($7::text IS NULL OR event_type = $7)
      ORDER BY position ${order}
      LIMIT $4`,
    [
      search.entityId,
      search.from,
      search.window,
      search.count,
      search.filter.source ?? null,
      search.filter.sourceId ?? null,
      search.filter.eventType ?? null,
    ],
  );
  const positions = rows.map((r) => r.position);
  if (!forward) positions.reverse();
  if (positions.length >= search.count) return { positions, searchedTo: undefined };
  // Fewer than asked: either the log ends within the window, or the window ran out. Its last
  // entry, if the entity has that many events, tells which (an index-only walk of the same range).
  const edge = await db.query<{ position: number }>(
    `SELECT position
       FROM change_events
      WHERE entity_id = $1 AND position IS NOT NULL AND position ${compare} $2
      ORDER BY position ${order}
     OFFSET $3 - 1
      LIMIT 1`,
    [search.entityId, search.from, search.window],
  );
  return { positions, searchedTo: edge.rows[0]?.position };
}
