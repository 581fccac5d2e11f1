/**
 * Retries a whole write transaction when it lost a race it can win on a second try: a concurrent
 * writer created the same unique key between our lookup and our insert (the retry then finds and
 * updates it), a deadlock, a serialization failure. Bounded; never turns into a 500.
 */
import { HeraldError } from "../domain/errors.js";
import { SQLSTATE, sqlState } from "../storage/sql-errors.js";

export const WRITE_ATTEMPTS = 5;

/** Thrown inside a write transaction to roll it back and run it again. */
export class RetryWrite extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = "RetryWrite";
  }
}

const RETRYABLE: readonly string[] = [SQLSTATE.serializationFailure, SQLSTATE.deadlockDetected];

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
      const retryable =
        error instanceof RetryWrite || (state !== undefined && RETRYABLE.includes(state));
      if (!retryable) throw error;
      if (attempt >= WRITE_ATTEMPTS)
        throw new HeraldError("HERALD_CONFLICT", {
          reason: "concurrent writes to this record kept colliding; retry the request",
        });
    }
  }
}
