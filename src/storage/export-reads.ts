/**
 * The reads an export is made of (SPEC §7.3), all inside one REPEATABLE READ transaction: one
 * snapshot of the table and of the change log, read through a cursor in batches so that memory does
 * not grow with the table.
 *
 * What "every change committed before the execution starts" means in log positions: a change's
 * event commits with the change, unstamped, and the sequencer stamps it later. So the snapshot sees
 * (a) every event at or below the log head it reads (they were stamped, and so committed, before
 * it), and (b) some committed events not stamped yet: they will get positions above that head. An
 * INCREMENTAL execution covers the events its snapshot sees that the previous one did not: those
 * above the previous head that were not in the previous snapshot's (b), plus its own (b), whose ids
 * it records so that the next execution skips them. Each event is in exactly one execution, whether
 * or not the sequencer keeps up, and no execution waits for it.
 */
import type { DataTable } from "../domain/data-table.js";
import type { Database, Queryable } from "./database.js";

/** The log as the snapshot sees it (see above). */
export interface LogFrontier {
  head: number;
  /** Ids of the table's committed events the sequencer had not stamped yet. */
  unstamped: number[];
}

/**
 * Runs `fn` in one REPEATABLE READ transaction: every statement sees the snapshot taken by the
 * first one. On the embedded database this transaction holds its only session for as long as it
 * runs (docs/files-and-exports.md says what that costs).
 */
export async function inSnapshot<T>(db: Database, fn: (tx: Queryable) => Promise<T>): Promise<T> {
  return db.transaction(async (tx) => {
    await tx.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ");
    return fn(tx);
  });
}

/**
 * Makes the file's chunks, written in this transaction, compressed with lz4 rather than pglz where
 * the server has it (the embedded database has not): storing the file was the largest part of
 * PostgreSQL's work in the export bench, most of it pglz (README, Performance, Exports). Only the
 * values this transaction writes are affected; reading them back needs nothing.
 */
export async function preferLz4(tx: Queryable): Promise<void> {
  await tx.query(
    `SELECT set_config('default_toast_compression', 'lz4', true)
       FROM pg_settings
      WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)`,
  );
}

export async function readFrontier(tx: Queryable, table: DataTable): Promise<LogFrontier> {
  // change_events_unsequenced (partial, position IS NULL) holds only the sequencer's backlog.
  const { rows } = await tx.query<{ head: number; unstamped: (number | string)[] }>(
    `SELECT (SELECT position FROM log_head) AS head,
            ARRAY(SELECT id FROM change_events
                   WHERE position IS NULL AND entity_id = $1 AND source = $2 AND source_id = $3
                   ORDER BY id) AS unstamped`,
    [table.entityId, table.kind, table.id],
  );
  return { head: rows[0]?.head ?? 0, unstamped: (rows[0]?.unstamped ?? []).map(Number) };
}

