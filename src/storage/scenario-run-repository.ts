/**
 * SQL of scenario runs as the engine moves them (SPEC §7.4, DESIGN §6b, migration 027): inserting
 * new runs under the re-entry key, taking the due ones, and writing a batch's outcome (the runs'
 * new state and the per-block counts) in the transaction that wrote the blocks' effects. The reads
 * of the API (lists, one run, statistics) are in scenario-run-reads.ts.
 *
 * Every time comes from the caller (a `now` parameter, never SQL now()): the engine runs on a clock
 * that tests set.
 */
import type { ScenarioDefinition } from "../domain/scenario.js";
import type { RunStart, RunStatus, ScenarioRun, ScenarioStatus } from "../domain/scenario.js";
import type { Queryable } from "./database.js";
import type { RecordRow, StoredRecord } from "./record-repository.js";
import { RECORD_COLUMNS, toRecord } from "./record-repository.js";

export interface NewRun {
  scenarioId: string;
  entityId: number;
  profileId: number;
  blockId: string;
  dueAt: Date;
  entryKey: string | null;
  start: RunStart;
}

/**
 * Inserts the runs whose entry key is free (ON CONFLICT (scenario_id, entry_key) WHERE entry_key IS
 * NOT NULL DO NOTHING), counts `entered` of their first block, returns how many were created.
 */
export async function insertRuns(
  tx: Queryable,
  runs: readonly NewRun[],
  now: Date,
): Promise<number> {
  return (await insertRunsReturningIds(tx, runs, now)).length;
}

/** insertRuns, answering the ids of the runs it created (in the order of `runs`). */
export async function insertRunsReturningIds(
  tx: Queryable,
  runs: readonly NewRun[],
  now: Date,
): Promise<string[]> {
  if (runs.length === 0) return [];
  const input = runs.map((run, n) => ({
    n,
    scenario_id: run.scenarioId,
    entity_id: run.entityId,
    profile_id: run.profileId,
    block_id: run.blockId,
    due_at: run.dueAt.toISOString(),
    entry_key: run.entryKey,
    start: run.start,
  }));
  // Two runs of one key in the same call: the first is inserted, the second conflicts with it and
  // is skipped (DO NOTHING may meet a row of its own statement; only DO UPDATE may not). The counts
  // are added in (scenario, block) order, the order every writer of scenario_block_counts takes
  // its rows in, so two writers never wait for each other the opposite way round.
  const { rows } = await tx.query<{ id: string }>(
    `WITH input AS (
       SELECT * FROM jsonb_to_recordset($1::jsonb) AS i(
         n integer, scenario_id bigint, entity_id bigint, profile_id bigint, block_id text,
         due_at timestamptz, entry_key text, start jsonb)),
     inserted AS (
       INSERT INTO scenario_runs
         (scenario_id, entity_id, profile_id, status, block_id, due_at, entry_key, start,
          started_at, updated_at)
       SELECT scenario_id, entity_id, profile_id, 'RUNNING', block_id, due_at, entry_key, start,
              $2, $2
         FROM input ORDER BY n
       ON CONFLICT (scenario_id, entry_key) WHERE entry_key IS NOT NULL DO NOTHING
       RETURNING id, scenario_id, block_id),
     counted AS (
       INSERT INTO scenario_block_counts AS c (scenario_id, block_id, entered)
       SELECT scenario_id, block_id, count(*) FROM inserted
        GROUP BY scenario_id, block_id ORDER BY scenario_id, block_id
       ON CONFLICT (scenario_id, block_id) DO UPDATE SET entered = c.entered + excluded.entered
       RETURNING 1)
     SELECT id::text AS id FROM inserted ORDER BY id`,
    [JSON.stringify(input), now],
  );
  return rows.map((row) => row.id);
}

export interface RunRow {
  id: string;
  scenario_id: string;
  entity_id: number;
  profile_id: number;
  status: RunStatus;
  block_id: string;
  due_at: Date | null;
  entry_key: string | null;
  start: RunStart;
  steps: number;
  failures: number;
  last_error: string | null;
  started_at: Date;
  updated_at: Date;
  ended_at: Date | null;
}

