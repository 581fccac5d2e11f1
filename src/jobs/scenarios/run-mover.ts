/**
 * Takes due scenario runs and moves them, a batch per transaction (run-batch.ts), and what happens
 * when a batch fails on an unexpected error: its transaction rolled back, so its runs are where they
 * were and nothing of theirs was written. They are then moved one per transaction, so that the
 * runs that can go on do (one that lost a race, a deadlock or a table definition changed
 * meanwhile, is tried again at once), and a run whose move fails on its own is retried later with
 * a backoff (failures + 1, last_error, due_at pushed back; RUN_FAILURE_POLICY), then given up as
 * FAILED, counted as left in the block it is stored at. A move goes through several blocks: the
 * last error and the log lines name the block that failed (BlockFailed), and the block the move
 * had gone on from, where the run still is. A database that went away is not a run's failure: the
 * error goes up to the loop, which waits for the database, and the runs stay due.
 */
import type { Logger } from "pino";
import { lostToConcurrency, StaleTableDefinition } from "../../capture/write-retry.js";
import { HeraldError } from "../../domain/errors.js";
import { entryKeyAfterEnd } from "../../domain/scenario.js";
import type { FailureOutcome } from "../../domain/scenario-steps.js";
import { afterRunFailure, RUN_FAILURE_POLICY } from "../../domain/scenario-steps.js";
import type { Database } from "../../storage/database.js";
import { findUnavailable } from "../../storage/database-unavailable.js";
import type { LogSignals } from "../../storage/log-signals.js";
import type { RunState, StoredRun } from "../../storage/scenario-run-repository.js";
import {
  addBlockCounts,
  claimDueRun,
  claimDueRuns,
  loadRunScenarios,
  writeRunStates,
} from "../../storage/scenario-run-repository.js";
import type { BatchOutcome, BatchResult } from "./run-batch.js";
import { BlockFailed, moveRunBatch } from "./run-batch.js";

export interface RunMoverContext {
  db: Database;
  logSignals: LogSignals;
  logger: Logger;
}

/** What one call of moveDueRuns did. */
export interface MoveResult extends BatchResult {
  /** Runs taken (a full batch means more may be due). */
  taken: number;
  /** Runs whose move failed on their own (retried later, or FAILED). */
  failed: number;
}

const NOTHING: MoveResult = { taken: 0, moved: 0, triggers: 0, profileWrites: 0, failed: 0 };

/**
 * Takes up to `limit` runs due at `now` and moves them. A batch that lost a race (a deadlock, a
 * serialization failure, a table definition changed meanwhile) is tried again whole, once: the
 * race is most likely over, and one transaction does what would otherwise take one per run.
 */
export async function moveDueRuns(
  context: RunMoverContext,
  now: Date,
  limit: number,
): Promise<MoveResult> {
  for (let attempt = 1; ; attempt++) {
    let taken: StoredRun[] = [];
    try {
      const result = await context.db.transaction(async (tx) => {
        taken = await claimDueRuns(tx, now, limit);
        return taken.length === 0 ? undefined : moveRunBatch(tx, context, taken, now);
      });
      if (!result) return NOTHING;
      const { givenUp, ...done } = result;
      committed(context, result);
      return { ...done, taken: taken.length, failed: givenUp.length };
    } catch (error) {
      if (taken.length === 0 || findUnavailable(error)) throw error;
      if (attempt === 1 && lostRace(error)) {
        context.logger.info(
          { err: causeOf(error), runs: taken.length },
          `a batch of ${taken.length} scenario runs lost a race (${reasonOf(error)}); nothing of it was written, and it is tried again whole`,
        );
        continue;
      }
      context.logger.warn(
        { err: error, runs: taken.length },
        `a batch of ${taken.length} scenario runs could not be moved (${reasonOf(error)}); nothing of it was written, and its runs are moved one per transaction to single out the failing ones`,
      );
      return moveOneByOne(context, taken, now);
    }
  }
}

async function moveOneByOne(
  context: RunMoverContext,
  runs: readonly StoredRun[],
  now: Date,
): Promise<MoveResult> {
  const total: MoveResult = { ...NOTHING, taken: runs.length };
  for (const { id } of runs) {
    for (let attempt = 1; ; attempt++) {
      let run: StoredRun | undefined;
      try {
        const result = await context.db.transaction(async (tx) => {
          run = await claimDueRun(tx, id, now);
          return run ? moveRunBatch(tx, context, [run], now) : undefined;
        });
        if (result) {
          committed(context, result);
          total.moved += result.moved;
          total.triggers += result.triggers;
          total.profileWrites += result.profileWrites;
          total.failed += result.givenUp.length;
        }
        break;
      } catch (error) {
        if (!run || findUnavailable(error)) throw error;
        // A race it may win on another try (a deadlock, a table definition changed meanwhile)
        // is not the run's failure.
        if (attempt < RACE_ATTEMPTS && lostRace(error)) continue;
        await recordRunFailure(context, run, error, now);
        total.failed++;
        break;
      }
    }
  }
  return total;
}

/** Tries of one run's move that lost a race (see lostRace) before it counts as a failure. */
const RACE_ATTEMPTS = 3;

