/**
 * SQL of import executions (SPEC §7.1, migration 014). Executions are durable jobs (DESIGN §6b): a
 * worker claims one under a lease, and every statement that records progress checks that it still
 * holds the lease, in the transaction of the rows that progress describes. Rejected rows are in
 * etl-rejected-rows.ts.
 */
import type { EtlDefinition } from "../domain/etl-definition.js";
import type { Queryable } from "./database.js";
import { leasedJobs } from "./job-leases.js";

export const EXECUTION_STATUSES = [
  "PENDING",
  "RUNNING",
  "SUCCESS",
  "WITH_ERROR",
  "ERROR",
  "CANCELLED",
] as const;
export type ExecutionStatus = (typeof EXECUTION_STATUSES)[number];
export interface ExecutionCounts {
  read: number;
  created: number;
  updated: number;
  unchanged: number;
  rejected: number;
}

export interface StoredExecution {
  id: string;
  entityId: number;
  etlId: string | null;
  etlName: string | null;
  definition: EtlDefinition;
  tableId: string;
  fileId: string | null;
  file: { name: string; bytes: number; sha256: string };
  status: ExecutionStatus;
  origin: Record<string, unknown>;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  cancelRequested: boolean;
  /** Times a worker claimed it (more than one: it was resumed). */
  runs: number;
  /** Data records of the file consumed (applied or rejected) by committed batches. */
  checkpointRecords: number;
  checkpointLine: number;
  bytesRead: number;
  counts: ExecutionCounts;
  error: { code: string; message: string } | null;
}

interface ExecutionRow {
  id: number;
  entity_id: number;
  etl_id: number | null;
  etl_name: string | null;
  definition: EtlDefinition;
  table_id: string;
  file_id: string | null;
  file_name: string;
  file_bytes: number;
  file_sha256: string;
  status: ExecutionStatus;
  origin: Record<string, unknown>;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  cancel_requested: boolean;
  runs: number;
  checkpoint_records: number;
  checkpoint_line: number;
  bytes_read: number;
  rows_read: number;
  rows_created: number;
  rows_updated: number;
  rows_unchanged: number;
  rows_rejected: number;
  error: { code: string; message: string } | null;
}

const EXECUTION_COLUMNS = `id, entity_id, etl_id, etl_name, definition, table_id, file_id, file_name,
  file_bytes, file_sha256, status, origin, created_at, started_at, finished_at, cancel_requested, runs,
  checkpoint_records, checkpoint_line, bytes_read, rows_read, rows_created, rows_updated,
  rows_unchanged, rows_rejected, error`;

function toExecution(row: ExecutionRow): StoredExecution {
  return {
    id: String(row.id),
    entityId: row.entity_id,
    etlId: row.etl_id === null ? null : String(row.etl_id),
    etlName: row.etl_name,
    definition: row.definition,
    tableId: row.table_id,
    fileId: row.file_id,
    file: { name: row.file_name, bytes: row.file_bytes, sha256: row.file_sha256 },
    status: row.status,
    origin: row.origin,
    createdAt: row.created_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    cancelRequested: row.cancel_requested,
    runs: row.runs,
    checkpointRecords: row.checkpoint_records,
    checkpointLine: row.checkpoint_line,
    bytesRead: row.bytes_read,
    counts: {
      read: row.rows_read,
      created: row.rows_created,
      updated: row.rows_updated,
      unchanged: row.rows_unchanged,
      rejected: row.rows_rejected,
    },
    error: row.error,
  };
}

export interface NewExecution {
  entityId: number;
  etlId: string | null;
  etlName: string | null;
  definition: EtlDefinition;
  tableId: string;
  file: { id: string; name: string; bytes: number; sha256: string };
  origin: Record<string, unknown>;
}

export async function insertExecution(db: Queryable, e: NewExecution): Promise<StoredExecution> {
  const { rows } = await db.query<ExecutionRow>(
    `INSERT INTO etl_executions
       (entity_id, etl_id, etl_name, definition, table_id, file_id, file_name, file_bytes,
        file_sha256, origin)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
     RETURNING ${EXECUTION_COLUMNS}`,
    [
      e.entityId,
      e.etlId === null ? null : Number(e.etlId),
      e.etlName,
      JSON.stringify(e.definition),
      e.tableId,
      e.file.id,
      e.file.name,
      e.file.bytes,
      e.file.sha256,
      JSON.stringify(e.origin),
    ],
  );
  return toExecution(rows[0]!);
}

export async function findExecution(
  db: Queryable,
  entityId: number,
  id: string,
): Promise<StoredExecution | undefined> {
  if (!/^\d{1,15}$/.test(id)) return undefined;
  const { rows } = await db.query<ExecutionRow>(
    `SELECT ${EXECUTION_COLUMNS} FROM etl_executions WHERE entity_id = $1 AND id = $2`,
    [entityId, Number(id)],
  );
  return rows[0] ? toExecution(rows[0]) : undefined;
}

export async function listExecutions(
  db: Queryable,
  entityId: number,
  filter: { etlId?: string; status?: ExecutionStatus },
  page: { offset: number; limit: number },
): Promise<{ executions: StoredExecution[]; total: number }> {
  const params = [
    entityId,
    filter.etlId === undefined ? null : Number(filter.etlId),
    filter.status ?? null,
  ];
  const { rows } = await db.query<ExecutionRow>(
    `SELECT ${EXECUTION_COLUMNS} FROM etl_executions
      WHERE entity_id = $1 AND ($2::bigint IS NULL OR etl_id = $2) AND ($3::text IS NULL OR status = $3)
      ORDER BY id DESC LIMIT $4 OFFSET $5`,
    [...params, page.limit, page.offset],
  );
  const { rows: count } = await db.query<{ n: number }>(
    `SELECT count(*)::integer AS n FROM etl_executions
      WHERE entity_id = $1 AND ($2::bigint IS NULL OR etl_id = $2) AND ($3::text IS NULL OR status = $3)`,
    params,
  );
  return { executions: rows.map(toExecution), total: count[0]?.n ?? 0 };
}

