/**
 * SQL of scenario definitions (SPEC §7.4, migration 027): the CRUD of the scenarios table with the
 * custom actions each one uses (scenario_custom_actions, rewritten with the definition), and the
 * two changes of status. The starters' leases and cursor are in scenario-cursor-repository.ts,
 * the runs in scenario-run-repository.ts and scenario-run-reads.ts.
 *
 * Activation and deactivation take the scenario's row FOR UPDATE first. A starter moves a
 * scenario's cursor only while it is ACTIVE (advanceScenarioCursor updates the row, so it waits for
 * a status change in progress and then sees it), and a DATE schedule's handler and the API start
 * read the status FOR SHARE: no run can start on the far side of a status change.
 */
import type { CustomAction } from "../domain/custom-action.js";
import type { Scenario, ScenarioDefinition, ScenarioStatus } from "../domain/scenario.js";
import { blocksChanged, customActionIdsOf } from "../domain/scenario-definition.js";
import { readLogHead } from "./change-event-repository.js";
import { lockCustomActions } from "./custom-action-repository.js";
import type { Queryable } from "./database.js";
import { removeSchedule, saveSchedule } from "./schedule-repository.js";

interface ScenarioRow {
  id: number;
  entity_id: number;
  definition: ScenarioDefinition;
  status: ScenarioStatus;
  activated_at: Date | null;
  deactivated_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS =
  "id, entity_id, definition, status, activated_at, deactivated_at, created_at, updated_at";

function toScenario(row: ScenarioRow): Scenario {
  return {
    id: String(row.id),
    entityId: row.entity_id,
    definition: row.definition,
    status: row.status,
    activatedAt: row.activated_at,
    deactivatedAt: row.deactivated_at,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

/** Ids are generated integers; anything else names a scenario by its name only. */
function asId(text: string): number | null {
  return /^\d{1,15}$/.test(text) ? Number(text) : null;
}

/** Rewrites the custom actions the scenario's blocks use (its row in scenario_custom_actions). */
async function linkCustomActions(
  tx: Queryable,
  scenarioId: string,
  definition: ScenarioDefinition,
): Promise<void> {
  await tx.query("DELETE FROM scenario_custom_actions WHERE scenario_id = $1", [
    Number(scenarioId),
  ]);
  const ids = customActionIdsOf(definition).map(Number);
  if (ids.length === 0) return;
  await tx.query(
    `INSERT INTO scenario_custom_actions (scenario_id, custom_action_id)
     SELECT $1, unnest($2::bigint[])`,
    [Number(scenarioId), ids],
  );
}

/**
 * Inserts an INACTIVE scenario with the custom actions it uses; undefined when the entity has one
 * of that name already. Call it in a transaction.
 */
export async function insertScenario(
  tx: Queryable,
  entityId: number,
  definition: ScenarioDefinition,
): Promise<Scenario | undefined> {
  const { rows } = await tx.query<ScenarioRow>(
    `INSERT INTO scenarios (entity_id, name, table_id, definition) VALUES ($1, $2, $3, $4)
     ON CONFLICT (entity_id, name) DO NOTHING
     RETURNING ${COLUMNS}`,
    [entityId, definition.name, definition.tableId, JSON.stringify(definition)],
  );
  const row = rows[0];
  if (!row) return undefined;
  const scenario = toScenario(row);
  await linkCustomActions(tx, scenario.id, definition);
  return scenario;
}

/**
 * A scenario of the entity by id or, failing that, by name. `lock`: FOR UPDATE until the
 * transaction ends, for a change of its definition or status.
 */
export async function findScenario(
  db: Queryable,
  entityId: number,
  idOrName: string,
  options: { lock?: boolean } = {},
): Promise<Scenario | undefined> {
  const { rows } = await db.query<ScenarioRow>(
    `SELECT ${COLUMNS} FROM scenarios
      WHERE entity_id = $1 AND (id = $2 OR name = $3)
      ORDER BY (id IS NOT DISTINCT FROM $2) DESC LIMIT 1
     ${options.lock ? "FOR UPDATE" : ""}`,
    [entityId, asId(idOrName), idOrName],
  );
  return rows[0] ? toScenario(rows[0]) : undefined;
}

/** A page of the entity's scenarios in id order, optionally of one status, and how many there are. */
export async function listScenarios(
  db: Queryable,
  entityId: number,
  page: { offset: number; limit: number; status?: ScenarioStatus },
): Promise<{ scenarios: Scenario[]; total: number }> {
  const status = page.status ?? null;
  const { rows } = await db.query<ScenarioRow>(
    `SELECT ${COLUMNS} FROM scenarios
      WHERE entity_id = $1 AND ($2::text IS NULL OR status = $2)
      ORDER BY id LIMIT $3 OFFSET $4`,
    [entityId, status, page.limit, page.offset],
  );
  const counted = await db.query<{ n: number }>(
    `SELECT count(*)::integer AS n FROM scenarios
      WHERE entity_id = $1 AND ($2::text IS NULL OR status = $2)`,
    [entityId, status],
  );
  return { scenarios: rows.map(toScenario), total: counted.rows[0]?.n ?? 0 };
}

/** The names of the entity's custom actions with these ids (an id of none is left out). */
export async function customActionNames(
  db: Queryable,
  entityId: number,
  ids: readonly string[],
): Promise<Map<string, string>> {
  const numeric = ids.map(asId).filter((id): id is number => id !== null);
  if (numeric.length === 0) return new Map();
  const { rows } = await db.query<{ id: number; name: string }>(
    "SELECT id, name FROM custom_actions WHERE entity_id = $1 AND id = ANY($2::bigint[])",
    [entityId, numeric],
  );
  return new Map(rows.map((row) => [String(row.id), row.name]));
}

/** How many of the scenario's runs are still going (WAITING or RUNNING). */
export async function countLiveRuns(db: Queryable, scenarioId: string): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `SELECT count(*)::integer AS n FROM scenario_runs
      WHERE scenario_id = $1 AND status IN ('WAITING', 'RUNNING')`,
    [Number(scenarioId)],
  );
  return rows[0]?.n ?? 0;
}

/**
 * Replaces a scenario's definition (`previous` is the one it replaces) and the custom actions it
 * uses, and lets its history fit the new definition: unless the new re-entry policy is NEVER, the
 * runs that ended give their re-entry keys back (a NEVER scenario kept them for good, and its
 * profiles could never enter the new definition), and when the blocks change the block counts start
 * afresh (a new block that reuses an old id would add the old one's figures to its own; the runs
 * stay listed). "name-taken" when another scenario of the entity has the new name; undefined when
 * it is gone. The caller has locked the row (findScenario with `lock`) and checked that it may
 * change (INACTIVE, no run going on), so every run of it has ended and no worker writes its counts.
 */
export async function updateScenario(
  tx: Queryable,
  entityId: number,
  id: string,
  definition: ScenarioDefinition,
  previous: ScenarioDefinition,
): Promise<Scenario | "name-taken" | undefined> {
  const taken = await tx.query(
    "SELECT 1 FROM scenarios WHERE entity_id = $1 AND name = $2 AND id <> $3",
    [entityId, definition.name, Number(id)],
  );
  if (taken.rowCount > 0) return "name-taken";
  const { rows } = await tx.query<ScenarioRow>(
    `UPDATE scenarios SET name = $3, table_id = $4, definition = $5, updated_at = now()
      WHERE entity_id = $1 AND id = $2
     RETURNING ${COLUMNS}`,
    [entityId, Number(id), definition.name, definition.tableId, JSON.stringify(definition)],
  );
  const row = rows[0];
  if (!row) return undefined;
  await linkCustomActions(tx, String(row.id), definition);
  if (definition.reentry !== "NEVER")
    await tx.query(
      `UPDATE scenario_runs SET entry_key = NULL
        WHERE scenario_id = $1 AND entry_key IS NOT NULL
          AND status IN ('FINISHED', 'CANCELLED', 'FAILED')`,
      [row.id],
    );
  if (blocksChanged(previous, definition))
    await tx.query("DELETE FROM scenario_block_counts WHERE scenario_id = $1", [row.id]);
  return toScenario(row);
}

/**
 * Deletes a scenario with its runs, block counts and links (ON DELETE CASCADE) and its schedule.
 * The caller has locked the row and checked that it is INACTIVE.
 */
export async function deleteScenario(
  tx: Queryable,
  entityId: number,
  id: string,
): Promise<boolean> {
  await removeSchedule(tx, "SCENARIO", id);
  const { rowCount } = await tx.query("DELETE FROM scenarios WHERE entity_id = $1 AND id = $2", [
    entityId,
    Number(id),
  ]);
  return rowCount > 0;
}

/**
 * Checks a scenario against what its activation depends on: the custom actions it uses, as locked
 * (FOR SHARE) by the activation, so that none can be deleted or changed until it commits. Throws
 * to refuse the activation (its transaction then rolls back).
 */
export type ActivationCheck = (scenario: Scenario, customActions: CustomAction[]) => Promise<void>;

/**
 * Activates the scenario: locks its row and, when it is INACTIVE, locks the custom actions its
 * blocks use FOR SHARE, runs `check` on both, and makes it ACTIVE from `now` with its cursor at the
 * log head (events already in the log start nothing) and, for a DATE start, its daily schedule.
 * An ACTIVE scenario is answered as it is, unchecked: a check that failed would refuse an
 * activation while leaving the scenario active, which would read as if it were not. Undefined when
 * the scenario is gone. Call it in a transaction.
 */
export async function activateScenario(
  tx: Queryable,
  entityId: number,
  id: string,
  now: Date,
  check: ActivationCheck,
): Promise<Scenario | undefined> {
  const scenario = await findScenario(tx, entityId, id, { lock: true });
  if (!scenario) return undefined;
  if (scenario.status === "ACTIVE") return scenario;
  const actions = await lockCustomActions(tx, entityId, customActionIdsOf(scenario.definition));
  await check(scenario, actions);
  const head = await readLogHead(tx);
  const { rows } = await tx.query<ScenarioRow>(
    `UPDATE scenarios
        SET status = 'ACTIVE', activated_at = $3, log_cursor = $4,
            lease_owner = NULL, lease_until = NULL
      WHERE entity_id = $1 AND id = $2
     RETURNING ${COLUMNS}`,
    [entityId, Number(scenario.id), now, head],
  );
  const start = scenario.definition.start;
  if (start.type === "DATE") {
    const [hour, minute] = start.at.split(":").map(Number);
    await saveSchedule(
      tx,
      {
        kind: "SCENARIO",
        ownerId: scenario.id,
        entityId,
        schedule: { cron: `${minute} ${hour} * * *`, timezone: start.timezone },
      },
      now,
    );
  }
  return rows[0] ? toScenario(rows[0]) : undefined;
}

/**
 * Deactivates the scenario: it starts no run any more (status INACTIVE, lease and schedule gone).
 * Its runs go on to their end, or with `cancelRuns` every WAITING or RUNNING run ends CANCELLED in
 * the block it was at, counted as having left the scenario there. Deactivating an INACTIVE
 * scenario keeps its deactivation time (and may still cancel what runs). Undefined when the
 * scenario is gone. Call it in a transaction.
 */
export async function deactivateScenario(
  tx: Queryable,
  entityId: number,
  id: string,
  now: Date,
  options: { cancelRuns: boolean },
): Promise<{ scenario: Scenario; cancelled: number } | undefined> {
  const { rows } = await tx.query<ScenarioRow>(
    `UPDATE scenarios
        SET status = 'INACTIVE',
            deactivated_at = CASE WHEN status = 'ACTIVE' THEN $3 ELSE deactivated_at END,
            lease_owner = NULL, lease_until = NULL
      WHERE entity_id = $1 AND id = $2
     RETURNING ${COLUMNS}`,
    [entityId, Number(id), now],
  );
  const row = rows[0];
  if (!row) return undefined;
  const scenario = toScenario(row);
  await removeSchedule(tx, "SCENARIO", scenario.id);
  const cancelled = options.cancelRuns ? await cancelRuns(tx, scenario, now) : 0;
  return { scenario, cancelled };
}

/**
 * Ends every WAITING or RUNNING run of the scenario as CANCELLED and adds them to the `exited`
 * count of the block each was in: one statement, whatever the number of runs. A run a worker is
 * moving is waited for (its row is locked until the worker commits) and cancelled where it then
 * is, unless it ended meanwhile. NEVER keeps the runs' re-entry keys, as it does for runs that end
 * otherwise (entryKeyAfterEnd); the other policies release them.
 */
async function cancelRuns(tx: Queryable, scenario: Scenario, now: Date): Promise<number> {
  const { rows } = await tx.query<{ cancelled: number }>(
    `WITH cancelled AS (
       UPDATE scenario_runs
          SET status = 'CANCELLED', due_at = NULL, ended_at = $2, updated_at = $2,
              entry_key = CASE WHEN $3::boolean THEN entry_key END,
              last_error = 'cancelled by deactivation'
        WHERE scenario_id = $1 AND status IN ('WAITING', 'RUNNING')
       RETURNING block_id),
     counted AS (
       -- In block order, as every writer of the counts takes their rows (no deadlock between two).
       INSERT INTO scenario_block_counts AS c (scenario_id, block_id, exited)
       SELECT $1, block_id, count(*) FROM cancelled GROUP BY block_id ORDER BY block_id
       ON CONFLICT (scenario_id, block_id) DO UPDATE SET exited = c.exited + excluded.exited
       RETURNING 1)
     SELECT (SELECT count(*)::integer FROM cancelled) AS cancelled`,
    [Number(scenario.id), now, scenario.definition.reentry === "NEVER"],
  );
  return rows[0]?.cancelled ?? 0;
}
