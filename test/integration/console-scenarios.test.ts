/**
 * The console's Scenarios pages (SPEC §7.4, issue #17 item 4) at the inject level, on both
 * backends: the list with table, start, status and activation and the custom actions with their
 * parameters; a scenario's page with its blocks in order and their statistics after runs went
 * through the run worker of the test app (on a test clock), its runs filtered by state and profile
 * key as the API filters them (a key the API refuses is its words on the page, as text), activation
 * and deactivation with both choices for the runs going on, each refused without the CSRF token
 * or from another site; markup in names, descriptions and a run's last error shown as text; the
 * API's errors as pages and the key's entity scope.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import pino from "pino";
import type { ScenarioRunWorker } from "../../src/jobs/scenarios/run-worker.js";
import { startScenarioRunWorker } from "../../src/jobs/scenarios/run-worker.js";
import { JobSignals } from "../../src/storage/job-signals.js";
import type { ConsoleBrowser } from "../helpers/console-session.js";
import { signInToConsole } from "../helpers/console-session.js";
import {
  ACTIVE,
  CAMPAIGN_ID,
  CUSTOMER_ID,
  customersTable,
  dateAttribute,
  FIRST_NAME,
  SEND_TO_CRM,
  TIER,
  welcomeScenario,
} from "../helpers/scenario-fixtures.js";
import type { TestApp } from "../helpers/test-app.js";
import { createTestApp, TEST_ADMIN_KEY } from "../helpers/test-app.js";
import { testBackends } from "../helpers/test-database.js";

const MARKUP = "<img src=x onerror=alert(1)>";
const ESCAPED = "&lt;img src=x onerror=alert(1)&gt;";
const V5 = "/v5/entities/acme";
const PROFILES = `${V5}/profile-tables/Customers/profiles`;
const SCENARIOS = `${V5}/scenarios`;
const HOUR = 3_600_000;

const CUSTOMERS = customersTable([CUSTOMER_ID, FIRST_NAME, TIER, dateAttribute("renewal")], {
  segmentations: [ACTIVE],
});

/** §7.4's welcome flow with an API start: an hour's wait, Gold profiles to the CRM, tagged; others leave. */
const WELCOME = welcomeScenario({
  name: `welcome ${MARKUP}`,
  start: { type: "API" },
  otherwise: null,
});

/** Waits until the profile's renewal date: a profile without one leaves, with the reason kept. */
const RENEWAL = {
  name: "renewal",
  profileTable: "Customers",
  start: { type: "API" },
  blocks: [
    { id: "until", type: "WAIT", untilAttribute: "renewal", next: "end" },
    { id: "end", type: "EXIT" },
  ],
};

const BIRTHDAYS = {
  name: "birthdays",
  profileTable: "Customers",
  start: { type: "SEGMENT_ENTRY", segmentation: "Active", segment: "Active" },
  blocks: [{ id: "end", type: "EXIT" }],
};

interface RunJson {
  id: string;
  status: string;
  blockId: string;
}

/** The figures of a block's row on the page: entered, waiting, passed, left. */
function figures(body: string, blockId: string): number[] {
  const start = body.indexOf(`<span class="mono">${blockId}</span>`);
  assert.ok(start >= 0, `block ${blockId} on the page`);
  const row = body.slice(start, body.indexOf("</tr>", start));
  return ["Entered", "Waiting", "Passed", "Left"].map((label) => {
    const m = new RegExp(`data-label="${label}" class="num">\\s*([\\d,]+)\\s*<`).exec(row);
    assert.ok(m, `${label} of ${blockId}`);
    return Number(m[1]!.replace(/,/g, ""));
  });
}

/** The profiles of the runs table, in its order (each a link to that profile's runs). */
function runProfiles(body: string): string[] {
  const runs = body.slice(body.indexOf('<div id="runs"'));
  return [
    ...runs.matchAll(
      /data-label="Profile id" class="">\s*<a\s+class="mono"\s+href="([^"]*)"[^>]*>(\d+)</g,
    ),
  ].map((m) => `${m[2]!} ${m[1]!}`);
}

