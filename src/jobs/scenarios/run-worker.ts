/**
 * The scenario run worker (SPEC §7.4, DESIGN §6b): every process with the `worker` role moves the
 * runs that are due, batch after batch (run-mover.ts), workers of every process side by side (each
 * batch takes its runs with SKIP LOCKED, so none waits for another).
 *
 * When it looks: at once when woken (a run created in this process: JobSignals; in another:
 * a NOTIFY on JOBS_CHANNEL), again at once while batches come back full, then at the earliest due
 * time of the runs still going when that comes before the next poll (`pollMs`, the safety net). A
 * WAIT's end is a due time in the database, so a restart loses none: the next worker finds it.
 *
 * The loop is in one of three modes: `idle` (a timer armed), `moving` (taking batches) or
 * `stopping`. Stopping lets the batch in flight commit (or roll back) and takes no more.
 *
 * Every time the worker uses comes from `now` (default the system clock): tests move runs through
 * their WAITs on a test clock with runDue.
 */
import type { Logger } from "pino";
import type { HeraldConfig } from "../../config/config.js";
import type { BackgroundService } from "../../background-service.js";
import { defaultWorkerId } from "../../background-service.js";
import { DatabaseOutageLog } from "../../database-outage-log.js";
import type { Database, Unlisten } from "../../storage/database.js";
import { JOBS_CHANNEL } from "../../storage/job-channels.js";
import type { JobSignals } from "../../storage/job-signals.js";
import type { LogSignals } from "../../storage/log-signals.js";
import { earliestRunDueAt } from "../../storage/scenario-run-repository.js";
import type { MoveResult } from "./run-mover.js";
import { moveDueRuns } from "./run-mover.js";

export const SCENARIO_RUN_WORKER_DEFAULTS = {
  /** Between two looks when no due time comes sooner. */
  pollMs: 1_000,
  /**
   * Runs per transaction. The embedded database runs every statement on the process's one
   * session, where an API request waits for a batch to end: smaller batches there.
   */
  batchSize: { postgres: 500, pglite: 100 },
  /**
   * Batches moved side by side. On PostgreSQL each has its own session and takes other runs (SKIP
   * LOCKED); the embedded database has one session, where a second batch would only queue.
   */
  concurrency: { postgres: 2, pglite: 1 },
  /**
   * When runs are due but none could be taken (another worker's batches hold them all): the next
   * look, soon, since those batches end in moments.
   */
  busyRetryMs: 50,
} as const;

export interface ScenarioRunWorkerOptions {
  db: Database;
  /** Wakes this process's sequencer after a batch appended events. */
  logSignals: LogSignals;
  /** Runs created in this process wake the worker at once. */
  jobSignals: JobSignals;
  logger: Logger;
  config: Pick<HeraldConfig, "workerId">;
  /** The clock of due times (tests: a test clock). */
  now?: () => Date;
  pollMs?: number;
  batchSize?: number;
  concurrency?: number;
}

export interface ScenarioRunWorker extends BackgroundService {
  /** Look for due runs now. */
  wake(): void;
  /** Moves every run due now (batch after batch until one is not full); resolves with what was done. */
  runDue(): Promise<MoveResult>;
}

type Mode = "idle" | "moving" | "stopping";

export async function startScenarioRunWorker(
  options: ScenarioRunWorkerOptions,
): Promise<ScenarioRunWorker> {
  const { db } = options;
  const owner = `${options.config.workerId ?? defaultWorkerId()}:scenario-runs`;
  const logger = options.logger.child({ component: "scenario-runs", worker: owner });
  const now = options.now ?? (() => new Date());
  const pollMs = options.pollMs ?? SCENARIO_RUN_WORKER_DEFAULTS.pollMs;
  const batchSize = options.batchSize ?? SCENARIO_RUN_WORKER_DEFAULTS.batchSize[db.kind];
  const concurrency = db.capabilities.concurrentSessions
    ? (options.concurrency ?? SCENARIO_RUN_WORKER_DEFAULTS.concurrency.postgres)
    : 1;
  const context = { db, logSignals: options.logSignals, logger };
  const outage = new DatabaseOutageLog(logger, "scenario runs");

  let mode: Mode = "idle";
  /** A wake-up arrived while moving: look once more before going idle. */
  let again = false;
  let timer: NodeJS.Timeout | undefined;
  /** The round in progress (runDue and stop wait for it). */
  let current: Promise<MoveResult> = Promise.resolve(emptyResult());

  function look(): Promise<MoveResult> {
    if (mode === "stopping") return Promise.resolve(emptyResult());
    if (mode === "moving") {
      again = true;
      return current;
    }
    mode = "moving";
    if (timer) clearTimeout(timer);
    timer = undefined;
    current = round();
    return current;
  }

  /** Batches until one is not full (and once more after a wake-up meanwhile), then the timer. */
  async function round(): Promise<MoveResult> {
    const total = emptyResult();
    let delayMs = pollMs;
    try {
      let earliest: Date | undefined;
      do {
        again = false;
        let full = true;
        while (full && mode === "moving") {
          const at = now();
          // Settled all, so that a failing batch never leaves another running past a stop.
          const settled = await Promise.allSettled(
            Array.from({ length: concurrency }, () => moveDueRuns(context, at, batchSize)),
          );
          full = false;
          for (const outcome of settled) {
            if (outcome.status === "rejected") throw outcome.reason;
            add(total, outcome.value);
            if (outcome.value.taken >= batchSize) full = true;
          }
        }
        if (again) continue;
        earliest = await earliestRunDueAt(db);
        // A wake-up that came while the earliest due time was read may be for a run that read did
        // not see: look once more rather than sleep past it.
      } while (again && mode === "moving");
      outage.succeeded();
      if (earliest) {
        const untilDue = earliest.getTime() - now().getTime();
        delayMs =
          untilDue <= 0 ? SCENARIO_RUN_WORKER_DEFAULTS.busyRetryMs : Math.min(pollMs, untilDue);
      }
    } catch (error) {
      outage.failed(error, "cannot move scenario runs; retrying");
    } finally {
      if (mode === "moving") {
        mode = "idle";
        arm(delayMs);
      }
    }
    return total;
  }

  function arm(delayMs: number): void {
    timer = setTimeout(() => {
      timer = undefined;
      void look();
    }, delayMs);
    timer.unref();
  }

  const unsubscribeLocal = options.jobSignals.onJobsCreated(() => void look());
  let unlisten: Unlisten | undefined;
  try {
    unlisten = await db.listen(JOBS_CHANNEL, () => void look());
  } catch (error) {
    logger.warn(
      { err: error },
      `cannot LISTEN on ${JOBS_CHANNEL}; scenario runs started by other processes are found by the poll (every ${pollMs} ms)`,
    );
  }
  logger.info({ batchSize, concurrency, pollMs }, "scenario run worker started");
  void look();

  return {
    name: "scenario-runs",
    wake: () => void look(),
    runDue: async () => {
      // A round under way may have started before the caller's runs were due: one more after it.
      await current;
      return look();
    },
    stop: async () => {
      mode = "stopping";
      if (timer) clearTimeout(timer);
      timer = undefined;
      unsubscribeLocal();
      await unlisten?.().catch(() => {});
      await current.catch(() => undefined);
    },
  };
}

function emptyResult(): MoveResult {
  return { taken: 0, moved: 0, triggers: 0, profileWrites: 0, failed: 0 };
}

function add(total: MoveResult, result: MoveResult): void {
  total.taken += result.taken;
  total.moved += result.moved;
  total.triggers += result.triggers;
  total.profileWrites += result.profileWrites;
  total.failed += result.failed;
}
