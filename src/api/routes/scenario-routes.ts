/**
 * Scenario definitions (SPEC §7.4, docs/scenarios.md): CRUD, activation and deactivation. A
 * definition is checked whole when it is saved (the table, every start and block, the custom
 * actions and their parameters, the graph), so a bad one is a 400 that changes nothing, and again
 * at activation against the table and the custom actions as they are then. Runs, the API start
 * and statistics are scenario-run-routes.ts.
 *
 * A definition changes only while nothing depends on it: an ACTIVE scenario, or one with runs
 * still going (they point at its block ids, and workers move them), can be neither replaced nor
 * deleted (409 HERALD_SCENARIO_ACTIVE). Each such check runs under the scenario's row lock, in the
 * transaction that makes the change.
 */
import type { FastifyRequest } from "fastify";
import { Type } from "typebox";
import type { CustomAction } from "../../domain/custom-action.js";
import type { DataTable } from "../../domain/data-table.js";
import { HeraldError } from "../../domain/errors.js";
import type { ErrorDetail } from "../../domain/errors.js";
import type { Scenario } from "../../domain/scenario.js";
import type { ParsedScenario } from "../../domain/scenario-definition.js";
import {
  customActionIdsOf,
  invalidScenario,
  parseScenario,
  profileTableOf,
  readScenario,
  scenarioBody,
} from "../../domain/scenario-definition.js";
import { findCustomAction } from "../../storage/custom-action-repository.js";
import { findTableById } from "../../storage/data-table-repository.js";
import type { Queryable } from "../../storage/database.js";
import { createJob } from "../../storage/job-channels.js";
import {
  activateScenario,
  countLiveRuns,
  customActionNames,
  deactivateScenario,
  deleteScenario,
  findScenario,
  insertScenario,
  listScenarios,
  updateScenario,
} from "../../storage/scenario-repository.js";
import type { Entity } from "../../storage/tenancy-repository.js";
import type { AppDeps } from "../app-deps.js";
import { entityOf, paging, warningDetails } from "../import-requests.js";
import { acceptEmptyWriteBodies } from "./empty-write-body.js";
import type { RouteModule } from "./route-module.js";
import {
  DeactivateBody,
  EntityParams,
  Scenario as ScenarioSchema,
  ScenarioBody,
  ScenarioList,
  ScenarioListQuery,
  ScenarioParams,
  TAG,
} from "./scenario-schemas.js";

const V5 = "/v5/entities/:entity/scenarios";

/** A scenario's address in the API. */
export function scenarioHref(entityName: string, scenarioId: string): string {
  return `/v5/entities/${encodeURIComponent(entityName)}/scenarios/${scenarioId}`;
}

function scenarioNotFound(id: string, entity: Entity): HeraldError {
  return new HeraldError("HERALD_SCENARIO_NOT_FOUND", { id, entity: entity.name });
}

/** 409: the scenario cannot change while `state`; `advice` says what to do first. */
function scenarioBusy(scenario: Scenario, change: string, state: string, advice: string) {
  return new HeraldError("HERALD_SCENARIO_ACTIVE", {
    id: scenario.definition.name,
    change,
    state,
    advice,
  });
}

/** What an answer needs beside the scenarios: their tables' and custom actions' names. */
interface Names {
  tables: Map<string, string>;
  customActions: Map<string, string>;
}

async function namesFor(deps: AppDeps, entity: Entity, scenarios: Scenario[]): Promise<Names> {
  const tables = new Map<string, string>();
  for (const tableId of new Set(scenarios.map((s) => s.definition.tableId))) {
    const table = await deps.tableCache.find(entity.id, "PROFILE_TABLE", tableId);
    if (table) tables.set(tableId, table.name);
  }
  const ids = [...new Set(scenarios.flatMap((s) => customActionIdsOf(s.definition)))];
  return { tables, customActions: await customActionNames(deps.db, entity.id, ids) };
}

function renderScenario(
  entity: Entity,
  scenario: Scenario,
  names: Names,
  warnings: readonly ErrorDetail[] = [],
) {
  const self = scenarioHref(entity.name, scenario.id);
  const definition = scenario.definition;
  const body = scenarioBody(definition, {
    tableName: names.tables.get(definition.tableId) ?? definition.tableId,
    customActionName: (id) => names.customActions.get(id),
  });
  return {
    id: scenario.id,
    ...body,
    status: scenario.status,
    activatedAt: scenario.activatedAt?.toISOString() ?? null,
    deactivatedAt: scenario.deactivatedAt?.toISOString() ?? null,
    createdAt: scenario.createdAt.toISOString(),
    updatedAt: scenario.updatedAt.toISOString(),
    ...warningDetails(warnings),
    _links: {
      self: { href: self },
      runs: { href: `${self}/runs` },
      statistics: { href: `${self}/statistics` },
    },
  };
}