for (const { backend, skip } of await testBackends()) {
  describe(`console scenarios pages on ${backend}`, { skip }, () => {
    let t: TestApp;
    let worker: ScenarioRunWorker;
    let admin: ConsoleBrowser;
    let limitedKey: string;
    /** The test clock of the run worker: a minute ahead, so that runs started now are due. */
    let clock = new Date(Math.ceil(Date.now() / 60_000) * 60_000 + 60_000);
    const ids = { welcome: "", renewal: "", birthdays: "" };
    const profileIds = new Map<string, number>();

    const api = async <T>(method: string, url: string, body?: unknown) => {
      const response = await t.request(method, url, body);
      assert.ok(response.statusCode < 300, `${method} ${url}: ${response.body}`);
      return response.json() as T;
    };
    const status = async (id: string) =>
      (await api<{ status: string }>("GET", `${SCENARIOS}/${id}`)).status;
    const runsOf = async (id: string) =>
      (await api<{ runs: RunJson[] }>("GET", `${SCENARIOS}/${id}/runs?pageSize=100`)).runs;
    const start = (id: string, customerId: string) =>
      api("POST", `${SCENARIOS}/${id}/start`, { profileKey: `customerId=${customerId}` });

    before(async () => {
      t = await createTestApp(backend);
      worker = await startScenarioRunWorker({
        db: t.database.db,
        logSignals: t.database.logSignals,
        jobSignals: new JobSignals(),
        logger: pino({ level: "silent" }),
        config: { workerId: "console-test" },
        now: () => clock,
        // The test moves the runs with runDue.
        pollMs: 3_600_000,
      });
      await api("POST", `${V5}/profile-tables`, CUSTOMERS);
      for (const [customerId, tier] of [
        ["C-1", "Gold"],
        ["C-2", "Silver"],
        ["C-3", "Gold"],
        ["C-4", "Gold"],
        [MARKUP, "Bronze"],
      ] as const) {
        const created = await api<{ profileId: number }>("PUT", PROFILES, {
          key: { customerId },
          attributes: { tier },
        });
        profileIds.set(customerId, created.profileId);
      }
      await api("POST", `${V5}/custom-actions`, {
        ...SEND_TO_CRM,
        description: `Tells the CRM ${MARKUP}`,
        parameters: [CAMPAIGN_ID, { name: "points", valueType: "INTEGER" }],
      });
      ids.welcome = (await api<{ id: string }>("POST", SCENARIOS, WELCOME)).id;
      ids.renewal = (await api<{ id: string }>("POST", SCENARIOS, RENEWAL)).id;
      ids.birthdays = (await api<{ id: string }>("POST", SCENARIOS, BIRTHDAYS)).id;
      await api("POST", `${SCENARIOS}/${ids.renewal}/activate`);
      await api("POST", "/v4/entity", { name: "beta" });
      limitedKey = (
        await api<{ key: string }>("POST", "/v4/api-keys", {
          name: "acme-only",
          entities: ["acme"],
        })
      ).key;
      admin = await signInToConsole(t, TEST_ADMIN_KEY);
    });
    after(async () => {
      await worker?.stop();
      await t?.close();
    });

    test("the Scenarios page is in the entity's navigation", async () => {
      const page = await admin.get("/ui/e/acme/scenarios");
      assert.equal(page.statusCode, 200);
      assert.match(
        page.body,
        /<a href="\/ui\/e\/acme\/scenarios"\s+aria-current="page">Scenarios<\/a>/,
      );
      assert.match(page.body, /<a href="\/ui\/e\/acme\/exports"\s*>Exports<\/a>/);
    });

    test("the list: name, table, start, status, activation; the custom actions with their parameters", async () => {
      const page = await admin.get("/ui/e/acme/scenarios");
      assert.equal(page.statusCode, 200);
      const body = page.body;
      assert.ok(
        body.includes(`<a href="/ui/e/acme/scenarios/${ids.welcome}">welcome ${ESCAPED}</a>`),
      );
      assert.ok(body.includes(`<a href="/ui/e/acme/scenarios/${ids.renewal}">renewal</a>`));
      assert.match(body, /<a href="\/ui\/e\/acme\/tables\/profile\/\d+">Customers<\/a>/);
      assert.match(body, /<span class="mono">SEGMENT_ENTRY<\/span>/);
      assert.match(body, /a profile enters segment Active of Active/);
      assert.match(body, /an API call \(POST …\/start with a profile key\)/);
      assert.match(body, /data-state="ACTIVE">Active</);
      assert.match(body, /data-state="INACTIVE">Inactive</);
      assert.match(body, /data-label="Activated" class="">\s*\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\s*</);
      // The custom actions, read-only.
      assert.match(body, /<h2>Custom actions<\/h2>/);
      assert.ok(body.includes(`Tells the CRM ${ESCAPED}`));
      assert.match(
        body,
        /<span class="mono">campaignId<\/span> STRING\s*<span class="badge warn">mandatory<\/span>/,
      );
      assert.match(body, /<span class="mono">points<\/span> INTEGER\s*<\/li>/);
      assert.ok(!body.includes(MARKUP), "markup is shown as text");
      assert.doesNotMatch(body, / style="|<script>/);

      const active = await admin.get("/ui/e/acme/scenarios?status=ACTIVE");
      assert.match(active.body, /<option value="ACTIVE"\s+selected\s*>/);
      assert.ok(active.body.includes(">renewal</a>"));
      assert.ok(!active.body.includes(">birthdays</a>"), "an inactive one is filtered out");
      // A status the API does not know is "any", never echoed.
      const odd = await admin.get(`/ui/e/acme/scenarios?status=${encodeURIComponent(MARKUP)}`);
      assert.equal(odd.statusCode, 200);
      assert.ok(odd.body.includes(">birthdays</a>"));
      assert.ok(!odd.body.includes(MARKUP));
    });

    test("a scenario's page before any run: its blocks in order, what each does, zeros, Activate", async () => {
      const page = await admin.get(`/ui/e/acme/scenarios/${ids.welcome}`);
      assert.equal(page.statusCode, 200);
      const body = page.body;
      assert.ok(body.includes(`<h1>Scenario welcome ${ESCAPED}</h1>`));
      assert.match(body, /AFTER_EXIT: a profile runs it again once its run ended/);
      const order = ["wait", "gold", "crm", "tag", "end"].map((id) =>
        body.indexOf(`<span class="mono">${id}</span>`),
      );
      assert.deepEqual(
        order,
        [...order].sort((a, b) => a - b),
        "the blocks in the order of the definition",
      );
      assert.ok(order[0]! > 0);
      assert.match(body, /for PT1H/);
      assert.match(body, /goes on when tier = Gold/);
      assert.match(body, /→ crm; otherwise leaves the scenario/);
      assert.match(body, /triggers send-to-crm with campaignId = 987654/);
      assert.match(body, /joins Active of Active/);
      assert.match(body, /the run ends here/);
      for (const id of ["wait", "gold", "crm", "tag", "end"])
        assert.deepEqual(figures(body, id), [0, 0, 0, 0], id);
      assert.match(body, /<button type="submit">Activate<\/button>/);
      assert.doesNotMatch(body, /name="cancelRuns"/, "no Deactivate button");
      assert.match(body, /No run yet\. Activate the scenario/);
      assert.doesNotMatch(body, /hx-trigger/, "nothing to follow while inactive and empty");
      assert.ok(!body.includes(MARKUP));
    });

    test("Activate: refused without the CSRF token or from another site; with it, the scenario is ACTIVE", async () => {
      const href = `/ui/e/acme/scenarios/${ids.welcome}`;
      for (const refused of [
        await admin.post(`${href}/activate`, { _csrf: "" }),
        await admin.post(`${href}/activate`, { _csrf: "not-the-token" }),
        await admin.post(`${href}/activate`, {}, { origin: "https://evil.example" }),
        await admin.post(`${href}/activate`, {}, { "sec-fetch-site": "cross-site" }),
      ]) {
        assert.equal(refused.statusCode, 403);
        assert.match(refused.headers["content-type"] as string, /text\/html/);
      }
      assert.equal(await status(ids.welcome), "INACTIVE", "a refused post changed nothing");
      const posted = await admin.post(`${href}/activate`);
      assert.equal(posted.statusCode, 303);
      assert.equal(posted.headers.location, `${href}?done=activated`);
      assert.equal(await status(ids.welcome), "ACTIVE");
      const page = await admin.get(`${href}?done=activated`);
      assert.match(page.body, /Activated: from now on its start begins runs/);
      assert.match(page.body, /data-state="ACTIVE">Active</);
      assert.match(page.body, /name="cancelRuns" value="false"/);
      assert.match(page.body, /name="cancelRuns" value="true"/);
      assert.match(page.body, /No run yet: runs begin when the start happens/);
      // While active, the statistics and the runs follow themselves.
      assert.match(page.body, new RegExp(`hx-get="${href}/statistics" hx-trigger="every 5s"`));
      assert.match(page.body, new RegExp(`hx-get="${href}/runs" hx-trigger="every 5s"`));
    });

    test("statistics per block and the runs after runs went through, the runs filtered by state and profile key", async () => {
      const href = `/ui/e/acme/scenarios/${ids.welcome}`;
      for (const customerId of ["C-1", "C-2", "C-3"]) await start(ids.welcome, customerId);
      await worker.runDue();
      let page = await admin.get(href);
      assert.deepEqual(figures(page.body, "wait"), [3, 3, 0, 0]);
      assert.match(page.body, /data-state="WAITING">Waiting</);
      assert.match(page.body, /API call by /);
      // The hour's wait ends; a fourth profile enters meanwhile and waits.
      clock = new Date(clock.getTime() + HOUR);
      await worker.runDue();
      await start(ids.welcome, "C-4");
      await worker.runDue();
      page = await admin.get(href);
      assert.equal(page.statusCode, 200);
      assert.deepEqual(figures(page.body, "wait"), [4, 1, 3, 0]);
      assert.deepEqual(figures(page.body, "gold"), [3, 0, 2, 1], "C-2 is not Gold: it left");
      assert.deepEqual(figures(page.body, "crm"), [2, 0, 2, 0]);
      assert.deepEqual(figures(page.body, "tag"), [2, 0, 2, 0]);
      assert.deepEqual(figures(page.body, "end"), [2, 0, 0, 2]);
      const runs = await runsOf(ids.welcome);
      assert.equal(runs.length, 4);
      const profiles = runProfiles(page.body);
      assert.deepEqual(
        profiles.map((p) => Number(p.split(" ")[0])),
        ["C-4", "C-3", "C-2", "C-1"].map((c) => profileIds.get(c)),
        "the latest run first",
      );
      assert.match(page.body, /data-state="FINISHED">Finished</);

      const waiting = await admin.get(`${href}?status=WAITING`);
      assert.equal(waiting.statusCode, 200);
      assert.match(waiting.body, /<option value="WAITING"\s+selected\s*>/);
      const waitingRuns = waiting.body.slice(waiting.body.indexOf('<div id="runs"'));
      assert.equal([...waitingRuns.matchAll(/data-state="WAITING"/g)].length, 1);
      assert.doesNotMatch(waitingRuns, /data-state="FINISHED"/);
      // The due time of a waiting run: an hour after it entered, on the worker's clock.
      assert.match(waitingRuns, /data-label="Due" class="">\s*\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ/);
      assert.match(
        waiting.body,
        new RegExp(`hx-get="${href}/runs\\?status=WAITING" hx-trigger="every 5s"`),
        "the refresh keeps the filter",
      );

      const finished = await admin.get(`${href}?status=FINISHED`);
      const finishedRuns = finished.body.slice(finished.body.indexOf('<div id="runs"'));
      assert.equal([...finishedRuns.matchAll(/data-state="FINISHED"/g)].length, 3);

      const c2 = await admin.get(`${href}?profileKey=${encodeURIComponent("customerId=C-2")}`);
      assert.equal(c2.statusCode, 200);
      assert.match(c2.body, /value="customerId=C-2"/);
      const c2Runs = c2.body.slice(c2.body.indexOf('<div id="runs"'));
      assert.equal([...c2Runs.matchAll(/data-label="Run"/g)].length, 1);
      assert.match(c2Runs, /data-label="Block" class="">\s*<span class="mono">gold<\/span>/);
      // Each run's profile links to that profile's runs.
      const c2Link = profiles
        .find((p) => p.startsWith(`${profileIds.get("C-2")} `))!
        .split(" ")[1]!;
      assert.equal(c2Link, `${href}?profileKey=profileId%3D${profileIds.get("C-2")}`);
      const byId = await admin.get(c2Link.replace(/&amp;/g, "&"));
      assert.equal(byId.statusCode, 200);
      assert.equal(runProfiles(byId.body).length, 1);
      assert.match(byId.body, new RegExp(`value="profileId=${profileIds.get("C-2")}"`));

      const fragment = await admin.get(`${href}/runs?status=WAITING`, { "hx-request": "true" });
      assert.equal(fragment.statusCode, 200);
      assert.match(fragment.body, /^<div id="runs"/);
      assert.doesNotMatch(fragment.body, /<html/);
      const stats = await admin.get(`${href}/statistics`, { "hx-request": "true" });
      assert.match(stats.body, /^<div id="statistics"/);
      assert.deepEqual(figures(stats.body, "gold"), [3, 0, 2, 1]);
    });

    test("a profile key the API refuses: its words on the page, as text, and no run", async () => {
      const href = `/ui/e/acme/scenarios/${ids.welcome}`;
      const key = `customerId=${MARKUP}-nobody`;
      const page = await admin.get(`${href}?profileKey=${encodeURIComponent(key)}`);
      assert.ok(page.statusCode >= 400 && page.statusCode < 500, String(page.statusCode));
      assert.match(page.body, /class="notice error"/);
      assert.match(page.body, /No run is shown/);
      assert.ok(page.body.includes(`value="customerId=${ESCAPED}-nobody"`), "the form as typed");
      assert.ok(!page.body.includes(MARKUP));
      // The rest of the page is there.
      assert.deepEqual(figures(page.body, "wait"), [4, 1, 3, 0]);
    });

    test("a run's last error and the key that started it are shown as text", async () => {
      const href = `/ui/e/acme/scenarios/${ids.renewal}`;
      // A key named with markup starts the run: the page names it as text.
      const robot = await api<{ key: string }>("POST", "/v4/api-keys", {
        name: `robot ${MARKUP}`,
        entities: ["acme"],
      });
      const token = await t.app.inject({
        method: "GET",
        url: "/auth/token",
        headers: { authorization: robot.key },
      });
      const started = await t.request(
        "POST",
        `${SCENARIOS}/${ids.renewal}/start`,
        { profileKey: "customerId=C-1" },
        { authorization: `Bearer ${token.json<{ accessToken: string }>().accessToken}` },
      );
      assert.equal(started.statusCode, 202, started.body);
      await worker.runDue();
      const [run] = await runsOf(ids.renewal);
      assert.equal(run?.status, "FINISHED", "C-1 has no renewal date: it left");
      const page = await admin.get(href);
      assert.equal(page.statusCode, 200);
      const runs = page.body.slice(page.body.indexOf('<div id="runs"'));
      assert.match(
        runs,
        /data-label="Last error" class="">\s*[^<]*&#39;renewal&#39;, which holds no date/,
      );
      assert.ok(runs.includes(`API call by robot ${ESCAPED}`));
      assert.match(runs, /data-label="Block" class="">\s*<span class="mono">until<\/span>/);
      assert.match(runs, /data-label="Due" class="">\s*—\s*</, "an ended run is due no more");
      assert.match(runs, /data-label="Times" class="">[^]*ended \d{4}-\d\d-\d\d /);
      assert.ok(!page.body.includes(MARKUP));
      assert.deepEqual(figures(page.body, "until"), [1, 0, 0, 1]);
    });

    test("Deactivate: the choice is required; letting runs finish keeps them, cancelling ends them", async () => {
      const href = `/ui/e/acme/scenarios/${ids.welcome}`;
      const noChoice = await admin.post(`${href}/deactivate`);
      assert.equal(noChoice.statusCode, 400);
      assert.match(noChoice.body, /Choose whether the runs going on finish or are cancelled/);
      const refused = await admin.post(`${href}/deactivate`, { _csrf: "", cancelRuns: "true" });
      assert.equal(refused.statusCode, 403);
      assert.equal(await status(ids.welcome), "ACTIVE", "nothing was changed");

      const kept = await admin.post(`${href}/deactivate`, { cancelRuns: "false" });
      assert.equal(kept.statusCode, 303);
      assert.equal(kept.headers.location, `${href}?done=deactivated`);
      assert.equal(await status(ids.welcome), "INACTIVE");
      const waiting = (await runsOf(ids.welcome)).filter((r) => r.status === "WAITING");
      assert.equal(waiting.length, 1, "the waiting run goes on");
      let page = await admin.get(`${href}?done=deactivated`);
      assert.match(page.body, /Deactivated: no new run starts; runs going on continue/);
      assert.match(page.body, /<button type="submit">Activate<\/button>/);
      assert.match(page.body, /Cancel the 1 run going on/);
      assert.match(page.body, /hx-trigger="every 5s"/, "a run still goes on: the page follows it");

      // Active again, then deactivated with its runs cancelled.
      assert.equal((await admin.post(`${href}/activate`)).statusCode, 303);
      const cancelled = await admin.post(`${href}/deactivate`, { cancelRuns: "true" });
      assert.equal(cancelled.statusCode, 303);
      assert.equal(cancelled.headers.location, `${href}?done=cancelled&cancelled=1`);
      assert.equal(await status(ids.welcome), "INACTIVE");
      assert.deepEqual((await runsOf(ids.welcome)).map((r) => r.status).sort(), [
        "CANCELLED",
        "FINISHED",
        "FINISHED",
        "FINISHED",
      ]);
      page = await admin.get(`${href}?done=cancelled&cancelled=1`);
      assert.match(page.body, /1 run\(s\) going on were cancelled/);
      assert.match(page.body, /data-state="CANCELLED">Cancelled</);
      assert.deepEqual(figures(page.body, "wait"), [4, 0, 3, 1], "the cancelled run left in wait");
      assert.doesNotMatch(page.body, /Cancel the/);
      assert.doesNotMatch(page.body, /hx-trigger/, "nothing goes on any more");
    });

    test("unknown scenarios are pages; a key limited to one entity is refused another's", async () => {
      for (const path of ["/ui/e/acme/scenarios/999999", "/ui/e/beta/scenarios/999999"]) {
        const missing = await admin.get(path);
        assert.equal(missing.statusCode, 404, path);
        assert.match(missing.headers["content-type"] as string, /text\/html/);
        assert.match(missing.body, /class="notice error"/);
      }
      assert.equal(
        (await admin.post(`/ui/e/beta/scenarios/${ids.welcome}/activate`)).statusCode,
        404,
      );
      const limited = await signInToConsole(t, limitedKey);
      assert.equal((await limited.get("/ui/e/acme/scenarios")).statusCode, 200);
      assert.equal((await limited.get(`/ui/e/acme/scenarios/${ids.welcome}`)).statusCode, 200);
      for (const path of ["scenarios", `scenarios/${ids.welcome}`]) {
        const page = await limited.get(`/ui/e/beta/${path}`);
        assert.equal(page.statusCode, 403, path);
        assert.match(page.headers["content-type"] as string, /text\/html/);
      }
      const post = await limited.post(`/ui/e/beta/scenarios/${ids.welcome}/deactivate`, {
        cancelRuns: "true",
      });
      assert.equal(post.statusCode, 403);
    });
  });
}
