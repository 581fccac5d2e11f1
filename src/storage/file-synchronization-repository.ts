/**
 * SQL of file synchronisations (SPEC §7.2, migration 024). A synchronisation is a durable job
 * (DESIGN §6b), as an import execution is: a worker claims it under a lease, and its final status,
 * its file and its FINISHED event commit in one transaction, guarded by the lease.
 */
import type { Queryable } from "./database.js";
import { leasedJobs } from "./job-leases.js";

export const SYNCHRONIZATION_STATUSES = [
  "PENDING",
  "RUNNING",
  "SUCCESS",
  "UNCHANGED",
  "NOT_FOUND",
  "ERROR",
] as const;
export type SynchronizationStatus = (typeof SYNCHRONIZATION_STATUSES)[number];
export type FinalSynchronizationStatus = Exclude<SynchronizationStatus, "PENDING" | "RUNNING">;

export interface StoredSynchronization {
  id: string;
  entityId: number;
  fileReferenceId: string;
  status: SynchronizationStatus;
  origin: Record<string, unknown>;
  /** The moment date placeholders expand at. */
  fetchAt: Date;
  /** The SCHEDULED ETL that runs on the file this synchronisation brings, if any. */
  runEtlId: string | null;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  runs: number;
  fileId: string | null;
  fileName: string | null;
  bytes: number | null;
  sha256: string | null;
  error: { code: string; message: string } | null;
}

interface SynchronizationRow {
  id: number;
  entity_id: number;
  file_reference_id: number;
  status: SynchronizationStatus;
  origin: Record<string, unknown>;
  fetch_at: Date;
  run_etl_id: number | null;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  runs: number;
  file_id: string | null;
  file_name: string | null;
  bytes: number | null;
  sha256: string | null;
  error: { code: string; message: string } | null;
}

const COLUMNS = [
  "id",
  "entity_id",
  "file_reference_id",
  "status",
  "origin",
  "fetch_at",
  "run_etl_id",
  "created_at",
  "started_at",
  "finished_at",
  "runs",
  "file_id",
  "file_name",
  "bytes",
  "sha256",
  "error",
];
const SYNC_COLUMNS = COLUMNS.join(", ");

function toSynchronization(row: SynchronizationRow): StoredSynchronization {
  return {
    id: String(row.id),
    entityId: row.entity_id,
    fileReferenceId: String(row.file_reference_id),
    status: row.status,
    origin: row.origin,
    fetchAt: row.fetch_at,
    runEtlId: row.run_etl_id === null ? null : String(row.run_etl_id),
    createdAt: row.created_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    runs: row.runs,
    fileId: row.file_id,
    fileName: row.file_name,
    bytes: row.bytes === null ? null : Number(row.bytes),
    sha256: row.sha256,
    error: row.error,
  };
}

export interface NewSynchronization {
  entityId: number;
  fileReferenceId: string;
  origin: Record<string, unknown>;
  /** Default: now (the request's time). */
  fetchAt?: Date;
  runEtlId?: string | null;
}

/** Records a PENDING synchronisation (the caller notifies the workers in the same transaction). */
export async function insertSynchronization(
  db: Queryable,
  s: NewSynchronization,
): Promise<StoredSynchronization> {
  const { rows } = await db.query<SynchronizationRow>(
    `INSERT INTO file_synchronizations (entity_id, file_reference_id, origin, fetch_at, run_etl_id)
     VALUES ($1, $2, $3, coalesce($4::timestamptz, now()), $5)
     RETURNING ${SYNC_COLUMNS}`,
    [
      s.entityId,
      Number(s.fileReferenceId),
      JSON.stringify(s.origin),
      s.fetchAt ?? null,
      s.runEtlId == null ? null : Number(s.runEtlId),
    ],
  );
  return toSynchronization(rows[0]!);
}

export async function findSynchronization(
  db: Queryable,
  entityId: number,
  fileReferenceId: string,
  id: string,
): Promise<StoredSynchronization | undefined> {
  if (!/^\d{1,15}$/.test(id)) return undefined;
  const { rows } = await db.query<SynchronizationRow>(
    `SELECT ${SYNC_COLUMNS} FROM file_synchronizations
      WHERE entity_id = $1 AND file_reference_id = $2 AND id = $3`,
    [entityId, Number(fileReferenceId), Number(id)],
  );
  return rows[0] ? toSynchronization(rows[0]) : undefined;
}

/** A reference's synchronisations, newest first. */
export async function listSynchronizations(
  db: Queryable,
  entityId: number,
  fileReferenceId: string,
  filter: { status?: SynchronizationStatus },
  page: { offset: number; limit: number },
): Promise<{ synchronizations: StoredSynchronization[]; total: number }> {
  const params = [entityId, Number(fileReferenceId), filter.status ?? null];
  const where = `entity_id = $1 AND file_reference_id = $2 AND ($3::text IS NULL OR status = $3)`;
  const { rows } = await db.query<SynchronizationRow>(
    `SELECT ${SYNC_COLUMNS} FROM file_synchronizations WHERE ${where}
      ORDER BY id DESC LIMIT $4 OFFSET $5`,
    [...params, page.limit, page.offset],
  );
  const { rows: count } = await db.query<{ n: number }>(
    `SELECT count(*)::integer AS n FROM file_synchronizations WHERE ${where}`,
    params,
  );
  return { synchronizations: rows.map(toSynchronization), total: count[0]?.n ?? 0 };
}

