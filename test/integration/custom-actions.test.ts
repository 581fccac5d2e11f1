/**
 * Custom actions (SPEC §7.4) on both backends: CRUD and its bad input (a 4xx that changes nothing),
 * names taken, the trigger call and its TRIGGER event read back from the change-events API with
 * exactly §7.4's payload, triggers that are refused (no event), subscriptions `on: CUSTOM_ACTION`
 * naming an action, and the 409s of an action an ACTIVE scenario uses (scenario rows written with
 * SQL here; the scenario routes are tested with the engine). On PostgreSQL also: a DELETE that
 * waits for a scenario's activation in progress sees the scenario active when it goes on.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { stampPendingEvents } from "../../src/storage/sequencer-repository.js";
import { lockCustomActions } from "../../src/storage/custom-action-repository.js";
import { findEntityByName, firstLicenceId } from "../../src/storage/tenancy-repository.js";
import {
  CAMPAIGN_ID,
  createProfileTable,
  CUSTOMER_ID,
  customersTable,
  dateAttribute,
  FIRST_NAME,
  POINTS,
} from "../helpers/scenario-fixtures.js";
import type { TestApp } from "../helpers/test-app.js";
import { createTestApp, TEST_ENTITY } from "../helpers/test-app.js";
import { testBackends } from "../helpers/test-database.js";

const ACTIONS = `/v5/entities/${TEST_ENTITY}/custom-actions`;
const PROFILES = `/v5/entities/${TEST_ENTITY}/profile-tables/Customers/profiles`;

const CUSTOMERS = customersTable([
  { name: "emailAddress", type: "EMAIL_ADDRESS", unique: true },
  CUSTOMER_ID,
  FIRST_NAME,
  POINTS,
  { name: "vip", type: "CUSTOM", valueType: "BOOLEAN" },
  dateAttribute("since"),
  { name: "tags", type: "CUSTOM", valueType: "STRING", multiValued: true },
]);

/** send-to-crm with a description and optional parameters of two more types. */
const SEND_TO_CRM = {
  name: "send-to-crm",
  description: "Tells the CRM about the profile",
  parameters: [
    CAMPAIGN_ID,
    { name: "points", valueType: "INTEGER" },
    { name: "urgent", valueType: "BOOLEAN" },
  ],
};

interface ActionBody {
  id: string;
  name: string;
  description: string | null;
  parameters: { name: string; valueType: string; mandatory: boolean }[];
  createdAt: string;
  updatedAt: string;
  details?: { path: string; message: string }[];
  _links: { self: { href: string }; trigger: { href: string } };
}

interface ErrorBody {
  status: number;
  code: string;
  message: string;
  details: { path: string; message: string }[];
}

