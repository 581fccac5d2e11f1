/**
 * The in-process shortcut of job creation, for one database: a job (an execution, a
 * synchronisation) committed by this process wakes this process's job workers at once, beside the
 * NOTIFY on JOBS_CHANNEL that wakes those of other processes (job-channels.ts). Only a shortcut:
 * workers also poll, so a missed wake-up costs time, never work.
 *
 * main.ts makes one beside the database it opens and hands it to the API, the scheduler and the job
 * workers. Never share one between two Database objects: a job created in one database must not
 * send a worker of another looking for it there.
 */
export class JobSignals {
  private readonly listeners = new Set<() => void>();

  /** A job was committed by this process: wake its workers. */
  jobsCreated(): void {
    for (const listener of this.listeners) listener();
  }

  /** Workers of this process listen for local creations; returns the way to stop listening. */
  onJobsCreated(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
