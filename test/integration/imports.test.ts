/**
 * Imports (SPEC §7.1) on both backends: modes, formats, compressions and encodings, mapping to
 * subscriptions and segmentations, transformations, rejected rows with their lines, declared
 * events, duplicate keys in one file, and events identical to the same writes through the API.
 */
import assert from "node:assert/strict";
import { after, before, beforeEach, describe, test } from "node:test";
import type { ImportTestApp } from "../helpers/imports.js";
import { createImportTestApp, CUSTOMERS, gzipOf, ORDERS, zipOf } from "../helpers/imports.js";
import { testBackends } from "../helpers/test-database.js";

interface EventRow {
  id: number;
  source: string;
  source_id: string;
  event_type: string;
  record_key: string;
  keys: Record<string, unknown>;
  state: Record<string, unknown>;
  fields: string[];
  previous: Record<string, unknown>;
  extra: Record<string, unknown>;
  version: number;
  declared_events: string[];
  origin: Record<string, unknown>;
}

const PROFILE_TABLES = "/v5/entities/acme/profile-tables";

for (const { backend, skip } of await testBackends()) {
  describe(`imports on ${backend}`, { skip }, () => {
    let t: ImportTestApp;
    // Small batches, so that a few lines already make several batches.
    before(async () => {
      t = await createImportTestApp(backend, {}, { batchRows: 3 });
      for (const table of [CUSTOMERS, { ...CUSTOMERS, name: "Twins" }]) {
        const created = await t.request("POST", PROFILE_TABLES, table);
        assert.equal(created.statusCode, 201, created.body);
      }
      const orders = await t.request("POST", "/v5/entities/acme/custom-tables", ORDERS);
      assert.equal(orders.statusCode, 201, orders.body);
    });
    after(() => t?.close());

    const events = async (source?: string): Promise<EventRow[]> =>
      (
        await t.database.db.query<EventRow>(
          "SELECT * FROM change_events WHERE ($1::text IS NULL OR source = $1) ORDER BY id",
          [source ?? null],
        )
      ).rows;
    const records = async (table: string) =>
      (
        await t.database.db.query<{
          attributes: Record<string, unknown>;
          subscriptions: object;
          segments: object;
        }>(
          `SELECT attributes, subscriptions, segments FROM records
            WHERE table_id = (SELECT id FROM data_tables WHERE name = $1) ORDER BY record_id`,
          [table],
        )
      ).rows;
    beforeEach(async () => {
      await t.database.db.query("DELETE FROM records");
      await t.database.db.query("DELETE FROM change_events");
    });

    const customers = (mode = "CREATE_UPDATE", extra: object = {}) => ({
      target: { tableType: "PROFILE_TABLE", table: "Customers" },
      mode,
      keyAttribute: "customerId",
      ...extra,
    });

    test("CREATE_UPDATE creates, updates, leaves unchanged rows alone, and emits the API's events", async () => {
      const first = await t.startImport(customers(), {
        name: "c.csv",
        content: "customerId,emailAddress,firstName,points\nC1,a@x.io,Ann,5\nC2,b@x.io,Bob,7\n",
      });
      const done = await t.finished(first);
      assert.equal(done.status, "SUCCESS", JSON.stringify(done));
      assert.deepEqual(done.counts, { read: 2, created: 2, updated: 0, unchanged: 0, rejected: 0 });
      assert.deepEqual(done.progress, { bytesRead: 73, bytesTotal: 73, rowsRead: 2 });

      const second = await t.startImport(customers("INSERT_OR_UPDATE"), {
        name: "c.csv",
        content:
          "customerId,emailAddress,firstName,points\nC1,a@x.io,Ann,6\nC2,b@x.io,Bob,7\nC3,c@x.io,Cy,1\n",
      });
      const again = await t.finished(second);
      assert.equal(again.status, "SUCCESS");
      assert.deepEqual(again.counts, {
        read: 3,
        created: 1,
        updated: 1,
        unchanged: 1,
        rejected: 0,
      });
      const rows = await records("Customers");
      assert.deepEqual(
        rows.map((r) => r.attributes.points),
        [6, 7, 1],
      );
      const data = (await events("PROFILE_TABLE")).map((e) => [
        e.event_type,
        e.record_key,
        e.fields,
      ]);
      assert.equal(
        data.length,
        4,
        "2 creates, then 1 update and 1 create; none for the unchanged row",
      );
      assert.deepEqual([data[2]![0], data[2]![2]], ["UPDATE", ["points"]]);
      const update = (await events("PROFILE_TABLE"))[2]!;
      assert.deepEqual(update.previous, { points: 5 });
      assert.deepEqual(update.origin, {
        kind: "ETL_EXECUTION",
        type: "ETL_EXECUTION",
        id: second,
        line: 2,
      });
    });

    test("CREATE_ONLY rejects existing keys; UPDATE_ONLY rejects unknown ones", async () => {
      await t.finished(
        await t.startImport(customers(), {
          name: "c.csv",
          content: "customerId,emailAddress\nC1,a@x.io\n",
        }),
      );
      const createOnly = await t.finished(
        await t.startImport(customers("INSERT_ONLY"), {
          name: "c.csv",
          content: "customerId,emailAddress\nC1,a@x.io\nC2,b@x.io\n",
        }),
      );
      assert.equal(createOnly.status, "WITH_ERROR");
      assert.deepEqual(createOnly.counts, {
        read: 2,
        created: 1,
        updated: 0,
        unchanged: 0,
        rejected: 1,
      });
      assert.equal(createOnly.rejectedRows[0]!.line, 2);
      assert.equal(createOnly.rejectedRows[0]!.code, "HERALD_RECORD_EXISTS");

      const updateOnly = await t.finished(
        await t.startImport(customers("UPDATE_ONLY"), {
          name: "c.csv",
          content: "customerId,firstName\nC9,Zed\nC1,Ann\n",
        }),
      );
      assert.equal(updateOnly.status, "WITH_ERROR");
      assert.deepEqual(updateOnly.counts, {
        read: 2,
        created: 0,
        updated: 1,
        unchanged: 0,
        rejected: 1,
      });
      assert.equal(updateOnly.rejectedRows[0]!.code, "HERALD_PROFILE_NOT_FOUND");
      assert.equal(updateOnly.rejectedRows[0]!.line, 2);
    });

    test("rows of one key apply in file order, across batches and within one", async () => {
      const id = await t.startImport(customers(), {
        name: "c.csv",
        content:
          "customerId,emailAddress,points\nC1,a@x.io,1\nC1,a@x.io,2\nC2,b@x.io,1\nC1,a@x.io,3\nC1,a@x.io,4\nC2,b@x.io,2\n",
      });
      const done = await t.finished(id);
      assert.deepEqual(done.counts, { read: 6, created: 2, updated: 4, unchanged: 0, rejected: 0 });
      const byKey = (await events("PROFILE_TABLE")).map(
        (e) => `${e.keys.customerId}:${e.state.points}:${e.version}`,
      );
      assert.deepEqual(byKey, ["C1:1:1", "C1:2:2", "C2:1:1", "C1:3:3", "C1:4:4", "C2:2:2"]);
      assert.deepEqual(
        (await records("Customers")).map((r) => r.attributes.points),
        [4, 2],
      );
    });

    test("a unique value taken by another row of the file rejects the later row", async () => {
      const done = await t.finished(
        await t.startImport(customers(), {
          name: "c.csv",
          content: "customerId,emailAddress\nC1,same@x.io\nC2,same@x.io\nC3,c@x.io\n",
        }),
      );
      assert.equal(done.status, "WITH_ERROR");
      assert.deepEqual(
        done.rejectedRows.map((r) => [r.line, r.code, r.column]),
        [[3, "HERALD_UNIQUE_KEY_TAKEN", "emailAddress"]],
      );
      assert.equal((await records("Customers")).length, 2);
    });

    test("mapping to attributes, subscriptions and segmentations, with transformations", async () => {
      const definition = customers("CREATE_UPDATE", {
        file: { format: "CSV", separator: ";" },
        mapping: [
          { column: "id", attribute: "customerId" },
          { column: "mail", attribute: "emailAddress" },
          { column: "born", attribute: "born" },
          { column: "news", subscription: "newsletter" },
          { column: "active", segmentation: "Active" },
          { column: "tier", segmentation: "ClientType" },
          { column: "vip", attribute: "vip" },
        ],
        transformations: [
          { column: "mail", type: "TRIM" },
          { column: "mail", type: "LOWERCASE" },
          { column: "born", type: "DATE_FORMAT", from: "dd/MM/yyyy" },
          { column: "tier", type: "VALUE_MAP", values: { G: "Gold", S: "Silver" } },
          { column: "vip", type: "DEFAULT", value: "false" },
          { column: "id", type: "UPPERCASE" },
        ],
      });
      const done = await t.finished(
        await t.startImport(definition, {
          name: "c.csv",
          content:
            "id;mail;born;news;active;tier;vip;ignored\nc1; ANN@X.IO ;31/12/1990;yes;1;G;;zzz\nc2;bob@x.io;1/2/2000;0;;S;true;\nc3;cy@x.io;1990-12-31;;;;;\n",
        }),
      );
      assert.equal(done.rejectedRows[0]?.line, 4);
      assert.equal(done.rejectedRows[0]?.column, "born");
      assert.deepEqual(done.counts, { read: 3, created: 2, updated: 0, unchanged: 0, rejected: 1 });
      const [ann, bob] = await records("Customers");
      assert.deepEqual(ann!.attributes, {
        customerId: "C1",
        emailAddress: "ann@x.io",
        born: "1990-12-31",
        vip: false,
      });
      assert.deepEqual(ann!.subscriptions, { newsletter: true });
      assert.deepEqual(ann!.segments, { Active: "Active", ClientType: "Gold" });
      assert.equal(bob!.attributes.born, "2000-02-01");
      assert.deepEqual(bob!.subscriptions, {});
      assert.deepEqual(bob!.segments, { ClientType: "Silver" });
      const types = (await events("PROFILE_TABLE")).map((e) => e.event_type);
      assert.deepEqual(types, [
        "CREATE",
        "UPDATED_SUBSCRIPTION",
        "UPDATED_SEGMENT",
        "UPDATED_SEGMENT",
        "CREATE",
        "UPDATED_SEGMENT",
      ]);
    });

    test("NDJSON, GZIP and ZIP; ISO-8859-1, WINDOWS-1252 and a UTF-8 BOM", async () => {
      const ndjson =
        '{"customerId":"N1","emailAddress":"n1@x.io","points":3}\n\n{"customerId":"N2","emailAddress":"n2@x.io","vip":true}\nnot json\n[1]\n';
      const n = await t.finished(
        await t.startImport(customers("CREATE_UPDATE", { file: { format: "NDJSON" } }), {
          name: "c.ndjson",
          content: ndjson,
        }),
      );
      assert.deepEqual(n.counts, { read: 4, created: 2, updated: 0, unchanged: 0, rejected: 2 });
      assert.deepEqual(
        n.rejectedRows.map((r) => [r.line, r.code]),
        [
          [4, "HERALD_INVALID_ROW"],
          [5, "HERALD_INVALID_ROW"],
        ],
      );
      const csv = "customerId,emailAddress,firstName\nG1,g1@x.io,Zoë\n";
      const gz = await t.finished(
        await t.startImport(customers("CREATE_UPDATE", { file: { compression: "GZIP" } }), {
          name: "c.csv.gz",
          content: gzipOf(csv),
        }),
      );
      assert.equal(gz.status, "SUCCESS", JSON.stringify(gz));
      const zip = await t.finished(
        await t.startImport(customers("CREATE_UPDATE", { file: { compression: "ZIP" } }), {
          name: "c.zip",
          content: await zipOf({
            "folder/": "",
            "data.csv": csv.replace("G1", "Z1").replace("g1@", "z1@"),
          }),
        }),
      );
      assert.equal(zip.status, "SUCCESS", JSON.stringify(zip));
      const latin = Buffer.from("customerId,emailAddress,firstName\nL1,l1@x.io,Zoë\n", "latin1");
      const l = await t.finished(
        await t.startImport(customers("CREATE_UPDATE", { file: { encoding: "ISO-8859-1" } }), {
          name: "l.csv",
          content: latin,
        }),
      );
      assert.equal(l.status, "SUCCESS");
      // 0x80 is € in WINDOWS-1252 (a control character in ISO-8859-1).
      const windows = Buffer.concat([
        Buffer.from("customerId,emailAddress,firstName\nW1,w1@x.io,"),
        Buffer.from([0x80]),
        Buffer.from("\n"),
      ]);
      const w = await t.finished(
        await t.startImport(customers("CREATE_UPDATE", { file: { encoding: "windows-1252" } }), {
          name: "w.csv",
          content: windows,
        }),
      );
      assert.equal(w.status, "SUCCESS");
      const bom = await t.finished(
        await t.startImport(customers(), {
          name: "b.csv",
          content: Buffer.concat([
            Buffer.from([0xef, 0xbb, 0xbf]),
            Buffer.from("customerId,emailAddress\nB1,b1@x.io\n"),
          ]),
        }),
      );
      assert.equal(bom.status, "SUCCESS", JSON.stringify(bom));
      const names = Object.fromEntries(
        (await records("Customers")).map((r) => [r.attributes.customerId, r.attributes.firstName]),
      );
      assert.equal(names.G1, "Zoë");
      assert.equal(names.Z1, "Zoë");
      assert.equal(names.L1, "Zoë");
      assert.equal(names.W1, "€");
      assert.ok("B1" in names);
    });

    test("quoted fields, escaped quotes, line breaks inside a field and the wrong column count", async () => {
      const done = await t.finished(
        await t.startImport(customers(), {
          name: "q.csv",
          content:
            'customerId,emailAddress,firstName\nQ1,q1@x.io,"Ann ""the"" first"\nQ2,q2@x.io,"two\nlines"\nQ3,q3@x.io\nQ4,q4@x.io,Dee\n',
        }),
      );
      assert.equal(done.status, "WITH_ERROR");
      assert.deepEqual(
        done.rejectedRows.map((r) => [r.line, r.code]),
        [[5, "HERALD_INVALID_ROW"]],
      );
      const names = (await records("Customers")).map((r) => r.attributes.firstName);
      assert.deepEqual(names, ['Ann "the" first', "two\nlines", "Dee"]);
      const rejected = await t.request(
        "GET",
        `/mass-imports/v5/entities/acme/etl-executions/${done.id}/rejected-rows`,
      );
      assert.equal(rejected.statusCode, 200);
      assert.match(rejected.headers["content-type"] as string, /^text\/csv/);
      assert.equal(
        rejected.body,
        'line,originalLine,code,message,column\n5,"Q3,q3@x.io",HERALD_INVALID_ROW,Line 5 has 2 fields; the header has 3,\n',
      );
    });

    test("custom tables: declared events fire as through the API; bad values are rejected", async () => {
      const orders = {
        target: { tableType: "CUSTOM_TABLE", table: "Orders" },
        file: { format: "CSV" },
      };
      await t.finished(
        await t.startImport(orders, {
          name: "o.csv",
          content: "orderId,status,amount\nO1,NEW,500\nO2,NEW,5\nO3,LOST,1\n",
        }),
      );
      const second = await t.finished(
        await t.startImport(orders, {
          name: "o.csv",
          content: "orderId,status\nO1,SHIPPED\nO2,NEW\n",
        }),
      );
      assert.deepEqual(second.counts, {
        read: 2,
        created: 0,
        updated: 1,
        unchanged: 1,
        rejected: 0,
      });
      const got = (await events("CUSTOM_TABLE")).map((e) => [
        e.event_type,
        e.record_key,
        e.declared_events,
      ]);
      assert.deepEqual(got, [
        ["CREATE", "O1", ["big-order"]],
        ["CREATE", "O2", []],
        ["UPDATE", "O1", ["order-shipped"]],
      ]);
    });

    test("the events of an import equal those of the same writes made through the API", async () => {
      const lines = [
        ["C1", "a@x.io", "Ann", "5"],
        ["C2", "b@x.io", "Bob", ""],
        ["C1", "a@x.io", "Annie", "6"],
        ["C2", "b@x.io", "Bob", "2"],
      ];
      const csv = `customerId,emailAddress,firstName,points\n${lines.map((l) => l.join(",")).join("\n")}\n`;
      await t.finished(await t.startImport(customers(), { name: "c.csv", content: csv }));
      for (const [customerId, emailAddress, firstName, points] of lines) {
        const response = await t.request(
          "POST",
          "/v4/entity/acme/table/Twins/profile?allowUpdate=true",
          {
            attributes: [
              { name: "customerId", value: customerId },
              { name: "emailAddress", value: emailAddress },
              { name: "firstName", value: firstName },
              { name: "points", value: points === "" ? null : points },
            ],
          },
        );
        assert.equal(response.statusCode, 200, response.body);
      }
      const shape = (e: EventRow) => {
        const { profileId: _k, ...keys } = e.keys;
        const { profileId: _p, creationMoment: _c, updateMoment: _u, ...state } = e.state;
        return [
          e.event_type,
          keys,
          state,
          e.fields,
          e.previous,
          e.extra,
          e.version,
          e.declared_events,
        ];
      };
      const all = await events("PROFILE_TABLE");
      const twins = await t.database.db.query<{ id: string }>(
        "SELECT id FROM data_tables WHERE name = 'Twins'",
      );
      const viaApi = all.filter((e) => e.source_id === twins.rows[0]!.id).map(shape);
      const viaImport = all.filter((e) => e.source_id !== twins.rows[0]!.id).map(shape);
      assert.equal(viaImport.length, 4);
      assert.deepEqual(viaImport, viaApi);
    });

    test("cancel: a pending execution ends at once; a finished one answers 409", async () => {
      await t.worker.stop();
      try {
        const id = await t.startImport(customers(), {
          name: "c.csv",
          content: "customerId,emailAddress\nC1,a@x.io\n",
        });
        const cancelled = await t.request(
          "POST",
          `/mass-imports/v5/entities/acme/etl-executions/${id}/cancel`,
        );
        assert.equal(cancelled.statusCode, 202, cancelled.body);
        assert.equal((cancelled.json() as { status: string }).status, "CANCELLED");
        const again = await t.request(
          "POST",
          `/mass-imports/v5/entities/acme/etl-executions/${id}/cancel`,
        );
        assert.equal(again.statusCode, 409);
        assert.equal((again.json() as { code: string }).code, "HERALD_EXECUTION_FINISHED");
        const etl = (await events("ETL")).map((e) => [
          e.event_type,
          e.state["etl.executionStatus"],
        ]);
        assert.deepEqual(etl, [["FINISHED", "CANCELLED"]]);
        assert.equal((await records("Customers")).length, 0);
      } finally {
        const { startImportWorker } = await import("../../src/jobs/import-worker.js");
        const { createLogger } = await import("../../src/logger.js");
        t.worker = await startImportWorker({
          db: t.database.db,
          logSignals: t.database.logSignals,
          jobSignals: t.database.jobSignals,
          logger: createLogger("silent"),
          config: t.config,
          pollMs: 50,
          batchRows: 3,
        });
      }
    });

    test("cancel: a running execution stops after its current batch", async () => {
      const content = `customerId,emailAddress\n${Array.from({ length: 3000 }, (_, i) => `K${i},k${i}@x.io`).join("\n")}\n`;
      const id = await t.startImport(customers(), { name: "big.csv", content });
      // Wait until it runs, then cancel.
      for (;;) {
        const e = (
          await t.request("GET", `/mass-imports/v5/entities/acme/etl-executions/${id}`)
        ).json() as {
          status: string;
        };
        if (e.status !== "PENDING") break;
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      const cancel = await t.request(
        "POST",
        `/mass-imports/v5/entities/acme/etl-executions/${id}/cancel`,
      );
      assert.ok([202, 409].includes(cancel.statusCode), cancel.body);
      const done = await t.finished(id);
      if (cancel.statusCode === 409) return; // it finished first: nothing to check
      assert.equal(done.status, "CANCELLED");
      assert.ok(done.counts.read < 3000, `stopped early (${done.counts.read} rows)`);
      assert.equal((await records("Customers")).length, done.counts.created);
      const etl = (await events("ETL")).map((e) => [e.event_type, e.state["etl.executionStatus"]]);
      assert.deepEqual(etl, [
        ["STARTED", "RUNNING"],
        ["FINISHED", "CANCELLED"],
      ]);
    });

    test("maxRejectedRows: past the limit the execution stops ERROR; rows written stay", async () => {
      const done = await t.finished(
        await t.startImport(customers("CREATE_UPDATE", { maxRejectedRows: 1 }), {
          name: "c.csv",
          content:
            "customerId,emailAddress,points\nC1,a@x.io,1\nC2,b@x.io,x\nC3,c@x.io,y\nC4,d@x.io,4\n",
        }),
      );
      assert.equal(done.status, "ERROR");
      assert.equal(done.error?.code, "HERALD_TOO_MANY_REJECTED_ROWS");
      assert.deepEqual(done.counts, { read: 3, created: 1, updated: 0, unchanged: 0, rejected: 2 });
      assert.equal((await records("Customers")).length, 1);
    });

    test("bytes that are not UTF-8 past the first lines end the execution ERROR, naming the line", async () => {
      const content = Buffer.concat([
        Buffer.from(`customerId,emailAddress,firstName\nC1,a@x.io,${"x".repeat(200_000)}\nC2,`),
        Buffer.from([0xff, 0xfe]),
        Buffer.from(",b@x.io\n"),
      ]);
      const done = await t.finished(await t.startImport(customers(), { name: "big.csv", content }));
      assert.equal(done.status, "ERROR", JSON.stringify(done.error));
      assert.equal(done.error?.code, "HERALD_INVALID_FILE");
      assert.match(done.error!.message, /line 3 is not valid UTF-8/);
      assert.equal(done.counts.created, 1, "the row before the defect is applied");
    });

    test("two executions on the same table at once lose no update", async () => {
      const keys = Array.from({ length: 60 }, (_, i) => i);
      const names = `customerId,emailAddress,firstName\n${keys.map((i) => `C${i},c${i}@x.io,N${i}`).join("\n")}\n`;
      const points = `customerId,emailAddress,points\n${keys.map((i) => `C${i},c${i}@x.io,${i}`).join("\n")}\n`;
      const [a, b] = await Promise.all([
        t.startImport(customers(), { name: "names.csv", content: names }),
        t.startImport(customers(), { name: "points.csv", content: points }),
      ]);
      const [doneA, doneB] = [await t.finished(a), await t.finished(b)];
      assert.equal(doneA.status, "SUCCESS", JSON.stringify(doneA));
      assert.equal(doneB.status, "SUCCESS", JSON.stringify(doneB));
      assert.equal(doneA.counts.created + doneB.counts.created, keys.length);
      assert.equal(doneA.counts.updated + doneB.counts.updated, keys.length);
      const rows = await records("Customers");
      assert.equal(rows.length, keys.length);
      for (const row of rows) {
        const i = Number(String(row.attributes.customerId).slice(1));
        assert.equal(row.attributes.firstName, `N${i}`);
        assert.equal(row.attributes.points, i);
      }
      const data = await events("PROFILE_TABLE");
      assert.equal(data.length, 2 * keys.length, "one event per row of each file");
    });

    test("a record longer than 1 MiB (a file without line breaks) ends the execution ERROR", async () => {
      const long = "x".repeat(1_100_000);
      // Found while the header is read at upload (400), or later while the import runs (ERROR).
      const upload = await t.upload([
        { name: "etlDefinition", content: JSON.stringify(customers()) },
        {
          name: "inputFile",
          filename: "long.csv",
          content: `customerId,emailAddress,firstName\nC1,a@x.io,Ann\nC2,b@x.io,${long}\n`,
        },
      ]);
      const failure =
        upload.statusCode === 202
          ? (await t.finished((upload.json() as { executionId: string }).executionId)).error
          : (upload.json() as { code: string; message: string });
      assert.ok([202, 400].includes(upload.statusCode), upload.body);
      assert.equal(failure?.code, "HERALD_INVALID_FILE");
      assert.match(failure!.message, /Max Record Size/);
      const ndjson = await t.finished(
        await t.startImport(customers("CREATE_UPDATE", { file: { format: "NDJSON" } }), {
          name: "long.ndjson",
          content: `{"customerId":"N1","emailAddress":"n1@x.io"}\n{"customerId":"N2","firstName":"${long}`,
        }),
      );
      assert.equal(ndjson.status, "ERROR", JSON.stringify(ndjson.error));
      assert.match(ndjson.error!.message, /line 2 is longer than 1048576 characters/);
      assert.equal(ndjson.counts.created, 1, "the line before it is applied");
    });

    test("a table definition changed during an import: the import goes on under the new definition", async () => {
      const growing = { ...CUSTOMERS, name: "Growing" };
      assert.equal((await t.request("POST", PROFILE_TABLES, growing)).statusCode, 201);
      const rows = 1500;
      const content = `customerId,emailAddress\n${Array.from({ length: rows }, (_, i) => `G${i},g${i}@x.io`).join("\n")}\n`;
      const id = await t.startImport(
        { target: { table: "Growing" }, keyAttribute: "customerId" },
        { name: "g.csv", content },
      );
      let readAtChange: number;
      for (;;) {
        const e = (
          await t.request("GET", `/mass-imports/v5/entities/acme/etl-executions/${id}`)
        ).json() as {
          counts: { read: number };
        };
        if (e.counts.read > 0) {
          readAtChange = e.counts.read;
          break;
        }
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      const put = await t.request("PUT", `${PROFILE_TABLES}/Growing`, {
        ...growing,
        attributes: [...growing.attributes, { name: "city", type: "CUSTOM", valueType: "STRING" }],
      });
      assert.equal(put.statusCode, 200, put.body);
      const done = await t.finished(id);
      assert.equal(done.status, "SUCCESS", JSON.stringify(done));
      assert.equal(done.counts.created, rows);
      assert.equal((await records("Growing")).length, rows);
      assert.ok(readAtChange < rows, `the definition changed mid-import (at row ${readAtChange})`);
    });

    test("STARTED and FINISHED carry §7.1's payload keys", async () => {
      const id = await t.startImport(customers(), {
        name: "c.csv",
        content: "customerId,emailAddress\nC1,a@x.io\n",
      });
      await t.finished(id);
      const [started, finished] = await events("ETL");
      assert.equal(started!.event_type, "STARTED");
      assert.equal(finished!.event_type, "FINISHED");
      assert.deepEqual(finished!.state, {
        "etl.executionId": id,
        "etl.executionStatus": "SUCCESS",
        "etl.rowsRead": "1",
        "etl.rowsCreated": "1",
        "etl.rowsUpdated": "0",
        "etl.rowsUnchanged": "0",
        "etl.rowsRejected": "0",
      });
      assert.equal(finished!.record_key, id);
      assert.deepEqual(finished!.extra, {
        _links: { etlExecution: { href: `/mass-imports/v5/entities/acme/etl-executions/${id}` } },
      });
    });
  });
}
