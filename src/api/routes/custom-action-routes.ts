/**
 * Custom actions (SPEC §7.4, docs/custom-actions.md): definitions (CRUD) and the trigger call, which
 * tells the outside system about one profile by appending a TRIGGER event, delivered to the
 * subscriptions `on: "CUSTOM_ACTION"`. Scenarios' CUSTOM_ACTION blocks append the same event
 * (jobs/custom-action-events.ts); an action that an ACTIVE scenario uses, or whose block runs of an
 * inactive scenario will still reach, cannot be deleted, nor changed in a way that breaks the
 * scenario's blocks (409).
 */
import type { FastifyRequest } from "fastify";
import { Type } from "typebox";
import { captureTransaction } from "../../capture/capture-transaction.js";
import { profileNotFound, stillHolds } from "../../capture/profile-writer.js";
import { RetryWrite } from "../../capture/write-retry.js";
import { eventPublicId } from "../../domain/change-event.js";
import type { CustomAction, GivenParameters } from "../../domain/custom-action.js";
import { checkActionParameters, renderActionParameters } from "../../domain/custom-action.js";
import type { ScenarioHoldingAction } from "../../domain/custom-action-definition.js";
import {
  applyCustomActionPatch,
  changeBreaksScenarios,
  describeHold,
  readCustomAction,
  scenariosHoldingAction,
} from "../../domain/custom-action-definition.js";
import type { DataTable } from "../../domain/data-table.js";
import type { ErrorDetail } from "../../domain/errors.js";
import { HeraldError } from "../../domain/errors.js";
import type { ProfileKey } from "../../domain/record-keys.js";
import { parseProfileKey } from "../../domain/record-keys.js";
import { customActionHref, customActionTriggerEvent } from "../../jobs/custom-action-events.js";
import { appendChangeEventsReturningIds } from "../../storage/change-event-repository.js";
import {
  deleteCustomAction,
  findCustomAction,
  insertCustomAction,
  listCustomActions,
  lockCustomActions,
  scenariosUsingAction,
  updateCustomAction,
} from "../../storage/custom-action-repository.js";
import type { Queryable } from "../../storage/database.js";
import { findRecordById, findRecordByKey } from "../../storage/record-repository.js";
import type { StoredRecord } from "../../storage/record-repository.js";
import type { Entity } from "../../storage/tenancy-repository.js";
import { entityOf, paging, warningDetails } from "../import-requests.js";
import {
  ActionBody,
  ActionParams,
  ActionPatchBody,
  CustomActionList,
  CustomAction as CustomActionSchema,
  EntityParams,
  Paging,
  TAG,
  TriggerAccepted,
  TriggerBody,
} from "./custom-action-schemas.js";
import { withCurrentTable } from "./data-route-context.js";
import { acceptEmptyWriteBodies } from "./empty-write-body.js";
import type { RouteModule } from "./route-module.js";

const V5 = "/v5/entities/:entity/custom-actions";

function actionNotFound(id: string, entity: Entity): HeraldError {
  return new HeraldError("HERALD_CUSTOM_ACTION_NOT_FOUND", { id, entity: entity.name });
}

function nameTaken(name: string): HeraldError {
  return new HeraldError("HERALD_NAME_TAKEN", { kind: "Custom action", name });
}

function renderAction(entity: Entity, action: CustomAction, warnings: readonly ErrorDetail[] = []) {
  const self = customActionHref(entity.name, action.id);
  return {
    id: action.id,
    name: action.name,
    description: action.description,
    parameters: action.parameters,
    createdAt: action.createdAt.toISOString(),
    updatedAt: action.updatedAt.toISOString(),
    ...warningDetails(warnings),
    _links: { self: { href: self }, trigger: { href: `${self}/trigger` } },
  };
}

/** What to do before trying again, for the holds `scenarios` have on the action. */
function adviceFor(scenarios: readonly ScenarioHoldingAction[]): string {
  return scenarios.some((s) => s.hold.kind === "active")
    ? 'deactivate the ACTIVE scenario(s) with POST …/scenarios/{id}/deactivate, and let the runs still going end (or cancel them there with {"cancelRuns": true})'
    : 'let those runs end, or cancel them with POST …/scenarios/{id}/deactivate {"cancelRuns": true}';
}

/**
 * 409: the change would leave `scenarios` (ACTIVE, or with runs still going that will reach a
 * block of the action) with a block that cannot run: their runs would end CANCELLED there.
 */
function inUse(
  action: CustomAction,
  change: string,
  scenarios: readonly ScenarioHoldingAction[],
  details: ErrorDetail[],
): HeraldError {
  return new HeraldError(
    "HERALD_CUSTOM_ACTION_IN_USE",
    {
      id: action.name,
      change,
      scenarios: scenarios.map(describeHold).join("; "),
      advice: adviceFor(scenarios),
    },
    details,
  );
}

