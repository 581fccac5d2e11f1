/**
 * The lease SQL that the tables of durable jobs share (DESIGN §6b): a worker claims a row under a
 * lease (`lease_owner`, `lease_until`), renews it while it works, counts a run that failed on an
 * unexpected error (`failures`), and hands its leases back when it stops. Each repository names its
 * own functions after these (renewExecutionLease, claimSynchronization, …); what differs per table
 * (an export's claim, which keeps one export's executions in order) stays in its repository.
 */
import type { Queryable } from "./database.js";

/** The tables of jobs run under a lease; a closed list, as it is written into the SQL. */
export type LeasedJobTable = "etl_executions" | "file_synchronizations" | "export_executions";

/** The lease operations on one table. */
export function leasedJobs(table: LeasedJobTable) {
  return {
    /** Extends the lease; false when `owner` lost it (another worker took the job) or it is gone. */
    async renew(db: Queryable, id: string, owner: string, leaseMs: number): Promise<boolean> {
      const { rowCount } = await db.query(
        `UPDATE ${table} SET lease_until = now() + make_interval(secs => $3 / 1000.0)
          WHERE id = $1 AND lease_owner = $2 AND status = 'RUNNING'`,
        [Number(id), owner, leaseMs],
      );
      return rowCount > 0;
    },

    /**
     * Counts a run that ended on an unexpected error (the job stays RUNNING under `owner`'s lease
     * until it expires); the failures so far, or undefined when `owner` no longer holds it.
     */
    async recordFailure(db: Queryable, id: string, owner: string): Promise<number | undefined> {
      const { rows } = await db.query<{ failures: number }>(
        `UPDATE ${table} SET failures = failures + 1
          WHERE id = $1 AND lease_owner = $2 AND status = 'RUNNING'
          RETURNING failures`,
        [Number(id), owner],
      );
      return rows[0]?.failures;
    },

    /** Hands a stopping worker's jobs back (no lease at all): the next claim takes them at once. */
    async release(db: Queryable, owner: string): Promise<void> {
      await db.query(
        `UPDATE ${table} SET lease_owner = NULL, lease_until = NULL
          WHERE lease_owner = $1 AND status = 'RUNNING'`,
        [owner],
      );
    },

    /** True when a worker could claim a job now (a cheap look before a claim transaction). */
    async hasRunnable(db: Queryable): Promise<boolean> {
      const { rowCount } = await db.query(
        `SELECT 1 FROM ${table}
          WHERE status IN ('PENDING', 'RUNNING') AND (lease_until IS NULL OR lease_until < now())
          LIMIT 1`,
      );
      return rowCount > 0;
    },

    /**
     * Claims the oldest runnable job for `owner`: a PENDING one, or a RUNNING one without a live
     * lease (its worker died or stopped). SKIP LOCKED: concurrent claimers never wait for or take
     * the same row. The row's `columns`, and `started`: this claim started it (PENDING → RUNNING;
     * the caller appends STARTED in this same transaction).
     */
    async claim<Row>(
      tx: Queryable,
      owner: string,
      leaseMs: number,
      columns: readonly string[],
    ): Promise<{ row: Row; started: boolean } | undefined> {
      const { rows } = await tx.query<Row & { was: string }>(
        `WITH candidate AS (
           SELECT id, status AS was FROM ${table}
            WHERE status IN ('PENDING', 'RUNNING')
              AND (lease_until IS NULL OR lease_until < now())
            ORDER BY id
            LIMIT 1
            FOR UPDATE SKIP LOCKED)
         UPDATE ${table} j
            SET status = 'RUNNING', lease_owner = $1,
                lease_until = now() + make_interval(secs => $2 / 1000.0),
                started_at = coalesce(j.started_at, now()), runs = j.runs + 1
           FROM candidate c
          WHERE j.id = c.id
         RETURNING ${columns.map((c) => `j.${c}`).join(", ")}, c.was`,
        [owner, leaseMs],
      );
      const row = rows[0];
      return row ? { row, started: row.was === "PENDING" } : undefined;
    },
  };
}
