/**
 * Runs one claimed table deletion (SPEC §3, DESIGN §6b, docs/data-model.md "Deleting a table"):
 *
 * 1. Records, in batches: each batch is one transaction that holds the job's lease, locks the next
 *    records of the table, deletes them (their key rows go by cascade), appends one DELETE event per
 *    record (table-deletion-events.ts) and counts them in the job row. A worker that dies mid-batch
 *    leaves nothing of it; whoever claims the job next goes on with the records that are left.
 * 2. Delivery: once the table is empty, the job waits until the last DELETE event is stamped and
 *    every active subscription on the table has its watermark at or past that event's position
 *    (delivered, parked or failed: passed). It does not hold its lease while it waits: it hands the
 *    job back with a time to look again, spaced out the longer it waits.
 * 3. The end, in one transaction with that last check: the subscriptions on the table are disabled
 *    (reason TABLE_DELETED), the table's row goes, the job is DONE.
 */
import type { Logger } from "pino";
import { lostToConcurrency } from "../capture/write-retry.js";
import { appendChangeEvents } from "../storage/change-event-repository.js";
import type { Database, Queryable } from "../storage/database.js";
import type { LogSignals } from "../storage/log-signals.js";
import type { TableDeletion } from "../storage/table-deletion-repository.js";
import {
  completeDeletion,
  deleteRecords,
  eventPosition,
  findDeletion,
  holdDeletion,
  lockRecordBatch,
  lockSubscriptionsOnTable,
  markRecordsDeleted,
  postponeDeletion,
  recordDeletedBatch,
  tableIsEmpty,
} from "../storage/table-deletion-repository.js";
import { tableDeletionEvent } from "./table-deletion-events.js";

/** How long the job waits before it looks at the subscriptions again: doubling, up to a cap. */
export interface DeliveryCheckSpacing {
  firstMs: number;
  maxMs: number;
}

export const DELIVERY_CHECK_SPACING: DeliveryCheckSpacing = { firstMs: 500, maxMs: 60_000 };

/** The wait before look number `checks + 1` (pure: the policy is data). */
export function deliveryCheckDelay(checks: number, spacing: DeliveryCheckSpacing): number {
  return Math.min(spacing.maxMs, spacing.firstMs * 2 ** Math.min(Math.max(0, checks), 30));
}

export interface TableDeletionSettings {
  db: Database;
  /** Each committed batch wakes this process's sequencer through them. */
  logSignals: LogSignals;
  logger: Logger;
  /** This worker's name in leases. */
  owner: string;
  leaseMs: number;
  /** Records a batch deletes at most. */
  batchRows: number;
  spacing: DeliveryCheckSpacing;
  /** True once the worker is stopping: the run hands the job back after its current batch. */
  stopping(): boolean;
}

/** How a run ended. */
export type DeletionRunEnd =
  | { kind: "done"; recordsDeleted: number; subscriptionsDisabled: number }
  /** Handed back to look again later (the subscriptions have not passed the DELETE events yet). */
  | { kind: "waiting" }
  /** The worker is stopping: handed back as it is. */
  | { kind: "stopped" }
  /** Another worker holds the job now. */
  | { kind: "lost" };

type BatchOutcome =
  { kind: "deleted"; count: number; lastRecordId: number } | { kind: "empty" } | { kind: "lost" };

/** Tries of a batch that lost to a deadlock or a serialization failure. */
const BATCH_ATTEMPTS = 5;

async function deleteBatch(
  tx: Queryable,
  settings: TableDeletionSettings,
  deletion: TableDeletion,
  afterRecordId: number,
): Promise<BatchOutcome> {
  const { tableId, table, origin } = deletion;
  if (!(await holdDeletion(tx, tableId, settings.owner, settings.leaseMs))) return { kind: "lost" };
  const records = await lockRecordBatch(tx, tableId, afterRecordId, settings.batchRows);
  if (records.length === 0) {
    await markRecordsDeleted(tx, tableId);
    return { kind: "empty" };
  }
  const events = records.map((record) => tableDeletionEvent(table, record, origin));
  // The records are locked, so each goes: any other count is a defect, and nothing may commit.
  const deleted = await deleteRecords(
    tx,
    tableId,
    records.map((r) => r.recordId),
  );
  if (deleted !== records.length)
    throw new Error(
      `internal error: a table deletion batch deleted ${deleted} of its ${records.length} locked records`,
    );
  await appendChangeEvents(tx, events, settings.logSignals);
  await recordDeletedBatch(tx, tableId, deleted);
  return { kind: "deleted", count: deleted, lastRecordId: records.at(-1)!.recordId };
}

