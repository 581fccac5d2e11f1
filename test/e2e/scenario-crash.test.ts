/**
 * Scenario runs across a worker crash (issue #17, SPEC §7.4, DESIGN §6b; PostgreSQL): an API
 * process (`herald start --role api,sequencer`) takes the definitions and PROFILES profile
 * creates; a worker process (`herald start --role worker`, as the README runs one) starts their runs
 * from the log and moves them through WAIT PT0S → CUSTOM_ACTION → UPDATE_PROFILE (an attribute and
 * a segmentation) → EXIT, and is killed with SIGKILL while its batches are inside those blocks:
 * the kill waits until the change log's id sequence is ahead of the committed events, i.e. a batch
 * has appended TRIGGER or profile events it has not committed yet. Right after the kill, every run
 * is either FINISHED with all its effects or untouched with none; a second worker then moves the
 * rest. Afterwards every run FINISHED, each produced exactly one TRIGGER event, one UPDATE and one
 * UPDATED_SEGMENT (by the run's id), the profiles hold the write once, the statistics and the runs
 * list agree, and a BULK subscription on the custom action received every TRIGGER, signed.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Webhook } from "standardwebhooks";
import {
  ACTIVE,
  adminClient,
  CRM_BLOCK,
  CUSTOMER_ID,
  customersTable,
  EXIT_BLOCK,
  SEND_TO_CRM,
  TIER,
} from "../helpers/scenario-fixtures.js";
import type { TestDatabase } from "../helpers/test-database.js";
import { createTestDatabase, postgresUnavailable } from "../helpers/test-database.js";
import type { ReceivedRequest } from "../helpers/webhook-receiver.js";
import { startWebhookReceiver } from "../helpers/webhook-receiver.js";
import type { HeraldProcess } from "./delivery-fixtures.js";
import { apiUrlOf, dataObjects, eventually, startHeraldProcess } from "./delivery-fixtures.js";

const unavailable = await postgresUnavailable();
if (unavailable) console.log(`# SKIPPING scenario crash test: ${unavailable}`);

const ADMIN_KEY = "hk_delivery_tests_admin_key_0123456789";
const ENTITY = "/v5/entities/acme";
/** Profiles created, each starting one run. */
const PROFILES = 3_000;
/** Runs FINISHED before the kill may come: the first worker was well under way. */
const FINISHED_BEFORE_KILL = 200;

interface Statistics {
  scenarioId: string;
  blocks: { id: string; entered: number; waiting: number; passed: number; left: number }[];
}

/** How many ids of the change log's sequence were taken by events not committed (yet, or ever). */
async function uncommittedIds(t: TestDatabase): Promise<number> {
  const { rows } = await t.db.query<{ taken: string; committed: string }>(
    `SELECT (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM change_event_id_seq)::text AS taken,
            (SELECT count(*) FROM change_events)::text AS committed`,
  );
  return Number(rows[0]!.taken) - Number(rows[0]!.committed);
}

async function finishedRuns(t: TestDatabase, scenarioId: string): Promise<number> {
  const { rows } = await t.db.query<{ n: number }>(
    "SELECT count(*)::integer AS n FROM scenario_runs WHERE scenario_id = $1 AND status = 'FINISHED'",
    [scenarioId],
  );
  return rows[0]!.n;
}

/**
 * Each run of the scenario by what it has done: its status with its count of TRIGGER events
 * (by scenario.runId), of UPDATE and of UPDATED_SEGMENT events (by the SCENARIO_RUN origin's id).
 */
async function runEffects(
  t: TestDatabase,
  scenarioId: string,
): Promise<
  { status: string; triggers: number; updates: number; segments: number; runs: number }[]
> {
  const { rows } = await t.db.query<{
    status: string;
    triggers: number;
    updates: number;
    segments: number;
    runs: number;
  }>(
    `WITH triggers AS (
       SELECT state->>'scenario.runId' AS run, count(*) AS n FROM change_events
        WHERE source = 'CUSTOM_ACTION' AND event_type = 'TRIGGER' GROUP BY 1),
     writes AS (
       SELECT origin->>'id' AS run, count(*) FILTER (WHERE event_type = 'UPDATE') AS updates,
              count(*) FILTER (WHERE event_type = 'UPDATED_SEGMENT') AS segments
         FROM change_events WHERE origin->>'type' = 'SCENARIO_RUN' AND source = 'PROFILE_TABLE'
        GROUP BY 1)
     SELECT r.status, coalesce(tr.n, 0)::integer AS triggers, coalesce(w.updates, 0)::integer AS updates,
            coalesce(w.segments, 0)::integer AS segments, count(*)::integer AS runs
       FROM scenario_runs r
       LEFT JOIN triggers tr ON tr.run = r.id::text
       LEFT JOIN writes w ON w.run = r.id::text
      WHERE r.scenario_id = $1
      GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4`,
    [scenarioId],
  );
  return rows;
}

