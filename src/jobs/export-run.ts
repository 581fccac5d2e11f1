/**
 * One run of an export execution (SPEC §7.3, DESIGN §6b): read the table (FULL, or an INCREMENTAL
 * export's first run) or its changes (later INCREMENTAL runs) in one snapshot, stream the rows into
 * a file of the file store, copy that file to the destination reference if there is one, and end
 * the execution with its FINISHED event.
 *
 * Two ways to the same bytes. On PostgreSQL, a CSV export of every record (FULL, or an INCREMENTAL
 * export's first run) without conditions lets PostgreSQL write the lines: `COPY (SELECT …) TO
 * STDOUT` in the snapshot's transaction, its bytes stored as they come (the worker's CPU per row was
 * the export's limit: README, Performance, Exports). Otherwise (conditions, which are checked in
 * JavaScript; later INCREMENTAL runs; NDJSON; the embedded database) the rows come through a
 * cursor and are written here.
 *
 * The file is written in a transaction: the snapshot's own on the cursor's path, one of its own on
 * another connection on the COPY's (the COPY holds the snapshot's connection), committed once the
 * COPY ended. Until it commits nobody sees the file, and a run that fails or dies midway leaves
 * nothing behind (the next run starts over). The execution records its file once that transaction
 * committed, and is SUCCESS only after the copy: nothing is downloadable before, and an ERROR
 * execution's file is deleted (never offered as complete).
 */
import type { Logger } from "pino";
import type { AttributeMap } from "../domain/change-event.js";
import { conditionsHold } from "../domain/conditions.js";
import type { DataTable } from "../domain/data-table.js";
import type { ExportDefinition } from "../domain/export-definition.js";
import {
  exportColumns,
  exportFields,
  exportFileName,
  wantedSegment,
} from "../domain/export-definition.js";
import { renderValue } from "../domain/rendered-values.js";
import { appendChangeEvents } from "../storage/change-event-repository.js";
import { findTableById } from "../storage/data-table-repository.js";
import type { Database } from "../storage/database.js";
import type { RowSelection } from "../storage/export-reads.js";
import {
  allRowsSql,
  changedRowsSql,
  copyAllRowsSql,
  copyRenders,
  cursorRows,
  inSnapshot,
  preferLz4,
  readFrontier,
} from "../storage/export-reads.js";
import type {
  ExportOutput,
  StoredExport,
  StoredExportExecution,
} from "../storage/export-repository.js";
import {
  advanceIncremental,
  findExportById,
  finishExportExecution,
  recordExportOutput,
  renewExportLease,
} from "../storage/export-repository.js";
import { deleteFile, FileTooLarge, storeFile } from "../storage/file-store.js";
import type { LogSignals } from "../storage/log-signals.js";
import { findEntityById } from "../storage/tenancy-repository.js";
import { exportFinishedEvent } from "./export-events.js";
import type { ExportValue } from "./export-file-writer.js";
import { exportCsvContent, exportFileContent } from "./export-file-writer.js";

/** Copies a stored file to an export's destination reference; returns where it went. */
export type DestinationCopier = (
  entityId: number,
  fileReference: string,
  file: { id: string; name: string },
) => Promise<string>;

export interface ExportRunSettings {
  db: Database;
  /** FINISHED wakes this process's sequencer through them. */
  logSignals: LogSignals;
  logger: Logger;
  owner: string;
  leaseMs: number;
  /** Rows per FETCH of the snapshot's cursor. */
  batchRows: number;
  retentionDays: number;
  maxFileBytes: number;
  stopping(): boolean;
  copy: DestinationCopier | undefined;
}

/** The run stopped before its end (the worker stops, or the lease was lost): it runs again later. */
export class ExportInterrupted extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = "ExportInterrupted";
  }
}

/** A reason the export cannot be made, shown as the execution's error. */
class ExportFailure extends Error {
  constructor(
    readonly code: "HERALD_EXPORT_FAILED" | "HERALD_EXPORT_COPY_FAILED",
    message: string,
  ) {
    super(message);
  }
}

