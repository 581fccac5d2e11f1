/**
 * The Scenarios pages in Chromium, against a Herald API listening on loopback with a scenario run
 * worker on its database (the system clock): a scenario defined and activated through the API,
 * opened from the Scenarios page; runs started through the API while the page is open, which the
 * page's statistics and runs follow by themselves (htmx, no reload): a Gold profile goes through to
 * the CRM and out, a Silver one waits an hour. The runs are filtered by state from the page's form,
 * then the scenario is deactivated from the page with its running run cancelled. A 390-pixel phone
 * never scrolls sideways. No console error or CSP violation. Screenshots for docs/console.md.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { Browser } from "playwright-core";
import type { ScenarioRunWorker } from "../../src/jobs/scenarios/run-worker.js";
import { startScenarioRunWorker } from "../../src/jobs/scenarios/run-worker.js";
import { createLogger } from "../../src/logger.js";
import {
  chromiumUnavailable,
  launchChromium,
  newContext,
  screenshot,
  scrollsSideways,
  signIn,
  watchPageErrors,
} from "../helpers/console-browser.js";
import {
  ACTIVE,
  CRM_BLOCK,
  CUSTOMER_ID,
  customersTable,
  EXIT_BLOCK,
  GOLD_FILTER,
  SEND_TO_CRM,
  TAG_ACTIVE,
  TIER,
} from "../helpers/scenario-fixtures.js";
import type { TestApp } from "../helpers/test-app.js";
import { createTestApp } from "../helpers/test-app.js";
import { testBackends } from "../helpers/test-database.js";

const V5 = "/v5/entities/acme";
const SCENARIOS = `${V5}/scenarios`;
/** The page asks again every 5 s; a loaded machine gets far more. */
const FOLLOW_MS = 60_000;

const noBrowser = chromiumUnavailable();