/** The custom actions a body's blocks name (by name or id), looked up once each. */
async function customActionsNamedIn(
  db: Queryable,
  entityId: number,
  body: unknown,
): Promise<(idOrName: string) => CustomAction | undefined> {
  const blocks = (body as { blocks?: unknown }).blocks;
  const keys = new Set<string>();
  if (Array.isArray(blocks))
    for (const block of blocks as Record<string, unknown>[])
      for (const key of [block?.customAction, block?.customActionId])
        if (typeof key === "string" || typeof key === "number") keys.add(String(key));
  const found = new Map<string, CustomAction>();
  for (const key of keys) {
    const action = await findCustomAction(db, entityId, key);
    if (action) found.set(key, action);
  }
  return (idOrName) => found.get(idOrName);
}

/**
 * The body checked against the entity: its profile table, its custom actions, the whole
 * definition; with the keys it ignored.
 */
async function checkDefinition(
  deps: AppDeps,
  entity: Entity,
  body: unknown,
): Promise<ParsedScenario> {
  const tableKey = profileTableOf(body);
  if (tableKey === undefined)
    throw invalidScenario([
      {
        path: "profileTable",
        message: "is required: the name or id of the profile table whose profiles run the scenario",
      },
    ])!;
  const table = await deps.tableCache.find(entity.id, "PROFILE_TABLE", tableKey);
  if (!table)
    throw invalidScenario([
      {
        path: "profileTable",
        message: `no profile table of entity '${entity.name}' has the name or id '${tableKey}'`,
      },
    ])!;
  const customActions = await customActionsNamedIn(deps.db, entity.id, body);
  return readScenario(body, { table, customActions });
}

/**
 * Activation's check: the stored definition parsed anew against its table and custom actions as
 * they are now (the actions as the activation locked them). A table or an action deleted or
 * changed since the scenario was saved is a 400 naming the block.
 */
async function recheck(tx: Queryable, scenario: Scenario, actions: CustomAction[]): Promise<void> {
  const definition = scenario.definition;
  const table: DataTable | undefined = await findTableById(tx, definition.tableId);
  if (!table || table.entityId !== scenario.entityId)
    throw invalidScenario([
      {
        path: "profileTable",
        message: `the profile table (id ${definition.tableId}) no longer exists; replace the scenario's definition with PUT`,
      },
    ])!;
  const byId = new Map(actions.map((a) => [a.id, a]));
  parseScenario(scenarioBody(definition), { table, customActions: (id) => byId.get(id) });
}

