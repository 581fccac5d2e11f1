/**
 * Scenario runs (SPEC §7.4): the API start of a scenario whose start is API, its runs (filtered by
 * profile and status, one by id) and its statistics per block. The runs themselves are moved by
 * the run worker (jobs/scenarios/run-worker.ts); the definitions, activation and deactivation are
 * scenario-routes.ts.
 */
import type { FastifyRequest } from "fastify";
import type { DataTable } from "../../domain/data-table.js";
import type { ErrorDetail } from "../../domain/errors.js";
import { HeraldError, invalid } from "../../domain/errors.js";
import { parseProfileKey } from "../../domain/record-keys.js";
import type { Scenario } from "../../domain/scenario.js";
import { startRunByApi } from "../../jobs/scenarios/api-start.js";
import { findRecordByKey } from "../../storage/record-repository.js";
import { blockStatistics, findRun, listRuns } from "../../storage/scenario-run-reads.js";
import type { StoredRun } from "../../storage/scenario-run-repository.js";
import { findScenario } from "../../storage/scenario-repository.js";
import type { Entity } from "../../storage/tenancy-repository.js";
import { authOf } from "../auth.js";
import { entityOf } from "../import-requests.js";
import { assertStorableRequest } from "./data-route-context.js";
import { acceptEmptyWriteBodies } from "./empty-write-body.js";
import type { RouteModule } from "./route-module.js";
import { scenarioHref } from "./scenario-routes.js";
import {
  Run,
  RunList,
  RunParams,
  RunsQuery,
  ScenarioParams,
  StartBody,
  Statistics,
  TAG,
} from "./scenario-run-schemas.js";

const V5 = "/v5/entities/:entity/scenarios/:id";

function runHref(entityName: string, scenarioId: string, runId: string): string {
  return `${scenarioHref(entityName, scenarioId)}/runs/${runId}`;
}

function renderRun(entity: Entity, scenario: Scenario, run: StoredRun) {
  return {
    id: run.id,
    scenarioId: run.scenarioId,
    profileId: run.profileId,
    status: run.status,
    blockId: run.blockId,
    dueAt: run.dueAt?.toISOString() ?? null,
    start: run.start as unknown as Record<string, unknown>,
    steps: run.steps,
    failures: run.failures,
    lastError: run.lastError,
    startedAt: run.startedAt.toISOString(),
    updatedAt: run.updatedAt.toISOString(),
    endedAt: run.endedAt?.toISOString() ?? null,
    _links: {
      self: { href: runHref(entity.name, scenario.id, run.id) },
      scenario: { href: scenarioHref(entity.name, scenario.id) },
      profile: {
        href: `/v5/entities/${encodeURIComponent(entity.name)}/profile-tables/${encodeURIComponent(scenario.definition.tableId)}/profiles/${run.profileId}`,
      },
    },
  };
}

const START_KEYS = ["profileKey"];

/** The start call's profile key (a profileId may come as a number); unknown keys are warnings. */
function readStartRequest(body: unknown): { profileKey: string; warnings: ErrorDetail[] } {
  const raw = typeof body === "object" && body !== null && !Array.isArray(body) ? body : {};
  const warnings = Object.keys(raw)
    .filter((key) => !START_KEYS.includes(key))
    .map((key) => ({ path: key, message: "is not a key of the start call; ignored" }));
  const key = (raw as { profileKey?: unknown }).profileKey;
  if (typeof key === "string" && key.trim() !== "") return { profileKey: key.trim(), warnings };
  if (typeof key === "number" && Number.isSafeInteger(key) && key > 0)
    return { profileKey: String(key), warnings };
  throw invalid(
    "profileKey",
    "is required: the profileId, or attribute=value of a unique attribute of the scenario's profile table",
  );
}

