/**
 * Scenario definitions through the API (SPEC §7.4) on both backends: CRUD; every bad input of
 * issue #17 answered with a clear 4xx that changes nothing; activation (the cursor at the log
 * head, idempotent, the DATE start's schedule, the re-check against custom actions changed or
 * deleted since); deactivation with and without cancelRuns (run rows written with SQL, their
 * states and the block counts read back); and the 409s of a scenario that is ACTIVE or has runs.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import pino from "pino";
import { startScenarioRunWorker } from "../../src/jobs/scenarios/run-worker.js";
import { readLogHead } from "../../src/storage/change-event-repository.js";
import { JobSignals } from "../../src/storage/job-signals.js";
import { stampPendingEvents } from "../../src/storage/sequencer-repository.js";
import {
  CAMPAIGN_ID,
  createCustomAction,
  createProfileTable,
  CRM_BLOCK,
  CUSTOMERS_TABLE,
  EXIT_BLOCK,
  SEND_TO_CRM,
  welcomeScenario,
} from "../helpers/scenario-fixtures.js";
import type { TestApp } from "../helpers/test-app.js";
import { createTestApp, TEST_ENTITY } from "../helpers/test-app.js";
import { testBackends } from "../helpers/test-database.js";

const SCENARIOS = `/v5/entities/${TEST_ENTITY}/scenarios`;
const ACTIONS = `/v5/entities/${TEST_ENTITY}/custom-actions`;
const PROFILES = `/v5/entities/${TEST_ENTITY}/profile-tables/Customers/profiles`;

const WELCOME = welcomeScenario();

interface ScenarioAnswer {
  id: string;
  name: string;
  profileTable: string;
  profileTableId: string;
  reentry: string;
  start: Record<string, unknown>;
  blocks: Record<string, unknown>[];
  status: string;
  activatedAt: string | null;
  deactivatedAt: string | null;
  createdAt: string;
  updatedAt: string;
  cancelledRuns?: number;
  _links: { self: { href: string }; runs: { href: string }; statistics: { href: string } };
}

interface ErrorAnswer {
  code: string;
  message: string;
  details: { path: string; message: string }[];
}

interface RunRow {
  id: number;
  status: string;
  block_id: string;
  due_at: Date | null;
  entry_key: string | null;
  ended_at: Date | null;
  last_error: string | null;
}

for (const { backend, skip } of await testBackends()) {
  describe(`scenario definitions on ${backend}`, { skip }, () => {
    let t: TestApp;
    let entityId: number;
    let profiles: number[];

    /** Every scenario row, with what the API does not show (cursor, lease), and the links. */
    async function snapshot(): Promise<string> {
      const db = t.database.db;
      const scenarios = await db.query(
        `SELECT id, name, status, definition, log_cursor, lease_owner, activated_at, deactivated_at,
                updated_at FROM scenarios ORDER BY id`,
      );
      const links = await db.query(
        "SELECT * FROM scenario_custom_actions ORDER BY scenario_id, custom_action_id",
      );
      const runs = await db.query("SELECT * FROM scenario_runs ORDER BY id");
      const schedules = await db.query("SELECT * FROM schedules WHERE kind = 'SCENARIO'");
      return JSON.stringify([scenarios.rows, links.rows, runs.rows, schedules.rows]);
    }

    async function create(body: Record<string, unknown>): Promise<ScenarioAnswer> {
      const response = await t.request("POST", SCENARIOS, body);
      assert.equal(response.statusCode, 201, response.body);
      return response.json<ScenarioAnswer>();
    }

    async function call(method: string, url: string, body?: unknown) {
      const response = await t.request(method, url, body);
      const answer: unknown = response.body === "" ? {} : response.json();
      return { status: response.statusCode, body: answer as ScenarioAnswer & ErrorAnswer };
    }

    async function insertRun(
      scenarioId: string,
      profileId: number,
      status: string,
      blockId: string,
      entryKey: string | null,
    ): Promise<number> {
      const { rows } = await t.database.db.query<{ id: number }>(
        `INSERT INTO scenario_runs (scenario_id, entity_id, profile_id, status, block_id, due_at,
                                    entry_key, start, started_at, updated_at, ended_at)
         VALUES ($1, $2, $3, $4, $5, CASE WHEN $4 IN ('WAITING', 'RUNNING') THEN now() END, $6,
                 '{"type": "API"}', now(), now(),
                 CASE WHEN $4 IN ('WAITING', 'RUNNING') THEN NULL ELSE now() END)
         RETURNING id`,
        [Number(scenarioId), entityId, profileId, status, blockId, entryKey],
      );
      return rows[0]!.id;
    }

    async function runsOf(scenarioId: string): Promise<Map<number, RunRow>> {
      const { rows } = await t.database.db.query<RunRow>(
        `SELECT id, status, block_id, due_at, entry_key, ended_at, last_error
           FROM scenario_runs WHERE scenario_id = $1`,
        [Number(scenarioId)],
      );
      return new Map(rows.map((row) => [row.id, row]));
    }

    async function blockCounts(scenarioId: string): Promise<Record<string, number>> {
      const { rows } = await t.database.db.query<{ block_id: string; exited: number }>(
        "SELECT block_id, exited FROM scenario_block_counts WHERE scenario_id = $1",
        [Number(scenarioId)],
      );
      return Object.fromEntries(rows.map((row) => [row.block_id, Number(row.exited)]));
    }

    async function cursorOf(scenarioId: string): Promise<number | null> {
      const { rows } = await t.database.db.query<{ log_cursor: number | null }>(
        "SELECT log_cursor FROM scenarios WHERE id = $1",
        [Number(scenarioId)],
      );
      return rows[0]!.log_cursor;
    }

    /** Writes a profile and stamps its event: the log head moves on. */
    async function writeProfile(customerId: string, attributes: Record<string, unknown> = {}) {
      const written = await t.request("PUT", PROFILES, { key: { customerId }, attributes });
      assert.ok([200, 201].includes(written.statusCode), written.body);
      await stampPendingEvents(t.database.db);
      return written.json<{ profileId: number }>().profileId;
    }

    before(async () => {
      t = await createTestApp(backend);
      const { rows } = await t.database.db.query<{ id: number }>(
        "SELECT id FROM entities WHERE name = $1",
        [TEST_ENTITY],
      );
      entityId = rows[0]!.id;
      await createProfileTable(t, CUSTOMERS_TABLE);
      await createCustomAction(t, {
        ...SEND_TO_CRM,
        parameters: [CAMPAIGN_ID, { name: "priority", valueType: "INTEGER" }],
      });
      profiles = [await writeProfile("C-1", { tier: "Gold" }), await writeProfile("C-2")];
    });
    after(() => t?.close());

    test("create, read by id and name, list with a status filter, replace, delete", async () => {
      const created = await t.request("POST", SCENARIOS, WELCOME);
      assert.equal(created.statusCode, 201, created.body);
      const scenario = created.json<ScenarioAnswer>();
      assert.match(scenario.id, /^\d+$/);
      assert.equal(created.headers.location, `${SCENARIOS}/${scenario.id}`);
      assert.equal(scenario.status, "INACTIVE");
      assert.equal(scenario.activatedAt, null);
      assert.equal(scenario.profileTable, "Customers");
      assert.equal(scenario.reentry, "AFTER_EXIT");
      assert.deepEqual(scenario.start, WELCOME.start);
      const crm = scenario.blocks[2]!;
      assert.equal(crm.customAction, "send-to-crm");
      assert.match(String(crm.customActionId), /^\d+$/);
      assert.deepEqual(scenario.blocks[3], {
        id: "tag",
        type: "UPDATE_PROFILE",
        attributes: {},
        subscriptions: {},
        segmentations: { Active: "Active" },
        next: "end",
      });
      assert.deepEqual(scenario._links, {
        self: { href: `${SCENARIOS}/${scenario.id}` },
        runs: { href: `${SCENARIOS}/${scenario.id}/runs` },
        statistics: { href: `${SCENARIOS}/${scenario.id}/statistics` },
      });
      for (const key of [scenario.id, "welcome"]) {
        const read = await call("GET", `${SCENARIOS}/${key}`);
        assert.equal(read.status, 200);
        assert.deepEqual(read.body, scenario);
      }
      // The table named with spaces around it is the table found (trimmed) by that name.
      const spaced = await call("PUT", `${SCENARIOS}/${scenario.id}`, {
        ...WELCOME,
        profileTable: " Customers ",
      });
      assert.equal(spaced.status, 200, JSON.stringify(spaced.body));
      assert.equal(spaced.body.profileTable, "Customers");
      // What GET answers can be sent back as it is.
      const same = await call("PUT", `${SCENARIOS}/${scenario.id}`, scenario);
      assert.equal(same.status, 200, JSON.stringify(same.body));
      assert.deepEqual(same.body.blocks, scenario.blocks);

      const taken = await call("POST", SCENARIOS, WELCOME);
      assert.equal(taken.status, 409);
      assert.equal(taken.body.code, "HERALD_NAME_TAKEN");
      const other = await create({ ...WELCOME, name: "other", start: { type: "API" } });
      const renamed = await call("PUT", `${SCENARIOS}/${other.id}`, {
        ...WELCOME,
        name: "welcome",
      });
      assert.equal(renamed.status, 409);
      assert.equal(renamed.body.code, "HERALD_NAME_TAKEN");

      const list = await call("GET", `${SCENARIOS}?page=0&pageSize=1`);
      const page = list.body as unknown as {
        scenarios: ScenarioAnswer[];
        pageSize: number;
        totalElements: number;
      };
      assert.equal(page.pageSize, 1);
      assert.equal(page.scenarios.length, 1);
      assert.ok(page.totalElements >= 2);
      const replaced = await call("PUT", `${SCENARIOS}/${other.id}`, {
        ...WELCOME,
        name: "other",
        reentry: "never",
        blocks: [{ id: "bye", type: "EXIT" }],
      });
      assert.equal(replaced.status, 200, JSON.stringify(replaced.body));
      assert.equal(replaced.body.reentry, "NEVER");
      assert.deepEqual(replaced.body.blocks, [{ id: "bye", type: "EXIT" }]);
      // The links follow the definition: the replaced one uses no custom action any more.
      const links = await t.database.db.query(
        "SELECT 1 FROM scenario_custom_actions WHERE scenario_id = $1",
        [Number(other.id)],
      );
      assert.equal(links.rowCount, 0);
      const run = await insertRun(other.id, profiles[0]!, "FINISHED", "bye", null);
      assert.equal((await call("DELETE", `${SCENARIOS}/${other.id}`)).status, 204);
      assert.equal((await call("GET", `${SCENARIOS}/${other.id}`)).status, 404);
      assert.equal((await call("DELETE", `${SCENARIOS}/${other.id}`)).status, 404);
      assert.equal((await call("PUT", `${SCENARIOS}/${other.id}`, WELCOME)).status, 404);
      assert.equal((await call("POST", `${SCENARIOS}/${other.id}/activate`)).status, 404);
      const gone = await t.database.db.query("SELECT 1 FROM scenario_runs WHERE id = $1", [run]);
      assert.equal(gone.rowCount, 0, "deleting a scenario deletes its runs");
      assert.equal((await call("DELETE", `${SCENARIOS}/${scenario.id}`)).status, 204);
    });

    test("unknown keys of the definition come back as warnings in details, on POST and PUT", async () => {
      const created = await call("POST", SCENARIOS, {
        ...WELCOME,
        name: "warned",
        description: "not a key",
        status: "ACTIVE",
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      assert.deepEqual(created.body.details, [
        { path: "description", message: "is not a key of a scenario; ignored" },
      ]);
      assert.equal(created.body.status, "INACTIVE", "an answer's key sent back is ignored");
      const read = await call("GET", `${SCENARIOS}/${created.body.id}`);
      assert.equal(read.body.details, undefined, "warnings belong to the answer of the request");
      const replaced = await call("PUT", `${SCENARIOS}/${created.body.id}`, {
        ...WELCOME,
        name: "warned",
        reentryPolicy: "NEVER",
      });
      assert.equal(replaced.status, 200, JSON.stringify(replaced.body));
      assert.deepEqual(
        replaced.body.details?.map((d) => d.path),
        ["reentryPolicy"],
      );
      assert.equal(replaced.body.reentry, "AFTER_EXIT");
      const clean = await call("PUT", `${SCENARIOS}/${created.body.id}`, {
        ...WELCOME,
        name: "warned",
      });
      assert.equal(clean.body.details, undefined);
      assert.equal((await call("DELETE", `${SCENARIOS}/${created.body.id}`)).status, 204);
    });

    test("bad input: a clear 4xx naming the problem, and nothing changes", async () => {
      const existing = await create({ ...WELCOME, name: "kept" });
      const blocks = WELCOME.blocks;
      const cases: [string, unknown, number, string, string][] = [
        // The route's schema refuses it before the definition is read.
        ["not an object", [1, 2], 400, "HERALD_VALIDATION", "body"],
        [
          "no table",
          { ...WELCOME, profileTable: undefined },
          400,
          "HERALD_INVALID_SCENARIO",
          "profileTable",
        ],
        [
          "a name of digits only (it would read as an id)",
          { ...WELCOME, name: "42" },
          400,
          "HERALD_INVALID_SCENARIO",
          "name",
        ],
        [
          "unknown table",
          { ...WELCOME, profileTable: "Clients" },
          400,
          "HERALD_INVALID_SCENARIO",
          "profileTable",
        ],
        [
          "not a valid graph: a block no path reaches",
          { ...WELCOME, blocks: [...blocks, { id: "lost", type: "EXIT" }] },
          400,
          "HERALD_INVALID_SCENARIO",
          "blocks[5]",
        ],
        [
          "not a valid graph: a next to nowhere",
          { ...WELCOME, blocks: [{ ...blocks[0], next: "nowhere" }, ...blocks.slice(1)] },
          400,
          "HERALD_INVALID_SCENARIO",
          "blocks[0].next",
        ],
        [
          "not a valid graph: a loop without a WAIT",
          {
            ...WELCOME,
            blocks: [
              blocks[0],
              { ...blocks[1], otherwise: "tag" },
              blocks[2],
              { ...blocks[3], next: "gold" },
              blocks[4],
            ],
          },
          400,
          "HERALD_INVALID_SCENARIO",
          "blocks[3].next",
        ],
        [
          "unknown custom action",
          {
            ...WELCOME,
            blocks: blocks.map((b) => (b.id === "crm" ? { ...b, customAction: "send-to-erp" } : b)),
          },
          400,
          "HERALD_INVALID_SCENARIO",
          "blocks[2].customAction",
        ],
        [
          "missing mandatory parameter",
          {
            ...WELCOME,
            blocks: blocks.map((b) => (b.id === "crm" ? { ...b, parameters: {} } : b)),
          },
          400,
          "HERALD_INVALID_SCENARIO",
          "blocks[2].parameters.campaignId",
        ],
        [
          "unknown attribute",
          {
            ...WELCOME,
            blocks: blocks.map((b) =>
              b.id === "gold"
                ? { ...b, conditions: [{ attribute: "shoeSize", operator: "=", value: 1 }] }
                : b,
            ),
          },
          400,
          "HERALD_INVALID_SCENARIO",
          "blocks[1].conditions[0].attribute",
        ],
        [
          "a FILTER value that does not fit the attribute's type",
          {
            ...WELCOME,
            blocks: blocks.map((b) =>
              b.id === "gold"
                ? { ...b, conditions: [{ attribute: "points", operator: ">", value: "abc" }] }
                : b,
            ),
          },
          400,
          "HERALD_INVALID_SCENARIO",
          "blocks[1].conditions[0].value",
        ],
        [
          "a DATA_EVENT condition's IN item that does not fit the attribute's type",
          {
            ...WELCOME,
            start: {
              ...WELCOME.start,
              conditions: [
                { attribute: "birthDate", operator: "IN", value: ["2024-01-01", "soon"] },
              ],
            },
          },
          400,
          "HERALD_INVALID_SCENARIO",
          "start.conditions.stateAfterOperation[0].value[1]",
        ],
        [
          "a WAIT that does not parse",
          { ...WELCOME, blocks: [{ ...blocks[0], duration: "one hour" }, ...blocks.slice(1)] },
          400,
          "HERALD_INVALID_SCENARIO",
          "blocks[0].duration",
        ],
        [
          "a DATE start on an attribute that is not a date",
          { ...WELCOME, start: { type: "DATE", attribute: "points" } },
          400,
          "HERALD_INVALID_SCENARIO",
          "start.attribute",
        ],
        [
          "not a valid graph: a loop through a WAIT of a millisecond",
          {
            ...WELCOME,
            blocks: [
              { ...blocks[0], duration: "PT0.001S" },
              { ...blocks[1], otherwise: "wait" },
              ...blocks.slice(2),
            ],
          },
          400,
          "HERALD_INVALID_SCENARIO",
          "blocks[1].otherwise",
        ],
        [
          "not a valid graph: a loop through a WAIT until a date",
          {
            ...WELCOME,
            blocks: [
              { id: "wait", type: "WAIT", untilAttribute: "birthDate", next: "gold" },
              { ...blocks[1], otherwise: "wait" },
              ...blocks.slice(2),
            ],
          },
          400,
          "HERALD_INVALID_SCENARIO",
          "blocks[1].otherwise",
        ],
        [
          "a misspelt key inside a block",
          {
            ...WELCOME,
            blocks: [
              blocks[0],
              { ...blocks[1], otherwise: undefined, otherwize: "end" },
              ...blocks.slice(2),
            ],
          },
          400,
          "HERALD_INVALID_SCENARIO",
          "blocks[1].otherwize",
        ],
        [
          "a misspelt key inside a WAIT",
          {
            ...WELCOME,
            blocks: [
              {
                id: "wait",
                type: "WAIT",
                duration: "PT1H",
                untilAtribute: "birthDate",
                next: "gold",
              },
              ...blocks.slice(1),
            ],
          },
          400,
          "HERALD_INVALID_SCENARIO",
          "blocks[0].untilAtribute",
        ],
        [
          "a misspelt key inside the start",
          { ...WELCOME, start: { ...WELCOME.start, onField: ["tier"] } },
          400,
          "HERALD_INVALID_SCENARIO",
          "start.onField",
        ],
      ];
      const before = await snapshot();
      for (const [what, body, status, code, path] of cases) {
        for (const [method, url] of [
          ["POST", SCENARIOS],
          ["PUT", `${SCENARIOS}/${existing.id}`],
        ] as const) {
          const answer = await call(method, url, body);
          assert.equal(
            answer.status,
            status,
            `${what} (${method}): ${JSON.stringify(answer.body)}`,
          );
          assert.equal(answer.body.code, code, what);
          assert.ok(
            answer.body.details.some((d) => d.path === path),
            `${what}: ${JSON.stringify(answer.body.details)}`,
          );
          if (code === "HERALD_INVALID_SCENARIO")
            assert.match(answer.body.message, /^The scenario is invalid: /);
        }
      }
      assert.equal(await snapshot(), before, "a refused request changed something");
      assert.equal((await call("DELETE", `${SCENARIOS}/${existing.id}`)).status, 204);
    });

    test("activation puts the cursor at the log head, once; a reactivation at the head of then", async () => {
      const scenario = await create({ ...WELCOME, name: "cursor" });
      assert.equal(await cursorOf(scenario.id), null);
      await writeProfile("C-3");
      const head = await readLogHead(t.database.db);
      assert.ok(head > 0);
      const activated = await call("POST", `${SCENARIOS}/${scenario.id}/activate`);
      assert.equal(activated.status, 200, JSON.stringify(activated.body));
      assert.equal(activated.body.status, "ACTIVE");
      assert.ok(activated.body.activatedAt);
      assert.equal(await cursorOf(scenario.id), head);
      // Activating again changes nothing: the cursor stays where the starters have it.
      await writeProfile("C-4");
      const again = await call("POST", `${SCENARIOS}/${scenario.id}/activate`);
      assert.equal(again.status, 200);
      assert.equal(again.body.activatedAt, activated.body.activatedAt);
      assert.equal(await cursorOf(scenario.id), head);
      assert.equal((await call("POST", `${SCENARIOS}/${scenario.id}/deactivate`)).status, 200);
      await writeProfile("C-5");
      const later = await readLogHead(t.database.db);
      assert.ok(later > head);
      assert.equal((await call("POST", `${SCENARIOS}/${scenario.id}/activate`)).status, 200);
      assert.equal(await cursorOf(scenario.id), later, "events while inactive start nothing");
      const listed = await call("GET", `${SCENARIOS}?status=ACTIVE`);
      const active = (listed.body as unknown as { scenarios: ScenarioAnswer[] }).scenarios;
      assert.deepEqual(
        active.map((s) => s.id),
        [scenario.id],
      );
      assert.equal((await call("POST", `${SCENARIOS}/${scenario.id}/deactivate`, {})).status, 200);
      assert.equal((await call("DELETE", `${SCENARIOS}/${scenario.id}`)).status, 204);
    });

    test("an ACTIVE scenario cannot be replaced or deleted (409), nor its custom action deleted", async () => {
      const scenario = await create({ ...WELCOME, name: "busy" });
      assert.equal((await call("POST", `${SCENARIOS}/${scenario.id}/activate`)).status, 200);
      const before = await snapshot();
      const put = await call("PUT", `${SCENARIOS}/${scenario.id}`, { ...WELCOME, name: "busy" });
      assert.equal(put.status, 409);
      assert.equal(put.body.code, "HERALD_SCENARIO_ACTIVE");
      assert.match(put.body.message, /cannot be replaced while it is ACTIVE: deactivate it first/);
      const del = await call("DELETE", `${SCENARIOS}/${scenario.id}`);
      assert.equal(del.status, 409);
      assert.match(del.body.message, /cannot be deleted while it is ACTIVE/);
      const crmId = String(scenario.blocks[2]!.customActionId);
      const action = await call("DELETE", `${ACTIONS}/${crmId}`);
      assert.equal(action.status, 409, JSON.stringify(action.body));
      assert.equal(action.body.code, "HERALD_CUSTOM_ACTION_IN_USE");
      assert.equal(await snapshot(), before);
      assert.equal((await call("POST", `${SCENARIOS}/${scenario.id}/deactivate`)).status, 200);
      assert.equal((await call("DELETE", `${SCENARIOS}/${scenario.id}`)).status, 204);
    });

    test("deactivation lets runs finish; with cancelRuns it cancels them and counts them out", async () => {
      const scenario = await create({ ...WELCOME, name: "runs" });
      assert.equal((await call("POST", `${SCENARIOS}/${scenario.id}/activate`)).status, 200);
      await t.database.db.query(
        "UPDATE scenarios SET lease_owner = 'worker-1', lease_until = now() + interval '1 minute' WHERE id = $1",
        [Number(scenario.id)],
      );
      const waiting = await insertRun(
        scenario.id,
        profiles[0]!,
        "WAITING",
        "wait",
        `profile:${profiles[0]}`,
      );
      const running = await insertRun(
        scenario.id,
        profiles[1]!,
        "RUNNING",
        "crm",
        `profile:${profiles[1]}`,
      );
      const alsoWaiting = await insertRun(
        scenario.id,
        999_999,
        "WAITING",
        "wait",
        "profile:999999",
      );
      const finished = await insertRun(scenario.id, profiles[0]!, "FINISHED", "end", null);
      await t.database.db.query(
        `INSERT INTO scenario_block_counts (scenario_id, block_id, entered, passed, exited)
         VALUES ($1, 'wait', 3, 0, 0), ($1, 'end', 1, 0, 1)`,
        [Number(scenario.id)],
      );
      const runsBefore = await runsOf(scenario.id);

      const plain = await call("POST", `${SCENARIOS}/${scenario.id}/deactivate`);
      assert.equal(plain.status, 200);
      assert.equal(plain.body.status, "INACTIVE");
      assert.ok(plain.body.deactivatedAt);
      assert.equal(plain.body.cancelledRuns, undefined);
      assert.deepEqual(await runsOf(scenario.id), runsBefore, "runs go on to their end");
      const lease = await t.database.db.query<{ lease_owner: string | null }>(
        "SELECT lease_owner FROM scenarios WHERE id = $1",
        [Number(scenario.id)],
      );
      assert.equal(lease.rows[0]!.lease_owner, null);

      // Its runs still point at its blocks, and workers move them: no replacing it, no deleting it.
      const snapshotBefore = await snapshot();
      const put = await call("PUT", `${SCENARIOS}/${scenario.id}`, { ...WELCOME, name: "runs" });
      assert.equal(put.status, 409);
      assert.equal(put.body.code, "HERALD_SCENARIO_ACTIVE");
      assert.match(put.body.message, /3 run\(s\) still going/);
      const del = await call("DELETE", `${SCENARIOS}/${scenario.id}`);
      assert.equal(del.status, 409, JSON.stringify(del.body));
      assert.equal(del.body.code, "HERALD_SCENARIO_ACTIVE");
      assert.equal(
        del.body.message,
        `Scenario 'runs' cannot be deleted while it is INACTIVE with 3 run(s) still going: deactivate it with {"cancelRuns": true} first (POST …/deactivate), or wait for them to end`,
      );
      assert.equal(await snapshot(), snapshotBefore, "the refused PUT and DELETE changed nothing");

      const cancel = await call("POST", `${SCENARIOS}/${scenario.id}/deactivate`, {
        cancelRuns: true,
      });
      assert.equal(cancel.status, 200, JSON.stringify(cancel.body));
      assert.equal(cancel.body.cancelledRuns, 3);
      assert.equal(
        cancel.body.deactivatedAt,
        plain.body.deactivatedAt,
        "already inactive since then",
      );
      const runs = await runsOf(scenario.id);
      for (const id of [waiting, running, alsoWaiting]) {
        const run = runs.get(id)!;
        assert.equal(run.status, "CANCELLED");
        assert.equal(run.due_at, null);
        assert.equal(run.entry_key, null, "AFTER_EXIT releases the key");
        assert.ok(run.ended_at);
        assert.equal(run.last_error, "cancelled by deactivation");
      }
      assert.equal(runs.get(running)!.block_id, "crm");
      assert.deepEqual(runs.get(finished), runsBefore.get(finished));
      assert.deepEqual(await blockCounts(scenario.id), { wait: 2, crm: 1, end: 1 });
      const again = await call("POST", `${SCENARIOS}/${scenario.id}/deactivate`, {
        cancelRuns: true,
      });
      assert.equal(again.body.cancelledRuns, 0);
      assert.deepEqual(await blockCounts(scenario.id), { wait: 2, crm: 1, end: 1 });

      const put2 = await call("PUT", `${SCENARIOS}/${scenario.id}`, { ...WELCOME, name: "runs" });
      assert.equal(put2.status, 200, JSON.stringify(put2.body));
      assert.equal((await call("DELETE", `${SCENARIOS}/${scenario.id}`)).status, 204);
    });

    test("cancelling the runs of a NEVER scenario keeps their re-entry keys", async () => {
      const scenario = await create({ ...WELCOME, name: "once", reentry: "NEVER" });
      const run = await insertRun(
        scenario.id,
        profiles[0]!,
        "WAITING",
        "wait",
        `profile:${profiles[0]}`,
      );
      const cancel = await call("POST", `${SCENARIOS}/${scenario.id}/deactivate`, {
        cancelRuns: true,
      });
      assert.equal(cancel.body.cancelledRuns, 1);
      const row = (await runsOf(scenario.id)).get(run)!;
      assert.equal(row.status, "CANCELLED");
      assert.equal(row.entry_key, `profile:${profiles[0]}`);
      assert.equal((await call("DELETE", `${SCENARIOS}/${scenario.id}`)).status, 204);
    });

    test("PUT lets the history fit: ended runs give their re-entry keys back, changed blocks start the statistics afresh", async () => {
      const body = { ...WELCOME, name: "history", reentry: "NEVER", start: { type: "API" } };
      const scenario = await create(body);
      const url = `${SCENARIOS}/${scenario.id}`;
      const finished = await insertRun(
        scenario.id,
        profiles[0]!,
        "FINISHED",
        "end",
        `profile:${profiles[0]}`,
      );
      const cancelled = await insertRun(
        scenario.id,
        profiles[1]!,
        "CANCELLED",
        "wait",
        `profile:${profiles[1]}`,
      );
      await t.database.db.query(
        `INSERT INTO scenario_block_counts (scenario_id, block_id, entered, passed, exited)
         VALUES ($1, 'wait', 2, 1, 1), ($1, 'gold', 1, 1, 0), ($1, 'end', 1, 0, 1)`,
        [Number(scenario.id)],
      );
      const statistics = async () =>
        (
          (await call("GET", `${url}/statistics`)).body as unknown as {
            blocks: { id: string; entered: number; passed: number; left: number }[];
          }
        ).blocks.map((b) => [b.id, b.entered, b.passed, b.left]);
      const keys = async () =>
        [...(await runsOf(scenario.id)).values()].map((r) => [r.id, r.entry_key]);
      const counted = [
        ["wait", 2, 1, 1],
        ["gold", 1, 1, 0],
        ["crm", 0, 0, 0],
        ["tag", 0, 0, 0],
        ["end", 1, 0, 1],
      ];
      assert.deepEqual(await statistics(), counted);

      // NEVER again: the profiles that ran stay out; the same blocks keep their figures.
      assert.equal((await call("PUT", url, body)).status, 200);
      assert.deepEqual(await keys(), [
        [finished, `profile:${profiles[0]}`],
        [cancelled, `profile:${profiles[1]}`],
      ]);
      assert.deepEqual(await statistics(), counted);

      // AFTER_EXIT: the ended runs let their profiles in again.
      const reopened = await call("PUT", url, { ...body, reentry: "AFTER_EXIT" });
      assert.equal(reopened.status, 200, JSON.stringify(reopened.body));
      assert.deepEqual(await keys(), [
        [finished, null],
        [cancelled, null],
      ]);
      assert.deepEqual(await statistics(), counted, "the blocks did not change");
      assert.equal((await call("POST", `${url}/activate`)).status, 200);
      const started = await call("POST", `${url}/start`, { profileKey: "customerId=C-1" });
      assert.equal(started.status, 202, JSON.stringify(started.body));
      const stopped = await call("POST", `${url}/deactivate`, { cancelRuns: true });
      assert.equal(stopped.body.cancelledRuns, 1);

      // Blocks that change (a block reusing the id 'wait'): the statistics start afresh.
      const changed = await call("PUT", url, {
        ...body,
        reentry: "AFTER_EXIT",
        blocks: [
          { id: "wait", type: "WAIT", duration: "P1D", next: "end" },
          { id: "end", type: "EXIT" },
        ],
      });
      assert.equal(changed.status, 200, JSON.stringify(changed.body));
      assert.deepEqual(await statistics(), [
        ["wait", 0, 0, 0],
        ["end", 0, 0, 0],
      ]);
      const counts = await t.database.db.query(
        "SELECT 1 FROM scenario_block_counts WHERE scenario_id = $1",
        [Number(scenario.id)],
      );
      assert.equal(counts.rowCount, 0);
      const runs = await call("GET", `${url}/runs`);
      assert.equal(
        (runs.body as unknown as { runs: unknown[] }).runs.length,
        3,
        "the runs stay listed",
      );
      assert.equal((await call("DELETE", url)).status, 204);
    });

    test("a DATE start's activation saves its daily schedule; deactivation removes it", async () => {
      const scenario = await create({
        ...WELCOME,
        name: "birthday",
        start: {
          type: "DATE",
          attribute: "birthDate",
          anniversary: true,
          at: "09:30",
          timezone: "Europe/Brussels",
        },
      });
      assert.deepEqual(scenario.start, {
        type: "DATE",
        attribute: "birthDate",
        anniversary: true,
        at: "09:30",
        timezone: "Europe/Brussels",
      });
      assert.equal((await call("POST", `${SCENARIOS}/${scenario.id}/activate`)).status, 200);
      const schedule = await t.database.db.query<{
        cron: string;
        timezone: string;
        entity_id: number;
        next_due_at: Date;
      }>(
        "SELECT cron, timezone, entity_id, next_due_at FROM schedules WHERE kind = 'SCENARIO' AND owner_id = $1",
        [scenario.id],
      );
      assert.equal(schedule.rowCount, 1);
      assert.equal(schedule.rows[0]!.cron, "30 9 * * *");
      assert.equal(schedule.rows[0]!.timezone, "Europe/Brussels");
      assert.equal(schedule.rows[0]!.entity_id, entityId);
      const due = new Intl.DateTimeFormat("en-GB", {
        timeZone: "Europe/Brussels",
        hour: "2-digit",
        minute: "2-digit",
        hourCycle: "h23",
      }).format(schedule.rows[0]!.next_due_at);
      assert.equal(due, "09:30");
      assert.equal((await call("POST", `${SCENARIOS}/${scenario.id}/deactivate`)).status, 200);
      const gone = await t.database.db.query(
        "SELECT 1 FROM schedules WHERE kind = 'SCENARIO' AND owner_id = $1",
        [scenario.id],
      );
      assert.equal(gone.rowCount, 0);
      assert.equal((await call("DELETE", `${SCENARIOS}/${scenario.id}`)).status, 204);
    });

    test("activation checks the definition again: a custom action deleted or changed since is a 400", async () => {
      const actionId = await createCustomAction(t, {
        name: "notify-shop",
        parameters: [{ name: "shop", valueType: "STRING" }],
      });
      const scenario = await create({
        ...WELCOME,
        name: "recheck",
        blocks: [
          { id: "notify", type: "CUSTOM_ACTION", customAction: "notify-shop", next: "end" },
          { id: "end", type: "EXIT" },
        ],
      });
      // A mandatory parameter the block does not give.
      const patched = await t.request("PATCH", `${ACTIONS}/${actionId}`, {
        parameters: [{ name: "shop", valueType: "STRING", mandatory: true }],
      });
      assert.equal(patched.statusCode, 200, patched.body);
      const before = await snapshot();
      const changed = await call("POST", `${SCENARIOS}/${scenario.id}/activate`);
      assert.equal(changed.status, 400, JSON.stringify(changed.body));
      assert.equal(changed.body.code, "HERALD_INVALID_SCENARIO");
      assert.deepEqual(
        changed.body.details.map((d) => d.path),
        ["blocks[0].parameters.shop"],
      );
      assert.equal(await snapshot(), before);
      // Deleted: an inactive scenario does not hold its action.
      assert.equal((await t.request("DELETE", `${ACTIONS}/${actionId}`)).statusCode, 204);
      const deleted = await call("POST", `${SCENARIOS}/${scenario.id}/activate`);
      assert.equal(deleted.status, 400);
      assert.deepEqual(
        deleted.body.details.map((d) => d.path),
        ["blocks[0].customAction"],
      );
      assert.equal(await snapshot(), before);
      // It reads as its id now, and stays readable.
      const read = await call("GET", `${SCENARIOS}/${scenario.id}`);
      assert.equal(read.status, 200);
      assert.equal(read.body.blocks[0]!.customAction, actionId);
      assert.equal(read.body.status, "INACTIVE");
      assert.equal((await call("DELETE", `${SCENARIOS}/${scenario.id}`)).status, 204);
    });

    test("activating an ACTIVE scenario answers it as it is, without checking it again", async () => {
      const actionId = await createCustomAction(t, {
        name: "notify-store",
        parameters: [{ name: "store", valueType: "STRING" }],
      });
      const scenario = await create({
        ...WELCOME,
        name: "already-active",
        blocks: [
          { id: "notify", type: "CUSTOM_ACTION", customAction: "notify-store", next: "end" },
          { id: "end", type: "EXIT" },
        ],
      });
      const activated = await call("POST", `${SCENARIOS}/${scenario.id}/activate`);
      assert.equal(activated.status, 200, JSON.stringify(activated.body));
      // What the API refuses while the scenario is active, done underneath: its block no longer
      // fits the action (a new mandatory parameter).
      await t.database.db.query("UPDATE custom_actions SET parameters = $2 WHERE id = $1", [
        Number(actionId),
        JSON.stringify([{ name: "store", valueType: "STRING", mandatory: true }]),
      ]);
      const before = await snapshot();
      const again = await call("POST", `${SCENARIOS}/${scenario.id}/activate`);
      assert.equal(again.status, 200, JSON.stringify(again.body));
      assert.equal(again.body.status, "ACTIVE");
      assert.equal(again.body.activatedAt, activated.body.activatedAt);
      assert.equal(await snapshot(), before, "nothing changed");
      // Once deactivated, an activation checks it again and refuses it.
      assert.equal((await call("POST", `${SCENARIOS}/${scenario.id}/deactivate`)).status, 200);
      const refused = await call("POST", `${SCENARIOS}/${scenario.id}/activate`);
      assert.equal(refused.status, 400, JSON.stringify(refused.body));
      assert.deepEqual(
        refused.body.details.map((d) => d.path),
        ["blocks[0].parameters.store"],
      );
      assert.equal((await call("DELETE", `${SCENARIOS}/${scenario.id}`)).status, 204);
      assert.equal((await t.request("DELETE", `${ACTIONS}/${actionId}`)).statusCode, 204);
    });

    test("a CUSTOM_ACTION block's TRIGGER is docs/scenarios.md's example, key for key", async () => {
      const scenario = await create({
        ...WELCOME,
        name: "payload",
        start: { type: "API" },
        blocks: [{ ...CRM_BLOCK, next: "end" }, EXIT_BLOCK],
      });
      const url = `${SCENARIOS}/${scenario.id}`;
      assert.equal((await call("POST", `${url}/activate`)).status, 200);
      const started = await call("POST", `${url}/start`, { profileKey: "customerId=C-1" });
      assert.equal(started.status, 202, JSON.stringify(started.body));
      const runId = started.body.id;
      const worker = await startScenarioRunWorker({
        db: t.database.db,
        logSignals: t.database.logSignals,
        jobSignals: new JobSignals(),
        logger: pino({ level: "silent" }),
        config: { workerId: "payload-test" },
        now: () => new Date(Date.now() + 60_000),
        pollMs: 3_600_000,
      });
      try {
        await worker.runDue();
      } finally {
        await worker.stop();
      }
      await stampPendingEvents(t.database.db);
      const listed = await t.request(
        "GET",
        `/v5/entities/${TEST_ENTITY}/change-events?on=CUSTOM_ACTION&limit=1000`,
      );
      assert.equal(listed.statusCode, 200, listed.body);
      const event = listed
        .json<{ events: Record<string, unknown>[] }>()
        .events.find((e) => e["scenario.id"] === scenario.id);
      assert.ok(event, "the block appended its TRIGGER");
      const { rows } = await t.database.db.query<{
        table_id: string;
        created_at: Date;
        updated_at: Date;
      }>("SELECT table_id, created_at, updated_at FROM records WHERE record_id = $1", [
        profiles[0],
      ]);
      const profile = rows[0]!;
      const actionId = String(scenario.blocks[0]!.customActionId);
      const { _event: block, ...data } = event as { _event: Record<string, unknown> };
      // The shape docs/scenarios.md shows (its step 6): the same keys, values of these kinds.
      assert.deepEqual(data, {
        "actionParameters.campaignId": "987654",
        "profileAttributes.profileId": String(profiles[0]),
        "profileAttributes.creationMoment": profile.created_at.toISOString(),
        "profileAttributes.updateMoment": profile.updated_at.toISOString(),
        "profileAttributes.customerId": "C-1",
        "profileAttributes.tier": "Gold",
        "customAction.id": actionId,
        "customAction.name": "send-to-crm",
        "scenario.id": scenario.id,
        "scenario.runId": runId,
        _links: {
          self: { href: `${ACTIONS}/${actionId}` },
          profile: {
            href: `/profiles/v4/entity/${TEST_ENTITY}/table/${profile.table_id}/profile/${profiles[0]}`,
          },
          customAction: { href: `${ACTIONS}/${actionId}` },
        },
      });
      // The change-events API adds `previous` (empty here); a push carries it only with the
      // subscription's includePrevious (docs/change-log.md).
      assert.deepEqual(block.previous, {});
      assert.deepEqual(
        Object.keys(block).filter((key) => key !== "previous"),
        [
          "id",
          "type",
          "position",
          "occurredAt",
          "version",
          "changedFields",
          "origin",
          "declaredEvents",
        ],
      );
      assert.equal(block.type, "TRIGGER");
      assert.equal(block.version, null);
      assert.deepEqual(block.changedFields, []);
      assert.deepEqual(block.declaredEvents, []);
      assert.deepEqual(block.origin, {
        kind: "SCENARIO_RUN",
        type: "SCENARIO_RUN",
        id: runId,
        scenarioId: scenario.id,
      });
      const run = await call("GET", `${url}/runs/${runId}`);
      assert.equal(run.body.status, "FINISHED");
      assert.equal((await call("POST", `${url}/deactivate`)).status, 200);
      assert.equal((await call("DELETE", url)).status, 204);
    });

    test("deactivate's body: cancelRuns must be a boolean", async () => {
      const scenario = await create({ ...WELCOME, name: "body" });
      const bad = await call("POST", `${SCENARIOS}/${scenario.id}/deactivate`, {
        cancelRuns: "all",
      });
      assert.equal(bad.status, 400);
      assert.equal((await call("DELETE", `${SCENARIOS}/${scenario.id}`)).status, 204);
    });
  });
}
