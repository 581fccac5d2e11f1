/**
 * The scenario run engine (SPEC §7.4, DESIGN §6b) on both backends, on a test clock: every block
 * (WAIT by duration and until a date attribute, FILTER both ways and out, CUSTOM_ACTION's one
 * TRIGGER event with §7.4's payload, UPDATE_PROFILE writing an attribute, a subscription and
 * segmentations with origin SCENARIO_RUN, EXIT), runs whose profile was deleted, whose scenario
 * was deactivated, whose block keeps failing; the API start with each re-entry policy, the
 * statistics and the runs list; a WAIT that outlives its worker. On PostgreSQL also: two workers,
 * each on its own pool as two processes have, share 1,000 due runs, each run's TRIGGER once.
 *
 * Scenarios are rows written with SQL here, as the scenario routes store them.
 */
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { after, afterEach, before, describe, test } from "node:test";
import pino from "pino";
import type { ScenarioBlock, ScenarioDefinition } from "../../src/domain/scenario.js";
import { entryKey, firstBlock } from "../../src/domain/scenario.js";
import type { HeraldError } from "../../src/domain/errors.js";
import { startRunByApi } from "../../src/jobs/scenarios/api-start.js";
import type { ScenarioRunWorker } from "../../src/jobs/scenarios/run-worker.js";
import { startScenarioRunWorker } from "../../src/jobs/scenarios/run-worker.js";
import { findTableById } from "../../src/storage/data-table-repository.js";
import type { Database } from "../../src/storage/database.js";
import { JobSignals } from "../../src/storage/job-signals.js";
import { LogSignals } from "../../src/storage/log-signals.js";
import type { NewRun } from "../../src/storage/scenario-run-repository.js";
import { insertRuns } from "../../src/storage/scenario-run-repository.js";
import { findScenario } from "../../src/storage/scenario-repository.js";
import { stampPendingEvents } from "../../src/storage/sequencer-repository.js";
import { findEntityByName, firstLicenceId } from "../../src/storage/tenancy-repository.js";
import {
  ACTIVE,
  CAMPAIGN_ID,
  createCustomAction,
  createProfileTable,
  CUSTOMER_ID,
  customersTable,
  dateAttribute,
  FIRST_NAME,
  GOLD_FILTER,
  NEWSLETTER,
  POINTS,
  SEND_TO_CRM,
  TIER,
} from "../helpers/scenario-fixtures.js";
import type { TestApp } from "../helpers/test-app.js";
import { createTestApp, TEST_ENTITY } from "../helpers/test-app.js";
import { testBackends } from "../helpers/test-database.js";

const PROFILES = `/v5/entities/${TEST_ENTITY}/profile-tables/Customers/profiles`;
const ACTIONS = `/v5/entities/${TEST_ENTITY}/custom-actions`;
const SCENARIOS = `/v5/entities/${TEST_ENTITY}/scenarios`;
const MINUTE = 60_000;

const CUSTOMERS = customersTable(
  [CUSTOMER_ID, FIRST_NAME, TIER, POINTS, dateAttribute("renewal")],
  {
    subscriptions: [NEWSLETTER],
    segmentations: [ACTIVE, { name: "Level", type: "EXCLUSIVE", segments: ["Bronze", "Gold"] }],
  },
);

interface RunRow {
  id: string;
  profile_id: number;
  status: string;
  block_id: string;
  due_at: Date | null;
  entry_key: string | null;
  steps: number;
  failures: number;
  last_error: string | null;
  ended_at: Date | null;
}

interface EventRow {
  id: number;
  source: string;
  source_id: string;
  event_type: string;
  record_key: string;
  state: Record<string, unknown>;
  extra: Record<string, unknown>;
  origin: Record<string, unknown>;
}

function capturingLogger() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString("utf8").split("\n"))
        if (line.trim()) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level: "info" }, stream), lines };
}

