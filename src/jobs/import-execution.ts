/**
 * Runs one claimed import execution to its end (SPEC §7.1, DESIGN §6b): open the file, check its
 * header, then read rows into batches and commit each with its checkpoint (import-batch.ts). A
 * resumed execution (its worker died, or stopped) reads the file again from its start and skips
 * the records its committed checkpoint covers, unapplied: no row is applied twice, none is missed.
 *
 * The run ends with FINISHED in the transaction of its final status: SUCCESS (every line applied),
 * WITH_ERROR (some lines rejected), ERROR (the file, the table or the limit of rejected rows
 * stopped it; rows written stay) or CANCELLED. When this worker stops, or loses its lease, the run
 * ends without a final status, and whoever claims the execution next resumes it.
 */
import type { Logger } from "pino";
import { StaleTableDefinition, lostToConcurrency } from "../capture/write-retry.js";
import type { DataTable } from "../domain/data-table.js";
import { HeraldError } from "../domain/errors.js";
import { appendChangeEvents } from "../storage/change-event-repository.js";
import { findTableById } from "../storage/data-table-repository.js";
import type { Database } from "../storage/database.js";
import type { ExecutionStatus, StoredExecution } from "../storage/etl-execution-repository.js";
import { finishExecution, renewExecutionLease } from "../storage/etl-execution-repository.js";
import { findFile } from "../storage/file-store.js";
import type { LogSignals } from "../storage/log-signals.js";
import { SQLSTATE, sqlState } from "../storage/sql-errors.js";
import { findEntityById } from "../storage/tenancy-repository.js";
import { etlTriggerEvent } from "./etl-events.js";
import type { BatchContext, PendingRow } from "./import-batch.js";
import { BatchRaced, LostLease, runImportBatch } from "./import-batch.js";
import type { FileRow, ImportReader } from "./import-file-reader.js";
import { ABSENT, ImportFileError, openImportReader } from "./import-file-reader.js";
import type { BoundImport, ColumnPlan } from "./import-rows.js";
import { bindImport, mapRow, planColumns } from "./import-rows.js";

export interface ImportRunSettings {
  db: Database;
  /** Each committed batch and FINISHED wake this process's sequencer through them. */
  logSignals: LogSignals;
  logger: Logger;
  /** This worker's name in leases. */
  owner: string;
  leaseMs: number;
  /** Rows a batch holds at most. */
  batchRows: number;
  maxExpandedBytes: number;
  /** True once the worker is stopping: the run hands the execution back after its current batch. */
  stopping(): boolean;
}

/**
 * Most characters of file rows waiting for their batch (with their parsed cells, about three times
 * that in memory): a batch is cut short rather than holding more.
 */
const MAX_PENDING_CHARACTERS = 16 * 1024 * 1024;

/** Tries of a batch that lost a race (a deadlock, a value a concurrent writer took meanwhile). */
const BATCH_ATTEMPTS = 5;

/** The execution cannot go on; it ends ERROR with this code and message. */
class ExecutionFailed extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "ExecutionFailed";
  }
}

function failed(code: string, message: string): ExecutionFailed {
  return new ExecutionFailed(code, message);
}

/** Columns NDJSON rows are read by: the mapped ones, or every attribute of the table. */
function ndjsonColumns(bound: BoundImport): string[] {
  return bound.mapping ? [...bound.mapping.keys()] : bound.table.attributes.map((a) => a.name);
}

/** The cells of a row in plan order; an NDJSON key outside the plan is a problem without mapping. */
function cellsOf(bound: BoundImport, plan: ColumnPlan, row: FileRow): unknown[] | string {
  if (Array.isArray(row.cells)) return row.cells as string[];
  const object = row.cells as Record<string, unknown>;
  if (!bound.mapping) {
    const unknown = Object.keys(object).find((key) => !plan.some((c) => c.column === key));
    if (unknown !== undefined) return unknown;
  }
  return plan.map(({ column }) => (Object.hasOwn(object, column) ? object[column] : ABSENT));
}

