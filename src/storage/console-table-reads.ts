/**
 * Figures the console shows that no API call gives: how many records a table holds, when a table's
 * last event was written, and which log positions a page of the change-log browser covers. The
 * console calls these only after the API has answered for the entity or table (which checks the
 * key's scope), with ids taken from that answer.
 *
 * Every statement here is bounded, so that a page stays fast on a log of millions of events and a
 * table of millions of records: counts stop at a cap, and log searches look at a fixed range of
 * log positions. There is no index by table on the log, so "the last events of table T" is
 * answered within the most recent positions only, and the page says so.
 */
import { readLogHead } from "./change-event-repository.js";
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
 * When each source (table, ETL…) of the entity last had an event among the log's `window` most
 * recent positions, keyed by sourceKey. A source absent from the map had none there.
 */
export async function lastEventTimes(
  db: Queryable,
  entityId: number,
  window: number,
): Promise<Map<string, Date>> {
  const head = await readLogHead(db);
  const { rows } = await db.query<{ source: string; source_id: string; last: Date }>(
    `SELECT source, source_id, max(occurred_at) AS last
       FROM change_events
      WHERE entity_id = $1 AND position IS NOT NULL AND position > $2
      GROUP BY source, source_id`,
    [entityId, head - window],
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
  /**
   * `after`: the events following position `from`, in log order; `before`: those preceding it;
   * `newest`: those preceding the head (`from` is ignored).
   */
  direction: "after" | "before" | "newest";
  from: number;
  /** Matching positions wanted. */
  count: number;
  /** Log positions looked at, at most (of every entity: positions are shared). */
  window: number;
}

export interface LogSearchResult {
  /** The matching positions found, ascending; at most `count`. */
  positions: number[];
  /**
   * When fewer than `count` matched and the log goes on past the window: the position where the
   * window ended, from where the next search goes on (its `before` or `after`).
   */
  searchedTo: number | undefined;
  /** The positions looked at, first to last in log order (empty when first > last). */
  range: { first: number; last: number };
}

/**
 * Finds up to `count` positions of the entity's events that pass `filter`, next to `from` in the
 * given direction, within `window` positions of the log. The bound is on positions, not on the
 * entity's events, so that the cost is bounded whatever the entity's share of the log and
 * whichever index the planner takes: change_events_entity_position reads the entity's rows of the
 * range, change_events_position (which it prefers when entities interleave) every row of it.
 */
export async function searchLog(db: Queryable, search: LogSearch): Promise<LogSearchResult> {
  const forward = search.direction === "after";
  const head = await readLogHead(db);
  const from = search.direction === "newest" ? head + 1 : search.from;
  // Positions looked at: (low, high), both ends excluded.
  const low = forward ? from : Math.max(0, from - search.window - 1);
  const high = forward ? Math.min(from + search.window, head) + 1 : from;
  const { rows } = await db.query<{ position: number }>(
    `SELECT position
       FROM change_events
      WHERE entity_id = $1 AND position IS NOT NULL AND position > $2 AND position < $3
        AND ($5::text IS NULL OR source = $5)
        AND ($6::text IS NULL OR source_id = $6)
        AND ($7::text IS NULL OR event_type = $7)
      ORDER BY position ${forward ? "ASC" : "DESC"}
      LIMIT $4`,
    [
      search.entityId,
      low,
      high,
      search.count,
      search.filter.source ?? null,
      search.filter.sourceId ?? null,
      search.filter.eventType ?? null,
    ],
  );
  const positions = rows.map((r) => r.position);
  if (!forward) positions.reverse();
  let searchedTo: number | undefined;
  if (positions.length < search.count) {
    if (forward && high <= head) searchedTo = high - 1;
    if (!forward && low > 0) searchedTo = low + 1;
  }
  return { positions, searchedTo, range: { first: low + 1, last: high - 1 } };
}
