/**
 * The Imports pages in Chromium: an import of a few thousand rows is uploaded through the API while
 * no import worker runs, its page is opened, then a worker starts it; the page follows it over
 * server-sent events without reloading (the counters change, the state reaches its end by itself),
 * shows the rejected rows (markup in a row as text) and downloads their file through its link. A
 * 390-pixel phone never scrolls sideways; no console error or CSP violation. Screenshots for
 * docs/console.md.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { after, before, describe, test } from "node:test";
import type { Browser, Page } from "playwright-core";
import { startImportWorker } from "../../src/jobs/import-worker.js";
import type { ImportWorker } from "../../src/jobs/import-worker.js";
import { createLogger } from "../../src/logger.js";
import type { ConsoleServer } from "../helpers/console-browser.js";
import {
  chromiumUnavailable,
  launchChromium,
  newContext,
  screenshot,
  scrollsSideways,
  signIn,
  startConsoleServer,
  watchPageErrors,
} from "../helpers/console-browser.js";
import { CUSTOMERS } from "../helpers/imports.js";
import { multipartBody } from "../helpers/multipart.js";
import type { TestApp } from "../helpers/test-app.js";
import { testBackends } from "../helpers/test-database.js";

const MARKUP = "<img src=x onerror=alert(1)>";
/** Enough rows for the import to run a few seconds on either backend, in batches of BATCH_ROWS. */
const ROWS = 3_000;
const BATCH_ROWS = 100;
/** Every REJECT_EVERY-th row has points that are no integer; the last rejected one holds markup. */
const REJECT_EVERY = 500;
const FINAL_STATES = ["SUCCESS", "WITH_ERROR", "ERROR", "CANCELLED"];

function csv(): string {
  const lines = ["customerId,emailAddress,firstName,points"];
  for (let i = 1; i <= ROWS; i++) {
    const points = i % REJECT_EVERY ? String(i) : i === ROWS ? MARKUP : "lots";
    lines.push(`C-${i},c${i}@example.com,Name ${i},${points}`);
  }
  return `${lines.join("\n")}\n`;
}

async function upload(t: TestApp): Promise<string> {
  const body = multipartBody([
    {
      name: "etlDefinition",
      content: JSON.stringify({
        target: { tableType: "PROFILE_TABLE", table: "Customers" },
        keyAttribute: "customerId",
      }),
    },
    { name: "inputFile", filename: "customers.csv", content: csv() },
  ]);
  const response = await t.app.inject({
    method: "POST",
    url: "/mass-imports/v5/entities/acme/etl-executions",
    headers: { authorization: `Bearer ${t.token}`, "content-type": body.contentType },
    payload: body.payload,
  });
  assert.equal(response.statusCode, 202, response.body);
  return (response.json() as { executionId: string }).executionId;
}

const shown = (page: Page, name: string) =>
  page.locator(`#import-live [data-count="${name}"]`).innerText();
const state = (page: Page) =>
  page.locator("#import-live [data-state]").getAttribute("data-state") as Promise<string>;

const noBrowser = chromiumUnavailable();