for (const { backend, skip } of await testBackends()) {
  describe(`scenario runs on ${backend}`, { skip }, () => {
    let t: TestApp;
    let db: Database;
    let entityId: number;
    let tableId: string;
    let actionId: string;
    /** The test clock: a minute past the real time, so that runs the API starts now are due on it. */
    let clock: Date;
    const now = () => clock;
    const advance = (ms: number) => {
      clock = new Date(clock.getTime() + ms);
    };
    const workers: ScenarioRunWorker[] = [];
    let profileCount = 0;

    /** send-to-crm's CUSTOM_ACTION block as stored (by id), with these parameters. */
    const crmBlock = (
      parameters: Record<string, string | number | boolean>,
      next = "end",
    ): ScenarioBlock => ({
      id: "crm",
      type: "CUSTOM_ACTION",
      customActionId: actionId,
      parameters,
      next,
    });

    /** A worker on the test database, driven by the tests with runDue. */
    async function startWorker(
      options: {
        db?: Database;
        batchSize?: number;
        logger?: pino.Logger;
        name?: string;
        jobSignals?: JobSignals;
      } = {},
    ): Promise<ScenarioRunWorker> {
      const worker = await startScenarioRunWorker({
        db: options.db ?? db,
        // A worker on a pool of its own is another process's: signals of its own.
        logSignals: options.db ? new LogSignals() : t.database.logSignals,
        jobSignals: options.jobSignals ?? new JobSignals(),
        logger: options.logger ?? pino({ level: "silent" }),
        config: { workerId: options.name ?? "test" },
        now,
        pollMs: 60 * MINUTE,
        ...(options.batchSize ? { batchSize: options.batchSize } : {}),
      });
      workers.push(worker);
      return worker;
    }

    async function createProfile(attributes: Record<string, unknown>): Promise<number> {
      profileCount++;
      const response = await t.request("PUT", PROFILES, {
        key: { customerId: `C-${profileCount}` },
        attributes,
      });
      assert.equal(response.statusCode, 201, response.body);
      return response.json<{ profileId: number }>().profileId;
    }

    /** A scenario created (and activated) through the scenario routes; runs begin at its first block. */
    async function createScenario(
      blocks: ScenarioBlock[],
      options: {
        reentry?: ScenarioDefinition["reentry"];
        status?: "ACTIVE" | "INACTIVE";
        start?: Record<string, unknown>;
      } = {},
    ): Promise<{ id: string; definition: ScenarioDefinition }> {
      const created = await t.request("POST", SCENARIOS, {
        name: `scenario-${Math.random().toString(36).slice(2)}`,
        profileTable: "Customers",
        reentry: options.reentry ?? "AFTER_EXIT",
        start: options.start ?? { type: "API" },
        blocks,
      });
      assert.equal(created.statusCode, 201, created.body);
      const id = created.json<{ id: string }>().id;
      if ((options.status ?? "ACTIVE") === "ACTIVE") {
        const activated = await t.request("POST", `${SCENARIOS}/${id}/activate`);
        assert.equal(activated.statusCode, 200, activated.body);
      }
      const { rows } = await db.query<{ definition: ScenarioDefinition }>(
        "SELECT definition FROM scenarios WHERE id = $1",
        [id],
      );
      return { id, definition: rows[0]!.definition };
    }

    /** A scenario row written with SQL, as the routes would store it, bypassing their checks. */
    async function storeScenario(
      blocks: ScenarioBlock[],
    ): Promise<{ id: string; definition: ScenarioDefinition }> {
      const definition: ScenarioDefinition = {
        name: `stored-${Math.random().toString(36).slice(2)}`,
        tableId,
        reentry: "AFTER_EXIT",
        start: { type: "API" },
        blocks,
      };
      const { rows } = await db.query<{ id: string }>(
        `INSERT INTO scenarios (entity_id, name, table_id, definition, status, activated_at)
         VALUES ($1, $2, $3, $4, 'ACTIVE', now()) RETURNING id::text AS id`,
        [entityId, definition.name, tableId, JSON.stringify(definition)],
      );
      return { id: rows[0]!.id, definition };
    }

    /** Runs as a log starter creates them (insertRuns), due now on the test clock. */
    async function enter(
      scenario: { id: string; definition: ScenarioDefinition },
      profileIds: readonly number[],
    ): Promise<number> {
      const runs: NewRun[] = profileIds.map((profileId) => ({
        scenarioId: scenario.id,
        entityId,
        profileId,
        blockId: firstBlock(scenario.definition).id,
        dueAt: clock,
        entryKey: entryKey(scenario.definition.reentry, profileId),
        start: { type: "DATA_EVENT", position: 1, eventId: "evt_1" },
      }));
      return db.transaction((tx) => insertRuns(tx, runs, clock));
    }

    async function runsOf(scenarioId: string): Promise<RunRow[]> {
      const { rows } = await db.query<RunRow>(
        `SELECT id::text AS id, profile_id, status, block_id, due_at, entry_key, steps, failures,
                last_error, ended_at
           FROM scenario_runs WHERE scenario_id = $1 ORDER BY id`,
        [scenarioId],
      );
      return rows;
    }

    async function eventsOf(where: string, params: unknown[] = []): Promise<EventRow[]> {
      const { rows } = await db.query<EventRow>(
        `SELECT id, source, source_id, event_type, record_key, state, extra, origin
           FROM change_events WHERE ${where} ORDER BY id`,
        params,
      );
      return rows;
    }

    const triggersOf = (scenarioId: string) =>
      eventsOf("source = 'CUSTOM_ACTION' AND state->>'scenario.id' = $1", [scenarioId]);

    /** GET …/statistics, as block id → [entered, waiting, passed, left]. */
    async function statistics(scenario: { id: string }) {
      const response = await t.request("GET", `${SCENARIOS}/${scenario.id}/statistics`);
      assert.equal(response.statusCode, 200, response.body);
      const body = response.json<{
        scenarioId: string;
        blocks: { id: string; entered: number; waiting: number; passed: number; left: number }[];
      }>();
      assert.equal(body.scenarioId, scenario.id);
      return Object.fromEntries(
        body.blocks.map((b) => [b.id, [b.entered, b.waiting, b.passed, b.left]]),
      );
    }

    before(async () => {
      t = await createTestApp(backend);
      db = t.database.db;
      const entity = await findEntityByName(db, await firstLicenceId(db), TEST_ENTITY);
      entityId = entity!.id;
      tableId = await createProfileTable(t, CUSTOMERS);
      actionId = await createCustomAction(t, {
        ...SEND_TO_CRM,
        parameters: [CAMPAIGN_ID, { name: "points", valueType: "INTEGER" }],
      });
      clock = new Date(Math.ceil(Date.now() / MINUTE) * MINUTE + MINUTE);
    });
    afterEach(async () => {
      for (const worker of workers.splice(0)) await worker.stop();
    });
    after(() => t?.close());

    test("WAIT by duration: the run waits in the block until its end, then goes on", async () => {
      const worker = await startWorker();
      const scenario = await createScenario([
        { id: "wait", type: "WAIT", duration: "PT1H", next: "end" },
        { id: "end", type: "EXIT" },
      ]);
      const profile = await createProfile({ firstName: "Ann" });
      const started = clock;
      assert.equal(await enter(scenario, [profile]), 1);
      await worker.runDue();
      let [run] = await runsOf(scenario.id);
      assert.equal(run!.status, "WAITING");
      assert.equal(run!.block_id, "wait");
      assert.deepEqual(run!.due_at, new Date(started.getTime() + 60 * MINUTE));
      assert.deepEqual(await statistics(scenario), { wait: [1, 1, 0, 0], end: [0, 0, 0, 0] });

      advance(59 * MINUTE);
      assert.equal((await worker.runDue()).taken, 0, "nothing is due a minute before the end");
      assert.equal((await runsOf(scenario.id))[0]!.status, "WAITING");

      advance(MINUTE);
      await worker.runDue();
      [run] = await runsOf(scenario.id);
      assert.equal(run!.status, "FINISHED");
      assert.equal(run!.block_id, "end");
      assert.equal(run!.due_at, null);
      assert.deepEqual(run!.ended_at, clock);
      assert.equal(run!.entry_key, null, "AFTER_EXIT releases the key when the run ends");
      assert.equal(run!.steps, 2);
      assert.equal(run!.last_error, null);
      assert.deepEqual(await statistics(scenario), { wait: [1, 0, 1, 0], end: [1, 0, 0, 1] });
    });

    test("WAIT PT0S and a date already past go on in the same move", async () => {
      const worker = await startWorker();
      const scenario = await createScenario([
        { id: "zero", type: "WAIT", duration: "PT0S", next: "past" },
        { id: "past", type: "WAIT", untilAttribute: "renewal", next: "end" },
        { id: "end", type: "EXIT" },
      ]);
      const profile = await createProfile({ renewal: "2001-01-01" });
      await enter(scenario, [profile]);
      await worker.runDue();
      const [run] = await runsOf(scenario.id);
      assert.equal(run!.status, "FINISHED");
      assert.equal(run!.steps, 3);
    });

    test("a loop whose WAIT does not wait ends FAILED at that WAIT instead of spinning", async () => {
      const { logger, lines } = capturingLogger();
      const worker = await startWorker({ logger });
      // The routes refuse a loop whose WAIT may not wait; stored as if they had not, its WAIT
      // until a date already past goes on at once every time round.
      const scenario = await storeScenario([
        { id: "renewal", type: "WAIT", untilAttribute: "renewal", next: "gold" },
        GOLD_FILTER,
        crmBlock({ campaignId: "loop" }, "renewal"),
        { id: "end", type: "EXIT" },
      ]);
      const gold = await createProfile({ tier: "Gold", renewal: "2001-01-01" });
      const silver = await createProfile({ tier: "Silver", renewal: "2001-01-01" });
      await enter(scenario, [gold, silver]);
      const moved = await worker.runDue();
      assert.equal(moved.failed, 1);
      const [spun, out] = await runsOf(scenario.id);
      assert.equal(spun!.profile_id, gold);
      assert.deepEqual(
        [spun!.status, spun!.block_id, spun!.due_at, spun!.entry_key, spun!.steps],
        ["FAILED", "renewal", null, null, 3],
      );
      assert.equal(
        spun!.last_error,
        "the run came back to WAIT 'renewal' after 3 blocks in one move without waiting: a loop whose WAIT does not wait (a date already past, or no duration); FAILED so it does not spin",
      );
      assert.deepEqual(spun!.ended_at, clock);
      assert.equal(out!.status, "FINISHED", "the batch's other run went its way");
      assert.equal((await triggersOf(scenario.id)).length, 1, "the block before the spin ran once");
      assert.equal((await worker.runDue()).taken, 0, "nothing is left due");
      assert.deepEqual(await statistics(scenario), {
        renewal: [3, 0, 2, 1],
        gold: [2, 0, 2, 0],
        crm: [1, 0, 1, 0],
        end: [1, 0, 0, 1],
      });
      const told = lines.find((l) => l.runId === spun!.id && l.level === 50);
      assert.match(
        String(told?.msg),
        /is FAILED at block 'renewal', counted as left in it: the run came back/,
      );
    });

    test("WAIT until a date attribute: midnight of that day in the block's time zone, plus the duration", async () => {
      const worker = await startWorker();
      const scenario = await createScenario([
        {
          id: "renewal",
          type: "WAIT",
          untilAttribute: "renewal",
          timezone: "Asia/Tokyo",
          duration: "PT10H",
          next: "end",
        },
        { id: "end", type: "EXIT" },
      ]);
      const day = new Date(clock.getTime() + 3 * 24 * 60 * MINUTE).toISOString().slice(0, 10);
      const dated = await createProfile({ renewal: day });
      const undated = await createProfile({ firstName: "No date" });
      await enter(scenario, [dated, undated]);
      await worker.runDue();
      const [waiting, left] = await runsOf(scenario.id);
      // Midnight in Tokyo (UTC+9, no daylight saving) is 15:00 UTC the day before; + 10 h.
      const expected = new Date(new Date(`${day}T00:00:00Z`).getTime() + (10 - 9) * 60 * MINUTE);
      assert.equal(waiting!.status, "WAITING");
      assert.deepEqual(waiting!.due_at, expected);
      assert.equal(left!.status, "FINISHED");
      assert.equal(left!.block_id, "renewal");
      assert.match(left!.last_error ?? "", /'renewal', which holds no date \(no value\)/);
      assert.deepEqual(await statistics(scenario), { renewal: [2, 1, 0, 1], end: [0, 0, 0, 0] });

      clock = new Date(expected.getTime() - 1);
      assert.equal((await worker.runDue()).taken, 0);
      clock = expected;
      await worker.runDue();
      assert.equal((await runsOf(scenario.id))[0]!.status, "FINISHED");
    });

    test("FILTER: next when every condition holds, otherwise when one does not, out when there is no otherwise", async () => {
      const worker = await startWorker();
      const scenario = await createScenario([
        {
          id: "gold",
          type: "FILTER",
          conditions: [
            { attribute: "tier", operator: "=", value: "Gold" },
            { attribute: "points", operator: ">=", value: 100 },
          ],
          next: "rich",
          otherwise: "many",
        },
        {
          id: "many",
          type: "FILTER",
          conditions: [{ attribute: "points", operator: ">", value: 10 }],
          next: "rich",
        },
        { id: "rich", type: "EXIT" },
      ]);
      const gold = await createProfile({ tier: "Gold", points: 150 });
      const silver = await createProfile({ tier: "Silver", points: 150 });
      const poor = await createProfile({ tier: "Gold", points: 5 });
      await enter(scenario, [gold, silver, poor]);
      await worker.runDue();
      const runs = await runsOf(scenario.id);
      const where = Object.fromEntries(
        runs.map((r) => [r.profile_id, `${r.status}@${r.block_id}/${r.steps}`]),
      );
      assert.deepEqual(where, {
        [gold]: "FINISHED@rich/2",
        [silver]: "FINISHED@rich/3",
        [poor]: "FINISHED@many/2",
      });
      assert.deepEqual(await statistics(scenario), {
        gold: [3, 0, 3, 0],
        many: [2, 0, 1, 1],
        rich: [2, 0, 0, 2],
      });
    });

    test("CUSTOM_ACTION: exactly one TRIGGER event per run, with §7.4's payload", async () => {
      const worker = await startWorker();
      const scenario = await createScenario([
        crmBlock({ campaignId: 987654, points: "7" }),
        { id: "end", type: "EXIT" },
      ]);
      const profile = await createProfile({ firstName: "Ann", tier: "Gold", points: 12 });
      await enter(scenario, [profile]);
      await worker.runDue();
      assert.equal((await worker.runDue()).taken, 0, "a finished run is not taken again");
      const [run] = await runsOf(scenario.id);
      assert.equal(run!.status, "FINISHED");
      const triggers = await triggersOf(scenario.id);
      assert.equal(triggers.length, 1);
      assert.equal(triggers[0]!.source_id, actionId);
      assert.equal(triggers[0]!.record_key, String(profile));

      // As the pull API (and so every push) shows it.
      await stampPendingEvents(db);
      const response = await t.request(
        "GET",
        `/v5/entities/${TEST_ENTITY}/change-events?on=CUSTOM_ACTION&limit=1000`,
      );
      assert.equal(response.statusCode, 200, response.body);
      const event = response
        .json<{ events: Record<string, unknown>[] }>()
        .events.find((e) => e["scenario.runId"] === run!.id)!;
      const { rows } = await db.query<{ created_at: Date; updated_at: Date }>(
        "SELECT created_at, updated_at FROM records WHERE record_id = $1",
        [profile],
      );
      const { _event: block, ...data } = event as { _event: Record<string, unknown> };
      assert.deepEqual(data, {
        "actionParameters.campaignId": "987654",
        "actionParameters.points": "7",
        "profileAttributes.profileId": String(profile),
        "profileAttributes.creationMoment": rows[0]!.created_at.toISOString(),
        "profileAttributes.updateMoment": rows[0]!.updated_at.toISOString(),
        "profileAttributes.customerId": `C-${profileCount}`,
        "profileAttributes.firstName": "Ann",
        "profileAttributes.tier": "Gold",
        "profileAttributes.points": "12",
        "customAction.id": actionId,
        "customAction.name": "send-to-crm",
        "scenario.id": scenario.id,
        "scenario.runId": run!.id,
        _links: {
          self: { href: `${ACTIONS}/${actionId}` },
          profile: {
            href: `/profiles/v4/entity/${TEST_ENTITY}/table/${tableId}/profile/${profile}`,
          },
          customAction: { href: `${ACTIONS}/${actionId}` },
        },
      });
      assert.equal(block.type, "TRIGGER");
      assert.deepEqual(block.origin, {
        kind: "SCENARIO_RUN",
        type: "SCENARIO_RUN",
        id: run!.id,
        scenarioId: scenario.id,
      });
    });

    test("UPDATE_PROFILE writes attributes, subscriptions and segmentations through capture, origin SCENARIO_RUN", async () => {
      const worker = await startWorker();
      const scenario = await createScenario([
        {
          id: "tag",
          type: "UPDATE_PROFILE",
          attributes: { tier: "Gold", points: null },
          subscriptions: { newsletter: true },
          segmentations: { Active: "Active", Level: "Gold" },
          next: "check",
        },
        // The same move reads the profile as the write left it.
        {
          id: "check",
          type: "FILTER",
          conditions: [
            { attribute: "tier", operator: "=", value: "Gold" },
            { attribute: "points", operator: "IS_NULL" },
          ],
          next: "untag",
        },
        {
          id: "untag",
          type: "UPDATE_PROFILE",
          attributes: {},
          subscriptions: {},
          segmentations: { Active: false },
          next: "end",
        },
        { id: "end", type: "EXIT" },
      ]);
      const profile = await createProfile({ tier: "Silver", points: 40 });
      const seg = await t.request("PUT", PROFILES, {
        key: { customerId: `C-${profileCount}` },
        segmentations: { Level: "Bronze" },
      });
      assert.equal(seg.statusCode, 200, seg.body);
      const before = (await eventsOf("source = 'PROFILE_TABLE'")).length;
      await enter(scenario, [profile]);
      await worker.runDue();
      const [run] = await runsOf(scenario.id);
      assert.equal(run!.status, "FINISHED");
      assert.equal(run!.block_id, "end");

      const read = await t.request("GET", `${PROFILES}/${profile}`);
      assert.equal(read.statusCode, 200, read.body);
      const written = read.json<{
        attributes: Record<string, unknown>;
        subscriptions: Record<string, boolean>;
        segmentations: Record<string, unknown>;
      }>();
      assert.equal(written.attributes.tier, "Gold");
      assert.equal(written.attributes.points, undefined);
      assert.equal(written.subscriptions.newsletter, true);
      assert.deepEqual(written.segmentations, { Active: false, Level: "Gold" });

      const events = (await eventsOf("source = 'PROFILE_TABLE'")).slice(before);
      assert.deepEqual(
        events.map((e) => [e.event_type, e.extra.segment ?? e.extra.subscriptionName ?? null]),
        [
          ["UPDATE", null],
          ["UPDATED_SUBSCRIPTION", "newsletter"],
          ["UPDATED_SEGMENT", "Active"],
          ["UPDATED_SEGMENT", "Bronze"],
          ["UPDATED_SEGMENT", "Gold"],
          ["UPDATED_SEGMENT", "Active"],
        ],
      );
      assert.deepEqual(
        events.map((e) => e.extra.belongs ?? null),
        [null, null, true, false, true, false],
      );
      for (const event of events)
        assert.deepEqual(event.origin, {
          kind: "SCENARIO_RUN",
          type: "SCENARIO_RUN",
          id: run!.id,
          scenarioId: scenario.id,
        });
      assert.equal(events[0]!.record_key, String(profile));
    });

    test("a run whose profile was deleted while it waited is CANCELLED, saying why", async () => {
      const worker = await startWorker();
      const scenario = await createScenario([
        { id: "wait", type: "WAIT", duration: "P1D", next: "end" },
        { id: "end", type: "EXIT" },
      ]);
      const profile = await createProfile({});
      await enter(scenario, [profile]);
      await worker.runDue();
      const deleted = await t.request("DELETE", `${PROFILES}/${profile}`);
      assert.equal(deleted.statusCode, 204, deleted.body);
      advance(24 * 60 * MINUTE);
      await worker.runDue();
      const [run] = await runsOf(scenario.id);
      assert.equal(run!.status, "CANCELLED");
      assert.equal(run!.block_id, "wait");
      assert.match(run!.last_error ?? "", new RegExp(`profile ${profile} was deleted`));
      assert.equal(run!.entry_key, null);
      assert.deepEqual(await statistics(scenario), { wait: [1, 0, 0, 1], end: [0, 0, 0, 0] });
    });

    test("runs of a deactivated scenario go on to their end", async () => {
      const worker = await startWorker();
      const scenario = await createScenario([
        { id: "wait", type: "WAIT", duration: "PT5M", next: "crm" },
        crmBlock({ campaignId: "1" }),
        { id: "end", type: "EXIT" },
      ]);
      await enter(scenario, [await createProfile({})]);
      await worker.runDue();
      const deactivated = await t.request("POST", `${SCENARIOS}/${scenario.id}/deactivate`, {});
      assert.equal(deactivated.statusCode, 200, deactivated.body);
      assert.equal(deactivated.json<{ status: string }>().status, "INACTIVE");
      advance(5 * MINUTE);
      await worker.runDue();
      assert.equal((await runsOf(scenario.id))[0]!.status, "FINISHED");
      assert.equal((await triggersOf(scenario.id)).length, 1);
    });

    test("a block that keeps failing: retried after a growing backoff, then FAILED; the batch's other runs go on", async () => {
      const { logger, lines } = capturingLogger();
      const worker = await startWorker({ logger });
      const holder = await createProfile({ firstName: "Holder" });
      const taken = `C-${profileCount}`;
      // The routes refuse to save a block that writes one value to a unique attribute for every
      // run; stored as if they had not, it is a block that can never succeed, which the engine must
      // still not stall on.
      const scenario = await storeScenario([
        {
          id: "steal",
          type: "FILTER",
          conditions: [{ attribute: "firstName", operator: "=", value: "Thief" }],
          next: "write",
          otherwise: "end",
        },
        {
          id: "write",
          type: "UPDATE_PROFILE",
          // Another profile's unique value: capture refuses the write (409), every time.
          attributes: { customerId: taken },
          subscriptions: {},
          segmentations: {},
          next: "end",
        },
        { id: "end", type: "EXIT" },
      ]);
      const thief = await createProfile({ firstName: "Thief" });
      const honest = await createProfile({ firstName: "Honest" });
      await enter(scenario, [thief, honest]);
      await worker.runDue();
      let runs = await runsOf(scenario.id);
      assert.equal(runs[1]!.status, "FINISHED", "the honest run went on");
      assert.equal(runs[0]!.status, "RUNNING");
      assert.equal(runs[0]!.block_id, "steal", "the failed move wrote nothing");
      assert.equal(runs[0]!.failures, 1);
      // The move went on from 'steal' and failed in 'write': the block that failed is named.
      assert.match(
        runs[0]!.last_error ?? "",
        new RegExp(
          `^failed at block 'write' \\(moved on from 'steal' in this try; nothing of it was written\\): Value '${taken}' of unique attribute`,
        ),
      );
      assert.deepEqual(runs[0]!.due_at, new Date(clock.getTime() + 30_000));
      const retry = lines.find((l) => l.runId === runs[0]!.id && l.level === 40);
      assert.ok(retry, "the retry is logged at warn with the run's id");
      assert.equal(retry.scenarioId, scenario.id);
      assert.deepEqual([retry.blockId, retry.failedBlockId], ["steal", "write"]);
      assert.match(String(retry.msg), /failed at block 'write' \(moved on from 'steal'/);

      for (let failures = 2; failures <= 5; failures++) {
        advance(29_999 * (failures - 1));
        assert.equal((await worker.runDue()).taken, 0, "not before its backoff");
        advance(failures - 1);
        await worker.runDue();
        assert.equal((await runsOf(scenario.id))[0]!.failures, failures);
      }
      runs = await runsOf(scenario.id);
      assert.equal(runs[0]!.status, "FAILED");
      assert.equal(runs[0]!.failures, 5);
      assert.equal(runs[0]!.due_at, null);
      assert.equal(runs[0]!.entry_key, null, "AFTER_EXIT releases the key of a FAILED run");
      const given = lines.find((l) => l.runId === runs[0]!.id && l.level === 50);
      assert.match(
        String(given?.msg),
        /failed 5 times at block 'write' \(moved on from 'steal' in this try; nothing of it was written\) and is given up: FAILED, counted as left in block 'steal'/,
      );
      assert.match(runs[0]!.last_error ?? "", /^failed at block 'write' \(moved on from 'steal'/);
      assert.deepEqual(await statistics(scenario), {
        steal: [2, 0, 1, 1],
        write: [0, 0, 0, 0],
        end: [1, 0, 0, 1],
      });
      assert.equal(
        (
          await db.query(
            "SELECT 1 FROM records WHERE record_id = $1 AND attributes->>'customerId' = $2",
            [thief, taken],
          )
        ).rowCount,
        0,
      );
      assert.notEqual(holder, thief);
    });

    test("an UPDATE_PROFILE block that no longer fits its table: the run is CANCELLED at once, saying why", async () => {
      const worker = await startWorker();
      // Saved when the table had an attribute 'loyalty' that it no longer has.
      const scenario = await storeScenario([
        { id: "wait", type: "WAIT", duration: "PT0S", next: "tag" },
        {
          id: "tag",
          type: "UPDATE_PROFILE",
          attributes: { tier: "Gold", loyalty: "high" },
          subscriptions: {},
          segmentations: {},
          next: "end",
        },
        { id: "end", type: "EXIT" },
      ]);
      const profile = await createProfile({ tier: "Silver" });
      await enter(scenario, [profile]);
      const moved = await worker.runDue();
      assert.equal(moved.failed, 0, "not a failure to retry");
      const [run] = await runsOf(scenario.id);
      assert.deepEqual(
        [run!.status, run!.block_id, run!.failures, run!.due_at, run!.entry_key],
        ["CANCELLED", "tag", 0, null, null],
      );
      assert.match(
        run!.last_error ?? "",
        /^block 'tag' no longer fits profile table 'Customers', which changed since the scenario was saved: blocks\.tag\.attributes.*loyalty.*; save the scenario again against the table as it is$/,
      );
      const read = await t.request("GET", `${PROFILES}/${profile}`);
      assert.equal(read.json<{ attributes: { tier: string } }>().attributes.tier, "Silver");
      assert.deepEqual(await statistics(scenario), {
        wait: [1, 0, 1, 0],
        tag: [1, 0, 0, 1],
        end: [0, 0, 0, 0],
      });
    });

    describe("API start and re-entry", () => {
      const waitThenExit: ScenarioBlock[] = [
        { id: "wait", type: "WAIT", duration: "PT1H", next: "end" },
        { id: "end", type: "EXIT" },
      ];

      interface RunJson {
        id: string;
        profileId: number;
        status: string;
        blockId: string;
        dueAt: string | null;
        start: Record<string, unknown>;
        details?: { path: string }[];
        _links: Record<string, { href: string }>;
      }

      async function apiStart(scenarioId: string, profileKey: unknown): Promise<RunJson> {
        const response = await t.request("POST", `${SCENARIOS}/${scenarioId}/start`, {
          profileKey,
        });
        assert.equal(response.statusCode, 202, response.body);
        const run = response.json<RunJson>();
        assert.equal(response.headers.location, `${SCENARIOS}/${scenarioId}/runs/${run.id}`);
        return run;
      }

      /** A refused start: its status and code, and not one run written. */
      async function refusal(
        scenarioId: string,
        body: unknown,
        status: number,
        code: string,
      ): Promise<{ message: string; details: { path: string; message: string }[] }> {
        const runs = await runsOf(scenarioId);
        const response = await t.request("POST", `${SCENARIOS}/${scenarioId}/start`, body);
        assert.equal(response.statusCode, status, response.body);
        const error = response.json<{
          code: string;
          message: string;
          details: { path: string; message: string }[];
        }>();
        assert.equal(error.code, code, response.body);
        assert.deepEqual(await runsOf(scenarioId), runs, "nothing was written");
        return error;
      }

      test("AFTER_EXIT: refused while the profile's run goes on, accepted once it ended", async () => {
        const worker = await startWorker();
        const scenario = await createScenario(waitThenExit, { reentry: "AFTER_EXIT" });
        const profile = await createProfile({});
        const run = await apiStart(scenario.id, `customerId=C-${profileCount}`);
        assert.equal(run.profileId, profile);
        assert.equal(run.status, "RUNNING");
        assert.equal(run.blockId, "wait");
        assert.deepEqual(run.start, { type: "API", apiKeyId: 1, apiKeyName: "admin" });
        assert.deepEqual(run._links, {
          self: { href: `${SCENARIOS}/${scenario.id}/runs/${run.id}` },
          scenario: { href: `${SCENARIOS}/${scenario.id}` },
          profile: {
            href: `/v5/entities/${TEST_ENTITY}/profile-tables/${tableId}/profiles/${profile}`,
          },
        });
        await worker.runDue();
        const error = await refusal(
          scenario.id,
          { profileKey: profile },
          409,
          "HERALD_SCENARIO_NOT_STARTABLE",
        );
        assert.equal(
          error.message,
          `Scenario '${scenario.id}' cannot start a run: profile ${profile} is already in it: run ${run.id} is WAITING at block 'wait'; its re-entry policy AFTER_EXIT lets the profile in again once that run has ended`,
        );
        assert.equal(error.details[0]?.path, "profileKey");
        advance(60 * MINUTE);
        await worker.runDue();
        const again = await apiStart(scenario.id, String(profile));
        assert.notEqual(again.id, run.id);
      });

      test("NEVER: refused after the run ended too", async () => {
        const worker = await startWorker();
        const scenario = await createScenario([{ id: "end", type: "EXIT" }], { reentry: "NEVER" });
        const profile = await createProfile({});
        const run = await apiStart(scenario.id, String(profile));
        await worker.runDue();
        const error = await refusal(
          scenario.id,
          { profileKey: String(profile) },
          409,
          "HERALD_SCENARIO_NOT_STARTABLE",
        );
        assert.match(
          error.message,
          new RegExp(
            `already went through it in run ${run.id} \\(FINISHED\\); its re-entry policy NEVER`,
          ),
        );
        assert.deepEqual(
          (await runsOf(scenario.id)).map((r) => r.entry_key),
          [`profile:${profile}`],
        );
      });

      test("ALWAYS: a profile may be in several runs at once", async () => {
        const worker = await startWorker();
        const scenario = await createScenario(waitThenExit, { reentry: "ALWAYS" });
        const profile = await createProfile({});
        await apiStart(scenario.id, String(profile));
        await apiStart(scenario.id, String(profile));
        await worker.runDue();
        const runs = await runsOf(scenario.id);
        assert.deepEqual(
          runs.map((r) => [r.status, r.entry_key]),
          [
            ["WAITING", null],
            ["WAITING", null],
          ],
        );
      });

      test("a start decided on a scenario read before a deactivate, PUT and activate begins at the first block of the definition ACTIVE now", async () => {
        const scenario = await createScenario(waitThenExit);
        const read = (await findScenario(db, entityId, scenario.id))!;
        assert.equal(firstBlock(read.definition).id, "wait");
        const { name } = (await t.request("GET", `${SCENARIOS}/${scenario.id}`)).json<{
          name: string;
        }>();
        const off = await t.request("POST", `${SCENARIOS}/${scenario.id}/deactivate`, {});
        assert.equal(off.statusCode, 200, off.body);
        const put = await t.request("PUT", `${SCENARIOS}/${scenario.id}`, {
          name,
          profileTable: "Customers",
          reentry: "AFTER_EXIT",
          start: { type: "API" },
          blocks: [
            { id: "hello", type: "WAIT", duration: "PT5M", next: "end" },
            { id: "end", type: "EXIT" },
          ],
        });
        assert.equal(put.statusCode, 200, put.body);
        const on = await t.request("POST", `${SCENARIOS}/${scenario.id}/activate`);
        assert.equal(on.statusCode, 200, on.body);
        const profile = await createProfile({});
        const table = (await findTableById(db, tableId))!;
        const key = { apiKeyId: 1, apiKeyName: "admin" };
        const target = { db, jobSignals: new JobSignals() };
        const run = await startRunByApi(target, read, table, String(profile), key, clock);
        assert.equal(run.blockId, "hello");
        // Read while ACTIVE, deactivated since: refused, nothing written.
        const off2 = await t.request("POST", `${SCENARIOS}/${scenario.id}/deactivate`, {});
        assert.equal(off2.statusCode, 200, off2.body);
        const other = await createProfile({});
        await assert.rejects(
          startRunByApi(target, read, table, String(other), key, clock),
          (error: HeraldError) =>
            error.code === "HERALD_SCENARIO_NOT_STARTABLE" && /it is INACTIVE/.test(error.message),
        );
        assert.equal((await runsOf(scenario.id)).length, 1);
      });

      test("refused: an inactive scenario, a start that is not API, an unknown profile, a bad key, no key", async () => {
        const inactive = await createScenario(waitThenExit, { status: "INACTIVE" });
        const profile = await createProfile({});
        const body = { profileKey: String(profile) };
        const notStartable = "HERALD_SCENARIO_NOT_STARTABLE";
        assert.match(
          (await refusal(inactive.id, body, 409, notStartable)).message,
          /it is INACTIVE; activate it first/,
        );
        const dataEvent = await createScenario(waitThenExit, {
          start: { type: "DATA_EVENT", eventType: "CREATE" },
        });
        assert.match(
          (await refusal(dataEvent.id, body, 409, notStartable)).message,
          /its start is DATA_EVENT, which starts runs by itself/,
        );
        const active = await createScenario(waitThenExit);
        await refusal(
          active.id,
          { profileKey: "customerId=nobody" },
          404,
          "HERALD_PROFILE_NOT_FOUND",
        );
        await refusal(active.id, { profileKey: "tier=Gold" }, 400, "HERALD_INVALID_PROFILE_KEY");
        const missing = await refusal(active.id, { key: "1" }, 400, "HERALD_VALIDATION");
        assert.equal(missing.details[0]?.path, "profileKey");
        await refusal("999999", body, 404, "HERALD_SCENARIO_NOT_FOUND");
        // An unknown key is ignored, and said so.
        const run = await apiStart(active.id, String(profile));
        assert.equal(run.details, undefined);
        const other = await createProfile({});
        const response = await t.request("POST", `${SCENARIOS}/${active.id}/start`, {
          profileKey: other,
          note: "x",
        });
        assert.equal(response.statusCode, 202, response.body);
        assert.deepEqual(
          response.json<RunJson>().details?.map((d) => d.path),
          ["note"],
        );
      });
    });

    test("statistics and the runs list with its filters", async () => {
      const worker = await startWorker();
      const scenario = await createScenario([
        {
          id: "gold",
          type: "FILTER",
          conditions: [{ attribute: "tier", operator: "=", value: "Gold" }],
          next: "wait",
        },
        { id: "wait", type: "WAIT", duration: "PT1H", next: "end" },
        { id: "end", type: "EXIT" },
      ]);
      const golds = [await createProfile({ tier: "Gold" }), await createProfile({ tier: "Gold" })];
      const silver = await createProfile({ tier: "Silver" });
      await enter(scenario, [...golds, silver]);
      await worker.runDue();
      assert.deepEqual(await statistics(scenario), {
        gold: [3, 0, 2, 1],
        wait: [2, 2, 0, 0],
        end: [0, 0, 0, 0],
      });
      const list = async (query: string) => {
        const response = await t.request("GET", `${SCENARIOS}/${scenario.id}/runs${query}`);
        assert.equal(response.statusCode, 200, response.body);
        return response.json<{
          runs: { id: string; profileId: number; status: string; blockId: string }[];
          page: number;
          pageSize: number;
          totalElements: number;
        }>();
      };
      const all = await list("?pageSize=2");
      assert.deepEqual([all.page, all.pageSize, all.totalElements], [0, 2, 3]);
      assert.deepEqual(
        all.runs.map((r) => r.profileId),
        [silver, golds[1]],
        "latest first",
      );
      assert.deepEqual(
        (await list("?pageSize=2&page=1")).runs.map((r) => r.profileId),
        [golds[0]],
      );
      const waiting = await list("?status=WAITING");
      assert.deepEqual(waiting.runs.map((r) => r.profileId).sort(), [...golds].sort());
      const byKey = await list(`?profileKey=customerId=C-${profileCount}`);
      assert.deepEqual(
        byKey.runs.map((r) => [r.profileId, r.status, r.blockId]),
        [[silver, "FINISHED", "gold"]],
      );
      assert.deepEqual((await list(`?profileKey=${silver}`)).runs, byKey.runs);
      const none = await list(`?profileKey=${silver}&status=WAITING`);
      assert.deepEqual([none.runs, none.totalElements], [[], 0]);

      const one = await t.request("GET", `${SCENARIOS}/${scenario.id}/runs/${byKey.runs[0]!.id}`);
      assert.equal(one.statusCode, 200, one.body);
      assert.deepEqual(one.json(), byKey.runs[0]);
      // By name too.
      const name = (await t.request("GET", `${SCENARIOS}/${scenario.id}`)).json<{ name: string }>()
        .name;
      assert.equal((await t.request("GET", `${SCENARIOS}/${name}/statistics`)).statusCode, 200);

      for (const [url, status, code] of [
        [`${SCENARIOS}/${scenario.id}/runs/999999`, 404, "HERALD_SCENARIO_RUN_NOT_FOUND"],
        [`${SCENARIOS}/${scenario.id}/runs/x`, 404, "HERALD_SCENARIO_RUN_NOT_FOUND"],
        [`${SCENARIOS}/nope/runs`, 404, "HERALD_SCENARIO_NOT_FOUND"],
        [`${SCENARIOS}/nope/statistics`, 404, "HERALD_SCENARIO_NOT_FOUND"],
        [`${SCENARIOS}/${scenario.id}/runs?status=DONE`, 400, "HERALD_VALIDATION"],
        [
          `${SCENARIOS}/${scenario.id}/runs?profileKey=customerId=nobody`,
          404,
          "HERALD_PROFILE_NOT_FOUND",
        ],
        [
          `${SCENARIOS}/${scenario.id}/runs?profileKey=tier=Gold`,
          400,
          "HERALD_INVALID_PROFILE_KEY",
        ],
      ] as const) {
        const response = await t.request("GET", url);
        assert.equal(response.statusCode, status, `${url}: ${response.body}`);
        assert.equal(response.json<{ code: string }>().code, code, url);
      }
    });

    /** Waits (a few seconds at most) until every run of the scenario has ended. */
    async function ended(scenarioId: string): Promise<RunRow[]> {
      for (let i = 0; i < 200; i++) {
        const runs = await runsOf(scenarioId);
        if (runs.length > 0 && runs.every((r) => r.ended_at !== null)) return runs;
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      assert.fail("the runs did not end in 5 s");
    }

    /** Starts a run of a one-block scenario through the API; asserts that it FINISHES unasked. */
    async function startedByApiEnds(): Promise<void> {
      const scenario = await createScenario([{ id: "end", type: "EXIT" }]);
      const profile = await createProfile({});
      const response = await t.request("POST", `${SCENARIOS}/${scenario.id}/start`, {
        profileKey: profile,
      });
      assert.equal(response.statusCode, 202, response.body);
      const [run] = await ended(scenario.id);
      assert.equal(run!.status, "FINISHED");
    }

    test("a run the API starts is moved at once, unasked: its commit wakes this process's worker", async () => {
      await startWorker({ jobSignals: t.database.jobSignals });
      await startedByApiEnds();
    });

    test("a wake-up that comes while the worker reads the earliest due time is not lost", async () => {
      const scenario = await createScenario([{ id: "end", type: "EXIT" }]);
      // The worker's database, with the answer of its read of the earliest due time held back
      // while `hold` is set: the run below is written, and the worker woken, after that read saw
      // no run going and before the worker goes idle (its poll is an hour away).
      let hold: Promise<void> | undefined;
      let release = () => {};
      let held = () => {};
      const readHeld = new Promise<void>((resolve) => (held = resolve));
      hold = new Promise<void>((resolve) => (release = resolve));
      const slowed = new Proxy(db, {
        get(target, property) {
          if (property === "query")
            return async (...args: Parameters<Database["query"]>) => {
              const result = await target.query(...args);
              if (hold && String(args[0]).includes("min(due_at)")) {
                held();
                await hold;
              }
              return result;
            };
          const value: unknown = Reflect.get(target, property, target);
          return typeof value === "function" ? value.bind(target) : value;
        },
      });
      const worker = await startWorker({ db: slowed });
      await readHeld;
      await enter(scenario, [await createProfile({})]);
      worker.wake();
      const waiting = hold;
      hold = undefined;
      release();
      await waiting;
      const [run] = await ended(scenario.id);
      assert.equal(run!.status, "FINISHED");
    });

    test(
      "a worker of another process is woken by the NOTIFY of a run's start",
      { skip: backend === "pglite" ? "the embedded database is one process's" : false },
      async () => {
        // Its own pool and signals: only the NOTIFY on JOBS_CHANNEL reaches it (its poll is an hour).
        await startWorker({ db: await t.database.connect(2), name: "other" });
        await startedByApiEnds();
      },
    );

    test("a WAIT outlives its worker: a new worker moves the run on at its end", async () => {
      const first = await startWorker({ name: "first" });
      const scenario = await createScenario([
        { id: "wait", type: "WAIT", duration: "PT2H", next: "crm" },
        crmBlock({ campaignId: "restart" }),
        { id: "end", type: "EXIT" },
      ]);
      await enter(scenario, [await createProfile({}), await createProfile({})]);
      await first.runDue();
      await first.stop();
      advance(2 * 60 * MINUTE);
      const second = await startWorker({ name: "second" });
      await second.runDue();
      const runs = await runsOf(scenario.id);
      assert.deepEqual(
        runs.map((r) => r.status),
        ["FINISHED", "FINISHED"],
      );
      const triggers = await triggersOf(scenario.id);
      assert.deepEqual(
        triggers.map((e) => e.state["scenario.runId"]).sort(),
        runs.map((r) => r.id).sort(),
      );
    });

    test(
      "a batch that loses a deadlock is tried again whole, not one run per transaction",
      { skip: backend === "pglite" ? "the embedded database has one session: no deadlock" : false },
      async () => {
        const { logger, lines } = capturingLogger();
        const worker = await startWorker({ logger });
        const scenario = await createScenario([
          {
            id: "tag",
            type: "UPDATE_PROFILE",
            attributes: { tier: "Gold" },
            subscriptions: {},
            segmentations: {},
            next: "end",
          },
          { id: "end", type: "EXIT" },
        ]);
        const first = await createProfile({ tier: "Silver" });
        const second = await createProfile({ tier: "Silver" });
        await enter(scenario, [first, second]);
        // Another session holds the second profile; the batch writes the first (profile order),
        // then waits for the second; the session then asks for the first: a deadlock, of which
        // the batch is the victim (it waits the default second before it looks, the session 10 s).
        const other = await t.database.connect(1);
        let moving: Promise<unknown> | undefined;
        await other.transaction(async (tx) => {
          await tx.query("SET LOCAL deadlock_timeout = '10s'");
          await tx.query("SELECT 1 FROM records WHERE record_id = $1 FOR UPDATE", [second]);
          const { rows } = await tx.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
          moving = worker.runDue();
          for (let i = 0; ; i++) {
            const waiting = await db.query(
              `SELECT 1 FROM pg_locks l JOIN pg_stat_activity a USING (pid)
                WHERE NOT l.granted AND l.pid <> $1 AND a.datname = current_database()`,
              [rows[0]!.pid],
            );
            if (waiting.rowCount! > 0) break;
            assert.ok(i < 500, "the batch came to wait for the second profile");
            await new Promise((resolve) => setTimeout(resolve, 10));
          }
          await tx.query("SELECT 1 FROM records WHERE record_id = $1 FOR UPDATE", [first]);
        });
        await moving;
        assert.deepEqual(
          (await runsOf(scenario.id)).map((r) => r.status),
          ["FINISHED", "FINISHED"],
        );
        const messages = lines.map((l) => String(l.msg));
        assert.ok(
          messages.some((m) => /^a batch of 2 scenario runs lost a race \(.*deadlock/.test(m)),
          messages.join("\n"),
        );
        assert.ok(!messages.some((m) => m.includes("one per transaction")), messages.join("\n"));
        const { rows } = await db.query<{ record_id: number; tier: string }>(
          "SELECT record_id, attributes->>'tier' AS tier FROM records WHERE record_id = ANY ($1::bigint[])",
          [[first, second]],
        );
        assert.deepEqual(
          rows.map((r) => r.tier),
          ["Gold", "Gold"],
        );
      },
    );

    test(
      "two workers, each on a pool of its own, share 1,000 due runs: each run's TRIGGER once",
      {
        skip: backend === "pglite" ? "the embedded database is one process's" : false,
      },
      async () => {
        const scenario = await createScenario([
          crmBlock({ campaignId: "shared" }),
          { id: "end", type: "EXIT" },
        ]);
        const { rows } = await db.query<{ record_id: number }>(
          `INSERT INTO records (table_id, attributes, subscriptions, segments)
         SELECT $1, jsonb_build_object('firstName', 'P' || g), '{}', '{}'
           FROM generate_series(1, 1000) AS g
         RETURNING record_id`,
          [tableId],
        );
        const a = await startWorker({ db: await t.database.connect(4), batchSize: 50, name: "a" });
        const b = await startWorker({ db: await t.database.connect(4), batchSize: 50, name: "b" });
        // Their first looks (at start) are over before the runs are due.
        await Promise.all([a.runDue(), b.runDue()]);
        const profiles = rows.map((r) => r.record_id);
        assert.equal(await enter(scenario, profiles), 1000);
        const [byA, byB] = await Promise.all([a.runDue(), b.runDue()]);
        assert.ok(byA.moved > 0 && byB.moved > 0, `both took runs (${byA.moved}, ${byB.moved})`);
        const runs = await runsOf(scenario.id);
        assert.equal(runs.filter((r) => r.status === "FINISHED").length, 1000);
        const { rows: counted } = await db.query<{ run_id: string; n: number }>(
          `SELECT state->>'scenario.runId' AS run_id, count(*)::int AS n FROM change_events
          WHERE source = 'CUSTOM_ACTION' AND state->>'scenario.id' = $1 GROUP BY 1`,
          [scenario.id],
        );
        assert.equal(counted.length, 1000);
        assert.ok(
          counted.every((c) => c.n === 1),
          "no run triggered twice",
        );
        assert.deepEqual(await statistics(scenario), {
          crm: [1000, 0, 1000, 0],
          end: [1000, 0, 0, 1000],
        });
      },
    );
  });
}