export const RUN_COLUMNS = `id::text AS id, scenario_id::text AS scenario_id, entity_id, profile_id,
  status, block_id, due_at, entry_key, start, steps, failures, last_error, started_at, updated_at,
  ended_at`;

/** A run as the engine holds it: the stored run and its re-entry key. */
export interface StoredRun extends ScenarioRun {
  entryKey: string | null;
}

export function toRun(row: RunRow): StoredRun {
  return {
    id: row.id,
    scenarioId: row.scenario_id,
    entityId: row.entity_id,
    profileId: row.profile_id,
    status: row.status,
    blockId: row.block_id,
    dueAt: row.due_at,
    entryKey: row.entry_key,
    start: row.start,
    steps: row.steps,
    failures: row.failures,
    lastError: row.last_error,
    startedAt: row.started_at,
    updatedAt: row.updated_at,
    endedAt: row.ended_at,
  };
}

/**
 * Takes up to `limit` runs due at `now` (earliest first) for this transaction: FOR UPDATE SKIP
 * LOCKED, so workers of every process take different runs and never wait for each other. A run
 * stays locked until the transaction that moves it ends; a worker that dies in between leaves it
 * due for the next. Served by scenario_runs_due (due_at of the runs still going).
 */
export async function claimDueRuns(tx: Queryable, now: Date, limit: number): Promise<StoredRun[]> {
  const { rows } = await tx.query<RunRow>(
    `SELECT ${RUN_COLUMNS} FROM scenario_runs
      WHERE due_at IS NOT NULL AND due_at <= $1
      ORDER BY due_at
      LIMIT $2
      FOR UPDATE SKIP LOCKED`,
    [now, limit],
  );
  return rows.map(toRun);
}

/** Takes one run if it is still due and no other transaction holds it (a batch's runs one by one). */
export async function claimDueRun(
  tx: Queryable,
  runId: string,
  now: Date,
): Promise<StoredRun | undefined> {
  const { rows } = await tx.query<RunRow>(
    `SELECT ${RUN_COLUMNS} FROM scenario_runs
      WHERE id = $1 AND due_at IS NOT NULL AND due_at <= $2
      FOR UPDATE SKIP LOCKED`,
    [runId, now],
  );
  return rows[0] ? toRun(rows[0]) : undefined;
}

/** The earliest due time of the runs still going; undefined when none is. */
export async function earliestRunDueAt(db: Queryable): Promise<Date | undefined> {
  const { rows } = await db.query<{ due_at: Date | null }>(
    "SELECT min(due_at) AS due_at FROM scenario_runs WHERE due_at IS NOT NULL",
  );
  return rows[0]?.due_at ?? undefined;
}

/** What a worker needs of a run's scenario. */
export interface RunScenario {
  id: string;
  entityId: number;
  entityName: string;
  tableId: string;
  status: ScenarioStatus;
  definition: ScenarioDefinition;
}

/** The scenarios of a batch's runs, by id (a run of a scenario deleted meanwhile is gone with it). */
export async function loadRunScenarios(
  tx: Queryable,
  scenarioIds: readonly string[],
): Promise<Map<string, RunScenario>> {
  const found = new Map<string, RunScenario>();
  if (scenarioIds.length === 0) return found;
  const { rows } = await tx.query<{
    id: string;
    entity_id: number;
    entity_name: string;
    table_id: string;
    status: ScenarioStatus;
    definition: ScenarioDefinition;
  }>(
    `SELECT s.id::text AS id, s.entity_id, e.name AS entity_name, s.table_id, s.status, s.definition
       FROM scenarios s JOIN entities e ON e.id = s.entity_id
      WHERE s.id = ANY($1::bigint[])`,
    [scenarioIds],
  );
  for (const row of rows)
    found.set(row.id, {
      id: row.id,
      entityId: row.entity_id,
      entityName: row.entity_name,
      tableId: row.table_id,
      status: row.status,
      definition: row.definition,
    });
  return found;
}

