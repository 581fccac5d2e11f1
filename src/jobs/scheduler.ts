/**
 * The scheduler (SPEC §7 "Schedules", DESIGN §6b, docs/files-and-exports.md "Schedules"): starts
 * the runs of due schedules, each due time exactly once whatever the number of worker processes.
 *
 * A round claims one due schedule at a time in its own transaction (FOR UPDATE SKIP LOCKED, so two
 * processes never wait on nor take the same row), calls its kind's handler in that transaction (the
 * handler inserts the run's job row), moves the schedule on to its first due time after now and
 * commits: the run and the advance are one commit, so a crash in between repeats nothing and loses
 * nothing. Because the advance goes past now, a schedule whose due times passed while no worker ran
 * starts one run on the next start, not one per missed time.
 *
 * A handler that throws (its owner is gone or broken) has its statements undone (a savepoint), and
 * that due time is skipped: logged at error, recorded in the row's last_error, the schedule moved on
 * to its next due time. Retrying every second would only repeat the error in the log while the
 * next due time tries again anyway. The exception is the database going away or a deadlock: the
 * whole transaction is undone and the due time stays due, to be started once the database answers.
 *
 * Rounds run every `pollMs` (one cheap query while nothing is due) and at the earliest next due
 * time when that comes sooner, so a run starts within a second of its time or at it.
 */
import type { Logger } from "pino";
import type { BackgroundService } from "../background-service.js";
import { DatabaseOutageLog } from "../database-outage-log.js";
import { nextDueAfter } from "../domain/schedule.js";
import type { Database, Queryable } from "../storage/database.js";
import { findUnavailable } from "../storage/database-unavailable.js";
import { notifyJobs } from "../storage/job-channels.js";
import type { JobSignals } from "../storage/job-signals.js";
import type { ClaimedSchedule, ScheduleKind } from "../storage/schedule-repository.js";
import {
  advanceSchedule,
  claimDueSchedule,
  earliestDueAt,
  SCHEDULE_KINDS,
  withinSavepoint,
} from "../storage/schedule-repository.js";
import { SQLSTATE, sqlState } from "../storage/sql-errors.js";

export const SCHEDULER_DEFAULTS = {
  /** Between two looks at the schedules when no due time comes sooner. */
  pollMs: 1_000,
  /** Runs started per round before the timer is re-armed (lets a stop in between). */
  maxRunsPerRound: 100,
  /** A run started this long after its due time is logged as late (it was missed meanwhile). */
  lateAfterMs: 60_000,
} as const;

/** Handler failures that leave the due time due (retried at the next round) instead of skipping it. */
const RETRIED_SQL_STATES: readonly string[] = [
  SQLSTATE.serializationFailure,
  SQLSTATE.deadlockDetected,
];

export interface DueRun {
  kind: ScheduleKind;
  ownerId: string;
  entityId: number;
  /** The due time this run is for (in the past when the run was missed while no worker ran). */
  dueAt: Date;
}

/** Creates the run's job row in `tx` (the scheduler commits it with the schedule's advance and wakes the workers). */
export type ScheduleHandler = (tx: Queryable, due: DueRun) => Promise<void>;

export interface SchedulerOptions {
  db: Database;
  /** This process's job signals: a run started here wakes this process's workers at once. */
  jobSignals: JobSignals;
  logger: Logger;
  /** One per kind this process starts; schedules of a kind without one are left alone. */
  handlers: Partial<Record<ScheduleKind, ScheduleHandler>>;
  /** Tests: a test clock. */
  now?: () => Date;
  pollMs?: number;
  /** Before the first look (default 0: runs missed while no worker ran start at once). */
  firstLookMs?: number;
}

export interface Scheduler extends BackgroundService {
  /** Starts every run due now; resolves with the number started (skipped due times not counted). */
  runDue(): Promise<number>;
}