for (const { backend, skip } of await testBackends()) {
  describe(`console scenarios in Chromium on ${backend}`, { skip: skip || noBrowser }, () => {
    let t: TestApp;
    let baseUrl: string;
    let browser: Browser;
    let worker: ScenarioRunWorker;
    let scenarioId: string;
    /** C-2's profileId: the Silver profile, whose run waits. */
    let silverId: number;

    const api = async <T>(method: string, url: string, body?: unknown) => {
      const response = await t.request(method, url, body);
      assert.ok(response.statusCode < 300, `${method} ${url}: ${response.body}`);
      return response.json() as T;
    };

    before(async () => {
      t = await createTestApp(backend);
      worker = await startScenarioRunWorker({
        db: t.database.db,
        logSignals: t.database.logSignals,
        jobSignals: t.database.jobSignals,
        logger: createLogger("silent"),
        config: { workerId: "console-e2e" },
        pollMs: 200,
      });
      baseUrl = await t.app.listen({ port: 0, host: "127.0.0.1" });
      browser = await launchChromium();
      await api(
        "POST",
        `${V5}/profile-tables`,
        customersTable([CUSTOMER_ID, TIER], { segmentations: [ACTIVE] }),
      );
      for (const [customerId, tier] of [
        ["C-1", "Gold"],
        ["C-2", "Silver"],
      ]) {
        const created = await api<{ profileId: number }>(
          "PUT",
          `${V5}/profile-tables/Customers/profiles`,
          { key: { customerId }, attributes: { tier } },
        );
        if (customerId === "C-2") silverId = created.profileId;
      }
      await api("POST", `${V5}/custom-actions`, {
        ...SEND_TO_CRM,
        description: "Tells the CRM about a new Gold customer",
      });
      // The welcome flow's blocks, the WAIT moved after the FILTER: only a profile not Gold waits.
      scenarioId = (
        await api<{ id: string }>("POST", SCENARIOS, {
          name: "welcome",
          profileTable: "Customers",
          start: { type: "API" },
          blocks: [
            { ...GOLD_FILTER, otherwise: "later" },
            CRM_BLOCK,
            TAG_ACTIVE,
            { id: "later", type: "WAIT", duration: "PT1H", next: "end" },
            EXIT_BLOCK,
          ],
        })
      ).id;
      await api("POST", `${SCENARIOS}/${scenarioId}/activate`);
    });
    after(async () => {
      await browser?.close();
      await worker?.stop();
      await t?.close();
    });

    test("see the runs go through, filter them by state, deactivate the scenario with its runs cancelled", async () => {
      const context = await newContext(browser);
      const page = await context.newPage();
      const errors = watchPageErrors(page);
      await signIn(page, baseUrl);
      await page.goto(`${baseUrl}/ui/e/acme/tables`);
      await page.getByRole("link", { name: "Scenarios", exact: true }).click();
      await page.waitForURL("**/ui/e/acme/scenarios");
      assert.ok(await page.getByText("Tells the CRM about a new Gold customer").isVisible());
      await screenshot(page, "scenarios");
      await page.getByRole("link", { name: "welcome", exact: true }).click();
      await page.waitForURL(`**/ui/e/acme/scenarios/${scenarioId}`);
      await page.getByText("No run yet: runs begin when the start happens.").waitFor();
      // A mark that a reload or a navigation would wipe out.
      await page.evaluate("window.__sameDocument = true");

      for (const customerId of ["C-1", "C-2"])
        await api("POST", `${SCENARIOS}/${scenarioId}/start`, {
          profileKey: `customerId=${customerId}`,
        });
      const cell = (block: string, label: string) =>
        page.locator(`#statistics tr:has(span.mono:text-is("${block}")) td[data-label="${label}"]`);
      // The Gold run goes through the CRM and out; the Silver one waits in "later".
      await page.locator(`#statistics td[data-label="Left"]:text-is("1")`).waitFor({
        timeout: FOLLOW_MS,
      });
      await cell("later", "Waiting").filter({ hasText: "1" }).waitFor({ timeout: FOLLOW_MS });
      await page.locator('#runs [data-state="WAITING"]').waitFor({ timeout: FOLLOW_MS });
      await page.locator('#runs [data-state="FINISHED"]').waitFor({ timeout: FOLLOW_MS });
      assert.equal(await page.evaluate("window.__sameDocument === true"), true, "never reloaded");
      assert.equal((await cell("gold", "Entered").textContent())?.trim(), "2");
      assert.equal((await cell("gold", "Passed").textContent())?.trim(), "2");
      assert.equal((await cell("crm", "Passed").textContent())?.trim(), "1");
      assert.equal((await cell("end", "Left").textContent())?.trim(), "1");
      await screenshot(page, "scenario-detail");

      await page.getByLabel("State").selectOption("WAITING");
      await page.getByRole("button", { name: "Show" }).click();
      await page.waitForURL(
        (url) =>
          url.pathname === `/ui/e/acme/scenarios/${scenarioId}` &&
          url.searchParams.get("status") === "WAITING",
      );
      assert.equal(await page.locator('#runs td[data-label="Run"]').count(), 1);
      assert.equal(await page.locator('#runs [data-state="FINISHED"]').count(), 0);
      assert.match(
        (await page.locator('#runs td[data-label="Profile id"]').textContent()) ?? "",
        new RegExp(`^\\s*${silverId}\\s*$`),
      );

      await page.getByRole("button", { name: "Deactivate and cancel running runs" }).click();
      await page.waitForURL(`**/ui/e/acme/scenarios/${scenarioId}?done=cancelled&cancelled=1`);
      await page.getByText("1 run(s) going on were cancelled").waitFor();
      assert.ok(await page.locator('dl.facts [data-state="INACTIVE"]').isVisible());
      assert.ok(await page.locator('#runs [data-state="CANCELLED"]').isVisible());
      assert.equal((await cell("later", "Left").textContent())?.trim(), "1");
      assert.ok(await page.getByRole("button", { name: "Activate", exact: true }).isVisible());
      const stored = await api<{ status: string }>("GET", `${SCENARIOS}/${scenarioId}`);
      assert.equal(stored.status, "INACTIVE");
      assert.deepEqual(errors, []);
      await context.close();
    });

    test("on a 390-pixel phone the pages do not scroll sideways", async () => {
      const context = await newContext(browser, "phone");
      const page = await context.newPage();
      const errors = watchPageErrors(page);
      await signIn(page, baseUrl);
      await page.goto(`${baseUrl}/ui/e/acme/scenarios`);
      assert.equal(await scrollsSideways(page), false, "the scenarios list");
      await page.getByRole("link", { name: "welcome", exact: true }).click();
      await page.locator("dl.facts").waitFor();
      assert.equal(await scrollsSideways(page), false, "a scenario's page");
      assert.deepEqual(errors, []);
      await context.close();
    });
  });
}