/**
 * The profiles of a batch's runs, by record id, as they are now (no lock: a block that writes the
 * profile locks it itself). A profile deleted meanwhile is absent.
 */
export async function loadRunProfiles(
  tx: Queryable,
  profileIds: readonly number[],
): Promise<Map<number, StoredRecord>> {
  const found = new Map<number, StoredRecord>();
  if (profileIds.length === 0) return found;
  const { rows } = await tx.query<RecordRow>(
    `SELECT ${RECORD_COLUMNS} FROM records WHERE record_id = ANY($1::bigint[])`,
    [[...new Set(profileIds)]],
  );
  for (const row of rows) found.set(row.record_id, toRecord(row));
  return found;
}

/** A run's state after a move. */
export interface RunState {
  id: string;
  status: RunStatus;
  blockId: string;
  /** When the run is taken next; null once it ended. */
  dueAt: Date | null;
  entryKey: string | null;
  steps: number;
  failures: number;
  lastError: string | null;
  endedAt: Date | null;
}

/** Writes the new state of a batch's runs (each locked by this transaction), as one statement. */
export async function writeRunStates(
  tx: Queryable,
  states: readonly RunState[],
  now: Date,
): Promise<void> {
  if (states.length === 0) return;
  const input = states.map((s) => ({
    id: s.id,
    status: s.status,
    block_id: s.blockId,
    due_at: s.dueAt?.toISOString() ?? null,
    entry_key: s.entryKey,
    steps: s.steps,
    failures: s.failures,
    last_error: s.lastError,
    ended_at: s.endedAt?.toISOString() ?? null,
  }));
  await tx.query(
    `UPDATE scenario_runs r
        SET status = u.status, block_id = u.block_id, due_at = u.due_at, entry_key = u.entry_key,
            steps = u.steps, failures = u.failures, last_error = u.last_error,
            ended_at = u.ended_at, updated_at = $2
       FROM jsonb_to_recordset($1::jsonb) AS u(
              id bigint, status text, block_id text, due_at timestamptz, entry_key text,
              steps integer, failures integer, last_error text, ended_at timestamptz)
      WHERE r.id = u.id`,
    [JSON.stringify(input), now],
  );
}

/** Runs that entered, passed and left one block, to add to its counts. */
export interface BlockCountChange {
  scenarioId: string;
  blockId: string;
  entered: number;
  passed: number;
  exited: number;
}

/**
 * Adds a batch's block counts as one statement: one change per block (sum them first). The rows are taken in
 * (scenario, block) order, the order every writer of scenario_block_counts keeps (insertRuns too):
 * two transactions counting the same blocks wait for each other at most, never deadlock. Call it
 * last in the transaction: the rows stay locked until the commit, and every batch counts the same
 * few blocks.
 */
export async function addBlockCounts(
  tx: Queryable,
  changes: readonly BlockCountChange[],
): Promise<void> {
  const rows = changes.filter((c) => c.entered !== 0 || c.passed !== 0 || c.exited !== 0);
  if (rows.length === 0) return;
  await tx.query(
    `INSERT INTO scenario_block_counts AS c (scenario_id, block_id, entered, passed, exited)
     SELECT scenario_id, block_id, entered, passed, exited
       FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[])
              AS u(scenario_id, block_id, entered, passed, exited)
      ORDER BY scenario_id, block_id
     ON CONFLICT (scenario_id, block_id) DO UPDATE
        SET entered = c.entered + excluded.entered, passed = c.passed + excluded.passed,
            exited = c.exited + excluded.exited`,
    [
      rows.map((r) => r.scenarioId),
      rows.map((r) => r.blockId),
      rows.map((r) => r.entered),
      rows.map((r) => r.passed),
      rows.map((r) => r.exited),
    ],
  );
}
