/**
 * The transactional path of a capture write (DESIGN §3): one transaction that passes the table's
 * write gate first (write-retry.ts, enterTableWriteGate), writes the record rows and appends their
 * change events, and runs again when it lost a race it can win (withWriteRetry).
 *
 * captureTransaction is the whole of a write that is one such transaction: once it has committed,
 * it wakes this process's sequencer (LogSignals.committingEvents; a write that fails committed
 * nothing and wakes nothing). gatedTransaction is the transaction alone, for a write that wakes the
 * sequencer itself once for more than the transaction: an upsert whose one-statement path may have
 * written instead, a group-committed batch of upserts.
 */
import type { DataTable } from "../domain/data-table.js";
import type { Queryable } from "../storage/database.js";
import type { CaptureContext } from "./capture-context.js";
import { enterTableWriteGate, withWriteRetry } from "./write-retry.js";

export async function captureTransaction<T>(
  capture: CaptureContext,
  table: DataTable,
  work: (tx: Queryable) => Promise<T>,
): Promise<T> {
  return capture.logSignals.committingEvents(() => gatedTransaction(capture, table, work));
}

export async function gatedTransaction<T>(
  { db }: CaptureContext,
  table: DataTable,
  work: (tx: Queryable) => Promise<T>,
): Promise<T> {
  return withWriteRetry(table, () =>
    db.transaction(async (tx) => {
      await enterTableWriteGate(tx, [table]);
      return work(tx);
    }),
  );
}
