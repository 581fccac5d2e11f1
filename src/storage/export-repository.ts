/**
 * SQL of exports and their executions (SPEC §7.3, migration 025). Executions are durable jobs
 * (DESIGN §6b): a worker claims one under a lease and every statement that records its outcome
 * checks that it still holds that lease. The reads that make an export's rows are in
 * export-reads.ts.
 */
import type { ExportDefinition, ExportMode } from "../domain/export-definition.js";
import type { Queryable } from "./database.js";
import { leasedJobs } from "./job-leases.js";

export const EXPORT_EXECUTION_STATUSES = ["PENDING", "RUNNING", "SUCCESS", "ERROR"] as const;
export type ExportExecutionStatus = (typeof EXPORT_EXECUTION_STATUSES)[number];

export interface StoredExport {
  id: string;
  entityId: number;
  name: string;
  definition: ExportDefinition;
  tableId: string;
  /** INCREMENTAL: where the last successful execution ended (null: none yet). */
  incrementalPosition: number | null;
  incrementalSkip: number[];
  createdAt: Date;
  updatedAt: Date;
}

interface ExportRow {
  id: number;
  entity_id: number;
  name: string;
  definition: ExportDefinition;
  table_id: string;
  incremental_position: number | null;
  incremental_skip: (number | string)[];
  created_at: Date;
  updated_at: Date;
}

const EXPORT_COLUMNS =
  "id, entity_id, name, definition, table_id, incremental_position, incremental_skip, created_at, updated_at";