function pendingRow(
  bound: BoundImport,
  plan: ColumnPlan,
  row: FileRow,
  bytesRead: number,
): PendingRow {
  if (row.problem)
    return { row, bytesRead, mapped: { kind: "rejected", column: undefined, ...row.problem } };
  const cells = cellsOf(bound, plan, row);
  if (typeof cells === "string")
    return {
      row,
      bytesRead,
      mapped: {
        kind: "rejected",
        column: cells,
        code: "HERALD_UNKNOWN_ATTRIBUTE",
        message: `Attribute '${cells}' does not exist in table '${bound.table.name}'`,
      },
    };
  return { row, bytesRead, mapped: mapRow(bound, plan, cells) };
}

export async function runImportExecution(
  settings: ImportRunSettings,
  execution: StoredExecution,
): Promise<void> {
  const { db, logger } = settings;
  const log = logger.child({ executionId: execution.id, etlId: execution.etlId });
  const entity = await findEntityById(db, execution.entityId);
  const entityName = entity?.name ?? String(execution.entityId);
  let lost = false;
  const heartbeat = setInterval(
    () => {
      renewExecutionLease(db, execution.id, settings.owner, settings.leaseMs).then(
        (held) => {
          if (!held) lost = true;
        },
        (error: unknown) => log.warn({ err: error }, "cannot renew the import's lease; will retry"),
      );
    },
    Math.max(50, Math.floor(settings.leaseMs / 3)),
  );
  heartbeat.unref();

  let reader: ImportReader | undefined;
  let status: ExecutionStatus | undefined;
  let error: { code: string; message: string } | null = null;
  try {
    let table = await currentTable(db, execution);
    let bound = bind(execution, table);
    const file = execution.fileId ? await findFile(db, execution.fileId) : undefined;
    if (!file)
      throw failed(
        "HERALD_IMPORT_FAILED",
        "The import's file is no longer stored (it expired or was deleted)",
      );
    reader = await openImportReader(db, file, execution.definition.file, {
      maxExpandedBytes: settings.maxExpandedBytes,
    });
    const header =
      execution.definition.file.format === "CSV" ? reader.header : ndjsonColumns(bound);
    let plan = columns(bound, header);

    const skip = execution.checkpointRecords;
    let rejectedSoFar = execution.counts.rejected;
    let pending: PendingRow[] = [];
    let done = false;
    const source = reader.rows;
    const read = reader;
    // A defect of the file met while reading ends the run, once the rows before it are applied.
    let readFailure: unknown;
    // Rows wait in memory by count and by size: a file of 1 MiB lines must not hold thousands.
    let pendingCharacters = 0;
    const fill = async (limit: number) => {
      while (!done && pending.length < limit && pendingCharacters < MAX_PENDING_CHARACTERS) {
        let next: IteratorResult<FileRow>;
        try {
          next = await source.next();
        } catch (error) {
          readFailure = error;
          done = true;
          break;
        }
        if (next.done) {
          done = true;
          break;
        }
        if (next.value.index < skip) continue; // applied by an earlier run
        pending.push(pendingRow(bound, plan, next.value, read.bytesRead()));
        pendingCharacters += next.value.raw.length;
      }
    };
    for (;;) {
      if (lost) return;
      if (settings.stopping()) {
        log.info("worker stopping: the import is handed back and resumes from its checkpoint");
        return;
      }
      await fill(settings.batchRows);
      if (pending.length === 0) {
        if (readFailure !== undefined) throw readFailure;
        break;
      }
      const ctx: BatchContext = {
        bound,
        executionId: execution.id,
        etlId: execution.etlId,
        owner: settings.owner,
        rejectedSoFar,
        maxRejectedRows: execution.definition.maxRejectedRows,
      };
      let batch = pending.slice(0, settings.batchRows);
      let redefined = false;
      const commit = async () => {
        for (let attempt = 1; ; attempt++) {
          try {
            return await db.transaction((tx) => runImportBatch(tx, ctx, batch));
          } catch (caught) {
            if (caught instanceof StaleTableDefinition) {
              // The table changed: read it again, check the definition and header against it,
              // and validate the batch's rows anew.
              table = await currentTable(db, execution);
              bound = bind(execution, table);
              plan = columns(bound, header);
              ctx.bound = bound;
              batch = batch.map((p) => pendingRow(bound, plan, p.row, p.bytesRead));
              redefined = true;
              continue;
            }
            const state = sqlState(caught);
            if (state === SQLSTATE.foreignKeyViolation)
              throw failed("HERALD_IMPORT_FAILED", "The table of the import was deleted");
            const race =
              caught instanceof BatchRaced ||
              lostToConcurrency(caught) ||
              state === SQLSTATE.uniqueViolation;
            if (!race || attempt >= BATCH_ATTEMPTS) throw caught;
          }
        }
      };
      // The next batch's rows are read and validated while this one is in the database.
      const [outcome] = await Promise.all([commit(), fill(2 * settings.batchRows)]);
      // Rows read meanwhile were validated against the definition the batch started with.
      if (redefined) pending = pending.map((p) => pendingRow(bound, plan, p.row, p.bytesRead));
      settings.logSignals.inboxCommitted();
      // Let the rest of the process in between batches: on the embedded database every query
      // resolves without I/O, and a whole import would otherwise run as one chain of microtasks,
      // with no HTTP request (not even /healthz) answered until it ends.
      await new Promise((resolve) => setImmediate(resolve));
      for (const consumed of pending.slice(0, outcome.consumed))
        pendingCharacters -= consumed.row.raw.length;
      pending = pending.slice(outcome.consumed);
      rejectedSoFar = outcome.counts.rejected;
      if (outcome.tooManyRejected) {
        status = "ERROR";
        const max = execution.definition.maxRejectedRows ?? 0;
        error = {
          code: "HERALD_TOO_MANY_REJECTED_ROWS",
          message: new HeraldError("HERALD_TOO_MANY_REJECTED_ROWS", {
            count: outcome.counts.rejected,
            max,
          }).message,
        };
        break;
      }
      if (outcome.cancelRequested) {
        status = "CANCELLED";
        break;
      }
    }
    status ??= rejectedSoFar > 0 ? "WITH_ERROR" : "SUCCESS";
  } catch (caught) {
    if (caught instanceof LostLease) return;
    if (caught instanceof ExecutionFailed) {
      status = "ERROR";
      error = { code: caught.code, message: caught.message };
    } else if (caught instanceof ImportFileError) {
      status = "ERROR";
      error = {
        code: "HERALD_INVALID_FILE",
        message: `The file cannot be imported: ${caught.message}`,
      };
    } else if (caught instanceof HeraldError) {
      status = "ERROR";
      error = { code: caught.code, message: caught.message };
    } else throw caught;
  } finally {
    clearInterval(heartbeat);
    reader?.close();
  }
  if (lost) return;
  await finish(settings, execution.id, entityName, status, error);
  log.info({ status, error }, "import finished");
}

