/**
 * The reads of scenario runs that the API answers (SPEC §7.4: `GET …/runs`, one run, `GET
 * …/statistics`) and what the API start reads in the transaction that inserts a run: the scenario
 * under a share lock and the run that holds a profile's re-entry key. The engine's writes are in
 * scenario-run-repository.ts.
 */
import type {
  BlockStatistics,
  RunStatus,
  ScenarioBlock,
  ScenarioDefinition,
  ScenarioStatus,
} from "../domain/scenario.js";
import type { Queryable } from "./database.js";
import type { RunRow, StoredRun } from "./scenario-run-repository.js";
import { RUN_COLUMNS, toRun } from "./scenario-run-repository.js";

export interface RunFilter {
  profileId?: number;
  status?: RunStatus;
  /** 0-based. */
  page: number;
  pageSize: number;
}

/**
 * One page of a scenario's runs, the latest first, and how many match in all (two statements,
 * each its own snapshot). Served by scenario_runs_list, or scenario_runs_profile with a profile.
 */
export async function listRuns(
  db: Queryable,
  scenarioId: string,
  filter: RunFilter,
): Promise<{ runs: StoredRun[]; total: number }> {
  const where = `scenario_id = $1 AND ($2::bigint IS NULL OR profile_id = $2)
                 AND ($3::text IS NULL OR status = $3)`;
  const params = [scenarioId, filter.profileId ?? null, filter.status ?? null];
  const { rows } = await db.query<RunRow>(
    `SELECT ${RUN_COLUMNS} FROM scenario_runs WHERE ${where}
      ORDER BY id DESC LIMIT $4 OFFSET $5`,
    [...params, filter.pageSize, filter.page * filter.pageSize],
  );
  const counted = await db.query<{ total: number }>(
    `SELECT count(*)::bigint AS total FROM scenario_runs WHERE ${where}`,
    params,
  );
  return { runs: rows.map(toRun), total: Number(counted.rows[0]?.total ?? 0) };
}

/** A run of the scenario by id; undefined when there is none (or the id is not a number). */
export async function findRun(
  db: Queryable,
  scenarioId: string,
  runId: string,
): Promise<StoredRun | undefined> {
  if (!/^\d{1,18}$/.test(runId)) return undefined;
  const { rows } = await db.query<RunRow>(
    `SELECT ${RUN_COLUMNS} FROM scenario_runs WHERE scenario_id = $1 AND id = $2`,
    [scenarioId, runId],
  );
  return rows[0] ? toRun(rows[0]) : undefined;
}

/**
 * Per block of `blocks` (in their order): the runs that entered it, passed it and left the scenario
 * in it (scenario_block_counts), and those in it now, waiting or about to move. One statement, so
 * one snapshot: a batch that commits meanwhile is in all the figures or in none, and they agree
 * (a run that moved on is not both waiting in a block and counted as having passed it). The runs
 * still going are those with a due time, which scenario_runs_due holds (a predicate on status would
 * read every run the scenario ever had). A block no run reached has zeros.
 */
export async function blockStatistics(
  db: Queryable,
  scenarioId: string,
  blocks: readonly Pick<ScenarioBlock, "id" | "type">[],
): Promise<BlockStatistics[]> {
  const { rows } = await db.query<{
    block_id: string;
    entered: number;
    passed: number;
    exited: number;
    waiting: number;
  }>(
    `WITH counts AS (
       SELECT block_id, entered, passed, exited FROM scenario_block_counts WHERE scenario_id = $1),
     going AS (
       SELECT block_id, count(*) AS waiting FROM scenario_runs
        WHERE scenario_id = $1 AND due_at IS NOT NULL
        GROUP BY block_id)
     SELECT block_id, coalesce(c.entered, 0)::bigint AS entered,
            coalesce(c.passed, 0)::bigint AS passed, coalesce(c.exited, 0)::bigint AS exited,
            coalesce(g.waiting, 0)::bigint AS waiting
       FROM counts c FULL JOIN going g USING (block_id)`,
    [scenarioId],
  );
  const byBlock = new Map(rows.map((r) => [r.block_id, r]));
  return blocks.map((block) => {
    const row = byBlock.get(block.id);
    return {
      blockId: block.id,
      type: block.type,
      entered: Number(row?.entered ?? 0),
      waiting: Number(row?.waiting ?? 0),
      passed: Number(row?.passed ?? 0),
      left: Number(row?.exited ?? 0),
    };
  });
}

/** The run that holds `entryKey` in the scenario (a run going on, or NEVER's ended one). */
export async function findEntryHolder(
  db: Queryable,
  scenarioId: string,
  entryKey: string,
): Promise<StoredRun | undefined> {
  const { rows } = await db.query<RunRow>(
    `SELECT ${RUN_COLUMNS} FROM scenario_runs WHERE scenario_id = $1 AND entry_key = $2`,
    [scenarioId, entryKey],
  );
  return rows[0] ? toRun(rows[0]) : undefined;
}

/**
 * The scenario's status and definition, its row locked FOR SHARE until the transaction ends: a run
 * started in it cannot pass a deactivation or a change of definition (which update the row) the
 * other way round, and starts at the first block of the definition it is started under. Undefined
 * when the scenario is gone.
 */
export async function lockScenarioForStart(
  tx: Queryable,
  scenarioId: string,
): Promise<{ status: ScenarioStatus; definition: ScenarioDefinition } | undefined> {
  const { rows } = await tx.query<{ status: ScenarioStatus; definition: ScenarioDefinition }>(
    "SELECT status, definition FROM scenarios WHERE id = $1 FOR SHARE",
    [scenarioId],
  );
  return rows[0];
}
