/**
 * SPEC §7.4's welcome flow against Herald as the README runs it: `node bin/herald.mjs start` (every
 * role in one process) on the embedded database in a temporary data directory, and on PostgreSQL
 * (skipped, with a message, when no server answers). Over HTTP only: the custom action
 * send-to-crm, a ONE_BY_ONE subscription on it to a real receiver, the welcome scenario (DATA_EVENT
 * CREATE → WAIT → FILTER tier = Gold → CUSTOM_ACTION → UPDATE_PROFILE Active → EXIT, otherwise
 * EXIT), activated; a Gold and a Silver profile created; Herald stopped with SIGTERM while both
 * runs wait, and started again on the same data. Then the Gold profile's TRIGGER arrives at the
 * receiver signed, exactly once, with §7.4's payload, after its WAIT and from the restarted
 * process; the Gold profile is in Active, the Silver one went the FILTER's other way and was not
 * touched; the runs and the statistics say so.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Webhook } from "standardwebhooks";
import {
  ACTIVE,
  adminClient,
  customersTable,
  EMAIL_KEY,
  FIRST_NAME,
  SEND_TO_CRM,
  TIER,
  welcomeScenario,
} from "../helpers/scenario-fixtures.js";
import type { StartedHerald } from "../helpers/cli-herald.js";
import { spawnHeraldStart } from "../helpers/cli-herald.js";
import type { TestDatabase } from "../helpers/test-database.js";
import {
  createTestDatabase,
  postgresUnavailable,
  TEST_SECRET_KEY,
} from "../helpers/test-database.js";
import type { WebhookReceiver } from "../helpers/webhook-receiver.js";
import { startWebhookReceiver } from "../helpers/webhook-receiver.js";

const STOP_TIMEOUT_MS = 30_000;
/**
 * The welcome WAIT: long enough that the stop and the restart surely begin while both runs wait
 * (the test checks it), short enough for a test.
 */
const WAIT_SECONDS = 10;
const ENTITY = "/v5/entities/shop";

/** SIGTERM; resolves with the exit code. */
function stopHerald(running: StartedHerald): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      running.child.kill("SIGKILL");
      reject(new Error(`Herald did not stop within ${STOP_TIMEOUT_MS} ms:\n${running.output()}`));
    }, STOP_TIMEOUT_MS);
    running.child.once("exit", (code) => {
      clearTimeout(timer);
      resolve(code);
    });
    running.child.kill("SIGTERM");
  });
}

async function until<T>(
  read: () => Promise<T>,
  holds: (value: T) => boolean,
  timeoutMs: number,
  what: string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (holds(value)) return value;
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}: ${JSON.stringify(value)}`,
      );
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** SPEC §7.4's welcome scenario, with a WAIT a test can sit through. */
const WELCOME = welcomeScenario({ wait: `PT${WAIT_SECONDS}S` });

interface Run {
  id: string;
  profileId: number;
  status: string;
  blockId: string;
  dueAt: string | null;
  steps: number;
  endedAt: string | null;
}

interface Profile {
  profileId: number;
  creationMoment: string;
  attributes: Record<string, unknown>;
  segmentations: Record<string, unknown>;
}

const legs: { name: string; skip: string | false }[] = [
  { name: "the embedded database", skip: false },
  {
    name: "PostgreSQL",
    skip: await postgresUnavailable().then((reason) =>
      reason ? `PostgreSQL leg skipped: ${reason}` : false,
    ),
  },
];
for (const leg of legs)
  if (leg.skip) console.log(`# SKIPPING the welcome flow on ${leg.name}: ${leg.skip}`);