async function inTransaction<T>(db: Database, work: (tx: Queryable) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await db.transaction(work);
    } catch (error) {
      if (!lostToConcurrency(error) || attempt >= BATCH_ATTEMPTS) throw error;
    }
  }
}

type FinishOutcome =
  | { kind: "done"; subscriptionsDisabled: number }
  | { kind: "records-left" }
  | { kind: "behind"; subscriptionIds: number[] }
  | { kind: "lost" };

async function finishIfDelivered(
  tx: Queryable,
  settings: TableDeletionSettings,
  deletion: TableDeletion,
  lastPosition: number | null,
): Promise<FinishOutcome> {
  if (!(await holdDeletion(tx, deletion.tableId, settings.owner, settings.leaseMs)))
    return { kind: "lost" };
  if (!(await tableIsEmpty(tx, deletion.tableId))) return { kind: "records-left" };
  const subscriptions = await lockSubscriptionsOnTable(tx, deletion);
  // Only a deliverable subscription (subscription-lease-repository.ts DELIVERABLE) moves its watermark; one
  // switched off is not waited for, it is disabled at once.
  const behind = subscriptions.filter(
    (s) =>
      s.isActive && s.state !== "DISABLED" && lastPosition !== null && s.watermark < lastPosition,
  );
  if (behind.length > 0) return { kind: "behind", subscriptionIds: behind.map((s) => s.id) };
  return {
    kind: "done",
    subscriptionsDisabled: await completeDeletion(tx, deletion, lastPosition),
  };
}

export async function runTableDeletion(
  settings: TableDeletionSettings,
  claimed: TableDeletion,
): Promise<DeletionRunEnd> {
  const { db } = settings;
  const log = settings.logger.child({ tableId: claimed.tableId, table: claimed.tableName });
  for (;;) {
    // 1. Records, in record id order (no record is added meanwhile: the write gate is shut).
    let deletedNow = 0;
    let after = 0;
    for (;;) {
      if (settings.stopping()) return { kind: "stopped" };
      const from = after;
      const outcome = await inTransaction(db, (tx) => deleteBatch(tx, settings, claimed, from));
      if (outcome.kind === "lost") return { kind: "lost" };
      if (outcome.kind === "empty") break;
      deletedNow += outcome.count;
      after = outcome.lastRecordId;
      settings.logSignals.inboxCommitted();
      // Let the rest of the process in between batches (on the embedded database every query
      // resolves without I/O: a long deletion would otherwise hold off every HTTP request).
      await new Promise((resolve) => setImmediate(resolve));
    }
    const deletion = (await findDeletion(db, claimed.tableId)) ?? claimed;
    if (deletedNow > 0)
      log.info(
        { recordsDeleted: deletion.recordsDeleted },
        "table deletion: every record is deleted, each with its DELETE event",
      );

    // 2. Delivery: the position of the last DELETE event.
    let lastPosition: number | null = null;
    if (deletion.lastEventId !== null) {
      const last = await eventPosition(db, deletion.lastEventId);
      if (last.kind === "unstamped") {
        await postponeDeletion(
          db,
          deletion.tableId,
          settings.owner,
          settings.spacing.firstMs,
          null,
        );
        return { kind: "waiting" };
      }
      if (last.kind === "stamped") lastPosition = last.position;
    }

    // 3. The end, or another wait.
    const finish = await inTransaction(db, (tx) =>
      finishIfDelivered(tx, settings, deletion, lastPosition),
    );
    if (finish.kind === "lost") return { kind: "lost" };
    if (finish.kind === "records-left") continue;
    if (finish.kind === "behind") {
      const checks = deletion.deliveryChecks;
      // Said once, then about hourly at the longest spacing.
      if (checks % 60 === 0)
        log.info(
          { subscriptionIds: finish.subscriptionIds, lastPosition, checks },
          "table deletion: waiting for these subscriptions to pass the table's DELETE events before disabling them",
        );
      await postponeDeletion(
        db,
        deletion.tableId,
        settings.owner,
        deliveryCheckDelay(checks, settings.spacing),
        lastPosition,
      );
      return { kind: "waiting" };
    }
    log.info(
      {
        recordsDeleted: deletion.recordsDeleted,
        subscriptionsDisabled: finish.subscriptionsDisabled,
        lastPosition,
      },
      "table deleted: its records are gone and its subscriptions disabled (TABLE_DELETED)",
    );
    return {
      kind: "done",
      recordsDeleted: deletion.recordsDeleted,
      subscriptionsDisabled: finish.subscriptionsDisabled,
    };
  }
}