function toExport(row: ExportRow): StoredExport {
  return {
    id: String(row.id),
    entityId: row.entity_id,
    name: row.name,
    definition: row.definition,
    tableId: row.table_id,
    incrementalPosition: row.incremental_position,
    incrementalSkip: (row.incremental_skip ?? []).map(Number),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

function isId(text: string): boolean {
  return /^\d{1,15}$/.test(text);
}

/** Inserts an export; undefined when the entity has one of that name already. */
export async function insertExport(
  db: Queryable,
  entityId: number,
  definition: ExportDefinition,
  tableId: string,
): Promise<StoredExport | undefined> {
  const { rows } = await db.query<ExportRow>(
    `INSERT INTO exports (entity_id, name, definition, table_id) VALUES ($1, $2, $3, $4)
     ON CONFLICT (entity_id, name) DO NOTHING
     RETURNING ${EXPORT_COLUMNS}`,
    [entityId, definition.name, JSON.stringify(definition), tableId],
  );
  return rows[0] ? toExport(rows[0]) : undefined;
}

/** An export of the entity by id or, failing that, by name. */
export async function findExport(
  db: Queryable,
  entityId: number,
  idOrName: string,
): Promise<StoredExport | undefined> {
  const { rows } = await db.query<ExportRow>(
    `SELECT ${EXPORT_COLUMNS} FROM exports
      WHERE entity_id = $1 AND (id = $2 OR name = $3)
      ORDER BY (id = $2) DESC LIMIT 1`,
    [entityId, isId(idOrName) ? Number(idOrName) : null, idOrName],
  );
  return rows[0] ? toExport(rows[0]) : undefined;
}

export async function findExportById(db: Queryable, id: string): Promise<StoredExport | undefined> {
  const { rows } = await db.query<ExportRow>(
    `SELECT ${EXPORT_COLUMNS} FROM exports WHERE id = $1`,
    [Number(id)],
  );
  return rows[0] ? toExport(rows[0]) : undefined;
}

export async function listExports(
  db: Queryable,
  entityId: number,
  page: { offset: number; limit: number },
): Promise<{ exports: StoredExport[]; total: number }> {
  const { rows } = await db.query<ExportRow>(
    `SELECT ${EXPORT_COLUMNS} FROM exports WHERE entity_id = $1 ORDER BY id LIMIT $2 OFFSET $3`,
    [entityId, page.limit, page.offset],
  );
  const counted = await db.query<{ n: number }>(
    "SELECT count(*)::integer AS n FROM exports WHERE entity_id = $1",
    [entityId],
  );
  return { exports: rows.map(toExport), total: counted.rows[0]?.n ?? 0 };
}

/**
 * Replaces an export's definition. When what its rows are made of changes (table, mode, fields,
 * filter), an INCREMENTAL export starts over: its next execution writes every row again.
 */
export async function updateExport(
  db: Queryable,
  entityId: number,
  id: string,
  definition: ExportDefinition,
  tableId: string,
  restartIncremental: boolean,
): Promise<StoredExport | "name-taken" | undefined> {
  const taken = await db.query(
    "SELECT 1 FROM exports WHERE entity_id = $1 AND name = $2 AND id <> $3",
    [entityId, definition.name, Number(id)],
  );
  if (taken.rowCount > 0) return "name-taken";
  const { rows } = await db.query<ExportRow>(
    `UPDATE exports
        SET name = $3, definition = $4, table_id = $5, updated_at = now(),
            incremental_position = CASE WHEN $6 THEN NULL ELSE incremental_position END,
            incremental_skip = CASE WHEN $6 THEN '{}' ELSE incremental_skip END
      WHERE entity_id = $1 AND id = $2
     RETURNING ${EXPORT_COLUMNS}`,
    [
      entityId,
      Number(id),
      definition.name,
      JSON.stringify(definition),
      tableId,
      restartIncremental,
    ],
  );
  return rows[0] ? toExport(rows[0]) : undefined;
}

/** Deletes an export and its executions (their files expire with the file store's retention). */
export async function deleteExport(db: Queryable, entityId: number, id: string): Promise<boolean> {
  const { rowCount } = await db.query("DELETE FROM exports WHERE entity_id = $1 AND id = $2", [
    entityId,
    Number(id),
  ]);
  return rowCount > 0;
}

export interface StoredExportExecution {
  id: string;
  entityId: number;
  exportId: string;
  status: ExportExecutionStatus;
  origin: Record<string, unknown>;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  runs: number;
  mode: ExportMode | null;
  fileId: string | null;
  fileName: string | null;
  rowCount: number | null;
  bytes: number | null;
  fromPosition: number | null;
  toPosition: number | null;
  skipEventIds: number[];
  /** Where the destination copy went (its location), once made. */
  destination: string | null;
  error: { code: string; message: string } | null;
}

interface ExecutionRow {
  id: number;
  entity_id: number;
  export_id: number;
  status: ExportExecutionStatus;
  origin: Record<string, unknown>;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  runs: number;
  mode: ExportMode | null;
  file_id: string | null;
  file_name: string | null;
  row_count: number | null;
  bytes: number | null;
  from_position: number | null;
  to_position: number | null;
  skip_event_ids: (number | string)[] | null;
  destination: string | null;
  error: { code: string; message: string } | null;
}

const EXECUTION_COLUMNS = `id, entity_id, export_id, status, origin, created_at, started_at,
  finished_at, runs, mode, file_id, file_name, row_count, bytes, from_position, to_position,
  skip_event_ids, destination, error`;

function toExecution(row: ExecutionRow): StoredExportExecution {
  return {
    id: String(row.id),
    entityId: row.entity_id,
    exportId: String(row.export_id),
    status: row.status,
    origin: row.origin,
    createdAt: row.created_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    runs: row.runs,
    mode: row.mode,
    fileId: row.file_id,
    fileName: row.file_name,
    rowCount: row.row_count,
    bytes: row.bytes,
    fromPosition: row.from_position,
    toPosition: row.to_position,
    skipEventIds: (row.skip_event_ids ?? []).map(Number),
    destination: row.destination,
    error: row.error,
  };
}

/** A PENDING execution of an export (the caller wakes the workers: notifyJobs, jobsCreated). */
export async function insertExportExecution(
  db: Queryable,
  exp: { entityId: number; id: string },
  origin: Record<string, unknown>,
): Promise<StoredExportExecution> {
  const { rows } = await db.query<ExecutionRow>(
    `INSERT INTO export_executions (entity_id, export_id, origin) VALUES ($1, $2, $3)
     RETURNING ${EXECUTION_COLUMNS}`,
    [exp.entityId, Number(exp.id), JSON.stringify(origin)],
  );
  return toExecution(rows[0]!);
}

export async function findExportExecution(
  db: Queryable,
  exportId: string,
  id: string,
): Promise<StoredExportExecution | undefined> {
  if (!isId(id)) return undefined;
  const { rows } = await db.query<ExecutionRow>(
    `SELECT ${EXECUTION_COLUMNS} FROM export_executions WHERE export_id = $1 AND id = $2`,
    [Number(exportId), Number(id)],
  );
  return rows[0] ? toExecution(rows[0]) : undefined;
}

export async function listExportExecutions(
  db: Queryable,
  exportId: string,
  page: { offset: number; limit: number },
): Promise<{ executions: StoredExportExecution[]; total: number }> {
  const { rows } = await db.query<ExecutionRow>(
    `SELECT ${EXECUTION_COLUMNS} FROM export_executions WHERE export_id = $1
      ORDER BY id DESC LIMIT $2 OFFSET $3`,
    [Number(exportId), page.limit, page.offset],
  );
  const counted = await db.query<{ n: number }>(
    "SELECT count(*)::integer AS n FROM export_executions WHERE export_id = $1",
    [Number(exportId)],
  );
  return { executions: rows.map(toExecution), total: counted.rows[0]?.n ?? 0 };
}

/** Runnable: PENDING, or RUNNING with an expired lease (its worker died). */
const RUNNABLE = `(e.status = 'PENDING' OR (e.status = 'RUNNING' AND e.lease_until < now()))`;

/** A cheap look (the partial index export_executions_unfinished): is anything to run? */
export async function hasRunnableExportExecution(db: Queryable): Promise<boolean> {
  const { rows } = await db.query<{ found: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM export_executions e
                     WHERE e.status IN ('PENDING', 'RUNNING') AND ${RUNNABLE}) AS found`,
  );
  return rows[0]?.found ?? false;
}

/**
 * Claims one runnable execution for `owner`. Only the oldest unfinished execution of an export may
 * run: executions of one export run one at a time and in order (an INCREMENTAL execution starts
 * where the previous one ended). SKIP LOCKED: concurrent claimers never wait for one another.
 */
export async function claimExportExecution(
  db: Queryable,
  owner: string,
  leaseMs: number,
): Promise<StoredExportExecution | undefined> {
  const { rows } = await db.query<ExecutionRow>(
    `WITH candidate AS (
       SELECT e.id FROM export_executions e
        WHERE e.status IN ('PENDING', 'RUNNING') AND ${RUNNABLE}
          AND NOT EXISTS (SELECT 1 FROM export_executions o
                           WHERE o.export_id = e.export_id AND o.id < e.id
                             AND o.status IN ('PENDING', 'RUNNING'))
        ORDER BY e.id
        LIMIT 1
        FOR UPDATE SKIP LOCKED)
     UPDATE export_executions x
        SET status = 'RUNNING', started_at = coalesce(x.started_at, now()), lease_owner = $1,
            lease_until = now() + make_interval(secs => $2::float8 / 1000), runs = x.runs + 1
       FROM candidate
      WHERE x.id = candidate.id
     RETURNING ${EXECUTION_COLUMNS.replace(/(^|,\s*)(\w+)/g, "$1x.$2")}`,
    [owner, leaseMs],
  );
  return rows[0] ? toExecution(rows[0]) : undefined;
}

const leases = leasedJobs("export_executions");

/** Extends the lease; false when `owner` no longer holds it (or the execution is gone). */
export const renewExportLease = leases.renew;

/** Hands every lease of `owner` back at once (the worker stops): another worker starts them over. */
export async function releaseExportLeases(db: Queryable, owner: string): Promise<number> {
  const { rowCount } = await db.query(
    `UPDATE export_executions SET lease_until = now() - interval '1 second'
      WHERE lease_owner = $1 AND status = 'RUNNING'`,
    [owner],
  );
  return rowCount;
}

/** Counts a run ended by an unexpected error; the new count, or undefined when not ours. */
export const recordExportFailure = leases.recordFailure;

/** What a run produced: the stored file and the part of the log it covers. */
export interface ExportOutput {
  mode: ExportMode;
  fileId: string;
  fileName: string;
  rowCount: number;
  bytes: number;
  fromPosition: number | null;
  toPosition: number;
  skipEventIds: number[];
}

/** Records the run's file (status stays RUNNING: the copy and the FINISHED event come next). */
export async function recordExportOutput(
  db: Queryable,
  id: string,
  owner: string,
  output: ExportOutput,
): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE export_executions
        SET mode = $3, file_id = $4, file_name = $5, row_count = $6, bytes = $7,
            from_position = $8, to_position = $9, skip_event_ids = $10::bigint[]
      WHERE id = $1 AND lease_owner = $2 AND status = 'RUNNING'`,
    [
      Number(id),
      owner,
      output.mode,
      output.fileId,
      output.fileName,
      output.rowCount,
      output.bytes,
      output.fromPosition,
      output.toPosition,
      output.skipEventIds,
    ],
  );
  return rowCount > 0;
}

/**
 * Ends a RUNNING execution (owner null: whoever holds it). ERROR also forgets the file (it is
 * never offered: deleteFile is the caller's). Undefined when the execution was not ours to end.
 */
export async function finishExportExecution(
  tx: Queryable,
  id: string,
  owner: string | null,
  status: "SUCCESS" | "ERROR",
  extra: { destination?: string; error?: { code: string; message: string } },
): Promise<StoredExportExecution | undefined> {
  const { rows } = await tx.query<ExecutionRow>(
    `UPDATE export_executions
        SET status = $3, finished_at = now(), lease_owner = NULL, lease_until = NULL,
            destination = coalesce($4, destination), error = $5::jsonb,
            file_id = CASE WHEN $3 = 'ERROR' THEN NULL ELSE file_id END
      WHERE id = $1 AND ($2::text IS NULL OR lease_owner = $2) AND status IN ('PENDING', 'RUNNING')
     RETURNING ${EXECUTION_COLUMNS}`,
    [
      Number(id),
      owner,
      status,
      extra.destination ?? null,
      extra.error ? JSON.stringify(extra.error) : null,
    ],
  );
  return rows[0] ? toExecution(rows[0]) : undefined;
}

/**
 * Moves an INCREMENTAL export's position to where a successful execution ended, only if it is still
 * where that execution started and the export still has the definition and table the execution
 * wrote its file with (a PUT meanwhile wins, also one that restarted a first execution, whose
 * position was null before and after). False otherwise.
 */
export async function advanceIncremental(
  tx: Queryable,
  exp: Pick<StoredExport, "id" | "definition" | "tableId">,
  from: number | null,
  to: number,
  skip: readonly number[],
): Promise<boolean> {
  const { rowCount } = await tx.query(
    `UPDATE exports SET incremental_position = $3, incremental_skip = $4::bigint[]
      WHERE id = $1 AND incremental_position IS NOT DISTINCT FROM $2::bigint
        AND definition = $5::jsonb AND table_id = $6`,
    [Number(exp.id), from, to, skip, JSON.stringify(exp.definition), exp.tableId],
  );
  return rowCount > 0;
}
