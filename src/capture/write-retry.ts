/**
 * Retries a whole write transaction when it lost a race it can win on a second try: a concurrent
 * writer created the same unique key between our lookup and our insert (the retry then finds and
 * updates it), a deadlock, a serialization failure. Bounded; never turns into a 500.
 */
import type { DataTable } from "../domain/data-table.js";
import { HeraldError } from "../domain/errors.js";
import { passTableWriteGate } from "../storage/data-table-repository.js";
import type { Queryable } from "../storage/database.js";
import { SQLSTATE, sqlState } from "../storage/sql-errors.js";

export const WRITE_ATTEMPTS = 5;

/** Thrown inside a write transaction to roll it back and run it again. */
export class RetryWrite extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = "RetryWrite";
  }
}

/**
 * A table's definition changed (or the table was deleted) after the write was validated against
 * it; nothing was written. Not retried here: the request starts over from reading the definition
 * and validating its input again (api/routes/data-route-context.ts, withCurrentTable).
 */
export class StaleTableDefinition extends Error {
  constructor(tables: readonly Pick<DataTable, "name">[]) {
    super(
      `the definition of ${tables.map((t) => `'${t.name}'`).join(", ")} changed during the write`,
    );
    this.name = "StaleTableDefinition";
  }
}

/**
 * First statement of a transaction that writes records of `tables`: the write gate (migration 013).
 * Throws StaleTableDefinition when one of them is no longer at the version the write was checked
 * against.
 */
export async function enterTableWriteGate(
  tx: Queryable,
  tables: readonly Pick<DataTable, "id" | "name" | "version">[],
): Promise<void> {
  if (!(await passTableWriteGate(tx, tables))) throw new StaleTableDefinition(tables);
}

const RETRYABLE: readonly string[] = [SQLSTATE.serializationFailure, SQLSTATE.deadlockDetected];

/** True for a failure PostgreSQL resolves by rolling back one side: a deadlock, a serialization failure. */
export function lostToConcurrency(error: unknown): boolean {
  const state = sqlState(error);
  return state !== undefined && RETRYABLE.includes(state);
}

export async function withWriteRetry<T>(
  table: { name: string; entityName?: string },
  write: () => Promise<T>,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await write();
    } catch (error) {
      const state = sqlState(error);
      // The table was deleted while we wrote into it (records.table_id references data_tables).
      if (state === SQLSTATE.foreignKeyViolation)
        throw new HeraldError("HERALD_TABLE_NOT_FOUND", {
          table: table.name,
          entity: table.entityName ?? "",
        });
      const retryable = error instanceof RetryWrite || lostToConcurrency(error);
      if (!retryable) throw error;
      if (attempt >= WRITE_ATTEMPTS)
        throw new HeraldError("HERALD_CONFLICT", {
          reason: "concurrent writes to this record kept colliding; retry the request",
        });
    }
  }
}

/** Tries of a single-statement write before it hands over to the transactional path. */
export const ONE_STATEMENT_ATTEMPTS = 3;

/** Outcomes of a single-statement write that the transactional path handles in detail. */
const HAND_OVER: readonly string[] = [
  SQLSTATE.uniqueViolation,
  SQLSTATE.foreignKeyViolation,
  ...RETRYABLE,
];

/**
 * Runs a single-statement write (storage/record-event-writes.ts). `undefined` tells the caller to
 * run its transactional path instead: when the statement failed on a taken unique value (that path
 * reports which value, or finds the record a concurrent create made), a deleted table, a deadlock,
 * or when the record kept moving between our read and our write (RetryWrite) after a few tries.
 * A failed statement wrote nothing, so handing over is always safe.
 */
export async function inOneStatement<T>(write: () => Promise<T>): Promise<T | undefined> {
  for (let attempt = 1; attempt <= ONE_STATEMENT_ATTEMPTS; attempt++) {
    try {
      return await write();
    } catch (error) {
      if (error instanceof RetryWrite) continue;
      const state = sqlState(error);
      if (state !== undefined && HAND_OVER.includes(state)) return undefined;
      throw error;
    }
  }
  return undefined;
}
