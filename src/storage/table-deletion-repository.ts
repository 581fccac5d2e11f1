/**
 * SQL of table deletions (SPEC §3, migration 016, docs/data-model.md "Deleting a table"). The
 * DELETE request marks the table deleted and creates its job row in one transaction; a worker
 * claims the job under a lease (DESIGN §6b) and every statement that records progress checks that
 * it still holds the lease, in the transaction of the records that progress describes.
 */
import type { Origin } from "../domain/change-event.js";
import type { DataTable, TableKind } from "../domain/data-table.js";
import type { Queryable } from "./database.js";
import type { RecordRow, StoredRecord } from "./record-repository.js";
import { RECORD_COLUMNS, toRecord } from "./record-repository.js";

export const TABLE_DELETION_STATUSES = ["DELETING_RECORDS", "AWAITING_DELIVERY", "DONE"] as const;
export type TableDeletionStatus = (typeof TABLE_DELETION_STATUSES)[number];

/** The reason a subscription on a deleted table is disabled with (SPEC §3). */
export const TABLE_DELETED_REASON = "TABLE_DELETED";

export interface TableDeletion {
  tableId: string;
  entityId: number;
  kind: TableKind;
  tableName: string;
  /** The table as it was when deleted: the DELETE events are built from it. */
  table: DataTable;
  origin: Origin;
  status: TableDeletionStatus;
  requestedAt: Date;
  finishedAt: Date | null;
  runs: number;
  failures: number;
  lastError: string | null;
  deliveryChecks: number;
  recordsDeleted: number;
  /** change_events.id of the last DELETE event appended; null while none was. */
  lastEventId: number | null;
  lastPosition: number | null;
  subscriptionsDisabled: number | null;
}

interface TableDeletionRow {
  table_id: string;
  entity_id: number;
  kind: TableKind;
  table_name: string;
  definition: DataTable;
  origin: Origin;
  status: TableDeletionStatus;
  requested_at: Date;
  finished_at: Date | null;
  runs: number;
  failures: number;
  last_error: string | null;
  delivery_checks: number;
  records_deleted: number;
  last_event_id: number | null;
  last_position: number | null;
  subscriptions_disabled: number | null;
}

const DELETION_COLUMNS = `table_id, entity_id, kind, table_name, definition, origin, status,
  requested_at, finished_at, runs, failures, last_error, delivery_checks, records_deleted,
  last_event_id, last_position, subscriptions_disabled`;

function toDeletion(row: TableDeletionRow): TableDeletion {
  return {
    tableId: row.table_id,
    entityId: row.entity_id,
    kind: row.kind,
    tableName: row.table_name,
    table: row.definition,
    origin: row.origin,
    status: row.status,
    requestedAt: row.requested_at,
    finishedAt: row.finished_at,
    runs: row.runs,
    failures: row.failures,
    lastError: row.last_error,
    deliveryChecks: row.delivery_checks,
    recordsDeleted: row.records_deleted,
    lastEventId: row.last_event_id,
    lastPosition: row.last_position,
    subscriptionsDisabled: row.subscriptions_disabled,
  };
}

/** What a job is claimable by: not finished, its lease free or expired, not waiting. */
const RUNNABLE = `status <> 'DONE'
  AND (lease_until IS NULL OR lease_until < now())
  AND (not_before IS NULL OR not_before <= now())`;

/**
 * In the DELETE request's transaction (after the table's write lock): marks the table deleted and
 * creates its deletion job. False when the table was already deleted (or never existed).
 */
export async function markTableDeleted(
  tx: Queryable,
  table: DataTable,
  origin: Origin,
): Promise<boolean> {
  const { rows } = await tx.query<{ marked: number }>(
    `WITH marked AS (
       UPDATE data_tables SET deleted_at = now(), updated_at = now()
        WHERE id = $1 AND entity_id = $2 AND deleted_at IS NULL
        RETURNING id),
     job AS (
       INSERT INTO table_deletions (table_id, entity_id, kind, table_name, definition, origin)
       SELECT id, $2, $3, $4, $5::jsonb, $6::jsonb FROM marked
       RETURNING 1)
     SELECT count(*)::integer AS marked FROM job`,
    [
      table.id,
      table.entityId,
      table.kind,
      table.name,
      JSON.stringify(table),
      JSON.stringify(origin),
    ],
  );
  return rows[0]?.marked === 1;
}

/** True when a worker could claim a deletion now (a cheap look before a claim transaction). */
export async function hasRunnableDeletion(db: Queryable): Promise<boolean> {
  const { rowCount } = await db.query(`SELECT 1 FROM table_deletions WHERE ${RUNNABLE} LIMIT 1`);
  return rowCount > 0;
}

/**
 * Claims one runnable deletion for `owner`, oldest first. SKIP LOCKED: concurrent claimers never
 * wait for or take the same row.
 */