for (const { backend, skip } of await testBackends()) {
  describe(`console imports in Chromium on ${backend}`, { skip: skip || noBrowser }, () => {
    let server: ConsoleServer;
    let t: TestApp;
    let browser: Browser;
    let worker: ImportWorker | undefined;
    let id: string;

    before(async () => {
      server = await startConsoleServer(backend);
      t = server.engine.app;
      browser = await launchChromium();
      const table = await t.request("POST", "/v5/entities/acme/profile-tables", CUSTOMERS);
      assert.equal(table.statusCode, 201, table.body);
      // No worker yet: the import waits (PENDING) until the test starts one.
      id = await upload(t);
    });
    after(async () => {
      await worker?.stop();
      await browser?.close();
      await server?.close();
    });

    test("watch an import progress live, see its rejected rows and download them", async () => {
      const context = await newContext(browser);
      const page = await context.newPage();
      const errors = watchPageErrors(page);
      await signIn(page, server.baseUrl);
      await page.goto(`${server.baseUrl}/ui/e/acme/imports`);
      await page.getByRole("link", { name: `Import ${id}` }).click();
      await page.waitForURL(`**/ui/e/acme/imports/${id}`);
      assert.equal(await state(page), "PENDING");
      assert.equal(await shown(page, "read"), "0");
      // A mark that a reload or a navigation would wipe out.
      await page.evaluate("window.__sameDocument = true");

      worker = await startImportWorker({
        db: t.database.db,
        logSignals: t.database.logSignals,
        jobSignals: t.database.jobSignals,
        logger: createLogger("silent"),
        config: t.config,
        pollMs: 50,
        batchRows: BATCH_ROWS,
      });
      const seen = new Set<string>();
      let runningShot = false;
      const deadline = Date.now() + 60_000;
      for (;;) {
        const now = await state(page);
        const read = await shown(page, "read");
        seen.add(read);
        if (!runningShot && now === "RUNNING" && read !== "0") {
          await screenshot(page, "import-progress");
          runningShot = true;
        }
        if (FINAL_STATES.includes(now)) break;
        assert.ok(Date.now() < deadline, `the page still shows ${now} after 60 s`);
        await page.waitForTimeout(100);
      }
      assert.equal(await state(page), "WITH_ERROR");
      assert.equal(await shown(page, "read"), "3,000");
      assert.equal(await shown(page, "rejected"), "6");
      assert.ok(seen.size >= 3, `the counters moved on the page (saw ${[...seen].join(" → ")})`);
      assert.ok(runningShot, "the page showed the import running");
      assert.equal(await page.evaluate("window.__sameDocument === true"), true, "never reloaded");
      assert.equal(
        await page.locator("#import-bar").getAttribute("value"),
        await page.locator("#import-bar").getAttribute("max"),
      );

      // The rejected rows arrived with the final state: their lines, the reason, the raw line.
      const rejected = page.locator("#import-live table.data tbody tr");
      assert.equal(await rejected.count(), 6);
      await rejected.first().getByText("C-500,c500@example.com,Name 500,lots").waitFor();
      await page.locator("code.raw-line", { hasText: MARKUP }).waitFor();
      assert.equal(await page.locator("main img").count(), 0, "the markup is text");

      const [download] = await Promise.all([
        page.waitForEvent("download"),
        page.getByRole("link", { name: "Download all rejected rows (CSV)" }).click(),
      ]);
      assert.equal(download.suggestedFilename(), `import-${id}-rejected-rows.csv`);
      const lines = (await readFile(await download.path(), "utf8")).trim().split("\n");
      assert.equal(lines[0], "line,originalLine,code,message,column");
      assert.equal(lines.length, 7);
      assert.match(lines[1]!, /^501,"C-500,c500@example\.com,Name 500,lots",HERALD_INVALID_VALUE,/);
      assert.ok(lines[6]!.includes(MARKUP));
      assert.equal(page.url(), `${server.baseUrl}/ui/e/acme/imports/${id}`, "still on the page");

      await page.getByRole("link", { name: "All imports" }).click();
      await page.locator("td[data-label='State'] [data-state='WITH_ERROR']").waitFor();
      await screenshot(page, "imports");
      assert.deepEqual(errors, []);
      await context.close();
    });

    test("on a 390-pixel phone the pages do not scroll sideways", async () => {
      const context = await newContext(browser, "phone");
      const page = await context.newPage();
      const errors = watchPageErrors(page);
      await signIn(page, server.baseUrl);
      await page.goto(`${server.baseUrl}/ui/e/acme/imports`);
      await page.getByRole("link", { name: `Import ${id}` }).waitFor();
      assert.equal(await scrollsSideways(page), false, "the list");
      await page.goto(`${server.baseUrl}/ui/e/acme/imports/${id}`);
      await page.locator("code.raw-line").first().waitFor();
      assert.equal(await scrollsSideways(page), false, "an import's page");
      await screenshot(page, "import-phone");
      assert.deepEqual(errors, []);
      await context.close();
    });
  });
}
