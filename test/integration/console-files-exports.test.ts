/**
 * The console's Files and Exports pages (SPEC §7.2, §7.3, §8) at the inject level, on both
 * backends: the lists with each source's target and never a credential (an HTTPS URL's query
 * string, its header values, an SFTP password), a reference's page with its synchronisations and
 * the download of a synchronised file, an export's page with its executions and the download of
 * its file, "Synchronise now" and "Run now" with and without the CSRF token, markup in names, paths
 * and error messages shown as text, the API's errors as pages, and the key's entity scope.
 */
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { ExportWorker } from "../../src/jobs/export-worker.js";
import { startExportWorker } from "../../src/jobs/export-worker.js";
import type { FileSyncWorker } from "../../src/jobs/file-sync-worker.js";
import { startFileSyncWorker } from "../../src/jobs/file-sync-worker.js";
import type { ConsoleBrowser } from "../helpers/console-session.js";
import { signInToConsole } from "../helpers/console-session.js";
import type { FileSyncTestApp } from "../helpers/file-sync.js";
import { createFileSyncTestApp, jobWorkerOptions, REFERENCES } from "../helpers/file-sync.js";
import { CUSTOMERS } from "../helpers/imports.js";
import { TEST_ADMIN_KEY } from "../helpers/test-app.js";
import { testBackends } from "../helpers/test-database.js";

const MARKUP = "<img src=x onerror=alert(1)>";
const ESCAPED = "&lt;img src=x onerror=alert(1)&gt;";
const EXPORTS = "/v5/entities/acme/exports";
/** Secrets a reference holds; none may reach a page. */
const SECRETS = ["QUERY-SECRET", "HEADER-SECRET-VALUE", "hunter2-not-shown"];
const CONTENT = "customerId,emailAddress\nC-1,ann@example.com\n";

function assertNoSecret(body: string): void {
  for (const secret of SECRETS) assert.ok(!body.includes(secret), `the page shows ${secret}`);
}

