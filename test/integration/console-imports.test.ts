/**
 * The console's Imports pages (SPEC §8) at the inject level, on both backends: the executions list
 * and an execution's page with its rejected rows, the rejected rows download, the progress stream
 * (server-sent events) of a finished and of a running import, a client that goes away, the key's
 * entity scope, and markup in a rejected row shown as text.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startImportWorker } from "../../src/jobs/import-worker.js";
import { createLogger } from "../../src/logger.js";
import type { ConsoleBrowser } from "../helpers/console-session.js";
import { signInToConsole } from "../helpers/console-session.js";
import type { ImportTestApp } from "../helpers/imports.js";
import { createImportTestApp, CUSTOMERS, EXECUTIONS_URL } from "../helpers/imports.js";
import { TEST_ADMIN_KEY } from "../helpers/test-app.js";
import { testBackends } from "../helpers/test-database.js";

const MARKUP = "<img src=x onerror=alert(1)>";
const DEFINITION = {
  target: { tableType: "PROFILE_TABLE", table: "Customers" },
  mode: "CREATE_UPDATE",
  keyAttribute: "customerId",
};
/** Lines 3 and 5 are rejected (points is no integer); line 5 holds markup. */
const FILE = [
  "customerId,emailAddress,firstName,points",
  "C-1,ann@example.com,Ann,5",
  "C-2,bob@example.com,Bob,not-a-number",
  "C-3,cy@example.com,Cy,12",
  `C-4,dee@example.com,Dee,${MARKUP}`,
  "",
].join("\n");

/** The events of a text/event-stream body: [{ event, data }]. */
function eventsOf(body: string): { event: string; data: string }[] {
  return body
    .split("\n\n")
    .filter((block) => block.trim() && !block.startsWith(":"))
    .map((block) => {
      const lines = block.split("\n");
      const event = lines.find((l) => l.startsWith("event: "))?.slice(7) ?? "message";
      const data = lines
        .filter((l) => l.startsWith("data: "))
        .map((l) => l.slice(6))
        .join("\n");
      return { event, data };
    });
}

function timeouts(): number {
  return process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;
}