export async function runExportExecution(
  settings: ExportRunSettings,
  execution: StoredExportExecution,
): Promise<void> {
  const { db } = settings;
  const exp = await findExportById(db, execution.exportId);
  if (!exp) return; // deleted meanwhile: its executions went with it
  const entityName = (await findEntityById(db, exp.entityId))?.name ?? "";
  const log = settings.logger.child({ exportId: exp.id, executionId: execution.id });
  const lease = keepLease(settings, execution.id, log);
  let output: ExportOutput | undefined;
  try {
    const table = await findTableById(db, exp.tableId);
    if (!table)
      throw new ExportFailure(
        "HERALD_EXPORT_FAILED",
        `table '${exp.definition.source.table}' no longer exists; point the export at another table (PUT) or delete it`,
      );
    const written = await writeFile(settings, exp, table, execution, lease);
    output = written.output;
    if (!(await recordExportOutput(db, execution.id, settings.owner, output))) {
      await deleteFile(db, output.fileId);
      throw new ExportInterrupted("the execution's lease was lost");
    }
    let destination: string | undefined;
    const reference = exp.definition.destination?.fileReference;
    if (reference !== undefined) {
      if (!settings.copy)
        throw new ExportFailure(
          "HERALD_EXPORT_COPY_FAILED",
          "this Herald cannot copy to file references",
        );
      try {
        destination = await settings.copy(exp.entityId, reference, {
          id: output.fileId,
          name: output.fileName,
        });
      } catch (error) {
        throw new ExportFailure(
          "HERALD_EXPORT_COPY_FAILED",
          `the copy to file reference '${reference}' failed: ${(error as Error).message}`,
        );
      }
    }
    const done = await finish(settings, exp, entityName, execution.id, "SUCCESS", {
      ...(destination === undefined ? {} : { destination }),
      output,
    });
    log.info(
      { status: done?.status, rows: output.rowCount, bytes: output.bytes, path: written.path },
      "export execution finished",
    );
  } catch (error) {
    if (error instanceof ExportInterrupted) throw error;
    const failure =
      error instanceof ExportFailure
        ? error
        : error instanceof FileTooLarge
          ? new ExportFailure(
              "HERALD_EXPORT_FAILED",
              `the file exceeds ${error.limit} bytes (HERALD_MAX_FILE_BYTES); export fewer fields or rows, or raise the limit`,
            )
          : undefined;
    if (!failure) throw error;
    log.warn({ reason: failure.message }, "export execution failed");
    await finish(settings, exp, entityName, execution.id, "ERROR", {
      error: { code: failure.code, message: failure.message },
      ...(output ? { output } : {}),
    });
  } finally {
    lease.stop();
  }
}

interface Lease {
  lost(): boolean;
  stop(): void;
}

/** Renews the lease while the run goes (a third of its life), from a connection of its own. */
function keepLease(settings: ExportRunSettings, id: string, log: Logger): Lease {
  let lost = false;
  const timer = setInterval(() => {
    renewExportLease(settings.db, id, settings.owner, settings.leaseMs)
      .then((held) => {
        if (!held) lost = true;
      })
      .catch((error: unknown) => log.warn({ err: error }, "cannot renew the export's lease"));
  }, settings.leaseMs / 3);
  timer.unref();
  return { lost: () => lost, stop: () => clearInterval(timer) };
}

/** What the rows are selected by: the fields, plus the attributes the conditions read. */
function selectionOf(definition: ExportDefinition, table: DataTable): RowSelection {
  const columns = [...exportFields(definition, table)];
  for (const c of definition.filter.conditions)
    if (!columns.includes(c.attribute)) columns.push(c.attribute);
  return {
    table,
    columns,
    segment: wantedSegment(definition.filter),
    subscription: definition.filter.subscription,
  };
}

function rendered(value: unknown): ExportValue {
  if (value === null || value === undefined) return null;
  if (typeof value === "string") return value;
  return renderValue(value);
}

/**
 * Whether PostgreSQL's COPY writes this export's file byte for byte as the cursor's path would: CSV,
 * no conditions (they are checked in JavaScript), a separator COPY takes (one ASCII character), two
 * columns or more, and values COPY renders as JavaScript does (copyRenders). The caller also needs
 * every record (no change log) and a database with COPY.
 */
