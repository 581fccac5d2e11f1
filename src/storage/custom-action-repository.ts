/**
 * SQL of custom actions (SPEC §7.4, migration 027) and of the one question the rest of Herald asks
 * about them: which scenarios use one, and whether their runs still go on.
 *
 * Locks keep a change of an action and the activation of a scenario from passing each other: a
 * DELETE or PATCH takes the action's row FOR UPDATE and only then reads the scenarios that use it
 * (their status and live runs); activation takes the rows of the actions its blocks use FOR SHARE
 * (lockCustomActions) before it marks the scenario ACTIVE. Whichever comes second waits for the first to commit, then
 * sees what it did (READ COMMITTED reads anew at each statement): a scenario that became active
 * meanwhile, or an action that is gone or changed.
 */
import type { CustomAction, CustomActionDefinition } from "../domain/custom-action.js";
import type { ScenarioWithRuns } from "../domain/custom-action-definition.js";
import type { ScenarioDefinition, ScenarioStatus } from "../domain/scenario.js";
import type { Queryable } from "./database.js";
import { SQLSTATE, sqlState } from "./sql-errors.js";

interface CustomActionRow {
  id: number;
  entity_id: number;
  name: string;
  description: string | null;
  parameters: CustomActionDefinition["parameters"];
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = "id, entity_id, name, description, parameters, created_at, updated_at";

function toCustomAction(row: CustomActionRow): CustomAction {
  return {
    id: String(row.id),
    entityId: row.entity_id,
    name: row.name,
    description: row.description,
    parameters: row.parameters ?? [],
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

/** Ids are generated integers; anything else names an action by its name only. */
function asId(text: string): number | null {
  return /^\d{1,15}$/.test(text) ? Number(text) : null;
}

/** Inserts an action; undefined when the entity has one of that name already. */
export async function insertCustomAction(
  db: Queryable,
  entityId: number,
  definition: CustomActionDefinition,
): Promise<CustomAction | undefined> {
  const { rows } = await db.query<CustomActionRow>(
    `INSERT INTO custom_actions (entity_id, name, description, parameters)
     VALUES ($1, $2, $3, $4)
     ON CONFLICT (entity_id, name) DO NOTHING
     RETURNING ${COLUMNS}`,
    [entityId, definition.name, definition.description, JSON.stringify(definition.parameters)],
  );
  return rows[0] ? toCustomAction(rows[0]) : undefined;
}

/**
 * An action of the entity by id or, failing that, by name (an action's name is never digits only,
 * so the two cannot be confused). `lock`: FOR UPDATE, for a change or a deletion.
 */
export async function findCustomAction(
  db: Queryable,
  entityId: number,
  idOrName: string,
  lock = false,
): Promise<CustomAction | undefined> {
  const { rows } = await db.query<CustomActionRow>(
    `SELECT ${COLUMNS} FROM custom_actions
      WHERE entity_id = $1 AND (id = $2 OR name = $3)
      ORDER BY (id IS NOT DISTINCT FROM $2) DESC LIMIT 1
     ${lock ? "FOR UPDATE" : ""}`,
    [entityId, asId(idOrName), idOrName],
  );
  return rows[0] ? toCustomAction(rows[0]) : undefined;
}

/**
 * The entity's actions with these ids, locked FOR SHARE until the transaction ends, in id order
 * (two activations lock in the same order, so they never deadlock). An id the entity has no action
 * of is left out: the caller compares. Scenario activation calls it, so that a concurrent DELETE
 * or PATCH of one of them waits for the activation to commit and then sees the scenario active.
 */
export async function lockCustomActions(
  tx: Queryable,
  entityId: number,
  ids: readonly string[],
): Promise<CustomAction[]> {
  const numeric = ids.map(asId).filter((id): id is number => id !== null);
  if (numeric.length === 0) return [];
  const { rows } = await tx.query<CustomActionRow>(
    `SELECT ${COLUMNS} FROM custom_actions
      WHERE entity_id = $1 AND id = ANY($2::bigint[])
      ORDER BY id
      FOR SHARE`,
    [entityId, numeric],
  );
  return rows.map(toCustomAction);
}

export async function listCustomActions(
  db: Queryable,
  entityId: number,
  page: { offset: number; limit: number },
): Promise<{ customActions: CustomAction[]; total: number }> {
  const { rows } = await db.query<CustomActionRow>(
    `SELECT ${COLUMNS} FROM custom_actions WHERE entity_id = $1 ORDER BY id LIMIT $2 OFFSET $3`,
    [entityId, page.limit, page.offset],
  );
  const counted = await db.query<{ n: number }>(
    "SELECT count(*)::integer AS n FROM custom_actions WHERE entity_id = $1",
    [entityId],
  );
  return { customActions: rows.map(toCustomAction), total: counted.rows[0]?.n ?? 0 };
}

/**
 * Replaces an action's definition. "name-taken" when another action of the entity has the new
 * name (a concurrent rename to the same name loses on the unique constraint, answered alike; the
 * caller then throws, which rolls its transaction back); undefined when the action is gone.
 */
export async function updateCustomAction(
  db: Queryable,
  entityId: number,
  id: string,
  definition: CustomActionDefinition,
): Promise<CustomAction | "name-taken" | undefined> {
  const taken = await db.query(
    "SELECT 1 FROM custom_actions WHERE entity_id = $1 AND name = $2 AND id <> $3",
    [entityId, definition.name, Number(id)],
  );
  if (taken.rowCount > 0) return "name-taken";
  try {
    const { rows } = await db.query<CustomActionRow>(
      `UPDATE custom_actions
          SET name = $3, description = $4, parameters = $5, updated_at = now()
        WHERE entity_id = $1 AND id = $2
       RETURNING ${COLUMNS}`,
      [
        entityId,
        Number(id),
        definition.name,
        definition.description,
        JSON.stringify(definition.parameters),
      ],
    );
    return rows[0] ? toCustomAction(rows[0]) : undefined;
  } catch (error) {
    if (sqlState(error) === SQLSTATE.uniqueViolation) return "name-taken";
    throw error;
  }
}

export async function deleteCustomAction(
  db: Queryable,
  entityId: number,
  id: string,
): Promise<boolean> {
  const { rowCount } = await db.query(
    "DELETE FROM custom_actions WHERE entity_id = $1 AND id = $2",
    [entityId, Number(id)],
  );
  return rowCount > 0;
}

/**
 * The scenarios whose blocks use the action (scenario_custom_actions, kept with each scenario's
 * definition), ACTIVE or not, each with its runs still going (WAITING or RUNNING) counted by the
 * block they are in, in id order; domain/custom-action-definition.ts scenariosHoldingAction judges
 * which of them hold the action. Run it after locking the action's row (findCustomAction with
 * `lock`), so that an activation in progress is either seen or waits. A run a worker is moving
 * meanwhile is counted where it was at the last commit, so it holds the action until the worker
 * commits.
 */
export async function scenariosUsingAction(
  tx: Queryable,
  customActionId: string,
): Promise<ScenarioWithRuns[]> {
  const { rows } = await tx.query<{
    id: number;
    name: string;
    status: ScenarioStatus;
    definition: ScenarioDefinition;
    live_runs: Record<string, number | string> | null;
  }>(
    `SELECT s.id, s.name, s.status, s.definition,
            (SELECT jsonb_object_agg(r.block_id, r.n)
               FROM (SELECT block_id, count(*) AS n FROM scenario_runs
                      WHERE scenario_id = s.id AND status IN ('WAITING', 'RUNNING')
                      GROUP BY block_id) r) AS live_runs
       FROM scenario_custom_actions u
       JOIN scenarios s ON s.id = u.scenario_id
      WHERE u.custom_action_id = $1
      ORDER BY s.id`,
    [Number(customActionId)],
  );
  return rows.map((row) => ({
    id: String(row.id),
    name: row.name,
    status: row.status,
    definition: row.definition,
    liveRuns: Object.fromEntries(
      Object.entries(row.live_runs ?? {}).map(([block, n]) => [block, Number(n)]),
    ),
  }));
}