describe(
  "scenario runs across a worker crash (PostgreSQL)",
  { skip: unavailable ? `needs PostgreSQL: ${unavailable}` : false },
  () => {
    test(
      "SIGKILL inside CUSTOM_ACTION and UPDATE_PROFILE, another worker: one TRIGGER and one profile change per run, all delivered",
      { timeout: 300_000 },
      async () => {
        const t = await createTestDatabase("postgres");
        const processes: HeraldProcess[] = [];
        const pushes: ReceivedRequest[] = [];
        const received = new Map<string, Record<string, unknown>>();
        const receiver = await startWebhookReceiver({
          keepRequests: false,
          onRequest: (q: ReceivedRequest) => {
            pushes.push(q);
            for (const d of dataObjects(q.json)) received.set((d._event as { id: string }).id, d);
          },
        });
        try {
          const api = startHeraldProcess(t.url!, "api,sequencer", { HERALD_LOG_LEVEL: "info" });
          processes.push(api);
          const url = await apiUrlOf(api);
          const call = await adminClient(url, ADMIN_KEY);

          const table = await call<{ id: string }>(
            "POST",
            `${ENTITY}/profile-tables`,
            customersTable(
              [CUSTOMER_ID, TIER, { name: "crmStatus", type: "CUSTOM", valueType: "STRING" }],
              { segmentations: [ACTIVE] },
            ),
          );
          const action = await call<{ id: string }>(
            "POST",
            `${ENTITY}/custom-actions`,
            SEND_TO_CRM,
          );
          const subscription = await call<{ secret: string }>(
            "POST",
            "/v4/entity/acme/webhookSubscription",
            {
              on: "CUSTOM_ACTION",
              onElementId: "send-to-crm",
              eventType: "TRIGGER",
              targetUrl: `${receiver.url}/crm`,
              pushMode: "BULK",
              maxBlockSize: 500,
              lingerMs: 50,
            },
          );
          const scenario = await call<{ id: string }>("POST", `${ENTITY}/scenarios`, {
            name: "crm-sync",
            profileTable: "Customers",
            reentry: "AFTER_EXIT",
            start: { type: "DATA_EVENT", eventType: "CREATE", onFields: [], conditions: {} },
            blocks: [
              { id: "wait", type: "WAIT", duration: "PT0S", next: "crm" },
              CRM_BLOCK,
              {
                id: "tag",
                type: "UPDATE_PROFILE",
                attributes: { crmStatus: "sent" },
                segmentations: { Active: true },
                next: "end",
              },
              EXIT_BLOCK,
            ],
          });
          const scenarioPath = `${ENTITY}/scenarios/${scenario.id}`;
          await call("POST", `${scenarioPath}/activate`);

          // The profiles, before any worker runs: their CREATE events wait in the log.
          let next = 0;
          await Promise.all(
            Array.from({ length: 8 }, async () => {
              while (next < PROFILES) {
                const n = next++;
                await call("PUT", `${ENTITY}/profile-tables/Customers/profiles`, {
                  key: { customerId: `C-${n}` },
                  attributes: { tier: n % 2 === 0 ? "Gold" : "Silver" },
                });
              }
            }),
          );
          const idsBefore = await uncommittedIds(t);

          const first = startHeraldProcess(t.url!, "worker", { HERALD_WORKER_ID: "worker-1" });
          processes.push(first);
          // Killed while a batch holds events it appended but has not committed: inside the blocks.
          let inFlight = 0;
          await eventually(
            async () => {
              if ((await finishedRuns(t, scenario.id)) < FINISHED_BEFORE_KILL) return false;
              inFlight = (await uncommittedIds(t)) - idsBefore;
              return inFlight > 0;
            },
            120_000,
            "the first worker to be inside a batch's blocks, some runs done",
          );
          assert.equal(await first.kill("SIGKILL"), null, "killed by the signal");

          const atKill = await runEffects(t, scenario.id);
          const finishedAtKill = atKill
            .filter((r) => r.status === "FINISHED")
            .reduce((n, r) => n + r.runs, 0);
          const totalAtKill = atKill.reduce((n, r) => n + r.runs, 0);
          assert.ok(
            finishedAtKill >= FINISHED_BEFORE_KILL && finishedAtKill < PROFILES,
            `killed mid-way: ${finishedAtKill} of ${PROFILES} runs FINISHED`,
          );
          // Each run did everything or nothing: the killed batches' runs are where they were.
          for (const { runs, ...row } of atKill)
            assert.deepEqual(
              row,
              row.status === "FINISHED"
                ? { status: "FINISHED", triggers: 1, updates: 1, segments: 1 }
                : { status: "RUNNING", triggers: 0, updates: 0, segments: 0 },
              `right after the kill (${runs} runs): ${JSON.stringify(atKill)}`,
            );
          // What the killed batches had written was rolled back: ids taken, never committed.
          const lost = (await uncommittedIds(t)) - idsBefore;
          assert.ok(lost > 0, "the killed worker had appended events it never committed");

          const second = startHeraldProcess(t.url!, "worker", { HERALD_WORKER_ID: "worker-2" });
          processes.push(second);
          await eventually(
            async () => (await finishedRuns(t, scenario.id)) === PROFILES,
            180_000,
            "every run to finish",
          );

          // One run per created profile, each FINISHED with exactly one of each effect.
          assert.deepEqual(await runEffects(t, scenario.id), [
            { status: "FINISHED", triggers: 1, updates: 1, segments: 1, runs: PROFILES },
          ]);
          const { rows: events } = await t.db.query<{ event_type: string; n: number }>(
            `SELECT event_type, count(*)::integer AS n FROM change_events
              WHERE origin->>'scenarioId' = $1 GROUP BY 1 ORDER BY 1`,
            [scenario.id],
          );
          assert.deepEqual(events, [
            { event_type: "TRIGGER", n: PROFILES },
            { event_type: "UPDATE", n: PROFILES },
            { event_type: "UPDATED_SEGMENT", n: PROFILES },
          ]);
          // The profiles hold the write once: the same attributes, segments and version for all.
          const { rows: profiles } = await t.db.query<{
            profiles: number;
            written: number;
            shapes: number;
            runs: number;
          }>(
            `SELECT count(*)::integer AS profiles,
                    count(*) FILTER (WHERE attributes->>'crmStatus' = 'sent')::integer AS written,
                    count(DISTINCT (segments::text, version))::integer AS shapes,
                    (SELECT count(DISTINCT profile_id)::integer FROM scenario_runs WHERE scenario_id = $2) AS runs
               FROM records WHERE table_id = $1`,
            [table.id, scenario.id],
          );
          assert.deepEqual(profiles[0], {
            profiles: PROFILES,
            written: PROFILES,
            shapes: 1,
            runs: PROFILES,
          });
          for (const key of ["C-0", `C-${PROFILES - 1}`]) {
            const profile = await call<{ segmentations: Record<string, unknown> }>(
              "GET",
              `${ENTITY}/profile-tables/Customers/profiles/customerId=${key}`,
            );
            assert.equal(profile.segmentations.Active, true, `${key} is in Active`);
          }

          const statistics = await call<Statistics>("GET", `${scenarioPath}/statistics`);
          assert.deepEqual(
            statistics.blocks.map((b) => [b.id, b.entered, b.waiting, b.passed, b.left]),
            [
              ["wait", PROFILES, 0, PROFILES, 0],
              ["crm", PROFILES, 0, PROFILES, 0],
              ["tag", PROFILES, 0, PROFILES, 0],
              ["end", PROFILES, 0, 0, PROFILES],
            ],
          );
          const finished = await call<{ totalElements: number }>(
            "GET",
            `${scenarioPath}/runs?status=FINISHED&pageSize=1`,
          );
          assert.equal(finished.totalElements, PROFILES);

          // The receiver got every TRIGGER (at least once: the killed worker's pushes may repeat).
          const { rows: triggerIds } = await t.db.query<{ id: string }>(
            `SELECT 'evt_' || id AS id FROM change_events WHERE source = 'CUSTOM_ACTION' ORDER BY id`,
          );
          await eventually(
            () => received.size >= PROFILES,
            120_000,
            `every TRIGGER at the receiver (${received.size} of ${PROFILES})`,
          );
          const webhook = new Webhook(subscription.secret);
          for (const push of pushes)
            webhook.verify(push.body, push.headers as Record<string, string>);
          const runIds = new Set<string>();
          for (const data of received.values()) {
            assert.equal(data["customAction.id"], action.id);
            assert.equal(data["actionParameters.campaignId"], "987654");
            assert.equal(data["scenario.id"], scenario.id);
            runIds.add(String(data["scenario.runId"]));
          }
          assert.equal(runIds.size, PROFILES, "one TRIGGER per run at the receiver");
          assert.deepEqual(
            [...received.keys()].sort(),
            triggerIds.map((r) => r.id).sort(),
            "the receiver got exactly the logged TRIGGERs",
          );

          console.log(
            `# scenario crash test: killed with ${finishedAtKill} of ${totalAtKill} runs started FINISHED and ${inFlight} event ids in flight (${lost} never committed); ${pushes.length} pushes delivered ${received.size} distinct TRIGGERs`,
          );
          assert.equal(await second.kill("SIGTERM"), 0, "SIGTERM exits cleanly");
        } finally {
          for (const p of processes) if (p.child.exitCode === null) await p.kill("SIGKILL");
          if (process.env.HERALD_E2E_DEBUG) for (const p of processes) console.log(p.output());
          await receiver.close();
          await t.drop();
        }
      },
    );
  },
);
