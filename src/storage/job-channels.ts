/**
 * Wake-ups for job workers: a NOTIFY on JOBS_CHANNEL when an execution is created (for workers of
 * other processes), and the in-process shortcut for the workers of this one (job-signals.ts). Both
 * are only shortcuts: workers also poll, so a missed wake-up costs time, never work.
 */
import type { Database, Queryable } from "./database.js";
import type { JobSignals } from "./job-signals.js";

export const JOBS_CHANNEL = "herald_jobs";

/** Sends the NOTIFY in the caller's transaction (delivered at commit). */
export async function notifyJobs(tx: Queryable): Promise<void> {
  await tx.query(`SELECT pg_notify('${JOBS_CHANNEL}', '')`);
}

/**
 * Records a job (an execution, a synchronisation) with `insert` in a transaction of its own,
 * NOTIFYing the workers of every process at commit, then wakes this process's workers. Returns
 * what `insert` returned.
 */
export async function createJob<T>(
  target: { db: Database; jobSignals: JobSignals },
  insert: (tx: Queryable) => Promise<T>,
): Promise<T> {
  const created = await target.db.transaction(async (tx) => {
    const row = await insert(tx);
    await notifyJobs(tx);
    return row;
  });
  target.jobSignals.jobsCreated();
  return created;
}