const scenarioRunRoutes: RouteModule = async (app, deps) => {
  acceptEmptyWriteBodies(app);

  async function scenarioOf(request: FastifyRequest, params: { entity: string; id: string }) {
    assertStorableRequest(request);
    const entity = await entityOf(deps, request, params.entity);
    const scenario = await findScenario(deps.db, entity.id, params.id);
    if (!scenario)
      throw new HeraldError("HERALD_SCENARIO_NOT_FOUND", { id: params.id, entity: entity.name });
    return { entity, scenario };
  }

  /** The scenario's profile table, or undefined when it was deleted. */
  function tableOf(entity: Entity, scenario: Scenario): Promise<DataTable | undefined> {
    return deps.tableCache.find(entity.id, "PROFILE_TABLE", scenario.definition.tableId);
  }

  /**
   * The profile a `profileKey` filter names: a profileId as it is (a deleted profile's runs stay
   * listed), a unique value looked up (404 when no profile holds it).
   */
  async function filteredProfile(
    entity: Entity,
    scenario: Scenario,
    profileKey: string,
  ): Promise<number> {
    if (/^(profileId=)?\d{1,15}$/.test(profileKey))
      return Number(profileKey.replace("profileId=", ""));
    const table = await tableOf(entity, scenario);
    if (!table)
      throw new HeraldError("HERALD_INVALID_PROFILE_KEY", { key: profileKey }, [
        {
          path: "profileKey",
          message: "the scenario's profile table was deleted: filter by profileId",
        },
      ]);
    const key = parseProfileKey(table, profileKey);
    if (key.kind === "profileId") return key.profileId;
    const profile = await findRecordByKey(deps.db, table.id, key.key);
    if (!profile)
      throw new HeraldError("HERALD_PROFILE_NOT_FOUND", { key: profileKey, table: table.name }, [
        { path: "profileKey", message: "no profile of the scenario's table holds this value" },
      ]);
    return profile.recordId;
  }

  app.post(
    `${V5}/start`,
    {
      schema: {
        tags: [TAG],
        summary: "Start a run of an ACTIVE scenario whose start is API, for one profile",
        description:
          "202 with the run, due at once at the scenario's first block. 409 HERALD_SCENARIO_NOT_STARTABLE when the scenario is not ACTIVE, its start is not API, or its re-entry policy keeps the profile out (the message names the run that holds it).",
        params: ScenarioParams,
        body: StartBody,
        response: { 202: Run },
      },
    },
    async (request, reply) => {
      const { entity, scenario } = await scenarioOf(request, request.params);
      const { profileKey, warnings } = readStartRequest(request.body);
      const table = await tableOf(entity, scenario);
      if (!table)
        throw new HeraldError("HERALD_SCENARIO_NOT_STARTABLE", {
          id: scenario.id,
          reason: `its profile table (id ${scenario.definition.tableId}) was deleted`,
        });
      const auth = authOf(request);
      const run = await startRunByApi(
        deps,
        scenario,
        table,
        profileKey,
        { apiKeyId: auth.apiKeyId, apiKeyName: auth.apiKeyName },
        new Date(),
      );
      return reply
        .code(202)
        .header("location", runHref(entity.name, scenario.id, run.id))
        .send({
          ...renderRun(entity, scenario, run),
          ...(warnings.length > 0 ? { details: warnings } : {}),
        });
    },
  );

  app.get(
    `${V5}/runs`,
    {
      schema: {
        tags: [TAG],
        summary: "The scenario's runs, the latest first, by profile and status",
        params: ScenarioParams,
        querystring: RunsQuery,
        response: { 200: RunList },
      },
    },
    async (request) => {
      const { entity, scenario } = await scenarioOf(request, request.params);
      const { profileKey, status } = request.query;
      const page = request.query.page ?? 0;
      const pageSize = request.query.pageSize ?? 100;
      const profileId =
        profileKey === undefined ? undefined : await filteredProfile(entity, scenario, profileKey);
      const { runs, total } = await listRuns(deps.db, scenario.id, {
        ...(profileId === undefined ? {} : { profileId }),
        ...(status === undefined ? {} : { status }),
        page,
        pageSize,
      });
      return {
        runs: runs.map((run) => renderRun(entity, scenario, run)),
        page,
        pageSize,
        totalElements: total,
      };
    },
  );

  app.get(
    `${V5}/runs/:runId`,
    {
      schema: {
        tags: [TAG],
        summary: "One run of the scenario: where it is, when it moves next, its last error",
        params: RunParams,
        response: { 200: Run },
      },
    },
    async (request) => {
      const { entity, scenario } = await scenarioOf(request, request.params);
      const run = await findRun(deps.db, scenario.id, request.params.runId);
      if (!run)
        throw new HeraldError("HERALD_SCENARIO_RUN_NOT_FOUND", {
          id: request.params.runId,
          scenario: scenario.id,
        });
      return renderRun(entity, scenario, run);
    },
  );

  app.get(
    `${V5}/statistics`,
    {
      schema: {
        tags: [TAG],
        summary:
          "Per block, in the definition's order: runs that entered it, wait in it now, passed it, and left the scenario in it",
        params: ScenarioParams,
        response: { 200: Statistics },
      },
    },
    async (request) => {
      const { scenario } = await scenarioOf(request, request.params);
      const blocks = await blockStatistics(deps.db, scenario.id, scenario.definition.blocks);
      return {
        scenarioId: scenario.id,
        blocks: blocks.map((b) => ({
          id: b.blockId,
          blockId: b.blockId,
          type: b.type,
          entered: b.entered,
          waiting: b.waiting,
          passed: b.passed,
          left: b.left,
        })),
      };
    },
  );
};

export default scenarioRunRoutes;