export async function claimDeletion(
  db: Queryable,
  owner: string,
  leaseMs: number,
): Promise<TableDeletion | undefined> {
  const { rows } = await db.query<TableDeletionRow>(
    `WITH candidate AS (
       SELECT table_id FROM table_deletions
        WHERE ${RUNNABLE}
        ORDER BY requested_at, table_id
        LIMIT 1
        FOR UPDATE SKIP LOCKED)
     UPDATE table_deletions d
        SET lease_owner = $1, lease_until = now() + make_interval(secs => $2 / 1000.0),
            not_before = NULL, runs = d.runs + 1
       FROM candidate c
      WHERE d.table_id = c.table_id
     RETURNING ${DELETION_COLUMNS.split(",")
       .map((c) => `d.${c.trim()}`)
       .join(", ")}`,
    [owner, leaseMs],
  );
  return rows[0] ? toDeletion(rows[0]) : undefined;
}

/**
 * First statement of a batch's transaction: locks the job row and extends the lease, if `owner`
 * still holds it. False: the lease is lost, the caller rolls back. The row lock also keeps a worker
 * that took over from running a batch beside one that has not noticed yet.
 */
export async function holdDeletion(
  tx: Queryable,
  tableId: string,
  owner: string,
  leaseMs: number,
): Promise<TableDeletionStatus | undefined> {
  const { rows } = await tx.query<{ status: TableDeletionStatus }>(
    `UPDATE table_deletions SET lease_until = now() + make_interval(secs => $3 / 1000.0)
      WHERE table_id = $1 AND lease_owner = $2 AND status <> 'DONE'
      RETURNING status`,
    [tableId, owner, leaseMs],
  );
  return rows[0]?.status;
}

/**
 * The next `limit` records of the table after record `afterRecordId`, oldest first, locked FOR
 * UPDATE: the batch's DELETE events are built from them, then they are deleted. records_table
 * (table_id, record_id) serves the range; starting after the previous batch's last record keeps
 * each batch from walking the index entries of the records already deleted (dead until vacuumed).
 */
export async function lockRecordBatch(
  tx: Queryable,
  tableId: string,
  afterRecordId: number,
  limit: number,
): Promise<StoredRecord[]> {
  const { rows } = await tx.query<RecordRow>(
    `SELECT ${RECORD_COLUMNS} FROM records
      WHERE table_id = $1 AND record_id > $2
      ORDER BY record_id
      LIMIT $3
      FOR UPDATE`,
    [tableId, afterRecordId, limit],
  );
  return rows.map(toRecord);
}

/**
 * Deletes locked records of the table; their key rows go with them (record_keys' foreign key
 * cascades). Returns how many were deleted.
 */
export async function deleteRecords(
  tx: Queryable,
  tableId: string,
  recordIds: readonly number[],
): Promise<number> {
  const { rowCount } = await tx.query(
    "DELETE FROM records WHERE table_id = $1 AND record_id = ANY($2::bigint[])",
    [tableId, recordIds],
  );
  return rowCount;
}

/**
 * Counts a batch's records as deleted, after its DELETE events were appended in this transaction:
 * the last of them is this session's latest change_event_id_seq value (CACHE 1 and currval are
 * per session, so no other writer's id can be it).
 */
export async function recordDeletedBatch(
  tx: Queryable,
  tableId: string,
  deleted: number,
): Promise<void> {
  await tx.query(
    `UPDATE table_deletions
        SET records_deleted = records_deleted + $2,
            last_event_id = currval('change_event_id_seq')
      WHERE table_id = $1`,
    [tableId, deleted],
  );
}

/** Every record is gone: the job waits for the subscriptions from now on. */
export async function markRecordsDeleted(tx: Queryable, tableId: string): Promise<void> {
  await tx.query(
    `UPDATE table_deletions SET status = 'AWAITING_DELIVERY'
      WHERE table_id = $1 AND status = 'DELETING_RECORDS'`,
    [tableId],
  );
}

export type LastEventPosition =
  | { kind: "stamped"; position: number }
  /** Committed, not stamped by the sequencer yet. */
  | { kind: "unstamped" }
  /** Pruned by housekeeping: every cursor was past it (housekeeping-repository.ts liveLogFloor). */
  | { kind: "pruned" };

/** The log position of the change event with inbox id `eventId`. */
export async function eventPosition(db: Queryable, eventId: number): Promise<LastEventPosition> {
  const { rows } = await db.query<{ position: number | null }>(
    "SELECT position FROM change_events WHERE id = $1",
    [eventId],
  );
  const row = rows[0];
  if (!row) return { kind: "pruned" };
  return row.position === null
    ? { kind: "unstamped" }
    : { kind: "stamped", position: row.position };
}

/** A subscription on the deleted table, as the last step weighs it. */
export interface SubscriptionOnTable {
  id: number;
  isActive: boolean;
  state: string;
  watermark: number;
}