async function currentTable(db: Database, execution: StoredExecution): Promise<DataTable> {
  const table = await findTableById(db, execution.tableId);
  if (!table) throw failed("HERALD_IMPORT_FAILED", "The table of the import was deleted");
  return table;
}

function bind(execution: StoredExecution, table: DataTable): BoundImport {
  try {
    return bindImport(execution.definition, table);
  } catch (caught) {
    if (caught instanceof HeraldError)
      throw failed(
        caught.code,
        `The definition no longer fits table '${table.name}': ${caught.message}`,
      );
    throw caught;
  }
}

function columns(bound: BoundImport, header: readonly string[]): ColumnPlan {
  try {
    return planColumns(bound, header);
  } catch (caught) {
    if (caught instanceof HeraldError) throw failed(caught.code, caught.message);
    throw caught;
  }
}

/** The final status and FINISHED, in one transaction (nothing when the lease went meanwhile). */
export async function finish(
  settings: Pick<ImportRunSettings, "db" | "logSignals" | "owner">,
  executionId: string,
  entityName: string,
  status: ExecutionStatus,
  error: { code: string; message: string } | null,
): Promise<void> {
  const { db, logSignals } = settings;
  const finished = await db.transaction(async (tx) => {
    const row = await finishExecution(tx, executionId, settings.owner, status, error);
    if (row)
      await appendChangeEvents(tx, [etlTriggerEvent(row, entityName, "FINISHED")], logSignals);
    return row;
  });
  if (finished) logSignals.inboxCommitted();
}