/** The scenarios that hold the action now (call it with the action's row locked). */
async function holdersOf(tx: Queryable, action: CustomAction): Promise<ScenarioHoldingAction[]> {
  return scenariosHoldingAction(action.id, await scenariosUsingAction(tx, action.id));
}

/** The trigger call's body (SPEC §7.4), its shape checked; unknown keys are warnings. */
interface TriggerRequest {
  profileTable: string;
  profileKey: string;
  parameters: GivenParameters;
  warnings: ErrorDetail[];
}

const TRIGGER_KEYS = ["profileTable", "profileKey", "parameters"];

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A name or id (`"Customers"`, `"3"`, or `3`); undefined when it is neither. */
function nameOrNumber(value: unknown): string | undefined {
  if (typeof value === "string" && value.trim() !== "") return value.trim();
  if (typeof value === "number" && Number.isSafeInteger(value) && value > 0) return String(value);
  return undefined;
}

function readTriggerRequest(body: unknown, action: CustomAction): TriggerRequest {
  const raw = isObject(body) ? body : {};
  const problems: ErrorDetail[] = [];
  const warnings: ErrorDetail[] = [];
  for (const key of Object.keys(raw))
    if (!TRIGGER_KEYS.includes(key))
      warnings.push({ path: key, message: "is not a key of the trigger call; ignored" });
  const profileTable = nameOrNumber(raw.profileTable);
  if (profileTable === undefined)
    problems.push({
      path: "profileTable",
      message: "is required: the name or id of the profile table the profile is in",
    });
  const profileKey = nameOrNumber(raw.profileKey);
  if (profileKey === undefined)
    problems.push({
      path: "profileKey",
      message: "is required: the profileId, or attribute=value of a unique attribute",
    });
  if (problems.length > 0)
    throw new HeraldError(
      "HERALD_VALIDATION",
      { reason: `${problems[0]!.path} ${problems[0]!.message}` },
      problems,
    );
  const parameters = raw.parameters ?? {};
  if (!isObject(parameters))
    throw new HeraldError(
      "HERALD_INVALID_ACTION_PARAMETERS",
      { action: action.name, reason: "parameters must be an object {name: value}" },
      [{ path: "parameters", message: "must be an object {name: value}" }],
    );
  return { profileTable: profileTable!, profileKey: profileKey!, parameters, warnings };
}

/**
 * The profile, locked until the trigger commits: the event shows the profile as it is when the
 * event is appended, and a write of the profile that commits later has a later event.
 */
async function lockProfile(
  tx: Queryable,
  table: DataTable,
  key: ProfileKey,
): Promise<StoredRecord> {
  const record =
    key.kind === "profileId"
      ? await findRecordById(tx, table.id, key.profileId, true)
      : await findRecordByKey(tx, table.id, key.key, true);
  // Its key moved between the lookup and the lock: read again (withWriteRetry runs it anew).
  if (record && key.kind === "unique" && !stillHolds(record, [key.key]))
    throw new RetryWrite("key moved");
  if (!record) throw profileNotFound(table, key);
  return record;
}