function lostRace(error: unknown): boolean {
  const cause = causeOf(error);
  return lostToConcurrency(cause) || cause instanceof StaleTableDefinition;
}

/** The error a block failed on (BlockFailed carries it with the block's id), or the error itself. */
function causeOf(error: unknown): unknown {
  return error instanceof BlockFailed ? error.cause : error;
}

/**
 * Where a run's move failed, as its last error and log lines say it: the block that failed, and the
 * block the run is stored at when the move had gone on from it (the run stays there: nothing of
 * the move was written, and its counts say so).
 */
function failedAt(run: StoredRun, error: unknown): { blockId: string; where: string } {
  const blockId = error instanceof BlockFailed ? error.blockId : run.blockId;
  return {
    blockId,
    where:
      blockId === run.blockId
        ? `at block '${blockId}'`
        : `at block '${blockId}' (moved on from '${run.blockId}' in this try; nothing of it was written)`,
  };
}

/**
 * After a batch committed: wakes this process's sequencer when it appended events, and tells the
 * runs it gave up for going round without waiting.
 */
function committed(context: RunMoverContext, result: BatchOutcome): void {
  if (result.triggers + result.profileWrites > 0) context.logSignals.inboxCommitted();
  for (const { run, blockId, reason } of result.givenUp)
    context.logger.error(
      { runId: run.id, scenarioId: run.scenarioId, profileId: run.profileId, blockId },
      `scenario ${run.scenarioId}, run ${run.id} (profile ${run.profileId}) is FAILED at block '${blockId}', counted as left in it: ${reason}`,
    );
}

/**
 * Counts a failed move of `failed` in its own transaction: a retry after the backoff, or FAILED
 * (left in its block; its re-entry key released as the scenario's policy says) once the failures
 * reach RUN_FAILURE_POLICY.maxFailures. Nothing when another worker took the run meanwhile.
 */
async function recordRunFailure(
  context: RunMoverContext,
  failed: StoredRun,
  error: unknown,
  now: Date,
): Promise<void> {
  const reason = reasonOf(causeOf(error));
  const decided = await context.db.transaction(async (tx) => {
    const run = await claimDueRun(tx, failed.id, now);
    if (!run) return undefined;
    const outcome = afterRunFailure(run.failures, now);
    const { where } = failedAt(run, error);
    const lastError = `failed ${where}: ${reason}`;
    const scenario = (await loadRunScenarios(tx, [run.scenarioId])).get(run.scenarioId);
    const state: RunState =
      outcome.kind === "retry"
        ? { ...stateOf(run), failures: outcome.failures, lastError, dueAt: outcome.at }
        : {
            ...stateOf(run),
            status: "FAILED",
            failures: outcome.failures,
            lastError,
            dueAt: null,
            endedAt: now,
            entryKey: scenario
              ? entryKeyAfterEnd(scenario.definition.reentry, run.entryKey)
              : run.entryKey,
          };
    await writeRunStates(tx, [state], now);
    if (outcome.kind === "failed")
      await addBlockCounts(tx, [
        { scenarioId: run.scenarioId, blockId: run.blockId, entered: 0, passed: 0, exited: 1 },
      ]);
    return { run, outcome };
  });
  if (decided) logFailure(context.logger, decided.run, decided.outcome, error, reason);
}

function logFailure(
  logger: Logger,
  run: StoredRun,
  outcome: FailureOutcome,
  error: unknown,
  reason: string,
): void {
  const { blockId, where } = failedAt(run, error);
  const fields = {
    err: causeOf(error),
    runId: run.id,
    scenarioId: run.scenarioId,
    profileId: run.profileId,
    blockId: run.blockId,
    failedBlockId: blockId,
    failures: outcome.failures,
  };
  const about = `scenario ${run.scenarioId}, run ${run.id} (profile ${run.profileId})`;
  if (outcome.kind === "retry")
    logger.warn(
      { ...fields, retryAt: outcome.at.toISOString() },
      `${about} failed ${where}: ${reason}; nothing of that block was written, it is tried again from '${run.blockId}' at ${outcome.at.toISOString()} (failure ${outcome.failures} of ${RUN_FAILURE_POLICY.maxFailures})`,
    );
  else
    logger.error(
      fields,
      `${about} failed ${outcome.failures} times ${where} and is given up: FAILED, counted as left in block '${run.blockId}', where it is; last error: ${reason}`,
    );
}

function stateOf(run: StoredRun): RunState {
  return {
    id: run.id,
    status: run.status,
    blockId: run.blockId,
    dueAt: run.dueAt,
    entryKey: run.entryKey,
    steps: run.steps,
    failures: run.failures,
    lastError: run.lastError,
    endedAt: run.endedAt,
  };
}

/** The error as a run's last_error shows it: the message and, for a HeraldError, its details. */
function reasonOf(error: unknown): string {
  let text = error instanceof Error ? error.message : String(error);
  if (error instanceof HeraldError && error.details.length > 0)
    text += ` (${error.details.map((d) => `${d.path}: ${d.message}`).join("; ")})`;
  return text.length > 500 ? `${text.slice(0, 497)}...` : text;
}
