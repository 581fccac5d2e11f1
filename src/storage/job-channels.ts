/**
 * Wake-ups for job workers: a NOTIFY on JOBS_CHANNEL when an execution is created (for workers of
 * other processes), and an in-process shortcut for the workers of this one. Both are only
 * shortcuts: workers also poll, so a missed wake-up costs time, never work.
 */
import type { Database, Queryable } from "./database.js";

export const JOBS_CHANNEL = "herald_jobs";

/** Sends the NOTIFY in the caller's transaction (delivered at commit). */
export async function notifyJobs(tx: Queryable): Promise<void> {
  await tx.query(`SELECT pg_notify('${JOBS_CHANNEL}', '')`);
}

const local = new WeakMap<Database, Set<() => void>>();

/** An execution was committed by this process: wake its workers. */
export function jobsCreated(db: Database): void {
  for (const listener of local.get(db) ?? []) listener();
}

/**
 * Records a job (an execution, a synchronisation) with `insert` in a transaction of its own,
 * NOTIFYing the workers of every process at commit, then wakes this process's workers. Returns
 * what `insert` returned.
 */
export async function createJob<T>(
  db: Database,
  insert: (tx: Queryable) => Promise<T>,
): Promise<T> {
  const created = await db.transaction(async (tx) => {
    const row = await insert(tx);
    await notifyJobs(tx);
    return row;
  });
  jobsCreated(db);
  return created;
}

/** Workers of this process listen for local creations; returns the way to stop listening. */
export function onJobsCreated(db: Database, listener: () => void): () => void {
  let set = local.get(db);
  if (!set) {
    set = new Set();
    local.set(db, set);
  }
  set.add(listener);
  return () => set.delete(listener);
}