const customActionRoutes: RouteModule = async (app, deps) => {
  acceptEmptyWriteBodies(app);

  async function actionOf(request: FastifyRequest, params: { entity: string; id: string }) {
    const entity = await entityOf(deps, request, params.entity);
    const action = await findCustomAction(deps.db, entity.id, params.id);
    if (!action) throw actionNotFound(params.id, entity);
    return { entity, action };
  }

  app.get(
    V5,
    {
      schema: {
        tags: [TAG],
        summary: "List the custom actions",
        params: EntityParams,
        querystring: Paging,
        response: { 200: CustomActionList },
      },
    },
    async (request) => {
      const entity = await entityOf(deps, request, request.params.entity);
      const { page, pageSize, offset, limit } = paging(request.query);
      const { customActions, total } = await listCustomActions(deps.db, entity.id, {
        offset,
        limit,
      });
      return {
        customActions: customActions.map((a) => renderAction(entity, a)),
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
        summary: "Define a custom action (SPEC §7.4): a name and typed parameters",
        params: EntityParams,
        body: ActionBody,
        response: { 201: CustomActionSchema },
      },
    },
    async (request, reply) => {
      const entity = await entityOf(deps, request, request.params.entity);
      const { definition, warnings } = readCustomAction(request.body);
      const action = await insertCustomAction(deps.db, entity.id, definition);
      if (!action) throw nameTaken(definition.name);
      return reply
        .code(201)
        .header("location", customActionHref(entity.name, action.id))
        .send(renderAction(entity, action, warnings));
    },
  );

  app.get(
    `${V5}/:id`,
    {
      schema: {
        tags: [TAG],
        summary: "A custom action (by id or name)",
        params: ActionParams,
        response: { 200: CustomActionSchema },
      },
    },
    async (request) => {
      const { entity, action } = await actionOf(request, request.params);
      return renderAction(entity, action);
    },
  );

  app.patch(
    `${V5}/:id`,
    {
      schema: {
        tags: [TAG],
        summary:
          "Change a custom action's name, description or parameters (409 when the block of an active scenario, or one that runs still going will reach, would no longer fit its parameters)",
        params: ActionParams,
        body: ActionPatchBody,
        response: { 200: CustomActionSchema },
      },
    },
    async (request) => {
      const entity = await entityOf(deps, request, request.params.entity);
      const { updated, warnings } = await deps.db.transaction(async (tx) => {
        // Locked first: a scenario being activated with it either committed (and is seen below)
        // or waits until this change is made.
        const current = await findCustomAction(tx, entity.id, request.params.id, true);
        if (!current) throw actionNotFound(request.params.id, entity);
        const parsed = applyCustomActionPatch(current, request.body);
        const scenarios = await holdersOf(tx, current);
        const broken = changeBreaksScenarios(parsed.definition, current.id, scenarios);
        if (broken.length > 0) {
          const affected = scenarios.filter((s) =>
            broken.some((p) => p.path.startsWith(`scenarios/${s.id}/`)),
          );
          throw inUse(current, "changed this way", affected, broken);
        }
        const row = await updateCustomAction(tx, entity.id, current.id, parsed.definition);
        if (row === "name-taken") throw nameTaken(parsed.definition.name);
        if (!row) throw actionNotFound(request.params.id, entity);
        return { updated: row, warnings: parsed.warnings };
      });
      return renderAction(entity, updated, warnings);
    },
  );

  app.delete(
    `${V5}/:id`,
    {
      schema: {
        tags: [TAG],
        summary:
          "Delete a custom action (409 while an active scenario uses it, or runs still going will reach its block); its TRIGGER events stay in the change log",
        params: ActionParams,
        response: { 204: Type.Null() },
      },
    },
    async (request, reply) => {
      const entity = await entityOf(deps, request, request.params.entity);
      await deps.db.transaction(async (tx) => {
        const action = await findCustomAction(tx, entity.id, request.params.id, true);
        if (!action) throw actionNotFound(request.params.id, entity);
        const scenarios = await holdersOf(tx, action);
        if (scenarios.length > 0)
          throw inUse(
            action,
            "deleted",
            scenarios,
            scenarios.map((s) => ({ path: `scenarios/${s.id}`, message: describeHold(s) })),
          );
        await deleteCustomAction(tx, entity.id, action.id);
      });
      return reply.code(204).send(null);
    },
  );

  app.post(
    `${V5}/:id/trigger`,
    {
      schema: {
        tags: [TAG],
        summary:
          "Trigger the action for one profile: a TRIGGER event with its parameters and the profile's attributes",
        params: ActionParams,
        body: TriggerBody,
        response: { 202: TriggerAccepted },
      },
    },
    async (request, reply) => {
      const { entity, action } = await actionOf(request, request.params);
      const trigger = readTriggerRequest(request.body, action);
      const params = { entity: request.params.entity, table: trigger.profileTable };
      const eventId = await withCurrentTable(
        deps,
        request,
        params,
        "PROFILE_TABLE",
        async ({ table, origin }) => {
          const key = parseProfileKey(table, trigger.profileKey);
          return captureTransaction(deps, table, async (tx) => {
            // Shared lock: the action cannot be changed or deleted before this trigger commits,
            // and the parameters are checked against the definition the event names.
            const [current] = await lockCustomActions(tx, entity.id, [action.id]);
            if (!current) throw actionNotFound(request.params.id, entity);
            const problems = checkActionParameters(current, trigger.parameters, "parameters");
            if (problems.length > 0)
              throw new HeraldError(
                "HERALD_INVALID_ACTION_PARAMETERS",
                {
                  action: current.name,
                  reason: `${problems[0]!.path} ${problems[0]!.message}`,
                },
                problems,
              );
            const profile = await lockProfile(tx, table, key);
            const event = customActionTriggerEvent({
              action: current,
              entityName: entity.name,
              table,
              profile,
              parameters: renderActionParameters(current, trigger.parameters),
              origin,
            });
            const [id] = await appendChangeEventsReturningIds(tx, [event], deps.logSignals);
            return id!;
          });
        },
      ).catch((error: unknown) => {
        // The table's 404 names the field of the body it came from.
        if (error instanceof HeraldError && error.code === "HERALD_TABLE_NOT_FOUND")
          throw new HeraldError(
            "HERALD_TABLE_NOT_FOUND",
            { table: trigger.profileTable, entity: entity.name },
            [{ path: "profileTable", message: "no profile table has this name or id" }],
          );
        throw error;
      });
      return reply
        .code(202)
        .send({ eventId: eventPublicId(eventId), ...warningDetails(trigger.warnings) });
    },
  );
};

export default customActionRoutes;
