/**
 * Bad input to imports (issue: "Bad input"): each gets a 4xx before anything runs (and leaves no
 * file behind), or a rejected row, or an ERROR execution with a clear reason; never a 500.
 */
import assert from "node:assert/strict";
import { after, before, beforeEach, describe, test } from "node:test";
import type { ImportTestApp } from "../helpers/imports.js";
import { createImportTestApp, CUSTOMERS, gzipOf, zipOf } from "../helpers/imports.js";
import { testBackends } from "../helpers/test-database.js";

const DEFINITION = {
  target: { tableType: "PROFILE_TABLE", table: "Customers" },
  keyAttribute: "customerId",
};
const GOOD_CSV = "customerId,emailAddress\nC1,a@x.io\n";

for (const { backend, skip } of await testBackends()) {
  describe(`import bad input on ${backend}`, { skip }, () => {
    let t: ImportTestApp;
    before(async () => {
      t = await createImportTestApp(backend, { maxFileBytes: 1 << 20, maxExpandedBytes: 8192 });
      for (const table of [
        CUSTOMERS,
        { name: "Plain", attributes: [{ name: "note", type: "CUSTOM", valueType: "STRING" }] },
      ]) {
        const created = await t.request("POST", "/v5/entities/acme/profile-tables", table);
        assert.equal(created.statusCode, 201, created.body);
      }
    });
    after(() => t?.close());
    beforeEach(async () => {
      await t.database.db.query("DELETE FROM records");
    });

    const storedFiles = async () =>
      (
        await t.database.db.query<{ n: number }>(
          "SELECT count(*)::integer AS n FROM stored_files WHERE id NOT IN (SELECT file_id FROM etl_executions WHERE file_id IS NOT NULL)",
        )
      ).rows[0]!.n;

    async function refused(
      parts: Parameters<ImportTestApp["upload"]>[0],
      status: number,
      code: string,
      path?: string,
    ) {
      const response = await t.upload(parts);
      assert.equal(response.statusCode, status, response.body);
      const body = response.json() as { code: string; details: { path: string }[] };
      assert.equal(body.code, code, response.body);
      if (path !== undefined)
        assert.ok(
          body.details.some((d) => d.path === path),
          `a detail at ${path}: ${response.body}`,
        );
      assert.equal(await storedFiles(), 0, "a refused upload leaves no file behind");
      return body as typeof body & { message: string };
    }
    const withFile = (definition: unknown, content: string | Buffer, name = "c.csv") => [
      {
        name: "etlDefinition",
        content: typeof definition === "string" ? definition : JSON.stringify(definition),
      },
      { name: "inputFile", filename: name, content },
    ];

    test("a definition that does not parse: 400", async () => {
      await refused(withFile("{not json", GOOD_CSV), 400, "HERALD_INVALID_ETL_DEFINITION");
      await refused(
        withFile({ ...DEFINITION, mode: "MERGE" }, GOOD_CSV),
        400,
        "HERALD_INVALID_ETL_DEFINITION",
        "mode",
      );
      await refused(
        withFile({ ...DEFINITION, file: { separator: ";;" } }, GOOD_CSV),
        400,
        "HERALD_INVALID_ETL_DEFINITION",
        "file.separator",
      );
      await refused(
        withFile(
          { ...DEFINITION, transformations: [{ column: "x", type: "DATE_FORMAT", from: "qq" }] },
          GOOD_CSV,
        ),
        400,
        "HERALD_INVALID_ETL_DEFINITION",
        "transformations[0].from",
      );
    });

    test("an unknown table, an unknown attribute in the mapping, a header that is no attribute", async () => {
      await refused(
        withFile({ target: { table: "Nope" } }, GOOD_CSV),
        404,
        "HERALD_TABLE_NOT_FOUND",
      );
      await refused(
        withFile(
          { ...DEFINITION, mapping: [{ column: "customerId", attribute: "nope" }] },
          GOOD_CSV,
        ),
        400,
        "HERALD_INVALID_ETL_DEFINITION",
        "mapping[0].attribute",
      );
      await refused(
        withFile(DEFINITION, "customerId,emailAddress,shoeSize\nC1,a@x.io,42\n"),
        400,
        "HERALD_UNKNOWN_ATTRIBUTE",
        "header[2]",
      );
      await refused(
        withFile({ ...DEFINITION, keyAttribute: "firstName" }, GOOD_CSV),
        400,
        "HERALD_INVALID_ETL_DEFINITION",
        "keyAttribute",
      );
    });

    test("a mode the table cannot take: UPDATE_ONLY on a table without unique attribute", async () => {
      await refused(
        withFile({ target: { table: "Plain" }, mode: "UPDATE_ONLY" }, "note\nhello\n"),
        400,
        "HERALD_INVALID_ETL_DEFINITION",
        "mode",
      );
      const created = await t.startImport(
        { target: { table: "Plain" }, mode: "CREATE_ONLY" },
        {
          name: "p.csv",
          content: "note\nhello\nworld\n",
        },
      );
      assert.equal((await t.finished(created)).counts.created, 2);
    });

    test("a missing part, a body that is not multipart", async () => {
      await refused(
        [{ name: "etlDefinition", content: JSON.stringify(DEFINITION) }],
        400,
        "HERALD_MISSING_PART",
        "inputFile",
      );
      await refused(
        [{ name: "inputFile", filename: "c.csv", content: GOOD_CSV }],
        400,
        "HERALD_MISSING_PART",
        "etlDefinition",
      );
      const json = await t.request(
        "POST",
        "/mass-imports/v5/entities/acme/etl-executions",
        DEFINITION,
      );
      assert.equal(json.statusCode, 415, json.body);
      assert.equal((json.json() as { code: string }).code, "HERALD_MULTIPART_EXPECTED");
    });

    test("an upload past HERALD_MAX_FILE_BYTES: 413, nothing kept", async () => {
      const big = `customerId,emailAddress\n${"C1,a@x.io\n".repeat(120_000)}`;
      await refused(withFile(DEFINITION, big), 413, "HERALD_FILE_TOO_LARGE");
    });

    test("a file that is not what it claims: 400 when its header shows it", async () => {
      await refused(
        withFile({ ...DEFINITION, file: { compression: "ZIP" } }, GOOD_CSV),
        400,
        "HERALD_INVALID_FILE",
      );
      await refused(
        withFile({ ...DEFINITION, file: { compression: "GZIP" } }, GOOD_CSV),
        400,
        "HERALD_INVALID_FILE",
      );
      await refused(
        withFile(
          { ...DEFINITION, file: { compression: "ZIP" } },
          await zipOf({ "a.csv": GOOD_CSV, "b.csv": GOOD_CSV }),
        ),
        400,
        "HERALD_INVALID_FILE",
      );
      await refused(withFile(DEFINITION, ""), 400, "HERALD_INVALID_FILE");
      // A ZIP whose entry declares more than HERALD_MAX_EXPANDED_BYTES.
      const bomb = await zipOf({ "a.csv": `customerId,emailAddress\n${"0".repeat(100_000)}\n` });
      assert.ok(bomb.length < 4096);
      const body = await refused(
        withFile({ ...DEFINITION, file: { compression: "ZIP" } }, bomb),
        400,
        "HERALD_INVALID_FILE",
      );
      assert.match(JSON.stringify(body), /HERALD_MAX_EXPANDED_BYTES/);
    });

    test("an unterminated quote in a small file: 400 at upload, with the parser's reason", async () => {
      const body = await refused(
        withFile(DEFINITION, 'customerId,emailAddress\nC1,a@x.io\nC2,"b@x.io\n'),
        400,
        "HERALD_INVALID_FILE",
      );
      assert.match(body.message, /Quote Not Closed/);
    });

    test("defects found while reading end the execution ERROR; the rows before them stay", async () => {
      const rows = Array.from({ length: 20_000 }, (_, i) => `K${i},k${i}@x.io`).join("\n");
      const cases: [string, unknown, string | Buffer, RegExp, number][] = [
        [
          "bytes that are not UTF-8",
          DEFINITION,
          Buffer.concat([
            Buffer.from("customerId,emailAddress\nC1,a@x.io\nC2,"),
            Buffer.from([0xff, 0xfe]),
            Buffer.from(",b@x.io\nC3,c@x.io\n"),
          ]),
          /line 3 is not valid UTF-8/,
          1,
        ],
        [
          "a GZIP file that expands past HERALD_MAX_EXPANDED_BYTES",
          { ...DEFINITION, file: { compression: "GZIP" } },
          gzipOf(`customerId,emailAddress\n${rows}\n`),
          /expands past 8192 bytes/,
          -1,
        ],
        [
          "an unterminated quote after many rows",
          DEFINITION,
          `customerId,emailAddress\n${rows}\nC2,"b@x.io\n`,
          /Quote Not Closed/,
          -1,
        ],
      ];
      for (const [what, definition, content, reason, created] of cases) {
        await t.database.db.query("DELETE FROM records");
        const execution = await t.finished(
          await t.startImport(definition, { name: "c.csv", content }),
        );
        assert.equal(execution.status, "ERROR", `${what}: ${JSON.stringify(execution)}`);
        assert.equal(execution.error?.code, "HERALD_INVALID_FILE", what);
        assert.match(execution.error!.message, reason, what);
        const { rows: held } = await t.database.db.query<{ n: number }>(
          "SELECT count(*)::integer AS n FROM records",
        );
        assert.equal(held[0]!.n, execution.counts.created, `${what}: rows written stay`);
        if (created >= 0) assert.equal(execution.counts.created, created, what);
      }
    });

    test("a definition whose table was deleted before the run ends ERROR", async () => {
      await t.worker.stop();
      const table = await t.request("POST", "/v5/entities/acme/profile-tables", {
        name: "Doomed",
        attributes: [{ name: "code", type: "CUSTOM", valueType: "STRING", unique: true }],
      });
      const id = await t.startImport(
        { target: { table: "Doomed" } },
        { name: "d.csv", content: "code\nX\n" },
      );
      const tableId = (table.json() as { id: string }).id;
      const deleted = await t.request("DELETE", `/v5/entities/acme/profile-tables/${tableId}`);
      assert.equal(deleted.statusCode, 204, deleted.body);
      const { startImportWorker } = await import("../../src/jobs/import-worker.js");
      const { createLogger } = await import("../../src/logger.js");
      t.worker = await startImportWorker({
        db: t.database.db,
        logSignals: t.database.logSignals,
        jobSignals: t.database.jobSignals,
        logger: createLogger("silent"),
        config: t.config,
        pollMs: 50,
      });
      const done = await t.finished(id);
      assert.equal(done.status, "ERROR");
      assert.equal(done.error?.code, "HERALD_IMPORT_FAILED");
      assert.match(done.error!.message, /deleted/);
    });

    test("text PostgreSQL cannot store: a 400 in a definition, a rejected row in a file", async () => {
      await refused(
        withFile({ ...DEFINITION, source: { path: "a\u0000b" } }, GOOD_CSV),
        400,
        "HERALD_INVALID_ETL_DEFINITION",
        "source.path",
      );
      const etl = await t.request("POST", "/mass-imports/v5/entities/acme/etls", {
        ...DEFINITION,
        name: "nul\u0000name",
      });
      assert.equal(etl.statusCode, 400, etl.body);
      // A NUL in a value, and a rejected line cut at 64 Ki characters in the middle of an emoji.
      const prefix = "C3,c@x.io,";
      const long = `${prefix}${"a".repeat(65_535 - prefix.length)}\u{1F600}tail`;
      const content = `customerId,emailAddress,firstName\nC1,a@x.io,Ann\nC2,b@x.io,B\u0000b\n${long},extra\nC4,d@x.io,Dee\n`;
      const done = await t.finished(await t.startImport(DEFINITION, { name: "nul.csv", content }));
      assert.equal(done.status, "WITH_ERROR", JSON.stringify(done));
      assert.deepEqual(done.counts, { read: 4, created: 2, updated: 0, unchanged: 0, rejected: 2 });
      assert.deepEqual(
        done.rejectedRows.map((r) => [r.line, r.code]),
        [
          [3, "HERALD_INVALID_VALUE"],
          [4, "HERALD_INVALID_ROW"],
        ],
      );
      const file = await t.request(
        "GET",
        `/mass-imports/v5/entities/acme/etl-executions/${done.id}/rejected-rows`,
      );
      assert.equal(file.statusCode, 200);
      assert.ok(file.body.includes("B\ufffdb"), "the NUL is kept as U+FFFD");
      assert.ok(file.body.includes("a […]"), "the long line is cut before the emoji");
      // The list reads every listed execution's first rejected rows at once: the same rows.
      const other = await t.finished(
        await t.startImport(DEFINITION, {
          name: "x.csv",
          content: "customerId,emailAddress\nX1,not-an-email\n",
        }),
      );
      const list = (
        await t.request("GET", "/mass-imports/v5/entities/acme/etl-executions?status=WITH_ERROR")
      ).json() as { etlExecutions: { id: string; rejectedRows: unknown[] }[] };
      for (const one of [done, other])
        assert.deepEqual(
          list.etlExecutions.find((e) => e.id === one.id)?.rejectedRows,
          one.rejectedRows,
        );
    });

    test("CSV line numbers count the empty lines skipped before a record", async () => {
      const done = await t.finished(
        await t.startImport(DEFINITION, {
          name: "gaps.csv",
          content: "customerId,emailAddress\nC1,a@x.io\n\n\nC2,bad\nC3,c@x.io\n\nC4,worse\n",
        }),
      );
      assert.deepEqual(
        done.rejectedRows.map((r) => r.line),
        [5, 8],
      );
      const file = await t.request(
        "GET",
        `/mass-imports/v5/entities/acme/etl-executions/${done.id}/rejected-rows`,
      );
      assert.match(file.body, /\n5,"C2,bad",/);
    });

    test("unknown executions and ETLs: 404", async () => {
      for (const url of [
        "/mass-imports/v5/entities/acme/etl-executions/999",
        "/mass-imports/v5/entities/acme/etl-executions/abc",
        "/mass-imports/v5/entities/acme/etl-executions/999/rejected-rows",
        "/mass-imports/v5/entities/acme/etls/999",
        "/v4/entity/acme/import/999",
      ]) {
        const response = await t.request("GET", url);
        assert.equal(response.statusCode, 404, `${url}: ${response.body}`);
      }
      for (const id of ["abc", "99999999999999999999", "999"]) {
        const cancel = await t.request(
          "POST",
          `/mass-imports/v5/entities/acme/etl-executions/${id}/cancel`,
        );
        assert.equal(cancel.statusCode, 404, `cancel ${id}: ${cancel.body}`);
      }
    });
  });
}