for (const leg of legs) {
  describe(`the welcome flow on ${leg.name}`, { skip: leg.skip }, () => {
    let dataDir: string;
    let database: TestDatabase | undefined;
    let receiver: WebhookReceiver;
    let env: Record<string, string>;
    const running: StartedHerald[] = [];

    before(async () => {
      dataDir = mkdtempSync(join(tmpdir(), "herald-welcome-"));
      receiver = await startWebhookReceiver();
      env = {
        HERALD_DATA_DIR: dataDir,
        HERALD_DEFAULT_ENTITY: "shop",
        // The receiver listens on loopback over plain http.
        HERALD_ALLOW_INSECURE_TARGETS: "true",
      };
      if (leg.name === "PostgreSQL") {
        database = await createTestDatabase("postgres", { maxConnections: 1 });
        env.DATABASE_URL = database.url!;
        env.HERALD_SECRET_KEY = TEST_SECRET_KEY;
      }
    });
    after(async () => {
      for (const r of running) if (r.child.exitCode === null) r.child.kill("SIGKILL");
      if (process.env.HERALD_E2E_DEBUG) for (const r of running) console.log(r.output());
      await receiver.close();
      await database?.drop();
      rmSync(dataDir, { recursive: true, force: true });
    });

    test("a Gold profile's TRIGGER arrives once, signed, across a restart while the runs wait; the Silver one goes the other way", async () => {
      const first = await spawnHeraldStart(env);
      running.push(first);
      const adminKey = /^\s+(hk_[A-Za-z0-9_-]{20,})\s*$/m.exec(first.output())?.[1];
      assert.ok(adminKey, `the first start prints the admin key:\n${first.output()}`);
      let call = await adminClient(first.url, adminKey);

      const table = await call<{ id: string }>(
        "POST",
        `${ENTITY}/profile-tables`,
        customersTable([EMAIL_KEY, FIRST_NAME, TIER], { segmentations: [ACTIVE] }),
      );
      const action = await call<{ id: string }>("POST", `${ENTITY}/custom-actions`, {
        ...SEND_TO_CRM,
        description: "Tells the CRM about a new Gold customer",
      });
      const subscription = await call<{ id: number; secret: string }>(
        "POST",
        "/v4/entity/shop/webhookSubscription",
        {
          on: "CUSTOM_ACTION",
          onElementId: "send-to-crm",
          eventType: "TRIGGER",
          targetUrl: `${receiver.url}/crm`,
          pushMode: "ONE_BY_ONE",
        },
      );
      const scenario = await call<{ id: string; status: string }>(
        "POST",
        `${ENTITY}/scenarios`,
        WELCOME,
      );
      assert.equal(scenario.status, "INACTIVE");
      const path = `${ENTITY}/scenarios/${scenario.id}`;
      assert.equal((await call<{ status: string }>("POST", `${path}/activate`)).status, "ACTIVE");

      const create = (emailAddress: string, firstName: string, tier: string) =>
        call<{ profileId: number }>("PUT", `${ENTITY}/profile-tables/Customers/profiles`, {
          key: { emailAddress },
          attributes: { firstName, tier },
        });
      const createdAt = Date.now();
      const gold = (await create("ann@example.com", "Ann", "Gold")).profileId;
      const silver = (await create("bob@example.com", "Bob", "Silver")).profileId;
      const runs = () => call<{ runs: Run[]; totalElements: number }>("GET", `${path}/runs`);
      const waiting = await until(
        runs,
        (r) => r.totalElements === 2 && r.runs.every((run) => run.status === "WAITING"),
        30_000,
        "both runs to wait",
      );
      const dueAt = Math.min(...waiting.runs.map((run) => Date.parse(run.dueAt!)));
      assert.ok(dueAt >= createdAt + WAIT_SECONDS * 1000, "due once the WAIT is over");

      // Stopped and started again while both runs wait: the WAIT's end is in the database.
      assert.ok(Date.now() < dueAt - 1_000, "the stop begins well before the WAIT ends");
      assert.equal(await stopHerald(first), 0, "SIGTERM exits cleanly");
      assert.equal(receiver.requests.length, 0, "nothing was triggered before the stop");
      const second = await spawnHeraldStart(env);
      running.push(second);
      call = await adminClient(second.url, adminKey);

      const done = await until(
        runs,
        (r) => r.runs.every((run) => run.status === "FINISHED"),
        60_000,
        "both runs to finish",
      );
      await receiver.waitFor((requests) => requests.length >= 1, 30_000, "the TRIGGER push");
      // A second push of the same event would come within the delivery worker's next rounds.
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      assert.equal(receiver.requests.length, 1, "the Gold profile's TRIGGER arrives once");

      const goldRun = done.runs.find((run) => run.profileId === gold)!;
      const silverRun = done.runs.find((run) => run.profileId === silver)!;
      assert.ok(goldRun && silverRun, JSON.stringify(done));
      assert.deepEqual(
        [goldRun.blockId, goldRun.steps, silverRun.blockId, silverRun.steps],
        ["end", 5, "end", 3],
        "Gold went WAIT → FILTER → CUSTOM_ACTION → UPDATE_PROFILE → EXIT, Silver WAIT → FILTER → EXIT",
      );
      for (const run of [goldRun, silverRun])
        assert.ok(
          Date.parse(run.endedAt!) >= second.startedAt,
          `run ${run.id} moved on in the restarted Herald`,
        );

      const push = receiver.requests[0]!;
      assert.equal(push.path, "/hook/crm");
      assert.ok(push.receivedAt >= dueAt, "the push comes after the WAIT");
      new Webhook(subscription.secret).verify(push.body, push.headers as Record<string, string>);
      const envelope = push.json as {
        data: Record<string, unknown> & {
          _event: { id: string; type: string };
          _links: Record<string, unknown>;
        };
      };
      const { _event: event, _links: links, ...payload } = envelope.data;
      assert.equal(event.type, "TRIGGER");
      const annRead = await call<Profile>(
        "GET",
        `${ENTITY}/profile-tables/Customers/profiles/${gold}`,
      );
      const profileAttributes = Object.fromEntries(
        Object.entries(annRead.attributes).map(([k, v]) => [`profileAttributes.${k}`, String(v)]),
      );
      assert.deepEqual(payload, {
        "actionParameters.campaignId": "987654",
        ...profileAttributes,
        "profileAttributes.profileId": String(gold),
        // The profile as the CUSTOM_ACTION block read it: as created (the UPDATE_PROFILE came after).
        "profileAttributes.creationMoment": annRead.creationMoment,
        "profileAttributes.updateMoment": annRead.creationMoment,
        "customAction.id": action.id,
        "customAction.name": "send-to-crm",
        "scenario.id": scenario.id,
        "scenario.runId": goldRun.id,
      });
      assert.equal(envelope.data["profileAttributes.tier"], "Gold");
      assert.equal(envelope.data["profileAttributes.emailAddress"], "ann@example.com");
      assert.deepEqual(links, {
        self: { href: `${ENTITY}/custom-actions/${action.id}` },
        profile: { href: `/profiles/v4/entity/shop/table/${table.id}/profile/${gold}` },
        customAction: { href: `${ENTITY}/custom-actions/${action.id}` },
      });
      const pulled = await call<{ events: { _event: { id: string } }[] }>(
        "GET",
        `${ENTITY}/change-events?on=CUSTOM_ACTION&onElementId=${action.id}`,
      );
      assert.deepEqual(
        pulled.events.map((e) => e._event.id),
        [event.id],
        "one TRIGGER in the log: the Silver profile triggered nothing",
      );

      assert.equal(annRead.segmentations.Active, true, "the Gold profile is in Active");
      const bobRead = await call<Profile>(
        "GET",
        `${ENTITY}/profile-tables/Customers/profiles/${silver}`,
      );
      assert.notEqual(bobRead.segmentations.Active, true, "the Silver profile is not");

      const statistics = await call<{
        blocks: { id: string; entered: number; waiting: number; passed: number; left: number }[];
      }>("GET", `${path}/statistics`);
      assert.deepEqual(
        statistics.blocks.map((b) => [b.id, b.entered, b.waiting, b.passed, b.left]),
        [
          ["wait", 2, 0, 2, 0],
          ["gold", 2, 0, 2, 0],
          ["crm", 1, 0, 1, 0],
          ["tag", 1, 0, 1, 0],
          ["end", 2, 0, 0, 2],
        ],
      );
      const annRuns = await call<{ runs: Run[] }>(
        "GET",
        `${path}/runs?profileKey=${encodeURIComponent("emailAddress=ann@example.com")}&status=FINISHED`,
      );
      assert.deepEqual(
        annRuns.runs.map((r) => r.id),
        [goldRun.id],
      );

      assert.equal(await stopHerald(second), 0, "SIGTERM exits cleanly");
    });
  });
}