for (const { backend, skip } of await testBackends()) {
  describe(`console imports pages on ${backend}`, { skip }, () => {
    let t: ImportTestApp;
    let admin: ConsoleBrowser;
    let limitedKey: string;
    let id: string;
    before(async () => {
      t = await createImportTestApp(backend);
      assert.equal(
        (await t.request("POST", "/v5/entities/acme/profile-tables", CUSTOMERS)).statusCode,
        201,
      );
      assert.equal((await t.request("POST", "/v4/entity", { name: "beta" })).statusCode, 201);
      const created = await t.request("POST", "/v4/api-keys", {
        name: "acme-only",
        entities: ["acme"],
      });
      limitedKey = created.json().key;
      admin = await signInToConsole(t, TEST_ADMIN_KEY);
      id = await t.startImport(DEFINITION, { name: "customers.csv", content: FILE });
      const done = await t.finished(id);
      assert.equal(done.status, "WITH_ERROR");
      assert.equal(done.counts.rejected, 2);
    });
    after(() => t?.close());

    test("the list shows the execution with its table, mode, state and counts, and the ETLs", async () => {
      const etl = await t.request("POST", "/v5/entities/acme/etls", {
        ...DEFINITION,
        name: "nightly-customers",
      });
      assert.equal(etl.statusCode, 201, etl.body);
      const page = await admin.get("/ui/e/acme/imports");
      assert.equal(page.statusCode, 200);
      assert.match(page.body, new RegExp(`href="/ui/e/acme/imports/${id}">Import ${id}</a>`));
      assert.match(page.body, /customers\.csv/);
      assert.match(page.body, /Customers \(profile table\)/);
      assert.match(page.body, /create or update/);
      assert.match(page.body, /data-state="WITH_ERROR">Finished with rejected rows</);
      assert.match(page.body, /data-label="Read" class="num">\s*4\s*</);
      assert.match(page.body, /data-label="Created" class="num">\s*2\s*</);
      assert.match(page.body, /data-label="Rejected" class="num">\s*2\s*</);
      assert.match(page.body, /<h2>Predefined ETLs<\/h2>/);
      assert.match(page.body, />\s*nightly-customers\s*</);
      assert.match(page.body, /<label for="import-status"/);
      // Filters: by state, and the runs of one ETL (none yet).
      const failed = await admin.get("/ui/e/acme/imports?status=ERROR");
      assert.equal(failed.statusCode, 200);
      assert.match(failed.body, /No import matches these filters/);
      assert.match(failed.body, /<option value="ERROR" selected/);
      const runs = await admin.get(`/ui/e/acme/imports?etl=${etl.json().id}`);
      assert.match(runs.body, /Only the runs of ETL nightly-customers/);
      assert.match(runs.body, /No import matches these filters/);
      // A filter the API refuses is its message on a page, not a 500.
      const bad = await admin.get("/ui/e/acme/imports?status=SOMETIMES");
      assert.equal(bad.statusCode, 400);
      assert.match(bad.headers["content-type"] as string, /text\/html/);
      assert.doesNotMatch(bad.body, /SOMETIMES/, "the query is not echoed");
    });

    test("the list pages through many executions, newest first", async () => {
      const ids: string[] = [];
      for (let i = 0; i < 26; i++)
        ids.push(
          await t.startImport(DEFINITION, {
            name: `more-${i}.csv`,
            content: "customerId,emailAddress\nM-1,m@example.com\n",
          }),
        );
      await t.finished(ids[ids.length - 1]!);
      const first = await admin.get("/ui/e/acme/imports");
      assert.match(first.body, /Page 1 of 2 \(27 imports\)/);
      assert.match(first.body, /href="\/ui\/e\/acme\/imports\?page=1" rel="next">Older/);
      assert.ok(
        first.body.indexOf(`Import ${ids[25]}<`) < first.body.indexOf(`Import ${ids[24]}<`),
        "newest first",
      );
      assert.doesNotMatch(first.body, new RegExp(`Import ${id}<`));
      const second = await admin.get("/ui/e/acme/imports?page=1");
      assert.match(second.body, new RegExp(`Import ${id}<`));
      assert.match(second.body, /rel="prev">Newer/);
    });

    test("an execution's page: file, table, counters, the rejected rows with their lines, escaped", async () => {
      const page = await admin.get(`/ui/e/acme/imports/${id}`);
      assert.equal(page.statusCode, 200);
      assert.match(page.body, new RegExp(`<h1>Import ${id}</h1>`));
      assert.match(page.body, /customers\.csv \(\d+ bytes\)/);
      assert.match(page.body, /<progress id="import-bar" class="progress" max="(\d+)" value="\1">/);
      assert.match(page.body, /data-count="read">4</);
      assert.match(page.body, /data-count="rejected">2</);
      assert.match(page.body, /2 rows were rejected/);
      assert.match(page.body, /data-label="Line" class="num">\s*3\s*</);
      assert.match(page.body, /data-label="Line" class="num">\s*5\s*</);
      assert.match(page.body, /C-2,bob@example.com,Bob,not-a-number/);
      assert.match(page.body, /HERALD_INVALID_VALUE/);
      assert.match(page.body, /href="\/ui\/e\/acme\/imports\/\d+\/rejected-rows\.csv" download/);
      // Finished: no stream to follow, no cancel button.
      assert.doesNotMatch(page.body, /sse-connect/);
      assert.doesNotMatch(page.body, /Cancel this import/);
      // The markup of the rejected line is text.
      assert.ok(!page.body.includes(MARKUP), "the markup is not in the page as markup");
      assert.ok(page.body.includes("&lt;img src=x onerror=alert(1)&gt;"), "it is shown as text");
      assert.doesNotMatch(page.body, / style="|<script>/);
    });

    test("the rejected rows are paged by line", async () => {
      const rows = ["customerId,emailAddress,points"];
      for (let i = 1; i <= 120; i++) rows.push(`P-${i},p${i}@example.com,${i % 2 ? "x" : i}`);
      const many = await t.startImport(DEFINITION, {
        name: "paged.csv",
        content: `${rows.join("\n")}\n`,
      });
      assert.equal((await t.finished(many)).counts.rejected, 60);
      const first = await admin.get(`/ui/e/acme/imports/${many}`);
      assert.match(first.body, /Shown here: lines 2 to 100\./);
      assert.match(first.body, /<a href="\/ui\/e\/acme\/imports\/\d+\?after=100">Next 50/);
      const second = await admin.get(`/ui/e/acme/imports/${many}?after=100`);
      assert.match(second.body, /Shown here: lines 102 to 120\./);
      assert.match(second.body, /First rejected rows/);
      assert.doesNotMatch(second.body, /Next 50/);
      // A line that is no number is the first page, and is not echoed.
      const odd = await admin.get(`/ui/e/acme/imports/${many}?after=%3Cb%3E`);
      assert.equal(odd.statusCode, 200);
      assert.match(odd.body, /Shown here: lines 2 to 100\./);
    });

    test("the rejected rows file downloads as an attachment, with the API's CSV", async () => {
      const file = await admin.get(`/ui/e/acme/imports/${id}/rejected-rows.csv`);
      assert.equal(file.statusCode, 200);
      assert.match(file.headers["content-type"] as string, /^text\/csv/);
      assert.equal(
        file.headers["content-disposition"],
        `attachment; filename="import-${id}-rejected-rows.csv"`,
      );
      assert.equal(file.headers["x-content-type-options"], "nosniff");
      assert.equal(file.headers["cache-control"], "no-store");
      const lines = file.body.trim().split("\n");
      assert.equal(lines[0], "line,originalLine,code,message,column");
      assert.equal(lines.length, 3);
      assert.match(lines[1]!, /^3,"?C-2,bob@example.com,Bob,not-a-number"?,HERALD_INVALID_VALUE,/);
      assert.ok(lines[2]!.includes(MARKUP), "the file holds the line as written");
      const unknown = await admin.get("/ui/e/acme/imports/999999/rejected-rows.csv");
      assert.equal(unknown.statusCode, 404);
      assert.match(unknown.headers["content-type"] as string, /text\/html/);
      assert.equal(unknown.headers["content-disposition"], undefined);
    });

    test("the progress stream of a finished import: one progress event, then done, then the end", async () => {
      const stream = await admin.get(`/ui/e/acme/imports/${id}/progress`);
      assert.equal(stream.statusCode, 200);
      assert.equal(stream.headers["content-type"], "text/event-stream; charset=utf-8");
      assert.equal(stream.headers["cache-control"], "no-store");
      assert.equal(stream.headers["x-content-type-options"], "nosniff");
      assert.match(String(stream.headers["content-security-policy"]), /script-src 'self'/);
      const events = eventsOf(stream.body);
      assert.deepEqual(
        events.map((e) => e.event),
        ["progress", "done"],
      );
      assert.match(events[0]!.data, /data-count="rejected">2</);
      assert.match(events[0]!.data, /data-state="WITH_ERROR"/);
      assert.equal(events[1]!.data, "WITH_ERROR");
      // Every line of the fragment is a data line: nothing else can end the event early.
      for (const line of stream.body.split("\n"))
        assert.match(line, /^(event: |data: |: |$)/, `a stray line: ${line}`);
    });

    test("an unknown execution is a 404 page, for the page and for its stream", async () => {
      for (const path of ["999999", "not-a-number", "999999/progress"]) {
        const page = await admin.get(`/ui/e/acme/imports/${path}`);
        assert.equal(page.statusCode, 404, path);
        assert.match(page.headers["content-type"] as string, /text\/html/);
        assert.match(page.body, /does not exist in entity/);
      }
    });

    test("a key limited to one entity is refused another entity's imports", async () => {
      const limited = await signInToConsole(t, limitedKey);
      assert.equal((await limited.get("/ui/e/acme/imports")).statusCode, 200);
      assert.equal((await limited.get(`/ui/e/acme/imports/${id}`)).statusCode, 200);
      for (const path of ["", `/${id}`, `/${id}/progress`, `/${id}/rejected-rows.csv`]) {
        const page = await limited.get(`/ui/e/beta/imports${path}`);
        assert.equal(page.statusCode, 403, path);
        assert.match(page.headers["content-type"] as string, /text\/html/);
      }
      // The execution is acme's: under beta it does not exist, even for the admin.
      assert.equal((await admin.get(`/ui/e/beta/imports/${id}`)).statusCode, 404);
    });

    test("a running import streams its progress as it changes, ends when final; a client leaving stops the stream", async () => {
      await t.worker.stop(); // nothing runs the next import until a worker is started below
      const rows = ["customerId,emailAddress,points"];
      for (let i = 1; i <= 3000; i++) rows.push(`R-${i},r${i}@example.com,${i % 1000 ? i : "x"}`);
      const running = await t.startImport(DEFINITION, {
        name: "running.csv",
        content: `${rows.join("\n")}\n`,
      });
      const base = await t.app.listen({ port: 0, host: "127.0.0.1" });
      const cookie = { cookie: admin.cookie };

      // A client that leaves while the import waits: the server's timers go with it.
      const before = timeouts();
      const leaving = new AbortController();
      const left = await fetch(`${base}/ui/e/acme/imports/${running}/progress`, {
        headers: cookie,
        signal: leaving.signal,
      });
      const reader = left.body!.getReader();
      const firstChunk = new TextDecoder().decode((await reader.read()).value);
      assert.match(firstChunk, /^event: progress\n/);
      assert.match(firstChunk, /data-state="PENDING"/);
      assert.ok(timeouts() > before, "the stream holds its timers while open");
      leaving.abort();
      await reader.cancel().catch(() => {});
      const deadline = Date.now() + 5_000;
      while (timeouts() > before && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 50));
      assert.ok(timeouts() <= before, "no timer is left once the client went away");

      // A client that stays sees the import run and end.
      const response = await fetch(`${base}/ui/e/acme/imports/${running}/progress`, {
        headers: cookie,
      });
      assert.equal(response.headers.get("content-type"), "text/event-stream; charset=utf-8");
      const worker = await startImportWorker({
        db: t.database.db,
        logSignals: t.database.logSignals,
        jobSignals: t.database.jobSignals,
        logger: createLogger("silent"),
        config: t.config,
        pollMs: 50,
        batchRows: 100,
      });
      try {
        const events = eventsOf(await response.text());
        const progress = events.filter((e) => e.event === "progress");
        assert.ok(progress.length >= 2, `several progress events (got ${progress.length})`);
        assert.match(progress[0]!.data, /data-state="PENDING"/);
        assert.match(progress.at(-1)!.data, /data-state="WITH_ERROR"/);
        assert.match(progress.at(-1)!.data, /data-count="read">3,000</);
        assert.match(progress.at(-1)!.data, /3 rows were rejected/);
        assert.deepEqual(events.at(-1), { event: "done", data: "WITH_ERROR" });
        for (let i = 1; i < progress.length; i++)
          assert.notEqual(progress[i]!.data, progress[i - 1]!.data, "an event only on a change");
      } finally {
        await worker.stop();
      }
    });

    test("cancel: a waiting import ends at once; a finished one is refused in words", async () => {
      // No worker runs now (the test above stopped them): the import waits.
      const waiting = await t.startImport(DEFINITION, { name: "later.csv", content: FILE });
      const page = await admin.get(`/ui/e/acme/imports/${waiting}`);
      assert.match(page.body, /data-state="PENDING"/);
      assert.match(
        page.body,
        new RegExp(`sse-connect="/ui/e/acme/imports/${waiting}/progress"\\s+sse-swap="progress"`),
      );
      assert.match(page.body, /<progress id="import-bar" class="progress">/, "no known value yet");
      const noToken = await admin.post(`/ui/e/acme/imports/${waiting}/cancel`, { _csrf: "" });
      assert.equal(noToken.statusCode, 403);
      const still = await t.request("GET", `${EXECUTIONS_URL}/${waiting}`);
      assert.equal(still.json().status, "PENDING");
      const cancelled = await admin.post(`/ui/e/acme/imports/${waiting}/cancel`);
      assert.equal(cancelled.statusCode, 303);
      const location = String(cancelled.headers.location);
      assert.equal(location, `/ui/e/acme/imports/${waiting}?done=cancel`);
      const shown = await admin.get(location);
      assert.match(shown.body, /Cancel requested/);
      assert.match(shown.body, /data-state="CANCELLED"/);
      assert.doesNotMatch(shown.body, /sse-connect/);
      const again = await admin.post(`/ui/e/acme/imports/${waiting}/cancel`);
      assert.equal(again.statusCode, 409);
      assert.match(again.body, /Nothing was cancelled/);
      // Free text in ?done= is never shown.
      const odd = await admin.get(`/ui/e/acme/imports/${waiting}?done=%3Cb%3Ehello`);
      assert.doesNotMatch(odd.body, /hello|notice ok/);
    });

    test("a stream whose key is revoked stops with a notice in words and a done event", async () => {
      const created = await t.request("POST", "/v4/api-keys", {
        name: "short-lived",
        entities: ["acme"],
      });
      const shortLived = await signInToConsole(t, created.json().key);
      const waiting = await t.startImport(DEFINITION, { name: "revoked.csv", content: FILE });
      const base = `http://127.0.0.1:${(t.app.server.address() as { port: number }).port}`;
      const response = await fetch(`${base}/ui/e/acme/imports/${waiting}/progress`, {
        headers: { cookie: shortLived.cookie },
      });
      const reader = response.body!.getReader();
      let text = new TextDecoder().decode((await reader.read()).value);
      assert.match(text, /data-state="PENDING"/);
      const revoked = await t.request("DELETE", `/v4/api-keys/${created.json().id}`);
      assert.equal(revoked.statusCode, 204);
      for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read())
        text += new TextDecoder().decode(chunk.value);
      const events = eventsOf(text);
      assert.deepEqual(events.at(-1), { event: "done", data: "stopped" });
      const last = events.at(-2)!;
      assert.equal(last.event, "progress");
      assert.match(last.data, /Live progress stopped: .+ Reload the page/);
      assert.match(last.data, /data-state="PENDING"/, "the last known state stays shown");
    });

    test("closing the server ends an open progress stream rather than waiting for it", async () => {
      const waiting = await t.startImport(DEFINITION, { name: "never.csv", content: FILE });
      const base = `http://127.0.0.1:${(t.app.server.address() as { port: number }).port}`;
      const response = await fetch(`${base}/ui/e/acme/imports/${waiting}/progress`, {
        headers: { cookie: admin.cookie },
      });
      const reader = response.body!.getReader();
      assert.match(new TextDecoder().decode((await reader.read()).value), /data-state="PENDING"/);
      const closed = t.app.close().then(() => "closed");
      const late = new Promise((resolve) => setTimeout(resolve, 5_000, "still open"));
      assert.equal(await Promise.race([closed, late]), "closed");
      // The stream ended without a done event: the browser would reconnect to the next server.
      let rest = "";
      for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read())
        rest += new TextDecoder().decode(chunk.value);
      assert.doesNotMatch(rest, /event: done/);
    });
  });
}