export function copyFits(definition: ExportDefinition, table: DataTable): boolean {
  const { format } = definition;
  const separator = format.separator.charCodeAt(0);
  return (
    format.type === "CSV" &&
    definition.filter.conditions.length === 0 &&
    format.separator.length === 1 &&
    separator > 0 &&
    separator < 128 &&
    exportColumns(definition, table).length >= 2 &&
    copyRenders(table, exportFields(definition, table))
  );
}

async function writeFile(
  settings: ExportRunSettings,
  exp: StoredExport,
  table: DataTable,
  execution: StoredExportExecution,
  lease: Lease,
): Promise<{ output: ExportOutput; path: "copy" | "cursor" }> {
  const { definition } = exp;
  const selection = selectionOf(definition, table);
  const fields = exportFields(definition, table);
  const conditions = definition.filter.conditions;
  const incremental = definition.mode === "INCREMENTAL";
  const fileName = exportFileName(exp.name, execution.id, definition.format);
  const entryName = fileName.replace(
    /\.zip$/,
    definition.format.type === "CSV" ? ".csv" : ".ndjson",
  );
  const fileOptions = {
    entityId: exp.entityId,
    name: fileName,
    retentionDays: settings.retentionDays,
    maxBytes: settings.maxFileBytes,
  };
  const checkGoing = () => {
    if (settings.stopping()) throw new ExportInterrupted("the worker is stopping");
    if (lease.lost()) throw new ExportInterrupted("the execution's lease was lost");
  };
  let rowCount = 0;
  /** The COPY path's file, committed before the snapshot's transaction ends. */
  let committed: string | undefined;

  /** The selected columns' names in a row (c0, c1, …), made once rather than per value. */
  const keys = selection.columns.map((_, i) => `c${i}`);
  /** A row's state for the conditions, from the selected columns. */
  const stateOf = (row: Record<string, unknown>): AttributeMap => {
    const state: AttributeMap = {};
    selection.columns.forEach((name, i) => {
      state[name] = row[keys[i]!] as AttributeMap[string];
    });
    return state;
  };
  const passes = (row: Record<string, unknown>) =>
    conditions.length === 0 ||
    conditionsHold({ stateAfterOperation: conditions }, null, stateOf(row));
  const values = (row: Record<string, unknown>) => {
    const out: ExportValue[] = new Array<ExportValue>(fields.length);
    for (let i = 0; i < fields.length; i++) out[i] = rendered(row[keys[i]!]);
    return out;
  };

  const written = inSnapshot(settings.db, async (tx) => {
    const frontier = await readFrontier(tx, table);
    await preferLz4(tx);
    // The export's position as this snapshot sees it (the previous execution committed its move).
    const current = await findExportById(tx, exp.id);
    const from = incremental ? (current?.incrementalPosition ?? null) : null;
    const output = (file: { id: string; bytes: number }): ExportOutput => ({
      mode: definition.mode,
      fileId: file.id,
      fileName,
      rowCount,
      bytes: file.bytes,
      fromPosition: from,
      toPosition: frontier.head,
      skipEventIds: frontier.unstamped,
    });

    if (from === null && tx.copyOut && copyFits(definition, table)) {
      const sql = copyAllRowsSql(selection, {
        operation: incremental,
        separator: definition.format.separator,
      });
      const copy = tx.copyOut(sql);
      const chunks = copy[Symbol.asyncIterator]();
      let ended = false;
      async function* body(): AsyncGenerator<Buffer> {
        try {
          for (;;) {
            const next = await chunks.next();
            if (next.done) break;
            checkGoing();
            yield next.value;
          }
          ended = true;
        } finally {
          // Stopped early (a failure, a stop): the COPY is ended too, before the snapshot is.
          if (!ended) await chunks.return?.();
        }
      }
      const content = exportCsvContent(
        exportColumns(definition, table),
        body(),
        definition.format,
        entryName,
      );
      const file = await settings.db
        .transaction(async (out) => {
          await preferLz4(out);
          return storeFile(out, fileOptions, content);
        })
        .finally(async () => {
          if (!ended) await chunks.return?.();
        });
      committed = file.id;
      rowCount = copy.rowCount;
      return { output: output(file), path: "copy" as const };
    }
    const sql =
      from === null
        ? allRowsSql(selection)
        : changedRowsSql(selection, {
            from,
            to: frontier.head,
            skip: current?.incrementalSkip ?? [],
            eventTypes:
              selection.segment || selection.subscription
                ? ["CREATE", "UPDATE", "DELETE", "UPDATED_SEGMENT", "UPDATED_SUBSCRIPTION"]
                : ["CREATE", "UPDATE", "DELETE"],
          });

    /**
     * Settles once the rows' generator has ended (its FETCH in flight awaited): a failure of the
     * file's writing must not end the transaction while it could still send a FETCH on it.
     */
    let reading: Promise<void> = Promise.resolve();
    let doneReading = () => {};
    async function* rows(): AsyncGenerator<ExportValue[][]> {
      reading = new Promise((resolve) => (doneReading = resolve));
      try {
        yield* batches();
      } finally {
        doneReading();
      }
    }
    async function* batches(): AsyncGenerator<ExportValue[][]> {
      for await (const batch of cursorRows(tx, sql, settings.batchRows)) {
        checkGoing();
        const out: ExportValue[][] = [];
        for (const row of batch) {
          if (from === null) {
            if (!passes(row)) continue;
            out.push(incremental ? ["CREATE", ...values(row)] : values(row));
          } else if (row.op !== "DELETE" && row.member === true && passes(row)) {
            out.push([row.op as string, ...values(row)]);
          } else {
            // Deleted, or no longer in the filter: the consumer removes it by its keys.
            const keys = (row.keys ?? {}) as Record<string, unknown>;
            out.push(["DELETE", ...fields.map((f) => rendered(keys[f]))]);
          }
        }
        rowCount += out.length;
        if (out.length > 0) yield out;
      }
    }

    const content = exportFileContent(
      exportColumns(definition, table),
      rows(),
      definition.format,
      entryName,
    );
    const file = await storeFile(tx, fileOptions, content).catch(async (error: unknown) => {
      await reading;
      throw error;
    });
    return { output: output(file), path: "cursor" as const };
  });
  // The COPY's file committed, then the snapshot failed to end: the file is no one's.
  return written.catch(async (error: unknown) => {
    if (committed !== undefined) await deleteFile(settings.db, committed).catch(() => {});
    throw error;
  });
}

