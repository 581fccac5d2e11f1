/**
 * The loop every job worker runs (DESIGN §6b): claim runnable jobs under a lease, run up to
 * `concurrency` at once, look again when one ends, wake on JOBS_CHANNEL (a job created by any
 * process) and poll as a safety net. Stopping waits for the running jobs' current step and hands
 * their leases back at once, so the next worker goes on with them instead of after the lease's life.
 *
 * The loop is in one of three modes: `idle` (waiting for a wake-up or the poll), `claiming`
 * (looking for work) or `stopping`. What a job is, how it is claimed, run and handed back is the
 * worker's (import-worker.ts, table-deletion-worker.ts).
 */
import type { Logger } from "pino";
import type { BackgroundService } from "../background-service.js";
import { DatabaseOutageLog } from "../database-outage-log.js";
import type { Database, Unlisten } from "../storage/database.js";
import { JOBS_CHANNEL } from "../storage/job-channels.js";
import type { JobSignals } from "../storage/job-signals.js";

export interface JobLoopOptions<J> {
  db: Database;
  /** This process's job signals: a job created here wakes the loop at once. */
  jobSignals: JobSignals;
  logger: Logger;
  /** The service's name, and what waits for the database in an outage ("imports"). */
  name: string;
  pollMs: number;
  concurrency: number;
  /** One runnable job under this worker's lease, or undefined when there is none. */
  claim(): Promise<J | undefined>;
  keyOf(job: J): string;
  /** Runs one job to its end; never rejects (the worker records its own failures). */
  run(job: J): Promise<void>;
  /** Hands back every lease this worker holds (at stop). */
  releaseAll(): Promise<unknown>;
}

export interface JobLoop extends BackgroundService {
  /** Look for work now (a job was created in this process). */
  wake(): void;
  /** True once stop() was called: running jobs end after their current step. */
  stopping(): boolean;
}

type Mode = "idle" | "claiming" | "stopping";

export async function startJobLoop<J>(options: JobLoopOptions<J>): Promise<JobLoop> {
  const { db, logger, concurrency } = options;
  let mode: Mode = "idle";
  let again = false;
  const running = new Map<string, Promise<void>>();
  let timer: NodeJS.Timeout | undefined;
  /** The current round of claims: stop waits for it, so a job claimed meanwhile is waited for too. */
  let looking: Promise<void> = Promise.resolve();
  /** A database outage is logged once, not at every poll that fails because of it. */
  const outage = new DatabaseOutageLog(logger, options.name);

  function start(job: J): void {
    const key = options.keyOf(job);
    const done = options.run(job).finally(() => {
      running.delete(key);
      void look();
    });
    running.set(key, done);
  }

  function look(): Promise<void> {
    if (mode === "stopping") return Promise.resolve();
    if (mode === "claiming") {
      again = true;
      return looking;
    }
    mode = "claiming";
    looking = claimRound();
    return looking;
  }

  async function claimRound(): Promise<void> {
    try {
      do {
        again = false;
        while (mode === "claiming" && running.size < concurrency) {
          const job = await options.claim();
          if (!job) break;
          start(job);
        }
      } while (again && mode === "claiming" && running.size < concurrency);
      outage.succeeded();
    } catch (error) {
      outage.failed(error, `cannot look for ${options.name} to run; will retry`);
    } finally {
      if (mode === "claiming") mode = "idle";
    }
  }

  const unsubscribeLocal = options.jobSignals.onJobsCreated(() => void look());
  let unlisten: Unlisten | undefined;
  try {
    unlisten = await db.listen(JOBS_CHANNEL, () => void look());
  } catch (error) {
    logger.warn(
      { err: error },
      `cannot LISTEN on ${JOBS_CHANNEL}; ${options.name} start on the poll only`,
    );
  }
  const tick = () => {
    timer = setTimeout(() => {
      void look().finally(() => {
        if (mode !== "stopping") tick();
      });
    }, options.pollMs);
    timer.unref();
  };
  tick();
  void look();

  return {
    name: options.name,
    wake: () => void look(),
    stopping: () => mode === "stopping",
    stop: async () => {
      mode = "stopping";
      if (timer) clearTimeout(timer);
      unsubscribeLocal();
      await unlisten?.().catch(() => {});
      await looking;
      await Promise.allSettled([...running.values()]);
      await options.releaseAll().catch(() => {});
    },
  };
}
