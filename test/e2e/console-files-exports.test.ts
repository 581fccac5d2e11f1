/**
 * The Files and Exports pages in Chromium: a DIRECTORY reference in a temporary
 * HERALD_FILE_DROP_DIR is synchronised from its page while no synchronisation worker runs; once a
 * worker starts, the page's list follows it to SUCCESS by itself (htmx, no reload), and the file
 * downloads through its link. Then an export is run from its page, reaches SUCCESS the same way,
 * and its file downloads. A 390-pixel phone never scrolls sideways. No console error or CSP
 * violation. Screenshots for docs/console.md.
 */
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { Browser } from "playwright-core";
import type { ExportWorker } from "../../src/jobs/export-worker.js";
import { startExportWorker } from "../../src/jobs/export-worker.js";
import type { FileSyncWorker } from "../../src/jobs/file-sync-worker.js";
import { startFileSyncWorker } from "../../src/jobs/file-sync-worker.js";
import {
  chromiumUnavailable,
  launchChromium,
  newContext,
  screenshot,
  scrollsSideways,
  signIn,
  watchPageErrors,
} from "../helpers/console-browser.js";
import type { FileSyncTestApp } from "../helpers/file-sync.js";
import { createFileSyncTestApp, jobWorkerOptions } from "../helpers/file-sync.js";
import { CUSTOMERS } from "../helpers/imports.js";
import { testBackends } from "../helpers/test-database.js";

const CONTENT = "customerId,emailAddress\nC-1,ann@example.com\nC-2,bob@example.com\n";
/** The lists ask again every 2 s; a loaded machine gets far more. */
const FOLLOW_MS = 60_000;

const noBrowser = chromiumUnavailable();

for (const { backend, skip } of await testBackends()) {
  describe(
    `console files and exports in Chromium on ${backend}`,
    { skip: skip || noBrowser },
    () => {
      let t: FileSyncTestApp;
      let baseUrl: string;
      let browser: Browser;
      let exportWorker: ExportWorker | undefined;
      let syncWorker: FileSyncWorker | undefined;

      before(async () => {
        t = await createFileSyncTestApp(backend);
        // Nothing synchronises until the test starts its own worker.
        await t.syncWorker.stop();
        exportWorker = await startExportWorker(jobWorkerOptions(t));
        baseUrl = await t.app.listen({ port: 0, host: "127.0.0.1" });
        browser = await launchChromium();
        const ok = async (method: string, url: string, body: unknown) => {
          const response = await t.request(method, url, body);
          assert.ok(response.statusCode < 300, `${method} ${url}: ${response.body}`);
        };
        await ok("POST", "/v5/entities/acme/profile-tables", CUSTOMERS);
        for (const [id, email] of [
          ["C-1", "ann@example.com"],
          ["C-2", "bob@example.com"],
        ])
          await ok("PUT", "/v5/entities/acme/profile-tables/Customers/profiles", {
            key: { customerId: id },
            attributes: { emailAddress: email },
          });
        mkdirSync(join(t.dropDir, "crm"));
        writeFileSync(join(t.dropDir, "crm", "customers.csv"), CONTENT);
        await t.createReference({
          name: "crm-drop",
          source: { type: "DIRECTORY", path: "crm/customers.csv" },
          schedule: { cron: "0 2 * * *", timezone: "Europe/Brussels" },
        });
        // A long target, for the phone's width.
        await t.createReference({
          name: "partner-feed-with-a-rather-long-name",
          source: {
            type: "HTTPS",
            url: `https://127.0.0.1:9/exports/${"daily-customers-".repeat(6)}$yyyyMMdd.csv?token=x`,
            headers: { Authorization: "Bearer not-shown" },
          },
        });
        await ok("POST", "/v5/entities/acme/exports", {
          name: "customers-full",
          source: { tableType: "PROFILE_TABLE", table: "Customers" },
          fields: ["customerId", "emailAddress"],
          format: { type: "CSV", separator: ",", compression: "NONE" },
        });
      });
      after(async () => {
        await browser?.close();
        await syncWorker?.stop();
        await exportWorker?.stop();
        await t?.close();
      });

      test("synchronise a reference and run an export from their pages, download both files", async () => {
        const context = await newContext(browser);
        const page = await context.newPage();
        const errors = watchPageErrors(page);
        await signIn(page, baseUrl);
        await page.goto(`${baseUrl}/ui/e/acme/imports`);

        await page.getByRole("link", { name: "Files", exact: true }).click();
        await page.waitForURL("**/ui/e/acme/files");
        await page.getByRole("link", { name: "crm-drop" }).click();
        await page.getByRole("button", { name: "Synchronise now" }).click();
        await page.waitForURL("**/ui/e/acme/files/*?done=sync");
        await page.locator('#synchronizations [data-state="PENDING"]').waitFor();
        // A mark that a reload or a navigation would wipe out.
        await page.evaluate("window.__sameDocument = true");
        syncWorker = await startFileSyncWorker(jobWorkerOptions(t));
        await page
          .locator('#synchronizations [data-state="SUCCESS"]')
          .waitFor({ timeout: FOLLOW_MS });
        assert.equal(await page.evaluate("window.__sameDocument === true"), true, "never reloaded");
        await screenshot(page, "file-reference");
        const [synced] = await Promise.all([
          page.waitForEvent("download"),
          page.getByRole("link", { name: "customers.csv" }).click(),
        ]);
        assert.equal(synced.suggestedFilename(), "customers.csv");
        assert.equal(await readFile(await synced.path(), "utf8"), CONTENT);

        await page.getByRole("link", { name: "Exports", exact: true }).click();
        await page.waitForURL("**/ui/e/acme/exports");
        await page.getByRole("link", { name: "customers-full" }).click();
        await page.getByRole("button", { name: "Run now" }).click();
        await page.waitForURL("**/ui/e/acme/exports/*?done=run");
        await page.locator('#executions [data-state="SUCCESS"]').waitFor({ timeout: FOLLOW_MS });
        await screenshot(page, "export-detail");
        const [exported] = await Promise.all([
          page.waitForEvent("download"),
          page.locator("#executions a[download]").click(),
        ]);
        assert.match(exported.suggestedFilename(), /^customers-full-\d+\.csv$/);
        const lines = (await readFile(await exported.path(), "utf8")).trim().split(/\r?\n/);
        assert.equal(lines.length, 3, lines.join("|"));
        assert.match(lines[0]!, /customerId/);
        assert.ok(lines.some((l) => l.includes("bob@example.com")));
        assert.deepEqual(errors, []);
        await context.close();
      });

      test("on a 390-pixel phone the pages do not scroll sideways", async () => {
        const context = await newContext(browser, "phone");
        const page = await context.newPage();
        const errors = watchPageErrors(page);
        await signIn(page, baseUrl);
        for (const [path, link] of [
          ["files", "partner-feed-with-a-rather-long-name"],
          ["files", "crm-drop"],
          ["exports", "customers-full"],
        ] as const) {
          await page.goto(`${baseUrl}/ui/e/acme/${path}`);
          assert.equal(await scrollsSideways(page), false, `the ${path} list`);
          await page.getByRole("link", { name: link }).click();
          await page.locator("dl.facts").waitFor();
          assert.equal(await scrollsSideways(page), false, `the page of ${link}`);
          assert.ok(!(await page.content()).includes("not-shown"), "no header value");
        }
        assert.deepEqual(errors, []);
        await context.close();
      });
    },
  );
}