/** A SQL string literal. Names come from checked definitions; quoting keeps any text inert. */
export function literal(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

/** `timestamptz` as JavaScript's toISOString writes it, as events carry creation/updateMoment. */
function isoText(column: string): string {
  return `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;
}

/**
 * One column of a record as text (scalars: the JSON value's text, which is how they render), or as
 * JSON for a multi-valued attribute (an array, rendered in JavaScript).
 */
export function columnSql(table: DataTable, name: string, alias: string): string {
  if (table.kind === "PROFILE_TABLE") {
    if (name === "profileId") return `${alias}.record_id::text`;
    if (name === "creationMoment") return isoText(`${alias}.created_at`);
    if (name === "updateMoment") return isoText(`${alias}.updated_at`);
  }
  const multi = table.attributes.find((a) => a.name === name)?.multiValued ?? false;
  return `${alias}.attributes ${multi ? "->" : "->>"} ${literal(name)}`;
}

export interface RowSelection {
  table: DataTable;
  /** Record columns, selected as c0, c1, … */
  columns: string[];
  /** Profiles in this segment only (SQL, on the records row). */
  segment: { name: string; segment: string } | null;
  /** Profiles subscribed to this only. */
  subscription: string | null;
}

function selectList(selection: RowSelection, alias: string): string {
  return selection.columns
    .map((name, i) => `${columnSql(selection.table, name, alias)} AS c${i}`)
    .join(", ");
}

function membershipSql(selection: RowSelection, alias: string): string {
  const parts: string[] = [];
  if (selection.segment)
    parts.push(
      `${alias}.segments ->> ${literal(selection.segment.name)} = ${literal(selection.segment.segment)}`,
    );
  if (selection.subscription)
    parts.push(`${alias}.subscriptions ->> ${literal(selection.subscription)} = 'true'`);
  return parts.length > 0 ? parts.join(" AND ") : "true";
}

/** Every record of the table in the snapshot (FULL, and an INCREMENTAL export's first run). */
export function allRowsSql(selection: RowSelection): string {
  // records_table (table_id, record_id) gives the order without a sort.
  return `SELECT ${selectList(selection, "r")} FROM records r
           WHERE r.table_id = ${literal(selection.table.id)} AND ${membershipSql(selection, "r")}
           ORDER BY r.record_id`;
}

/**
 * A column as COPY's CSV writes it the way the export's own writer does (export-file-writer.ts):
 * an empty text as NULL, since COPY writes `""` for it and an empty field for NULL, where the
 * export writes an empty field for both; a multi-valued attribute's values joined by commas (a
 * missing value as an empty one), as renderValue gives them for texts and booleans. Numbers in a
 * list are not rendered here: JavaScript writes some of them differently (`1e+21`), so
 * `copyRenders` keeps such exports on the cursor.
 */
function copyColumnSql(table: DataTable, name: string, alias: string): string {
  const attribute = table.attributes.find((a) => a.name === name);
  if (!attribute?.multiValued) return `NULLIF(${columnSql(table, name, alias)}, '')`;
  const value = `${alias}.attributes -> ${literal(name)}`;
  return `NULLIF(CASE jsonb_typeof(${value})
                   WHEN 'array' THEN (SELECT string_agg(coalesce(e.v, ''), ',' ORDER BY e.n)
                                        FROM jsonb_array_elements_text(${value})
                                             WITH ORDINALITY AS e(v, n))
                   ELSE ${value} #>> '{}' END, '')`;
}

/** Multi-valued attributes whose stored values COPY renders as JavaScript does (no numbers). */
const COPY_LIST_TYPES = new Set(["STRING", "BOOLEAN", "DATE", "TIMESTAMP"]);

/** Whether copyAllRowsSql renders each of `columns` as the export's own writer does. */
export function copyRenders(table: DataTable, columns: readonly string[]): boolean {
  return columns.every((name) => {
    const attribute = table.attributes.find((a) => a.name === name);
    return !attribute?.multiValued || COPY_LIST_TYPES.has(attribute.valueType);
  });
}

/**
 * allRowsSql's rows as CSV written by PostgreSQL (`COPY … TO STDOUT`), without the header, with
 * `_operation` CREATE first when `operation`: fields quoted with `"` only when they hold the
 * separator, a quote, a CR or a LF, quotes doubled, lines ending in `\n`, as the export's writer
 * does. `separator` must be one ASCII character other than a quote or a line break, and there must
 * be two columns or more (COPY quotes a lone column holding `\.`; the export does not).
 */
export function copyAllRowsSql(
  selection: RowSelection,
  options: { operation: boolean; separator: string },
): string {
  const columns = selection.columns.map((name) => copyColumnSql(selection.table, name, "r"));
  if (options.operation) columns.unshift("'CREATE'");
  return `COPY (SELECT ${columns.join(", ")} FROM records r
                 WHERE r.table_id = ${literal(selection.table.id)} AND ${membershipSql(selection, "r")}
                 ORDER BY r.record_id)
          TO STDOUT WITH (FORMAT csv, DELIMITER ${literal(options.separator)}, QUOTE '"')`;
}

/**
 * One row per record with an event in the window: the window is the table's events above `from`
 * and at or below `to`, plus those the snapshot sees unstamped, less those whose ids are in `skip`
 * (the previous snapshot saw them unstamped: they are in the previous execution). For each
 * record its last event (a record's events are in id order: a later write's event takes its id
 * after the earlier one committed), whether the window created it after its last deletion, and
 * its row in the snapshot (absent: deleted). `op` is DELETE, CREATE or UPDATE accordingly, `member`
 * whether it passes the segment and subscription filters. Rows come in the order of their last
 * event.
 */
export function changedRowsSql(
  selection: RowSelection,
  window: { from: number; to: number; skip: readonly number[]; eventTypes: readonly string[] },
): string {
  const { table } = selection;
  const skip = window.skip.length > 0 ? window.skip.map((id) => String(Math.trunc(id))) : ["0"];
  const skipped = `ARRAY[${skip.join(", ")}]::bigint[]`;
  const types = window.eventTypes.map(literal).join(", ");
  const mine = `entity_id = ${table.entityId} AND source = ${literal(table.kind)}
                AND source_id = ${literal(table.id)} AND event_type IN (${types})`;
  const join =
    table.kind === "PROFILE_TABLE"
      ? `r.table_id = ${literal(table.id)} AND r.record_id = l.record_key::bigint`
      : `r.table_id = ${literal(table.id)} AND r.business_key = l.record_key`;
  // Two halves so that each uses its index: change_events_entity_position for the stamped range,
  // change_events_unsequenced for the backlog.
  return `WITH w AS (
            SELECT id, event_type, record_key, keys FROM change_events
             WHERE ${mine} AND position > ${Math.trunc(window.from)}
               AND position <= ${Math.trunc(window.to)} AND id <> ALL (${skipped})
            UNION ALL
            SELECT id, event_type, record_key, keys FROM change_events
             WHERE position IS NULL AND ${mine} AND id <> ALL (${skipped})),
          l AS (
            SELECT DISTINCT ON (record_key) record_key, id, keys,
                   coalesce(max(id) FILTER (WHERE event_type = 'CREATE') OVER k, 0)
                     > coalesce(max(id) FILTER (WHERE event_type = 'DELETE') OVER k, 0) AS created
              FROM w
            WINDOW k AS (PARTITION BY record_key)
             ORDER BY record_key, id DESC)
          SELECT CASE WHEN r.record_id IS NULL THEN 'DELETE'
                      WHEN l.created THEN 'CREATE' ELSE 'UPDATE' END AS op,
                 l.keys AS keys, (r.record_id IS NOT NULL AND ${membershipSql(selection, "r")}) AS member,
                 ${selectList(selection, "r")}
            FROM l LEFT JOIN records r ON ${join}
           ORDER BY l.id`;
}

/**
 * The rows of `sql` through a cursor, `batch` at a time, in the caller's transaction. The next
 * FETCH is sent before a batch is handed over, so PostgreSQL makes it while the caller writes the
 * last one (the caller's own statements on `tx` queue behind it).
 */
export async function* cursorRows(
  tx: Queryable,
  sql: string,
  batch: number,
): AsyncGenerator<Record<string, unknown>[]> {
  const size = Math.trunc(batch);
  // cursor_tuple_fraction 1: every row will be read, so the planner picks the plan for all of them.
  await tx.query("SET LOCAL cursor_tuple_fraction = 1");
  await tx.query(`DECLARE herald_export_rows NO SCROLL CURSOR FOR ${sql}`);
  const fetch = () => tx.query(`FETCH FORWARD ${size} FROM herald_export_rows`);
  let next: ReturnType<typeof fetch> | undefined = fetch();
  try {
    while (next) {
      const { rows }: { rows: Record<string, unknown>[] } = await next;
      next = rows.length < size ? undefined : fetch();
      if (rows.length > 0) yield rows;
    }
  } finally {
    // A fetch sent ahead is awaited (its failure is the caller's error already, or moot). The
    // cursor itself ends with the transaction: no CLOSE, which could otherwise reach the connection
    // after the transaction ended.
    await next?.catch(() => {});
  }
}