function assertEscaped(body: string): void {
  assert.ok(!body.includes(MARKUP), "the markup is not in the page as markup");
  assert.ok(body.includes(ESCAPED), "it is shown as text");
  assert.doesNotMatch(body, / style="|<script>/);
}

for (const { backend, skip } of await testBackends()) {
  describe(`console files and exports pages on ${backend}`, { skip }, () => {
    let t: FileSyncTestApp;
    let exportWorker: ExportWorker | undefined;
    let syncWorker: FileSyncWorker | undefined;
    let admin: ConsoleBrowser;
    let limitedKey: string;
    const ids = { dir: "", https: "", sftp: "", odd: "", plain: "", copied: "" };

    const api = async <T>(method: string, url: string, body?: unknown) => {
      const response = await t.request(method, url, body);
      assert.ok(response.statusCode < 300, `${method} ${url}: ${response.body}`);
      return response.json() as T;
    };
    const syncCount = async (id: string) =>
      (await api<{ totalElements: number }>("GET", `${REFERENCES}/${id}/synchronizations`))
        .totalElements;
    const runCount = async (id: string) =>
      (await api<{ totalElements: number }>("GET", `${EXPORTS}/${id}/executions`)).totalElements;

    before(async () => {
      t = await createFileSyncTestApp(backend);
      exportWorker = await startExportWorker(jobWorkerOptions(t));
      await api("POST", "/v5/entities/acme/profile-tables", CUSTOMERS);
      await api("PUT", "/v5/entities/acme/profile-tables/Customers/profiles", {
        key: { customerId: "C-1" },
        attributes: { emailAddress: "ann@example.com", firstName: MARKUP },
      });
      await api("POST", "/v4/entity", { name: "beta" });
      limitedKey = (
        await api<{ key: string }>("POST", "/v4/api-keys", {
          name: "acme-only",
          entities: ["acme"],
        })
      ).key;
      mkdirSync(join(t.dropDir, "in"));
      writeFileSync(join(t.dropDir, "in", `${MARKUP}.csv`), CONTENT);
      mkdirSync(join(t.dropDir, "out"));
      ids.dir = await t.createReference({
        name: `drop ${MARKUP}`,
        source: { type: "DIRECTORY", path: `in/${MARKUP}.csv` },
        schedule: { cron: "0 2 * * *", timezone: "Europe/Brussels" },
      });
      ids.https = await t.createReference({
        name: "partner-feed",
        source: {
          type: "HTTPS",
          url: "https://127.0.0.1:9/feed.csv?token=QUERY-SECRET#part",
          headers: { Authorization: "Bearer HEADER-SECRET-VALUE" },
        },
      });
      ids.sftp = await t.createReference({
        name: "crm-sftp",
        source: {
          type: "SFTP",
          host: "127.0.0.1",
          port: 2222,
          username: "herald",
          password: "hunter2-not-shown",
          path: "/out/customers.csv",
          hostKeySha256: `SHA256:${"A".repeat(43)}`,
        },
      });
      // A directory where a file is expected: its synchronisation ends ERROR.
      mkdirSync(join(t.dropDir, MARKUP));
      ids.odd = await t.createReference({
        name: "odd",
        source: { type: "DIRECTORY", path: MARKUP },
      });
      const out = await t.createReference({
        name: `out ${MARKUP}`,
        source: { type: "DIRECTORY", path: "out/" },
      });
      ids.plain = (
        await api<{ id: string }>("POST", EXPORTS, {
          name: `customers ${MARKUP}`,
          source: { tableType: "PROFILE_TABLE", table: "Customers" },
          format: { type: "CSV", separator: ",", compression: "NONE" },
        })
      ).id;
      ids.copied = (
        await api<{ id: string }>("POST", EXPORTS, {
          name: "nightly",
          source: { table: "Customers" },
          mode: "INCREMENTAL",
          format: { type: "NDJSON", compression: "GZIP" },
          schedule: { cron: "30 3 * * *", timezone: "Europe/Brussels" },
          destination: { fileReference: out },
        })
      ).id;
      admin = await signInToConsole(t, TEST_ADMIN_KEY);
    });
    after(async () => {
      await syncWorker?.stop();
      await exportWorker?.stop();
      await t?.close();
    });

    test("both pages are in the entity's navigation", async () => {
      const page = await admin.get("/ui/e/acme/files");
      assert.equal(page.statusCode, 200);
      assert.match(page.body, /<a href="\/ui\/e\/acme\/files"\s+aria-current="page">Files<\/a>/);
      assert.match(page.body, /<a href="\/ui\/e\/acme\/exports"\s*>Exports<\/a>/);
    });

    test("the Files list: each source's target without secrets, schedule, next and last synchronisation", async () => {
      const page = await admin.get("/ui/e/acme/files");
      assert.equal(page.statusCode, 200);
      const body = page.body;
      assert.match(body, new RegExp(`href="/ui/e/acme/files/${ids.https}">partner-feed</a>`));
      assert.match(body, />\s*HTTPS\s*</);
      assert.match(body, /<span class="mono">https:\/\/127\.0\.0\.1:9\/feed\.csv<\/span>/);
      assert.match(body, /<span class="mono">127\.0\.0\.1:2222 \/out\/customers\.csv<\/span>/);
      assert.ok(body.includes(`<span class="mono">in/${ESCAPED}.csv</span>`));
      assert.match(body, /0 2 \* \* \* \(Europe\/Brussels\)/);
      assert.match(body, /on demand only/);
      assert.match(body, /data-label="Next" class="">\s*\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\s*</);
      assert.match(body, /data-label="Last synchronisation" class="">\s*never\s*</);
      assertNoSecret(body);
      assertEscaped(body);
    });

    test("Synchronise now: refused without the CSRF token; with it, the new PENDING synchronisation, then SUCCESS and its file", async () => {
      await t.syncWorker.stop(); // nothing runs the synchronisation until a worker starts below
      const href = `/ui/e/acme/files/${ids.dir}`;
      for (const csrf of ["", "not-the-token"]) {
        const refused = await admin.post(`${href}/synchronize`, { _csrf: csrf });
        assert.equal(refused.statusCode, 403);
        assert.match(refused.headers["content-type"] as string, /text\/html/);
        assert.match(refused.body, /nothing was changed/);
      }
      assert.equal(await syncCount(ids.dir), 0, "a refused post started nothing");
      const posted = await admin.post(`${href}/synchronize`);
      assert.equal(posted.statusCode, 303);
      assert.equal(posted.headers.location, `${href}?done=sync`);
      assert.equal(await syncCount(ids.dir), 1);
      const pending = await admin.get(`${href}?done=sync`);
      assert.equal(pending.statusCode, 200);
      assert.match(pending.body, /Synchronisation asked/);
      assert.match(pending.body, /data-state="PENDING">Waiting for a worker</);
      assert.match(
        pending.body,
        new RegExp(`hx-get="${href}/synchronizations" hx-trigger="every 2s"`),
      );
      assertEscaped(pending.body);
      const fragment = await admin.get(`${href}/synchronizations`, { "hx-request": "true" });
      assert.equal(fragment.statusCode, 200);
      assert.match(fragment.body, /^<div id="synchronizations"/);
      assert.doesNotMatch(fragment.body, /<html/);

      syncWorker = await startFileSyncWorker(jobWorkerOptions(t));
      const { synchronizations } = await api<{ synchronizations: { id: string }[] }>(
        "GET",
        `${REFERENCES}/${ids.dir}/synchronizations`,
      );
      const sync = await t.synced(ids.dir, synchronizations[0]!.id);
      assert.equal(sync.status, "SUCCESS", JSON.stringify(sync));
      const done = await admin.get(href);
      assert.match(done.body, /data-state="SUCCESS">Succeeded</);
      assert.doesNotMatch(done.body, /hx-trigger/, "nothing to follow any more");
      const fileHref = `${href}/synchronizations/${sync.id}/file`;
      assert.ok(done.body.includes(`<a href="${fileHref}" download>${ESCAPED}.csv</a>`));
      assert.match(done.body, new RegExp(`title="${sync.sha256}">${sync.sha256!.slice(0, 12)}…<`));
      assert.match(
        done.body,
        new RegExp(`data-label="Size" class="num">\\s*${CONTENT.length} bytes`),
      );
      const file = await admin.get(fileHref);
      assert.equal(file.statusCode, 200);
      assert.equal(file.body, CONTENT);
      assert.equal(file.headers["content-type"], "application/octet-stream");
      assert.match(String(file.headers["content-disposition"]), /^attachment; filename="/);
      assert.equal(file.headers["x-content-type-options"], "nosniff");
      // The list shows the last synchronisation now.
      const list = await admin.get("/ui/e/acme/files");
      assert.match(
        list.body,
        /data-label="Last synchronisation" class="">\s*<span class="badge ok" data-state="SUCCESS"/,
      );
    });

    test("a reference's page: no credential, header names only; an ERROR's message as text", async () => {
      const https = await admin.get(`/ui/e/acme/files/${ids.https}`);
      assert.equal(https.statusCode, 200);
      assert.match(https.body, /<h1>File reference partner-feed<\/h1>/);
      assert.match(https.body, /Authorization \(values hidden\)/);
      assert.match(https.body, /Never synchronised yet/);
      assertNoSecret(https.body);
      const sftp = await admin.get(`/ui/e/acme/files/${ids.sftp}`);
      assert.match(sftp.body, /herald\s*\(password\)/);
      assert.match(sftp.body, /SHA256:A{43}/);
      assertNoSecret(sftp.body);

      const syncId = await t.synchronize(ids.odd);
      const sync = await t.synced(ids.odd, syncId);
      assert.equal(sync.status, "ERROR", JSON.stringify(sync));
      assert.ok(sync.error?.message.includes(MARKUP), sync.error?.message);
      const page = await admin.get(`/ui/e/acme/files/${ids.odd}`);
      assert.match(page.body, /data-state="ERROR">Failed</);
      assert.ok(page.body.includes(sync.error!.code));
      assertEscaped(page.body);
      // An ERROR synchronisation has no file: the console answers the API's refusal as a page.
      const file = await admin.get(`/ui/e/acme/files/${ids.odd}/synchronizations/${syncId}/file`);
      assert.equal(file.statusCode, 404);
      assert.match(file.headers["content-type"] as string, /text\/html/);
      assert.equal(file.headers["content-disposition"], undefined);
      assert.match(file.body, /ended ERROR/);
    });

    test("the Exports list: table, mode, format, schedule, next run and destination", async () => {
      const page = await admin.get("/ui/e/acme/exports");
      assert.equal(page.statusCode, 200);
      const body = page.body;
      assert.ok(body.includes(`href="/ui/e/acme/exports/${ids.plain}">customers ${ESCAPED}</a>`));
      assert.match(body, /Customers \(profile table\)/);
      assert.match(body, />\s*INCREMENTAL\s*</);
      assert.match(body, /CSV, separator &quot;,&quot;, not compressed/);
      assert.match(body, /NDJSON, GZIP/);
      assert.match(body, /30 3 \* \* \* \(Europe\/Brussels\)/);
      assert.match(body, /data-label="Next run" class="">\s*\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\s*</);
      assert.match(body, /none \(download only\)/);
      assert.match(body, /<a href="\/ui\/e\/acme\/files\/\d+">out &lt;img/);
      assertEscaped(body);
    });

    test("Run now: refused without the CSRF token; with it, the new execution, its figures and its file", async () => {
      const href = `/ui/e/acme/exports/${ids.plain}`;
      const refused = await admin.post(`${href}/run`, { _csrf: "" });
      assert.equal(refused.statusCode, 403);
      const crossSite = await admin.post(`${href}/run`, {}, { origin: "https://evil.example" });
      assert.equal(crossSite.statusCode, 403);
      assert.equal(await runCount(ids.plain), 0, "a refused post ran nothing");
      const posted = await admin.post(`${href}/run`);
      assert.equal(posted.statusCode, 303);
      assert.equal(posted.headers.location, `${href}?done=run`);
      const shown = await admin.get(`${href}?done=run`);
      assert.match(shown.body, /Run asked/);
      assert.match(shown.body, /data-state="(PENDING|RUNNING|SUCCESS)"/);
      const { executions } = await api<{ executions: { id: string }[] }>(
        "GET",
        `${EXPORTS}/${ids.plain}/executions`,
      );
      assert.equal(executions.length, 1);
      const executionId = executions[0]!.id;
      let execution: { status: string; toPosition: number; fileName: string };
      for (const deadline = Date.now() + 60_000; ;) {
        execution = await api("GET", `${EXPORTS}/${ids.plain}/executions/${executionId}`);
        if (!["PENDING", "RUNNING"].includes(execution.status)) break;
        assert.ok(Date.now() < deadline, `still ${execution.status}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.equal(execution.status, "SUCCESS");
      const page = await admin.get(href);
      assert.match(page.body, /data-state="SUCCESS">Succeeded</);
      assert.match(page.body, /data-label="Rows" class="num">\s*1\s*</);
      assert.match(page.body, new RegExp(`— → ${execution.toPosition}<`));
      assert.doesNotMatch(page.body, /hx-trigger/);
      const fileHref = `${href}/executions/${executionId}/file`;
      assert.ok(page.body.includes(`<a href="${fileHref}" download>${execution.fileName}</a>`));
      assertEscaped(page.body);
      const file = await admin.get(fileHref);
      assert.equal(file.statusCode, 200);
      assert.equal(file.headers["content-type"], "text/csv; charset=utf-8");
      assert.match(String(file.headers["content-disposition"]), /^attachment; filename=".+\.csv"$/);
      assert.ok(file.body.includes(MARKUP), "the file holds the value as written");
      const direct = await t.request(
        "GET",
        `${EXPORTS}/${ids.plain}/executions/${executionId}/file`,
      );
      assert.equal(file.body, direct.body, "the API's bytes");
    });

    test("an export's page shows its definition; an unknown export or execution file is a page", async () => {
      const page = await admin.get(`/ui/e/acme/exports/${ids.copied}`);
      assert.equal(page.statusCode, 200);
      assert.match(page.body, /<h1>Export nightly<\/h1>/);
      assert.match(page.body, /every attribute/);
      assert.match(page.body, /Never run yet/);
      assert.match(page.body, /<a href="\/ui\/e\/acme\/files\/\d+">out &lt;img/);
      for (const path of [
        "/ui/e/acme/exports/999999",
        "/ui/e/acme/files/999999",
        `/ui/e/acme/exports/${ids.plain}/executions/999999/file`,
        `/ui/e/acme/files/${ids.dir}/synchronizations/999999/file`,
      ]) {
        const missing = await admin.get(path);
        assert.equal(missing.statusCode, 404, path);
        assert.match(missing.headers["content-type"] as string, /text\/html/);
        assert.match(missing.body, /class="notice error"/);
      }
    });

    test("a key limited to one entity is refused another entity's files and exports", async () => {
      const limited = await signInToConsole(t, limitedKey);
      assert.equal((await limited.get("/ui/e/acme/files")).statusCode, 200);
      assert.equal((await limited.get(`/ui/e/acme/exports/${ids.plain}`)).statusCode, 200);
      for (const path of ["files", `files/${ids.dir}`, "exports", `exports/${ids.plain}`]) {
        const page = await limited.get(`/ui/e/beta/${path}`);
        assert.equal(page.statusCode, 403, path);
        assert.match(page.headers["content-type"] as string, /text\/html/);
      }
      const post = await limited.post(`/ui/e/beta/exports/${ids.plain}/run`);
      assert.equal(post.statusCode, 403);
      // acme's objects do not exist under beta, even for the admin.
      assert.equal((await admin.get(`/ui/e/beta/files/${ids.dir}`)).statusCode, 404);
      assert.equal((await admin.get(`/ui/e/beta/exports/${ids.plain}`)).statusCode, 404);
      assert.equal((await admin.post(`/ui/e/beta/files/${ids.dir}/synchronize`)).statusCode, 404);
    });
  });
}