const leases = leasedJobs("etl_executions");
const CLAIMED_COLUMNS = EXECUTION_COLUMNS.split(",").map((c) => c.trim());

/**
 * Claims one runnable execution for `owner`: a PENDING one, or a RUNNING one whose lease expired
 * (its worker died). SKIP LOCKED: concurrent claimers never wait for or take the same row.
 * `started` tells whether this claim started it (PENDING → RUNNING: the caller appends STARTED in
 * this same transaction).
 */
export async function claimExecution(
  tx: Queryable,
  owner: string,
  leaseMs: number,
): Promise<{ execution: StoredExecution; started: boolean } | undefined> {
  const claim = await leases.claim<ExecutionRow>(tx, owner, leaseMs, CLAIMED_COLUMNS);
  return claim ? { execution: toExecution(claim.row), started: claim.started } : undefined;
}

/** Extends the lease; false when it was lost (another worker took the execution). */
export const renewExecutionLease = leases.renew;

export interface BatchProgress {
  /** Records consumed by the batch (applied or rejected). */
  records: number;
  /** Line of the last record consumed. */
  line: number;
  bytesRead: number;
  counts: ExecutionCounts;
}

/**
 * Records a batch's progress in the batch's transaction, if `owner` still holds the execution.
 * undefined: the lease is lost, the caller rolls back. Otherwise whether a cancel was asked for.
 */
export async function recordBatchProgress(
  tx: Queryable,
  id: string,
  owner: string,
  progress: BatchProgress,
): Promise<{ cancelRequested: boolean; counts: ExecutionCounts } | undefined> {
  const { rows } = await tx.query<ExecutionRow>(
    `UPDATE etl_executions
        SET checkpoint_records = checkpoint_records + $3, checkpoint_line = $4, bytes_read = $5,
            rows_read = rows_read + $6, rows_created = rows_created + $7,
            rows_updated = rows_updated + $8, rows_unchanged = rows_unchanged + $9,
            rows_rejected = rows_rejected + $10
      WHERE id = $1 AND lease_owner = $2 AND status = 'RUNNING'
      RETURNING ${EXECUTION_COLUMNS}`,
    [
      Number(id),
      owner,
      progress.records,
      progress.line,
      progress.bytesRead,
      progress.counts.read,
      progress.counts.created,
      progress.counts.updated,
      progress.counts.unchanged,
      progress.counts.rejected,
    ],
  );
  const row = rows[0];
  if (!row) return undefined;
  const execution = toExecution(row);
  return { cancelRequested: execution.cancelRequested, counts: execution.counts };
}

/**
 * Ends an execution with a final status, if `owner` holds it (or, with owner null, if it is still
 * PENDING: a cancel before any worker took it). The caller appends FINISHED in this transaction.
 */
export async function finishExecution(
  tx: Queryable,
  id: string,
  owner: string | null,
  status: ExecutionStatus,
  error: { code: string; message: string } | null,
): Promise<StoredExecution | undefined> {
  const { rows } = await tx.query<ExecutionRow>(
    `UPDATE etl_executions
        SET status = $3, error = $4::jsonb, finished_at = now(), lease_owner = NULL, lease_until = NULL,
            -- Read to its end: progress says the whole file, whatever its line breaks counted.
            bytes_read = CASE WHEN $3 IN ('SUCCESS', 'WITH_ERROR') THEN file_bytes ELSE bytes_read END
      WHERE id = $1
        AND (($2::text IS NOT NULL AND lease_owner = $2 AND status = 'RUNNING')
          OR ($2::text IS NULL AND status = 'PENDING'))
      RETURNING ${EXECUTION_COLUMNS}`,
    [Number(id), owner, status, error === null ? null : JSON.stringify(error)],
  );
  return rows[0] ? toExecution(rows[0]) : undefined;
}

/** Asks a running execution to stop after its current batch. */
export async function requestCancel(db: Queryable, id: string): Promise<void> {
  await db.query(
    "UPDATE etl_executions SET cancel_requested = true WHERE id = $1 AND status = 'RUNNING'",
    [Number(id)],
  );
}

/** Reads the execution's row under a lock (to decide a cancel). */
export async function lockExecution(
  tx: Queryable,
  entityId: number,
  id: string,
): Promise<StoredExecution | undefined> {
  if (!/^\d{1,15}$/.test(id)) return undefined;
  const { rows } = await tx.query<ExecutionRow>(
    `SELECT ${EXECUTION_COLUMNS} FROM etl_executions WHERE entity_id = $1 AND id = $2 FOR UPDATE`,
    [entityId, Number(id)],
  );
  return rows[0] ? toExecution(rows[0]) : undefined;
}

/** True when a worker could claim an execution now (a cheap look before a claim transaction). */
export const hasRunnableExecution = leases.hasRunnable;

/** Hands a stopping worker's executions back: the next claim resumes them at once. */
export const releaseExecutionLeases = leases.release;

/**
 * Counts a run that ended on an unexpected error (the execution stays RUNNING under the lease of
 * `owner` until it expires); the failures so far, or undefined when `owner` no longer holds it.
 */
export const recordExecutionFailure = leases.recordFailure;