for (const { backend, skip } of await testBackends()) {
  describe(`custom actions on ${backend}`, { skip }, () => {
    let t: TestApp;
    let entityId: number;
    let tableId: string;
    let ann: number;

    const actionRows = async () =>
      (
        await t.database.db.query(
          "SELECT id, name, description, parameters, updated_at FROM custom_actions ORDER BY id",
        )
      ).rows;
    const eventCount = async () =>
      (await t.database.db.query<{ n: number }>("SELECT count(*)::int AS n FROM change_events"))
        .rows[0]!.n;

    const create = async (body: Record<string, unknown>): Promise<ActionBody> => {
      const response = await t.request("POST", ACTIONS, body);
      assert.equal(response.statusCode, 201, response.body);
      return response.json<ActionBody>();
    };

    /** A refused call: its status, code and first path, and not one row or event changed. */
    const refused = async (
      method: string,
      url: string,
      body: unknown,
      status: number,
      code: string,
      path?: string,
    ): Promise<ErrorBody> => {
      const rows = await actionRows();
      const events = await eventCount();
      const response = await t.request(method, url, body);
      assert.equal(response.statusCode, status, response.body);
      const error = response.json<ErrorBody>();
      assert.equal(error.code, code, response.body);
      if (path !== undefined) assert.equal(error.details[0]?.path, path, response.body);
      assert.deepEqual(await actionRows(), rows, "no custom action changed");
      assert.equal(await eventCount(), events, "no event appended");
      return error;
    };

    /** The entity's CUSTOM_ACTION events from the change-events API (stamped first). */
    const triggerEvents = async () => {
      await stampPendingEvents(t.database.db);
      const response = await t.request(
        "GET",
        `/v5/entities/${TEST_ENTITY}/change-events?on=CUSTOM_ACTION&limit=1000`,
      );
      assert.equal(response.statusCode, 200, response.body);
      return response.json<{ events: Record<string, unknown>[] }>().events;
    };

    const trigger = (action: string, body: unknown) =>
      t.request("POST", `${ACTIONS}/${action}/trigger`, body);

    /** A scenario row using `actionIds` (what the scenario routes write), ACTIVE or not. */
    const insertScenario = async (
      name: string,
      status: "ACTIVE" | "INACTIVE",
      blocks: { id: string; customActionId: string; parameters: Record<string, unknown> }[],
    ): Promise<string> => {
      const definition = {
        name,
        tableId,
        reentry: "AFTER_EXIT",
        start: { type: "API" },
        blocks: [
          ...blocks.map((b, i) => ({
            id: b.id,
            type: "CUSTOM_ACTION",
            customActionId: b.customActionId,
            parameters: b.parameters,
            next: blocks[i + 1]?.id ?? "end",
          })),
          { id: "end", type: "EXIT" },
        ],
      };
      const { rows } = await t.database.db.query<{ id: number }>(
        `INSERT INTO scenarios (entity_id, name, table_id, definition, status, activated_at)
         VALUES ($1, $2, $3, $4, $5, CASE WHEN $5 = 'ACTIVE' THEN now() END) RETURNING id`,
        [entityId, name, tableId, JSON.stringify(definition), status],
      );
      const id = rows[0]!.id;
      for (const actionId of new Set(blocks.map((b) => b.customActionId)))
        await t.database.db.query(
          "INSERT INTO scenario_custom_actions (scenario_id, custom_action_id) VALUES ($1, $2)",
          [id, Number(actionId)],
        );
      return String(id);
    };

    before(async () => {
      t = await createTestApp(backend);
      const entity = await findEntityByName(
        t.database.db,
        await firstLicenceId(t.database.db),
        TEST_ENTITY,
      );
      entityId = entity!.id;
      tableId = await createProfileTable(t, CUSTOMERS);
      const written = await t.request("PUT", PROFILES, {
        key: { customerId: "C-1" },
        attributes: {
          emailAddress: "ann@example.com",
          firstName: "Ann",
          points: 12,
          vip: false,
          since: "2020-02-29",
          tags: ["golf", "tea, green"],
        },
      });
      assert.equal(written.statusCode, 201, written.body);
      ann = written.json<{ profileId: number }>().profileId;
    });
    after(() => t?.close());

    test("create, read by id and by name, list with paging, change, delete", async () => {
      const created = await t.request("POST", ACTIONS, {
        name: "crud",
        parameters: [{ name: "p" }],
      });
      assert.equal(created.statusCode, 201, created.body);
      const action = created.json<ActionBody>();
      assert.match(action.id, /^\d+$/);
      assert.equal(created.headers.location, `${ACTIONS}/${action.id}`);
      assert.deepEqual(action.parameters, [{ name: "p", valueType: "STRING", mandatory: false }]);
      assert.equal(action.description, null);
      assert.equal(action.details, undefined, "no key was ignored");
      assert.deepEqual(action._links, {
        self: { href: `${ACTIONS}/${action.id}` },
        trigger: { href: `${ACTIONS}/${action.id}/trigger` },
      });
      for (const key of [action.id, "crud"]) {
        const read = await t.request("GET", `${ACTIONS}/${key}`);
        assert.equal(read.statusCode, 200, read.body);
        assert.deepEqual(read.json(), action);
      }
      const other = await create({ name: "crud-2" });
      const page = (await t.request("GET", `${ACTIONS}?page=0&pageSize=1`)).json<{
        customActions: ActionBody[];
        page: number;
        pageSize: number;
        totalElements: number;
      }>();
      assert.equal(page.customActions.length, 1);
      assert.equal(page.pageSize, 1);
      const all = (await t.request("GET", ACTIONS)).json<{
        customActions: ActionBody[];
        totalElements: number;
      }>();
      assert.equal(all.totalElements, page.totalElements);
      assert.ok(all.customActions.some((a) => a.id === other.id));

      const patched = await t.request("PATCH", `${ACTIONS}/crud`, {
        description: "now described",
        parameters: [{ name: "p", valueType: "INTEGER", mandatory: true }],
        colour: "blue",
      });
      assert.equal(patched.statusCode, 200, patched.body);
      const changed = patched.json<ActionBody>();
      assert.equal(changed.name, "crud");
      assert.equal(changed.description, "now described");
      assert.deepEqual(changed.parameters, [{ name: "p", valueType: "INTEGER", mandatory: true }]);
      assert.deepEqual(
        changed.details?.map((d) => d.path),
        ["colour"],
      );
      const renamed = await t.request("PATCH", `${ACTIONS}/${action.id}`, { name: "crud-renamed" });
      assert.equal(renamed.json<ActionBody>().name, "crud-renamed");
      assert.equal(renamed.json<ActionBody>().description, "now described", "kept");

      for (const id of [action.id, other.id]) {
        const deleted = await t.request("DELETE", `${ACTIONS}/${id}`);
        assert.equal(deleted.statusCode, 204, deleted.body);
      }
      await refused(
        "GET",
        `${ACTIONS}/${action.id}`,
        undefined,
        404,
        "HERALD_CUSTOM_ACTION_NOT_FOUND",
      );
      await refused(
        "DELETE",
        `${ACTIONS}/crud-2`,
        undefined,
        404,
        "HERALD_CUSTOM_ACTION_NOT_FOUND",
      );
      await refused(
        "PATCH",
        `${ACTIONS}/${action.id}`,
        { description: "x" },
        404,
        "HERALD_CUSTOM_ACTION_NOT_FOUND",
      );
    });

    test("bad definitions are 400 with the offending path, and change nothing", async () => {
      const cases: [unknown, string][] = [
        [{}, "name"],
        [{ name: "has spaces" }, "name"],
        [{ name: "42" }, "name"],
        [{ name: "x", parameters: "campaignId" }, "parameters"],
        [{ name: "x", parameters: [{ name: "a", valueType: "MONEY" }] }, "parameters[0].valueType"],
        [{ name: "x", parameters: [{ name: "a" }, { name: "a" }] }, "parameters[1].name"],
        [{ name: "x", parameters: [{ name: "a", mandatory: "yes" }] }, "parameters[0].mandatory"],
        [{ name: "x", description: ["no"] }, "description"],
        // Names every JavaScript object already has: a receiver would read inherited functions.
        [
          { name: "x", parameters: [{ name: "constructor", mandatory: true }] },
          "parameters[0].name",
        ],
        [{ name: "x", parameters: [{ name: "a" }, { name: "toString" }] }, "parameters[1].name"],
        [{ name: "x", parameters: [{ name: "valueOf" }] }, "parameters[0].name"],
      ];
      for (const [body, path] of cases)
        await refused("POST", ACTIONS, body, 400, "HERALD_INVALID_CUSTOM_ACTION", path);
      // Not an object at all: the body schema refuses it, as every route's does.
      await refused("POST", ACTIONS, "[1]", 400, "HERALD_VALIDATION", "body");

      const kept = await create({ name: "kept", parameters: [{ name: "a" }] });
      await refused(
        "PATCH",
        `${ACTIONS}/${kept.id}`,
        { parameters: [{ name: "a" }, { name: "b", valueType: "COLOUR" }] },
        400,
        "HERALD_INVALID_CUSTOM_ACTION",
        "parameters[1].valueType",
      );
      await refused(
        "PATCH",
        `${ACTIONS}/${kept.id}`,
        { parameters: [{ name: "hasOwnProperty" }] },
        400,
        "HERALD_INVALID_CUSTOM_ACTION",
        "parameters[0].name",
      );
      await refused(
        "PATCH",
        `${ACTIONS}/${kept.id}`,
        { name: null },
        400,
        "HERALD_INVALID_CUSTOM_ACTION",
        "name",
      );
    });

    test("a name is unique in its entity: 409 on create and on rename", async () => {
      await create({ name: "taken" });
      const other = await create({ name: "free" });
      const error = await refused("POST", ACTIONS, { name: "taken" }, 409, "HERALD_NAME_TAKEN");
      assert.equal(error.message, "Custom action 'taken' already exists");
      await refused("PATCH", `${ACTIONS}/${other.id}`, { name: "taken" }, 409, "HERALD_NAME_TAKEN");
    });

    test("trigger: 202 with the event's id; the TRIGGER event carries exactly §7.4's payload", async () => {
      const action = await create(SEND_TO_CRM);
      const before = await triggerEvents();
      const response = await trigger(action.name, {
        profileTable: "Customers",
        profileKey: "customerId=C-1",
        parameters: { campaignId: 987654, points: "7", urgent: "TRUE" },
      });
      assert.equal(response.statusCode, 202, response.body);
      const { eventId } = response.json<{ eventId: string }>();
      assert.match(eventId, /^evt_\d+$/);

      const events = await triggerEvents();
      assert.equal(events.length, before.length + 1);
      const event = events.at(-1)!;
      const { rows } = await t.database.db.query<{ created_at: Date; updated_at: Date }>(
        "SELECT created_at, updated_at FROM records WHERE record_id = $1",
        [ann],
      );
      const { _event: block, ...data } = event as { _event: Record<string, unknown> };
      assert.deepEqual(data, {
        "actionParameters.campaignId": "987654",
        "actionParameters.points": "7",
        "actionParameters.urgent": "true",
        "profileAttributes.profileId": String(ann),
        "profileAttributes.creationMoment": rows[0]!.created_at.toISOString(),
        "profileAttributes.updateMoment": rows[0]!.updated_at.toISOString(),
        "profileAttributes.emailAddress": "ann@example.com",
        "profileAttributes.customerId": "C-1",
        "profileAttributes.firstName": "Ann",
        "profileAttributes.points": "12",
        "profileAttributes.vip": "false",
        "profileAttributes.since": "2020-02-29",
        "profileAttributes.tags": ["golf", "tea, green"],
        "customAction.id": action.id,
        "customAction.name": "send-to-crm",
        _links: {
          self: { href: `${ACTIONS}/${action.id}` },
          profile: { href: `/profiles/v4/entity/${TEST_ENTITY}/table/${tableId}/profile/${ann}` },
          customAction: { href: `${ACTIONS}/${action.id}` },
        },
      });
      assert.equal(block.id, eventId, "the answer names the event appended");
      assert.equal(block.type, "TRIGGER");
      assert.deepEqual(block.origin, { kind: "API_KEY", apiKeyId: 1, apiKeyName: "admin" });
      const stored = await t.database.db.query<{ source_id: string; record_key: string }>(
        "SELECT source_id, record_key FROM change_events WHERE id = $1",
        [Number(eventId.slice(4))],
      );
      assert.deepEqual(stored.rows[0], { source_id: action.id, record_key: String(ann) });

      // By profileId and by table id too; parameters left out when none is mandatory.
      const optional = await create({ name: "ping", parameters: [{ name: "note" }] });
      const byId = await trigger(optional.id, {
        profileTable: Number(tableId),
        profileKey: ann,
        extra: "ignored",
      });
      assert.equal(byId.statusCode, 202, byId.body);
      assert.deepEqual(
        byId.json<{ details: { path: string }[] }>().details.map((d) => d.path),
        ["extra"],
      );
      const last = (await triggerEvents()).at(-1)!;
      assert.equal(last["customAction.name"], "ping");
      assert.equal(
        Object.keys(last).some((k) => k.startsWith("actionParameters.")),
        false,
        "no parameter given, none shown",
      );
    });

    test("an action stored with a parameter named 'constructor' sees only the values given", async () => {
      // Such names are refused now (above); an action saved before keeps them, written here by SQL.
      const { rows } = await t.database.db.query<{ id: number }>(
        `INSERT INTO custom_actions (entity_id, name, parameters) VALUES ($1, 'legacy', $2)
         RETURNING id`,
        [
          entityId,
          JSON.stringify([
            { name: "constructor", valueType: "STRING", mandatory: true },
            { name: "toString", valueType: "STRING", mandatory: false },
          ]),
        ],
      );
      const base = { profileTable: "Customers", profileKey: "customerId=C-1" };
      const missing = await refused(
        "POST",
        `${ACTIONS}/legacy/trigger`,
        { ...base, parameters: {} },
        400,
        "HERALD_INVALID_ACTION_PARAMETERS",
        "parameters.constructor",
      );
      assert.match(missing.details[0]!.message, /mandatory/);
      const response = await trigger("legacy", { ...base, parameters: { constructor: "c-1" } });
      assert.equal(response.statusCode, 202, response.body);
      const event = (await triggerEvents()).at(-1)!;
      assert.equal(event["customAction.id"], String(rows[0]!.id));
      assert.deepEqual(
        Object.keys(event).filter((k) => k.startsWith("actionParameters.")),
        ["actionParameters.constructor"],
        "toString was not given, so it is not shown",
      );
      assert.equal(event["actionParameters.constructor"], "c-1");
      await t.database.db.query("DELETE FROM custom_actions WHERE id = $1", [rows[0]!.id]);
    });

    test("refused triggers answer 4xx and append no event", async () => {
      await create({ ...SEND_TO_CRM, name: "strict" });
      const base = { profileTable: "Customers", profileKey: "customerId=C-1" };
      const url = `${ACTIONS}/strict/trigger`;
      await refused(
        "POST",
        url,
        { ...base, profileKey: "customerId=C-404", parameters: { campaignId: "1" } },
        404,
        "HERALD_PROFILE_NOT_FOUND",
      );
      await refused(
        "POST",
        url,
        { ...base, profileKey: 999999, parameters: { campaignId: "1" } },
        404,
        "HERALD_PROFILE_NOT_FOUND",
      );
      const missing = await refused(
        "POST",
        url,
        { ...base, parameters: { points: 1 } },
        400,
        "HERALD_INVALID_ACTION_PARAMETERS",
        "parameters.campaignId",
      );
      assert.match(
        missing.message,
        /custom action 'strict' are invalid: parameters.campaignId is mandatory/,
      );
      await refused(
        "POST",
        url,
        base,
        400,
        "HERALD_INVALID_ACTION_PARAMETERS",
        "parameters.campaignId",
      );
      await refused(
        "POST",
        url,
        { ...base, parameters: { campaignId: "1", points: "many" } },
        400,
        "HERALD_INVALID_ACTION_PARAMETERS",
        "parameters.points",
      );
      await refused(
        "POST",
        url,
        { ...base, parameters: { campaignId: "1", colour: "red" } },
        400,
        "HERALD_INVALID_ACTION_PARAMETERS",
        "parameters.colour",
      );
      await refused(
        "POST",
        url,
        { ...base, parameters: ["campaignId"] },
        400,
        "HERALD_INVALID_ACTION_PARAMETERS",
        "parameters",
      );
      await refused(
        "POST",
        url,
        { ...base, profileTable: "Nope", parameters: { campaignId: "1" } },
        404,
        "HERALD_TABLE_NOT_FOUND",
        "profileTable",
      );
      await refused(
        "POST",
        url,
        { ...base, profileKey: "firstName=Ann", parameters: { campaignId: "1" } },
        400,
        "HERALD_INVALID_PROFILE_KEY",
        "profileKey",
      );
      await refused(
        "POST",
        url,
        { profileTable: "Customers" },
        400,
        "HERALD_VALIDATION",
        "profileKey",
      );
      await refused("POST", url, {}, 400, "HERALD_VALIDATION", "profileTable");
      await refused(
        "POST",
        `${ACTIONS}/nope/trigger`,
        { ...base, parameters: { campaignId: "1" } },
        404,
        "HERALD_CUSTOM_ACTION_NOT_FOUND",
      );
    });

    test("subscriptions on CUSTOM_ACTION name an action by id or name; an unknown one is 404", async () => {
      const action = await create({ name: "hooked" });
      const subscribe = (onElementId: unknown) =>
        t.request("POST", `/v4/entity/${TEST_ENTITY}/webhookSubscription`, {
          on: "CUSTOM_ACTION",
          onElementId,
          eventType: "TRIGGER",
          targetUrl: "https://hooks.example.com/crm",
        });
      for (const name of ["hooked", action.id]) {
        const created = await subscribe(name);
        assert.equal(created.statusCode, 201, created.body);
        assert.equal(created.json<{ onElementId: string }>().onElementId, action.id);
      }
      const unknown = await subscribe("no-such-action");
      assert.equal(unknown.statusCode, 404, unknown.body);
      assert.equal(unknown.json<ErrorBody>().code, "HERALD_CUSTOM_ACTION_NOT_FOUND");
      assert.equal(unknown.json<ErrorBody>().details[0]?.path, "onElementId");
    });

    test("an action an ACTIVE scenario uses: no delete, no breaking change (409); an inactive one without runs does not hold it", async () => {
      const action = await create({ ...SEND_TO_CRM, name: "in-use" });
      const idle = await create({ name: "idle-use" });
      const scenario = await insertScenario("welcome", "ACTIVE", [
        { id: "crm", customActionId: action.id, parameters: { campaignId: "987654", points: 5 } },
      ]);
      await insertScenario("draft", "INACTIVE", [
        { id: "crm", customActionId: idle.id, parameters: {} },
      ]);

      const error = await refused(
        "DELETE",
        `${ACTIONS}/in-use`,
        undefined,
        409,
        "HERALD_CUSTOM_ACTION_IN_USE",
        `scenarios/${scenario}`,
      );
      assert.equal(
        error.message,
        `Custom action 'in-use' cannot be deleted: scenario 'welcome' (id ${scenario}) is ACTIVE and triggers it. To go on: deactivate the ACTIVE scenario(s) with POST …/scenarios/{id}/deactivate, and let the runs still going end (or cancel them there with {"cancelRuns": true})`,
      );
      // Breaking: a parameter the block gives removed, a new mandatory one, a type its value misses.
      for (const [parameters, path] of [
        [[{ name: "campaignId", mandatory: true }], "points"],
        [[...SEND_TO_CRM.parameters, { name: "segment", mandatory: true }], "segment"],
        [[{ name: "campaignId", valueType: "BOOLEAN" }, { name: "points" }], "campaignId"],
      ] as const) {
        const broken = await refused(
          "PATCH",
          `${ACTIONS}/in-use`,
          { parameters },
          409,
          "HERALD_CUSTOM_ACTION_IN_USE",
          `scenarios/${scenario}/blocks/crm.parameters.${path}`,
        );
        assert.match(
          broken.message,
          /cannot be changed this way: scenario 'welcome' \(id \d+\) is ACTIVE and triggers it/,
        );
      }
      // What the block still fits is allowed: a new optional parameter, a wider type, a new name.
      const fits = await t.request("PATCH", `${ACTIONS}/in-use`, {
        name: "in-use-2",
        parameters: [...SEND_TO_CRM.parameters, { name: "segment" }],
      });
      assert.equal(fits.statusCode, 200, fits.body);

      const idleDeleted = await t.request("DELETE", `${ACTIONS}/idle-use`);
      assert.equal(idleDeleted.statusCode, 204, idleDeleted.body);
      await t.database.db.query("UPDATE scenarios SET status = 'INACTIVE' WHERE id = $1", [
        Number(scenario),
      ]);
      const deleted = await t.request("DELETE", `${ACTIONS}/${action.id}`);
      assert.equal(deleted.statusCode, 204, deleted.body);
    });

    test("an INACTIVE scenario's runs still going hold the action while they can reach its block", async () => {
      const held = await create({ ...SEND_TO_CRM, name: "held-by-runs" });
      const passed = await create({ ...SEND_TO_CRM, name: "passed-by-runs" });
      /** WAIT → CUSTOM_ACTION → WAIT → EXIT, INACTIVE (deactivated with its runs left to finish). */
      const scenarioUsing = async (name: string, actionId: string) => {
        const definition = {
          name,
          tableId,
          reentry: "ALWAYS",
          start: { type: "API" },
          blocks: [
            { id: "before", type: "WAIT", duration: "PT1H", next: "crm" },
            {
              id: "crm",
              type: "CUSTOM_ACTION",
              customActionId: actionId,
              parameters: { campaignId: "1" },
              next: "after",
            },
            { id: "after", type: "WAIT", duration: "PT1H", next: "end" },
            { id: "end", type: "EXIT" },
          ],
        };
        const { rows } = await t.database.db.query<{ id: number }>(
          `INSERT INTO scenarios (entity_id, name, table_id, definition, status, activated_at,
                                  deactivated_at)
           VALUES ($1, $2, $3, $4, 'INACTIVE', now(), now()) RETURNING id`,
          [entityId, name, tableId, JSON.stringify(definition)],
        );
        await t.database.db.query(
          "INSERT INTO scenario_custom_actions (scenario_id, custom_action_id) VALUES ($1, $2)",
          [rows[0]!.id, Number(actionId)],
        );
        return String(rows[0]!.id);
      };
      const run = async (scenarioId: string, status: string, blockId: string) => {
        const live = status === "WAITING" || status === "RUNNING";
        const { rows } = await t.database.db.query<{ id: number }>(
          `INSERT INTO scenario_runs (scenario_id, entity_id, profile_id, status, block_id, due_at,
                                      start, started_at, updated_at, ended_at)
           VALUES ($1, $2, $3, $4, $5, $6, '{"type": "API"}', now(), now(), $7) RETURNING id`,
          [
            Number(scenarioId),
            entityId,
            ann,
            status,
            blockId,
            live ? new Date() : null,
            live ? null : new Date(),
          ],
        );
        return rows[0]!.id;
      };
      const holding = await scenarioUsing("runs-before", held.id);
      const waiting = await run(holding, "WAITING", "before");
      await run(holding, "RUNNING", "crm");
      await run(holding, "WAITING", "after");

      const deleted = await refused(
        "DELETE",
        `${ACTIONS}/${held.id}`,
        undefined,
        409,
        "HERALD_CUSTOM_ACTION_IN_USE",
        `scenarios/${holding}`,
      );
      const why = `scenario 'runs-before' (id ${holding}) is INACTIVE, but 2 of its runs still going (in blocks 'before', 'crm') will reach block 'crm', which triggers it`;
      assert.equal(deleted.details[0]!.message, why);
      assert.equal(
        deleted.message,
        `Custom action 'held-by-runs' cannot be deleted: ${why}. To go on: let those runs end, or cancel them with POST …/scenarios/{id}/deactivate {"cancelRuns": true}`,
      );
      const patched = await refused(
        "PATCH",
        `${ACTIONS}/${held.id}`,
        { parameters: [...SEND_TO_CRM.parameters, { name: "segment", mandatory: true }] },
        409,
        "HERALD_CUSTOM_ACTION_IN_USE",
        `scenarios/${holding}/blocks/crm.parameters.segment`,
      );
      assert.match(patched.message, /cannot be changed this way: scenario 'runs-before'/);
      // A change the block still fits is fine.
      const fits = await t.request("PATCH", `${ACTIONS}/${held.id}`, { description: "still fits" });
      assert.equal(fits.statusCode, 200, fits.body);

      // Runs past the action's block, and runs that ended, hold nothing.
      const past = await scenarioUsing("runs-after", passed.id);
      await run(past, "WAITING", "after");
      await run(past, "FINISHED", "before");
      await run(past, "CANCELLED", "crm");
      const breaking = await t.request("PATCH", `${ACTIONS}/${passed.id}`, {
        parameters: [{ name: "other", mandatory: true }],
      });
      assert.equal(breaking.statusCode, 200, breaking.body);
      assert.equal((await t.request("DELETE", `${ACTIONS}/${passed.id}`)).statusCode, 204);

      // Once the runs before the block have ended, the action may go.
      await t.database.db.query(
        `UPDATE scenario_runs SET status = 'FINISHED', due_at = NULL, ended_at = now()
          WHERE scenario_id = $1 AND block_id IN ('before', 'crm')`,
        [Number(holding)],
      );
      assert.ok(waiting > 0);
      assert.equal((await t.request("DELETE", `${ACTIONS}/${held.id}`)).statusCode, 204);
    });

    test(
      "a DELETE that waits for a scenario's activation in progress sees it active (409)",
      { skip: backend === "pglite" ? "one session: no two transactions overlap" : false },
      async () => {
        const action = await create({ name: "contended" });
        const scenario = await insertScenario("contender", "INACTIVE", [
          { id: "crm", customActionId: action.id, parameters: {} },
        ]);
        let release!: () => void;
        const released = new Promise<void>((resolve) => (release = resolve));
        let locked!: () => void;
        const lockTaken = new Promise<void>((resolve) => (locked = resolve));
        // An activation: the actions locked FOR SHARE, then the scenario marked ACTIVE, committed
        // only once the DELETE below has had time to start waiting.
        const activation = t.database.db.transaction(async (tx) => {
          const rows = await lockCustomActions(tx, entityId, [action.id]);
          assert.equal(rows.length, 1);
          locked();
          await released;
          await tx.query("UPDATE scenarios SET status = 'ACTIVE' WHERE id = $1", [
            Number(scenario),
          ]);
        });
        await lockTaken;
        const deletion = t.request("DELETE", `${ACTIONS}/${action.id}`);
        await new Promise((resolve) => setTimeout(resolve, 200));
        release();
        await activation;
        const response = await deletion;
        assert.equal(response.statusCode, 409, response.body);
        assert.equal(response.json<ErrorBody>().code, "HERALD_CUSTOM_ACTION_IN_USE");
        assert.equal((await t.request("GET", `${ACTIONS}/${action.id}`)).statusCode, 200);
      },
    );
  });
}