export async function startScheduler(options: SchedulerOptions): Promise<Scheduler> {
  const { db, jobSignals, handlers } = options;
  const logger = options.logger.child({ component: "scheduler" });
  const now = options.now ?? (() => new Date());
  const pollMs = options.pollMs ?? SCHEDULER_DEFAULTS.pollMs;
  const kinds = SCHEDULE_KINDS.filter((kind) => handlers[kind] !== undefined);
  const outage = new DatabaseOutageLog(logger, "scheduled runs");
  let stopping = false;
  let timer: NodeJS.Timeout | undefined;
  /** The round in progress: runDue and the timer take turns, stop waits for it. */
  let current: Promise<number> = Promise.resolve(0);
  /** The timer's turn in progress (it looks at the schedules before and after its round). */
  let ticking: Promise<void> = Promise.resolve();

  /** Claims one due schedule and starts (or skips) its run; undefined when none is due. */
  async function startOne(): Promise<"started" | "skipped" | undefined> {
    const at = now();
    const done = await db.transaction(async (tx) => {
      const claimed = await claimDueSchedule(tx, kinds, at);
      if (!claimed) return undefined;
      const next = nextDueOf(claimed, at);
      const due: DueRun = {
        kind: claimed.kind,
        ownerId: claimed.ownerId,
        entityId: claimed.entityId,
        dueAt: claimed.dueAt,
      };
      const handler = handlers[claimed.kind]!;
      const outcome = await withinSavepoint(tx, () => handler(tx, due));
      if (!outcome.ok && isRetried(outcome.error)) throw outcome.error;
      const error = outcome.ok ? null : reasonOf(outcome.error);
      await advanceSchedule(tx, claimed, next, at, error);
      if (outcome.ok) await notifyJobs(tx);
      return { claimed, next, error, cause: outcome.ok ? undefined : outcome.error };
    });
    if (!done) return undefined;
    const { claimed, next, error } = done;
    const fields = {
      kind: claimed.kind,
      ownerId: claimed.ownerId,
      entityId: claimed.entityId,
      dueAt: claimed.dueAt.toISOString(),
      nextDueAt: next.toISOString(),
    };
    if (error !== null) {
      logger.error(
        { ...fields, err: done.cause },
        `the scheduled run of ${claimed.kind} ${claimed.ownerId} due at ${fields.dueAt} could not be started (${error}); that due time is skipped, the next is ${fields.nextDueAt}`,
      );
      return "skipped";
    }
    jobSignals.jobsCreated();
    const lateMs = at.getTime() - claimed.dueAt.getTime();
    if (lateMs > SCHEDULER_DEFAULTS.lateAfterMs)
      logger.warn(
        { ...fields, lateMs },
        `scheduled run of ${claimed.kind} ${claimed.ownerId} started late: due at ${fields.dueAt}, when no worker could start it (none running, or the database away); started once now, the due times missed meanwhile are not run again`,
      );
    else logger.info(fields, `scheduled run of ${claimed.kind} ${claimed.ownerId} started`);
    return "started";
  }

  /** The schedule's first due time after `at` (and after its due time, should the clock go back). */
  function nextDueOf(claimed: ClaimedSchedule, at: Date): Date {
    const after = new Date(Math.max(at.getTime(), claimed.dueAt.getTime()));
    try {
      return nextDueAfter(claimed.schedule, after);
    } catch (error) {
      // Only a schedule stored by another version could get here (parseSchedule refuses those that
      // never fall due). Looking at it again in a day keeps it from holding up the others.
      logger.error(
        { kind: claimed.kind, ownerId: claimed.ownerId, schedule: claimed.schedule, err: error },
        "cannot compute the next due time of a schedule; looking at it again in 24 hours (save its owner again to fix it)",
      );
      return new Date(after.getTime() + 24 * 60 * 60_000);
    }
  }

  async function round(): Promise<{ started: number; more: boolean }> {
    let started = 0;
    for (let i = 0; i < SCHEDULER_DEFAULTS.maxRunsPerRound; i++) {
      if (stopping) return { started, more: false };
      const outcome = await startOne();
      if (outcome === undefined) return { started, more: false };
      if (outcome === "started") started++;
    }
    return { started, more: true };
  }

  /** One round after the one in progress, never two at once in this process. */
  function runRound(): Promise<{ started: number; more: boolean }> {
    const next = current.catch(() => 0).then(() => round());
    // Settled either way: a failed round is reported to its own caller, never as unhandled here.
    current = next.then(
      (r) => r.started,
      () => 0,
    );
    return next;
  }

  /** The timer's turn: a round when something is due, then the timer for the next one. */
  async function tick(): Promise<void> {
    let delayMs = pollMs;
    if (stopping) return;
    try {
      const earliest = await earliestDueAt(db, kinds);
      const due = earliest !== undefined && earliest.getTime() <= now().getTime();
      const more = due ? (await runRound()).more : false;
      outage.succeeded();
      // After a round the earliest due time has moved; without one it is what was just read.
      const after = more ? undefined : due ? await earliestDueAt(db, kinds) : earliest;
      if (more) delayMs = 0;
      else if (after && after.getTime() > now().getTime())
        delayMs = Math.min(pollMs, after.getTime() - now().getTime());
    } catch (error) {
      outage.failed(error, "cannot start scheduled runs; retrying");
    }
    arm(delayMs);
  }

  function arm(delayMs: number): void {
    if (stopping) return;
    timer = setTimeout(() => {
      timer = undefined;
      ticking = tick();
    }, delayMs);
    timer.unref();
  }

  if (kinds.length === 0) {
    logger.info("scheduler started with no kind to run; schedules wait until a handler exists");
  } else {
    logger.info({ kinds, pollMs }, "scheduler started");
    arm(options.firstLookMs ?? 0);
  }

  return {
    name: "scheduler",
    runDue: async () => (kinds.length === 0 ? 0 : (await runRound()).started),
    stop: async () => {
      stopping = true;
      if (timer) clearTimeout(timer);
      timer = undefined;
      await ticking;
      await current.catch(() => undefined);
    },
  };
}

function isRetried(error: unknown): boolean {
  if (findUnavailable(error)) return true;
  const state = sqlState(error);
  return state !== undefined && RETRIED_SQL_STATES.includes(state);
}

/** The reason recorded with a skipped due time: the handler's message, bounded. */
function reasonOf(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.length > 500 ? `${message.slice(0, 497)}...` : message;
}
