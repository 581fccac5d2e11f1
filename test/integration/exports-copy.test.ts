/**
 * The COPY path of exports (export-run.ts): on PostgreSQL a CSV export of every record without
 * conditions has PostgreSQL write its lines (`COPY … TO STDOUT`). These tests hold it to the
 * cursor's path byte for byte on values made to be hard, in each separator, mode and compression
 * (the same export with a condition every record passes takes the cursor), check which path each
 * export took (the worker's log says), and that the COPY's way of storing the file keeps the
 * export's promises: nothing downloadable before SUCCESS while the COPY is midway, an interrupted
 * run leaves no file and runs again from the start, a file past the limit ends ERROR with no file.
 * On the embedded database every export takes the cursor, and the same files come out. And the
 * adapter's COPY stream itself: its row count, and a database that goes away midway (a black hole,
 * a cut), through a TCP proxy.
 */
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { after, before, describe, test } from "node:test";
import { parse } from "csv-parse/sync";
import { runExportExecution, ExportInterrupted } from "../../src/jobs/export-run.js";
import { startExportWorker } from "../../src/jobs/export-worker.js";
import { createLogger } from "../../src/logger.js";
import { DatabaseUnavailable } from "../../src/storage/database-unavailable.js";
import { claimExportExecution } from "../../src/storage/export-repository.js";
import { PostgresDatabase } from "../../src/storage/postgres-database.js";
import type { TcpProxy } from "../helpers/tcp-proxy.js";
import { startTcpProxy } from "../helpers/tcp-proxy.js";
import type { TestDatabase } from "../helpers/test-database.js";
import {
  ADMIN_URL,
  createTestDatabase,
  postgresUnavailable,
  testBackends,
} from "../helpers/test-database.js";
import type { ExportExecution, ExportTestApp } from "./exports-harness.js";
import { createExportTestApp, EXPORTS, gunzip, unzip } from "./exports-harness.js";

const TABLE = "/v5/entities/acme/profile-tables";

const HARD = {
  name: "Hard",
  attributes: [
    { name: "customerId", type: "CUSTOM", valueType: "STRING", unique: true },
    { name: "note", type: "CUSTOM", valueType: "STRING" },
    { name: "points", type: "CUSTOM", valueType: "INTEGER" },
    { name: "score", type: "CUSTOM", valueType: "NUMBER" },
    { name: "vip", type: "CUSTOM", valueType: "BOOLEAN" },
    { name: "birth", type: "CUSTOM", valueType: "DATE" },
    { name: "tags", type: "CUSTOM", valueType: "STRING", multiValued: true },
    { name: "flags", type: "CUSTOM", valueType: "BOOLEAN", multiValued: true },
    { name: "counts", type: "CUSTOM", valueType: "INTEGER", multiValued: true },
  ],
};

/** Texts that need quoting in one separator or another, or look like COPY's own markers. */
const NOTES = [
  "plain",
  "semi;colon",
  "comma,here",
  "tab\there",
  "pipe|here",
  'say "hi"',
  '"',
  '""',
  "line\nbreak",
  "cr\ronly",
  "crlf\r\nend",
  " spaces around ",
  "Émile 日本 😀",
  "\\.",
  "\\N",
  "NULL",
  "=1+2",
  "'single'",
  "back\\slash",
  ";",
  "x;",
];
const TAGS = [["a", "b;c"], ['d"e', "f,g", "h\ni"], ["Zoë"], ["solo"], ["x", "y"]];

const FIELDS = [
  "profileId",
  "creationMoment",
  "updateMoment",
  "customerId",
  "note",
  "points",
  "score",
  "vip",
  "birth",
  "tags",
  "flags",
];

/** A log destination that keeps the lines: the worker says which path each execution took. */
function logLines(): { stream: Writable; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString("utf8").split("\n"))
        if (line.trim() !== "") lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { stream, lines };
}