const leases = leasedJobs("file_synchronizations");

/**
 * Claims one runnable synchronisation for `owner`: a PENDING one, or a RUNNING one whose lease
 * expired (its worker died: it runs again from its start). SKIP LOCKED: concurrent claimers never
 * wait for or take the same row. `started`: this claim started it (the caller appends STARTED).
 */
export async function claimSynchronization(
  tx: Queryable,
  owner: string,
  leaseMs: number,
): Promise<{ synchronization: StoredSynchronization; started: boolean } | undefined> {
  const claim = await leases.claim<SynchronizationRow>(tx, owner, leaseMs, COLUMNS);
  return claim
    ? { synchronization: toSynchronization(claim.row), started: claim.started }
    : undefined;
}

/** True when a worker could claim a synchronisation now (a cheap look before a claim transaction). */
export const hasRunnableSynchronization = leases.hasRunnable;

/** Extends the lease; false when it was lost (another worker took the synchronisation). */
export const renewSynchronizationLease = leases.renew;

/** Hands a stopping worker's synchronisations back: the next claim runs them again at once. */
export const releaseSynchronizationLeases = leases.release;

/** Counts a run ended by an unexpected error; the failures so far, undefined when not held. */
export const recordSynchronizationFailure = leases.recordFailure;

export interface SynchronizationOutcome {
  status: FinalSynchronizationStatus;
  file: { id: string | null; name: string; bytes: number; sha256: string } | null;
  error: { code: string; message: string } | null;
}

/** Ends a synchronisation held by `owner`; undefined when the lease was lost (or it is gone). */
export async function finishSynchronization(
  tx: Queryable,
  id: string,
  owner: string,
  outcome: SynchronizationOutcome,
): Promise<StoredSynchronization | undefined> {
  const { file } = outcome;
  const { rows } = await tx.query<SynchronizationRow>(
    `UPDATE file_synchronizations
        SET status = $3, file_id = $4, file_name = $5, bytes = $6, sha256 = $7, error = $8::jsonb,
            finished_at = now(), lease_owner = NULL, lease_until = NULL
      WHERE id = $1 AND lease_owner = $2 AND status = 'RUNNING'
      RETURNING ${SYNC_COLUMNS}`,
    [
      Number(id),
      owner,
      outcome.status,
      file?.id ?? null,
      file?.name ?? null,
      file?.bytes ?? null,
      file?.sha256 ?? null,
      outcome.error === null ? null : JSON.stringify(outcome.error),
    ],
  );
  return rows[0] ? toSynchronization(rows[0]) : undefined;
}

/** The file a reference last received (its latest SUCCESS or UNCHANGED), other than sync `exceptId`. */
export interface ReceivedFile {
  synchronizationId: string;
  /** null when the stored file expired (or was never kept). */
  fileId: string | null;
  name: string;
  bytes: number;
  sha256: string;
}

export async function lastReceivedFile(
  db: Queryable,
  fileReferenceId: string,
  exceptId?: string,
): Promise<ReceivedFile | undefined> {
  // The file row must still be there and complete for its id to count.
  const { rows } = await db.query<{
    id: number;
    file_id: string | null;
    file_name: string;
    bytes: number;
    sha256: string;
  }>(
    `SELECT s.id, f.id AS file_id, s.file_name, s.bytes, s.sha256
       FROM file_synchronizations s
       LEFT JOIN stored_files f ON f.id = s.file_id AND f.complete
      WHERE s.file_reference_id = $1 AND s.status IN ('SUCCESS', 'UNCHANGED')
        AND ($2::bigint IS NULL OR s.id <> $2)
      ORDER BY s.finished_at DESC, s.id DESC LIMIT 1`,
    [Number(fileReferenceId), exceptId === undefined ? null : Number(exceptId)],
  );
  const row = rows[0];
  return row
    ? {
        synchronizationId: String(row.id),
        fileId: row.file_id,
        name: row.file_name,
        bytes: Number(row.bytes),
        sha256: row.sha256,
      }
    : undefined;
}

/**
 * Keeps a stored file at least `retentionDays` from now: an UNCHANGED synchronisation points at
 * the file it equals, which is then as recent as a new one.
 */
export async function keepFileFor(
  db: Queryable,
  fileId: string,
  retentionDays: number,
): Promise<void> {
  await db.query(
    `UPDATE stored_files SET expires_at = greatest(expires_at, now() + make_interval(days => $2))
      WHERE id = $1`,
    [fileId, retentionDays],
  );
}