/**
 * Ends the execution with its FINISHED event in one transaction; a SUCCESS of an INCREMENTAL
 * execution also moves the export's position, unless a PUT restarted the export meanwhile (then it
 * ends ERROR: its changes are in the next execution again). An ERROR execution's file is deleted.
 */
export async function finish(
  settings: Pick<ExportRunSettings, "db" | "logSignals" | "owner">,
  exp: StoredExport,
  entityName: string,
  executionId: string,
  status: "SUCCESS" | "ERROR",
  extra: { destination?: string; output?: ExportOutput; error?: { code: string; message: string } },
  owner: string | null = settings.owner,
): Promise<StoredExportExecution | undefined> {
  const { db, logSignals } = settings;
  const done = await logSignals.committingEvents(() =>
    db.transaction(async (tx) => {
      let final = status;
      let error = extra.error;
      const output = extra.output;
      if (status === "SUCCESS" && output?.mode === "INCREMENTAL") {
        const moved = await advanceIncremental(
          tx,
          exp,
          output.fromPosition,
          output.toPosition,
          output.skipEventIds,
        );
        if (!moved) {
          final = "ERROR";
          error = {
            code: "HERALD_EXPORT_FAILED",
            message:
              "the export was changed (PUT) while this execution ran, so its file may follow the former definition; the next execution writes these changes under the current one",
          };
        }
      }
      const ended = await finishExportExecution(tx, executionId, owner, final, {
        ...(extra.destination === undefined ? {} : { destination: extra.destination }),
        ...(error ? { error } : {}),
      });
      if (ended)
        await appendChangeEvents(
          tx,
          [exportFinishedEvent(ended, exp.name, entityName)],
          logSignals,
        );
      return ended;
    }),
  );
  if (done?.status === "ERROR" && extra.output) await deleteFile(db, extra.output.fileId);
  return done;
}