/** Waits (up to 5 s) until `check` holds. */
async function eventually(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!(await check())) {
    assert.ok(Date.now() < deadline, what);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

for (const { backend, skip } of await testBackends()) {
  describe(`exports' COPY path on ${backend}`, { skip }, () => {
    let t: ExportTestApp;
    let tableId: string;
    const log = logLines();
    const pathOf = (execution: ExportExecution) =>
      log.lines.find((l) => l.executionId === execution.id && l.msg === "export execution finished")
        ?.path;

    before(async () => {
      t = await createExportTestApp(backend, { worker: false });
      t.worker = await startExportWorker({
        db: t.database.db,
        logSignals: t.database.logSignals,
        jobSignals: t.database.jobSignals,
        logger: createLogger("info", log.stream),
        config: t.config,
        pollMs: 50,
        leaseMs: 5_000,
      });
      const table = await t.request("POST", TABLE, HARD);
      assert.equal(table.statusCode, 201, table.body);
      tableId = (table.json() as { id: string }).id;
      for (const [i, note] of NOTES.entries()) {
        const response = await t.request("PUT", `${TABLE}/Hard/profiles`, {
          key: { customerId: `C${i};"${i}"` },
          attributes: {
            note,
            points: [0, -5, 2_147_483_647, 42][i % 4],
            score: [1.5, -0.25, 100, 0.1][i % 4],
            vip: i % 3 === 0 ? null : i % 3 === 1,
            birth: i % 2 === 0 ? "1980-02-29" : null,
            tags: TAGS[i % TAGS.length],
            flags: i % 2 === 0 ? [true, false] : null,
            counts: [i, -i],
          },
        });
        assert.ok([200, 201].includes(response.statusCode), response.body);
      }
      // Empty texts (the API stores none: they mean "no value"), as a loaded database may hold them.
      await t.database.db.query(
        `UPDATE records SET attributes = attributes || '{"note": "", "tags": [""], "vip": null}'
          WHERE table_id = $1 AND record_id = (SELECT min(record_id) FROM records WHERE table_id = $1)`,
        [tableId],
      );
      await t.database.db.query(
        `UPDATE records SET attributes = attributes || '{"tags": [], "flags": [null, true]}'
          WHERE table_id = $1 AND record_id = (SELECT max(record_id) FROM records WHERE table_id = $1)`,
        [tableId],
      );
      await t.database.db.query(
        `UPDATE records SET attributes = attributes || '{"tags": ["", "x", null]}'
          WHERE table_id = $1 AND attributes ->> 'note' = 'semi;colon'`,
        [tableId],
      );
    });
    after(async () => {
      await t?.worker?.stop();
      await t?.close();
    });

    /** Defines and runs an export; returns its execution and its file's text. */
    async function exported(name: string, body: Record<string, unknown>) {
      const id = await t.define({ name, source: { table: "Hard" }, ...body });
      const execution = await t.run(id);
      assert.equal(execution.status, "SUCCESS", JSON.stringify(execution));
      const file = (await t.download(execution)).body;
      assert.equal(execution.bytes, file.length);
      const format = body.format as { compression?: string } | undefined;
      const text =
        format?.compression === "GZIP"
          ? gunzip(file)
          : format?.compression === "ZIP"
            ? Object.values(await unzip(file))[0]!
            : file.toString("utf8");
      return { execution, text };
    }

    const copies = backend === "postgres" ? "copy" : "cursor";
    const cases = [
      { separator: ";", mode: "FULL", compression: "NONE" },
      { separator: ",", mode: "FULL", compression: "NONE" },
      { separator: "\t", mode: "INCREMENTAL", compression: "NONE" },
      { separator: "|", mode: "FULL", compression: "GZIP" },
      { separator: "'", mode: "INCREMENTAL", compression: "ZIP" },
    ];

    test("COPY writes the cursor's bytes: separators, quotes, CR, LF, empty texts, NULL, lists, non-ASCII, numbers, booleans, dates, moments", async () => {
      for (const [i, c] of cases.entries()) {
        const format = { type: "CSV", separator: c.separator, compression: c.compression };
        const copy = await exported(`copy-${i}`, { fields: FIELDS, mode: c.mode, format });
        // A condition every record passes: the same rows, through the cursor and JavaScript.
        const cursor = await exported(`cursor-${i}`, {
          fields: FIELDS,
          mode: c.mode,
          format,
          filter: { conditions: [{ attribute: "customerId", operator: "IS_NOT_NULL" }] },
        });
        assert.equal(pathOf(copy.execution), copies, JSON.stringify(c));
        assert.equal(pathOf(cursor.execution), "cursor");
        assert.equal(copy.text, cursor.text, JSON.stringify(c));
        assert.equal(copy.execution.rowCount, NOTES.length);
        assert.equal(cursor.execution.rowCount, NOTES.length);
        const rows = parse(copy.text, { delimiter: c.separator, columns: true }) as Record<
          string,
          string
        >[];
        assert.deepEqual(
          rows.map((r) => r.note),
          ["", ...NOTES.slice(1)],
        );
        assert.deepEqual(
          rows.map((r) => r.tags),
          NOTES.map((_, n) =>
            n === 0 || n === NOTES.length - 1
              ? ""
              : n === 1
                ? ",x,"
                : TAGS[n % TAGS.length]!.join(","),
          ),
        );
        if (c.mode === "INCREMENTAL") assert.ok(rows.every((r) => r._operation === "CREATE"));
      }
      // The first record's line, by hand: empty texts and nothing are both an empty field.
      const first = (await exported("by-hand", { fields: ["customerId", "note", "tags", "vip"] }))
        .text;
      assert.equal(
        first.split("\n").slice(0, 2).join("\n"),
        'customerId;note;tags;vip\n"C0;""0""";;;',
      );
    });

    test("what COPY would write differently takes the cursor: lists of numbers, one column, conditions, NDJSON", async () => {
      const checks: [string, Record<string, unknown>][] = [
        ["numbers", { fields: ["customerId", "counts"] }],
        ["one-column", { fields: ["note"] }],
        [
          "condition",
          {
            fields: ["customerId"],
            filter: { conditions: [{ attribute: "vip", operator: "IS_NULL" }] },
          },
        ],
        ["ndjson", { fields: ["customerId", "note"], format: { type: "NDJSON" } }],
      ];
      for (const [name, body] of checks) {
        const { execution, text } = await exported(name, body);
        assert.equal(pathOf(execution), "cursor", name);
        if (name === "numbers") assert.match(text, /^"C1;""1""";1,-1$/m);
        if (name === "one-column") assert.match(text, /^\\\.$/m);
      }
    });

    test("while the COPY is midway nothing is visible or downloadable; an interrupted run leaves no file and runs again; a file past the limit is ERROR with no file", async (s) => {
      if (backend !== "postgres") return s.skip("the COPY path is PostgreSQL's");
      const db = t.database.db;
      // Some 20 MB of CSV: far more than the socket buffers hold, so the COPY is midway.
      const rows = 150_000;
      const big = await t.request("POST", TABLE, { ...HARD, name: "Big" });
      const bigId = (big.json() as { id: string }).id;
      await db.query(
        `INSERT INTO records (table_id, attributes)
         SELECT $1, jsonb_build_object('customerId', 'B' || i, 'note', repeat('x;"y"', 1 + i % 40),
                                       'tags', jsonb_build_array('t' || i, 'u'))
           FROM generate_series(1, $2::int) AS i`,
        [bigId, rows],
      );
      const fields = ["customerId", "note", "tags"];
      const id = await t.define({ name: "big", source: { table: "Big" }, fields });

      // 1. The chunks' table locked: the file's transaction waits at its first chunk, the COPY
      //    midway (the server waits for the worker to read on).
      let unlock = () => {};
      let locked!: () => void;
      const isLocked = new Promise<void>((resolve) => (locked = resolve));
      const holding = db.transaction(async (tx) => {
        await tx.query("LOCK TABLE stored_file_chunks IN EXCLUSIVE MODE");
        locked();
        await new Promise<void>((resolve) => (unlock = resolve));
      });
      await isLocked;
      const started = await t.request("POST", `${EXPORTS}/${id}/executions`);
      const executionId = (started.json() as { executionId: string }).executionId;
      try {
        const deadline = Date.now() + 10_000;
        for (;;) {
          const { rows: waiting } = await db.query<{ copies: number }>(
            `SELECT count(*) FILTER (WHERE query LIKE 'COPY (SELECT%' AND state = 'active')::int AS copies
               FROM pg_stat_activity WHERE datname = current_database()`,
          );
          const { rowCount } = await db.query(
            `SELECT 1 FROM pg_stat_activity WHERE datname = current_database()
                AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO stored_file_chunks%'`,
          );
          if (rowCount > 0) {
            assert.equal(waiting[0]!.copies, 1, "the COPY is midway while the file waits");
            break;
          }
          assert.ok(Date.now() < deadline, "the file's first chunk never waited on the lock");
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        const running = await t.request("GET", `${EXPORTS}/${id}/executions/${executionId}/file`);
        assert.equal(running.statusCode, 409, running.body);
        const visible = await db.query("SELECT 1 FROM stored_files WHERE name LIKE 'big-%'");
        assert.equal(visible.rowCount, 0, "the file is not visible before its transaction commits");
      } finally {
        unlock();
        await holding;
      }
      const done = await t.finished(id, executionId);
      assert.equal(done.status, "SUCCESS", JSON.stringify(done));
      assert.equal(done.rowCount, rows);
      assert.equal(pathOf(done), "copy");
      const parsed = parse((await t.download(done)).body, { delimiter: ";", columns: true }) as {
        note: string;
        tags: string;
      }[];
      assert.equal(parsed.length, rows);
      assert.equal(parsed[6]!.note, 'x;"y"'.repeat(8));
      assert.equal(parsed[6]!.tags, "t7,u");

      // 2. A run stopped midway (after a few of the COPY's chunks) leaves nothing and hands the
      //    connection back dead, not mid-COPY; the next run writes the whole file.
      await t.worker!.stop();
      t.worker = undefined;
      const again = await t.request("POST", `${EXPORTS}/${id}/executions`);
      const againId = (again.json() as { executionId: string }).executionId;
      const claimed = await claimExportExecution(db, "test-owner", 500);
      assert.equal(claimed?.id, againId);
      let chunks = 0;
      const settings = {
        db,
        logSignals: t.database.logSignals,
        logger: createLogger("silent"),
        owner: "test-owner",
        leaseMs: 500,
        batchRows: 1_000,
        retentionDays: 1,
        maxFileBytes: 1 << 30,
        stopping: () => ++chunks > 5,
        copy: undefined,
      };
      // At once: a ROLLBACK sent behind the unread COPY would wait out the 15 s query limit.
      let since = Date.now();
      await assert.rejects(runExportExecution(settings, claimed!), ExportInterrupted);
      assert.ok(Date.now() - since < 8_000, `the interrupted run took ${Date.now() - since} ms`);
      assert.ok(chunks > 5);
      const left = await db.query("SELECT 1 FROM stored_files WHERE name = $1", [
        `big-${againId}.csv`,
      ]);
      assert.equal(left.rowCount, 0, "the interrupted run left no file");
      const noCopy = async () =>
        (
          await db.query(
            `SELECT 1 FROM pg_stat_activity
              WHERE datname = current_database() AND query LIKE 'COPY (SELECT%' AND state = 'active'`,
          )
        ).rowCount === 0;
      await eventually("the stopped COPY's session ends", noCopy);
      t.worker = await startExportWorker({
        db,
        logSignals: t.database.logSignals,
        jobSignals: t.database.jobSignals,
        logger: createLogger("info", log.stream),
        config: t.config,
        pollMs: 50,
        leaseMs: 5_000,
      });
      const rerun = await t.finished(id, againId);
      assert.equal(rerun.status, "SUCCESS", JSON.stringify(rerun));
      assert.equal(rerun.rowCount, rows);
      assert.equal(rerun.bytes, done.bytes);
      const files = await db.query("SELECT 1 FROM stored_files WHERE name = $1", [
        `big-${againId}.csv`,
      ]);
      assert.equal(files.rowCount, 1, "one file: the complete one");

      // 3. Past the size limit: ERROR with the reason, no file, and the database serves on.
      await t.worker.stop();
      t.worker = undefined;
      const third = await t.request("POST", `${EXPORTS}/${id}/executions`);
      const thirdId = (third.json() as { executionId: string }).executionId;
      const claimedThird = await claimExportExecution(db, "test-owner", 5_000);
      since = Date.now();
      await runExportExecution(
        { ...settings, leaseMs: 5_000, maxFileBytes: 2_000_000, stopping: () => false },
        claimedThird!,
      );
      assert.ok(Date.now() - since < 8_000, `the run past the limit took ${Date.now() - since} ms`);
      const tooLarge = await t.finished(id, thirdId);
      assert.equal(tooLarge.status, "ERROR");
      assert.match(tooLarge.error!.message, /exceeds 2000000 bytes \(HERALD_MAX_FILE_BYTES\)/);
      const none = await db.query("SELECT 1 FROM stored_files WHERE name LIKE $1", [
        `big-${thirdId}.%`,
      ]);
      assert.equal(none.rowCount, 0);
      await eventually("the abandoned COPY's session ends", noCopy);
    });
  });
}

const noPostgres = await postgresUnavailable();

describe(
  "the PostgreSQL adapter's COPY stream",
  { skip: noPostgres ? `needs PostgreSQL: ${noPostgres}` : false },
  () => {
    let t: TestDatabase;
    let proxy: TcpProxy;
    let db: PostgresDatabase;
    // About 6 MB: more than the socket buffers, little for the proxy to hold in a black hole.
    const sql = `COPY (SELECT i, 'row;' || i FROM generate_series(1, 400000) AS i)
                   TO STDOUT WITH (FORMAT csv, DELIMITER ';', QUOTE '"')`;
    before(async () => {
      t = await createTestDatabase("postgres");
      const url = new URL(ADMIN_URL);
      proxy = await startTcpProxy({
        host: url.hostname || "127.0.0.1",
        port: Number(url.port || 5432),
      });
      db = new PostgresDatabase({
        connectionString: proxy.urlFor(t.url!),
        maxConnections: 4,
        // A short query limit, so that a black hole costs a second, not 15.
        timeLimits: { connectMs: 500, queryMs: 1_000, pingMs: 300, probeEveryMs: 300 },
      });
    });
    after(async () => {
      await db?.close().catch(() => {});
      await proxy?.close();
      await t?.drop();
    });

    /** Reads the COPY in a transaction; `midway` is called once after the first 100 kB. */
    async function copied(midway?: () => void): Promise<{ bytes: number; rows: number }> {
      return db.transaction(async (tx) => {
        const copy = tx.copyOut!(sql);
        let bytes = 0;
        for await (const chunk of copy) {
          const before = bytes;
          bytes += chunk.length;
          if (before < 100_000 && bytes >= 100_000) midway?.();
        }
        return { bytes, rows: copy.rowCount };
      });
    }

    test(
      "every byte and the row count; a black hole fails after the query limit, a cut at once, each as DatabaseUnavailable; then it works again",
      { timeout: 30_000 },
      async () => {
        const whole = await copied();
        assert.equal(whole.rows, 400_000);
        const expected = await db.query<{ n: number }>(
          `SELECT sum(length(i || ';"row;' || i || '"') + 1)::int AS n
           FROM generate_series(1, 400000) AS i`,
        );
        assert.equal(whole.bytes, expected.rows[0]!.n);

        let since = Date.now();
        const silent = await copied(() => proxy.blackHole()).then(
          () => assert.fail("a COPY through a black hole should fail"),
          (error: unknown) => error,
        );
        assert.ok(silent instanceof DatabaseUnavailable, String(silent));
        assert.match(silent.message, /no answer within the time limit/);
        assert.ok(
          Date.now() - since < 5_000,
          `the black hole held the COPY ${Date.now() - since} ms`,
        );
        proxy.restore();
        await new Promise((resolve) => setTimeout(resolve, 400)); // past probeEveryMs
        assert.equal((await copied()).rows, 400_000);

        since = Date.now();
        const cut = await copied(() => proxy.cut()).then(
          () => assert.fail("a COPY whose connection is cut should fail"),
          (error: unknown) => error,
        );
        assert.ok(cut instanceof DatabaseUnavailable, String(cut));
        assert.ok(Date.now() - since < 5_000, `the cut held the COPY ${Date.now() - since} ms`);
        proxy.restore();
        assert.equal((await copied()).rows, 400_000);
      },
    );
  },
);