/**
 * The subscriptions on the table (its `on` and `onElementId`), locked FOR UPDATE so that none
 * changes between the check that they are done and their disabling.
 */
export async function lockSubscriptionsOnTable(
  tx: Queryable,
  deletion: Pick<TableDeletion, "entityId" | "kind" | "tableId">,
): Promise<SubscriptionOnTable[]> {
  // webhook_subscriptions_entity (entity_id, id): an entity has few subscriptions.
  const { rows } = await tx.query<{
    id: number;
    is_active: boolean;
    state: string;
    watermark: number;
  }>(
    `SELECT id, is_active, state, watermark FROM webhook_subscriptions
      WHERE entity_id = $1 AND source = $2 AND element_id = $3
      ORDER BY id
      FOR UPDATE`,
    [deletion.entityId, deletion.kind, deletion.tableId],
  );
  return rows.map((r) => ({
    id: r.id,
    isActive: r.is_active,
    state: r.state,
    watermark: r.watermark,
  }));
}

/** True when the table holds no record any more. */
export async function tableIsEmpty(db: Queryable, tableId: string): Promise<boolean> {
  const { rowCount } = await db.query("SELECT 1 FROM records WHERE table_id = $1 LIMIT 1", [
    tableId,
  ]);
  return rowCount === 0;
}

/**
 * The last step, in one transaction with the checks before it: the subscriptions on the table are
 * disabled (isActive false, DISABLED, reason TABLE_DELETED), the table's row goes, the job is DONE.
 */
export async function completeDeletion(
  tx: Queryable,
  deletion: Pick<TableDeletion, "entityId" | "kind" | "tableId">,
  lastPosition: number | null,
): Promise<number> {
  const { rowCount } = await tx.query(
    `UPDATE webhook_subscriptions
        SET is_active = false, state = 'DISABLED', state_reason = $4, updated_at = now()
      WHERE entity_id = $1 AND source = $2 AND element_id = $3`,
    [deletion.entityId, deletion.kind, deletion.tableId, TABLE_DELETED_REASON],
  );
  await tx.query("DELETE FROM data_tables WHERE id = $1 AND deleted_at IS NOT NULL", [
    deletion.tableId,
  ]);
  await tx.query(
    `UPDATE table_deletions
        SET status = 'DONE', finished_at = now(), lease_owner = NULL, lease_until = NULL,
            not_before = NULL, last_position = $2, subscriptions_disabled = $3
      WHERE table_id = $1`,
    [deletion.tableId, lastPosition, rowCount],
  );
  return rowCount;
}

/**
 * Hands the job back until `delayMs` from now (waiting for the sequencer or the subscriptions),
 * if `owner` holds it; `lastPosition` is remembered once known.
 */
export async function postponeDeletion(
  db: Queryable,
  tableId: string,
  owner: string,
  delayMs: number,
  lastPosition: number | null,
): Promise<void> {
  await db.query(
    `UPDATE table_deletions
        SET lease_owner = NULL, lease_until = NULL,
            not_before = now() + make_interval(secs => $3 / 1000.0),
            delivery_checks = delivery_checks + 1,
            last_position = coalesce($4::bigint, last_position)
      WHERE table_id = $1 AND lease_owner = $2 AND status <> 'DONE'`,
    [tableId, owner, delayMs, lastPosition],
  );
}

/**
 * Counts a run that ended on an unexpected error and hands the job back until `delayMs` from now;
 * the failures so far, or undefined when `owner` no longer holds it.
 */
export async function recordDeletionFailure(
  db: Queryable,
  tableId: string,
  owner: string,
  message: string,
  delayMs: number,
): Promise<number | undefined> {
  const { rows } = await db.query<{ failures: number }>(
    `UPDATE table_deletions
        SET failures = failures + 1, last_error = $3, lease_owner = NULL, lease_until = NULL,
            not_before = now() + make_interval(secs => $4 / 1000.0)
      WHERE table_id = $1 AND lease_owner = $2 AND status <> 'DONE'
      RETURNING failures`,
    [tableId, owner, message, delayMs],
  );
  return rows[0]?.failures;
}

/** Hands a stopping worker's deletions back: the next claim goes on with them at once. */
export async function releaseDeletionLeases(db: Queryable, owner: string): Promise<void> {
  await db.query(
    `UPDATE table_deletions SET lease_owner = NULL, lease_until = NULL
      WHERE lease_owner = $1 AND status <> 'DONE'`,
    [owner],
  );
}

/** One deletion job by table id (any status); for operators' queries and tests. */
export async function findDeletion(
  db: Queryable,
  tableId: string,
): Promise<TableDeletion | undefined> {
  const { rows } = await db.query<TableDeletionRow>(
    `SELECT ${DELETION_COLUMNS} FROM table_deletions WHERE table_id = $1`,
    [tableId],
  );
  return rows[0] ? toDeletion(rows[0]) : undefined;
}