const scenarioRoutes: RouteModule = async (app, deps) => {
  acceptEmptyWriteBodies(app);

  async function scenarioOf(request: FastifyRequest, params: { entity: string; id: string }) {
    const entity = await entityOf(deps, request, params.entity);
    const scenario = await findScenario(deps.db, entity.id, params.id);
    if (!scenario) throw scenarioNotFound(params.id, entity);
    return { entity, scenario };
  }

  async function renderOne(
    entity: Entity,
    scenario: Scenario,
    warnings: readonly ErrorDetail[] = [],
  ) {
    return renderScenario(entity, scenario, await namesFor(deps, entity, [scenario]), warnings);
  }

  app.get(
    V5,
    {
      schema: {
        tags: [TAG],
        summary: "List the scenarios",
        params: EntityParams,
        querystring: ScenarioListQuery,
        response: { 200: ScenarioList },
      },
    },
    async (request) => {
      const entity = await entityOf(deps, request, request.params.entity);
      const { page, pageSize, offset, limit } = paging(request.query);
      const { scenarios, total } = await listScenarios(deps.db, entity.id, {
        offset,
        limit,
        ...(request.query.status ? { status: request.query.status } : {}),
      });
      const names = await namesFor(deps, entity, scenarios);
      return {
        scenarios: scenarios.map((s) => renderScenario(entity, s, names)),
        page,
        pageSize,
        totalElements: total,
      };
    },
  );

  app.post(
    V5,
    {
      schema: {
        tags: [TAG],
        summary: "Define a scenario (SPEC §7.4); it starts INACTIVE",
        params: EntityParams,
        body: ScenarioBody,
        response: { 201: ScenarioSchema },
      },
    },
    async (request, reply) => {
      const entity = await entityOf(deps, request, request.params.entity);
      const { definition, warnings } = await checkDefinition(deps, entity, request.body);
      const scenario = await deps.db.transaction((tx) => insertScenario(tx, entity.id, definition));
      if (!scenario)
        throw new HeraldError("HERALD_NAME_TAKEN", { kind: "Scenario", name: definition.name });
      return reply
        .code(201)
        .header("location", scenarioHref(entity.name, scenario.id))
        .send(await renderOne(entity, scenario, warnings));
    },
  );

  app.get(
    `${V5}/:id`,
    {
      schema: {
        tags: [TAG],
        summary: "A scenario (by id or name)",
        params: ScenarioParams,
        response: { 200: ScenarioSchema },
      },
    },
    async (request) => {
      const { entity, scenario } = await scenarioOf(request, request.params);
      return renderOne(entity, scenario);
    },
  );

  app.put(
    `${V5}/:id`,
    {
      schema: {
        tags: [TAG],
        summary:
          "Replace an INACTIVE scenario's definition (409 while it is ACTIVE or runs of it are still going)",
        params: ScenarioParams,
        body: ScenarioBody,
        response: { 200: ScenarioSchema },
      },
    },
    async (request) => {
      const { entity, scenario: current } = await scenarioOf(request, request.params);
      const { definition, warnings } = await checkDefinition(deps, entity, request.body);
      const updated = await deps.db.transaction(async (tx) => {
        const locked = await findScenario(tx, entity.id, current.id, { lock: true });
        if (!locked) return undefined;
        if (locked.status === "ACTIVE")
          throw scenarioBusy(locked, "replaced", "ACTIVE", "deactivate it first");
        const live = await countLiveRuns(tx, locked.id);
        if (live > 0)
          throw scenarioBusy(
            locked,
            "replaced",
            `INACTIVE with ${live} run(s) still going (they point at its blocks)`,
            'wait for them to end, or end them with POST …/deactivate {"cancelRuns": true}',
          );
        return updateScenario(tx, entity.id, locked.id, definition, locked.definition);
      });
      if (updated === "name-taken")
        throw new HeraldError("HERALD_NAME_TAKEN", { kind: "Scenario", name: definition.name });
      if (!updated) throw scenarioNotFound(request.params.id, entity);
      return renderOne(entity, updated, warnings);
    },
  );

  app.delete(
    `${V5}/:id`,
    {
      schema: {
        tags: [TAG],
        summary:
          "Delete an INACTIVE scenario with its runs and statistics (409 while it is ACTIVE or runs of it are still going)",
        params: ScenarioParams,
        response: { 204: Type.Null() },
      },
    },
    async (request, reply) => {
      const { entity, scenario } = await scenarioOf(request, request.params);
      const deleted = await deps.db.transaction(async (tx) => {
        const locked = await findScenario(tx, entity.id, scenario.id, { lock: true });
        if (!locked) return false;
        if (locked.status === "ACTIVE")
          throw scenarioBusy(locked, "deleted", "ACTIVE", "deactivate it first");
        // Its runs still going are the workers' (one may be moving them right now, holding their
        // rows); they are ended through the scenario first, by deactivation, not by a cascade.
        const live = await countLiveRuns(tx, locked.id);
        if (live > 0)
          throw scenarioBusy(
            locked,
            "deleted",
            `INACTIVE with ${live} run(s) still going`,
            'deactivate it with {"cancelRuns": true} first (POST …/deactivate), or wait for them to end',
          );
        return deleteScenario(tx, entity.id, locked.id);
      });
      if (!deleted) throw scenarioNotFound(request.params.id, entity);
      return reply.code(204).send(null);
    },
  );

  app.post(
    `${V5}/:id/activate`,
    {
      schema: {
        tags: [TAG],
        summary:
          "Activate: from now on the start's events, dates or API calls start runs (events already in the log start none)",
        params: ScenarioParams,
        response: { 200: ScenarioSchema },
      },
    },
    async (request) => {
      const { entity, scenario } = await scenarioOf(request, request.params);
      // As a job's creation: the NOTIFY commits with the activation and this process's workers are
      // told after it, so a starter takes the scenario now instead of at its next lease renewal.
      const activated = await createJob(deps, (tx) =>
        activateScenario(tx, entity.id, scenario.id, new Date(), (s, actions) =>
          recheck(tx, s, actions),
        ),
      );
      if (!activated) throw scenarioNotFound(request.params.id, entity);
      return renderOne(entity, activated);
    },
  );

  app.post(
    `${V5}/:id/deactivate`,
    {
      schema: {
        tags: [TAG],
        summary:
          'Deactivate: no new run starts; runs still going finish, or end CANCELLED with {"cancelRuns": true}',
        params: ScenarioParams,
        body: DeactivateBody,
        response: { 200: ScenarioSchema },
      },
    },
    async (request) => {
      const { entity, scenario } = await scenarioOf(request, request.params);
      const cancelRuns = request.body.cancelRuns === true;
      const result = await deps.db.transaction((tx) =>
        deactivateScenario(tx, entity.id, scenario.id, new Date(), { cancelRuns }),
      );
      if (!result) throw scenarioNotFound(request.params.id, entity);
      return {
        ...(await renderOne(entity, result.scenario)),
        ...(cancelRuns ? { cancelledRuns: result.cancelled } : {}),
      };
    },
  );
};

export default scenarioRoutes;
