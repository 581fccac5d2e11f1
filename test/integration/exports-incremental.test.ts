/**
 * INCREMENTAL exports (SPEC §7.3) and the FULL snapshot under concurrent writes, on both backends.
 * No sequencer runs here: the tests stamp the log themselves, at chosen moments, so that an
 * execution's snapshot meets both stamped events and events the sequencer has not stamped yet.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { parse } from "csv-parse/sync";
import { readLogHead } from "../../src/storage/change-event-repository.js";
import { advanceIncremental, findExportById } from "../../src/storage/export-repository.js";
import { liveLogFloor } from "../../src/storage/housekeeping-repository.js";
import { stampPendingEvents } from "../../src/storage/sequencer-repository.js";
import { testBackends } from "../helpers/test-database.js";
import type { ExportExecution, ExportTestApp } from "./exports-harness.js";
import { createExportTestApp, EXPORTS } from "./exports-harness.js";

const MEMBERS = {
  name: "Members",
  attributes: [
    { name: "code", type: "CUSTOM", valueType: "STRING", unique: true },
    { name: "name", type: "CUSTOM", valueType: "STRING" },
    { name: "points", type: "CUSTOM", valueType: "INTEGER" },
  ],
  segmentations: [{ name: "Active", type: "SIMPLE" }],
};
const MEMBER_PROFILES = "/v5/entities/acme/profile-tables/Members/profiles";

const PAIRS = {
  name: "Pairs",
  attributes: [
    { name: "pair", type: "CUSTOM", valueType: "STRING" },
    { name: "side", type: "CUSTOM", valueType: "STRING" },
    { name: "value", type: "CUSTOM", valueType: "INTEGER" },
  ],
};

for (const { backend, skip } of await testBackends()) {
  describe(`incremental exports and snapshots on ${backend}`, { skip }, () => {
    let t: ExportTestApp;
    before(async () => {
      t = await createExportTestApp(backend, { batchRows: 7 });
      for (const table of [MEMBERS, PAIRS]) {
        const created = await t.request("POST", "/v5/entities/acme/profile-tables", table);
        assert.equal(created.statusCode, 201, created.body);
      }
    });
    after(() => t?.close());

    const member = async (code: string, attributes: Record<string, unknown>, extra = {}) => {
      const response = await t.request("PUT", MEMBER_PROFILES, {
        key: { code },
        attributes,
        ...extra,
      });
      assert.ok([200, 201].includes(response.statusCode), response.body);
      return (response.json() as { profileId: number }).profileId;
    };
    const remove = async (profileId: number) => {
      const response = await t.request("DELETE", `${MEMBER_PROFILES}/${profileId}`);
      assert.equal(response.statusCode, 204, response.body);
    };
    const stamp = () => stampPendingEvents(t.database.db);
    const rowsOf = async (execution: ExportExecution) => {
      assert.equal(execution.status, "SUCCESS", JSON.stringify(execution));
      const text = (await t.download(execution)).body.toString("utf8");
      const rows = parse(text, { delimiter: ";", columns: true }) as Record<string, string>[];
      assert.equal(rows.length, execution.rowCount);
      return { text, rows };
    };

    test("three executions with creates, updates and deletes between: each change exactly once", async () => {
      const a = await member("A", { name: "Ann", points: 1 });
      const b = await member("B", { name: "Bob", points: 2 });
      await stamp();
      await member("C", { name: "Cy", points: 3 }); // committed, not stamped yet
      const id = await t.define({
        name: "members-incremental",
        source: { table: "Members" },
        fields: ["profileId", "code", "name", "points"],
        mode: "INCREMENTAL",
      });

      const first = await t.run(id);
      const one = await rowsOf(first);
      assert.equal(one.text.split("\n")[0], "_operation;profileId;code;name;points");
      assert.deepEqual(
        one.rows.map((r) => [r._operation, r.code, r.name, r.points]),
        [
          ["CREATE", "A", "Ann", "1"],
          ["CREATE", "B", "Bob", "2"],
          ["CREATE", "C", "Cy", "3"],
        ],
      );
      assert.equal(first.fromPosition, null);

      await stamp(); // C's CREATE gets a position above first.toPosition: it must not come back
      await member("A", { name: "Anna" });
      await remove(b);
      const d = await member("D", { name: "Dee", points: 4 });
      await stamp();
      await member("A", { points: 10 }); // unstamped at the next snapshot
      const second = await t.run(id);
      assert.equal(second.fromPosition, first.toPosition);
      const two = await rowsOf(second);
      assert.deepEqual(
        two.rows.map((r) => [r._operation, r.profileId, r.code, r.name, r.points]),
        [
          ["DELETE", String(b), "B", "", ""],
          ["CREATE", String(d), "D", "Dee", "4"],
          ["UPDATE", String(a), "A", "Anna", "10"],
        ],
      );

      await member("D", { points: 40 });
      const e = await member("E", { name: "Eve" });
      await stamp(); // the unstamped update of A from before is stamped now, above second.toPosition
      await remove(e);
      await member("C", { points: 30 });
      await member("C", { points: 31 });
      const third = await t.run(id);
      assert.equal(third.fromPosition, second.toPosition);
      const three = await rowsOf(third);
      assert.deepEqual(
        three.rows.map((r) => [r._operation, r.code, r.points]),
        [
          ["UPDATE", "D", "40"],
          ["DELETE", "E", ""],
          ["UPDATE", "C", "31"],
        ],
      );

      await stamp();
      const fourth = await t.run(id);
      assert.equal(fourth.rowCount, 0);
      assert.equal(
        (await t.download(fourth)).body.toString("utf8"),
        "_operation;profileId;code;name;points\n",
      );

      // The log is kept above the export's position.
      const { rows } = await t.database.db.query<{ incremental_position: number }>(
        "SELECT incremental_position FROM exports WHERE id = $1",
        [id],
      );
      assert.equal(rows[0]!.incremental_position, fourth.toPosition);
      await stamp(); // the executions' FINISHED events: the head moves past the export's position
      assert.ok((await readLogHead(t.database.db)) > fourth.toPosition!);
      assert.equal(await liveLogFloor(t.database.db), fourth.toPosition, "housekeeping's floor");

      // A PUT that changes what the rows are made of starts over: every row again, as CREATE.
      const former = (await findExportById(t.database.db, id))!;
      const put = await t.request("PUT", `${EXPORTS}/${id}`, {
        name: "members-incremental",
        source: { table: "Members" },
        fields: ["code", "points"],
        mode: "INCREMENTAL",
      });
      assert.equal(put.statusCode, 200, put.body);
      // An execution that wrote its file under the former definition cannot move the position,
      // even from null (where both a first run and a restarted export stand).
      assert.equal(await advanceIncremental(t.database.db, former, null, 1, []), false);
      // Started over: it needs no event of the log until its next execution.
      assert.equal(await liveLogFloor(t.database.db), await readLogHead(t.database.db));
      const again = await rowsOf(await t.run(id));
      assert.deepEqual(
        again.rows.map((r) => [r._operation, r.code, r.points]),
        [
          ["CREATE", "A", "10"],
          ["CREATE", "C", "31"],
          ["CREATE", "D", "40"],
        ],
      );
    });

    test("a custom table: keys are business keys; deleted and written again is a CREATE", async () => {
      const orders = await t.request("POST", "/v5/entities/acme/custom-tables", {
        name: "Orders",
        type: "INTERACTIONS",
        primaryKeyAttribute: "orderId",
        attributes: [
          { name: "orderId", valueType: "STRING", mandatory: true, unique: true },
          { name: "amount", valueType: "NUMBER" },
          { name: "tags", valueType: "STRING", multiValued: true },
        ],
      });
      assert.equal(orders.statusCode, 201, orders.body);
      const RECORDS = "/v4/entity/acme/customTable/Orders/record";
      const write = async (orderId: string, amount: number, tags: string[] = []) => {
        const response = await t.request("POST", RECORDS, {
          properties: [
            { name: "orderId", value: orderId },
            { name: "amount", value: amount },
            { name: "tags", value: tags },
          ],
        });
        assert.ok([200, 201].includes(response.statusCode), response.body);
      };
      const drop = async (orderId: string) => {
        const response = await t.request("DELETE", `${RECORDS}/${orderId}`);
        assert.equal(response.statusCode, 204, response.body);
      };
      await write("O1", 10.5, ["a", "b"]);
      await write("O2", 20);
      const id = await t.define({
        name: "orders",
        source: { tableType: "CUSTOM_TABLE", table: "Orders" },
        mode: "INCREMENTAL",
        format: { separator: "," },
      });
      const first = await t.run(id);
      assert.equal(first.status, "SUCCESS", JSON.stringify(first));
      const text = (await t.download(first)).body.toString("utf8");
      assert.equal(text, '_operation,orderId,amount,tags\nCREATE,O1,10.5,"a,b"\nCREATE,O2,20,\n');
      await drop("O1");
      await write("O1", 11);
      await drop("O2");
      await write("O3", 30);
      await stamp();
      const second = await t.run(id);
      const rows = parse((await t.download(second)).body, { columns: true }) as Record<
        string,
        string
      >[];
      assert.deepEqual(
        rows.map((r) => [r._operation, r.orderId, r.amount]),
        [
          ["CREATE", "O1", "11"],
          ["DELETE", "O2", ""],
          ["CREATE", "O3", "30"],
        ],
      );
    });

    test("an incremental export with a filter: a record that leaves it is a DELETE", async () => {
      const id = await t.define({
        name: "active-members",
        source: { table: "Members" },
        fields: ["code"],
        mode: "INCREMENTAL",
        filter: { segmentation: { name: "Active" } },
      });
      await member("F", { name: "Fay" }, { segmentations: { Active: true } });
      const first = await rowsOf(await t.run(id));
      assert.deepEqual(
        first.rows.map((r) => [r._operation, r.code]),
        [["CREATE", "F"]],
      );
      // Adding a condition starts over; a PUT of the same definition again does not (its
      // conditions come back from jsonb with their keys in another order).
      const conditioned = await t.request("PUT", `${EXPORTS}/${id}`, {
        name: "active-members",
        source: { table: "Members" },
        fields: ["code"],
        mode: "INCREMENTAL",
        filter: {
          segmentation: { name: "Active" },
          conditions: [{ attribute: "code", operator: "!=", value: "nobody" }],
        },
      });
      assert.equal(conditioned.statusCode, 200, conditioned.body);
      await rowsOf(await t.run(id)); // the restart: F again
      const before = await t.database.db.query<{ incremental_position: number }>(
        "SELECT incremental_position FROM exports WHERE id = $1",
        [id],
      );
      const again = await t.request("PUT", `${EXPORTS}/${id}`, {
        name: "active-members",
        source: { table: "Members" },
        fields: ["code"],
        mode: "INCREMENTAL",
        filter: {
          segmentation: { name: "Active" },
          conditions: [{ attribute: "code", operator: "!=", value: "nobody" }],
        },
      });
      assert.equal(again.statusCode, 200, again.body);
      const after = await t.database.db.query<{ incremental_position: number }>(
        "SELECT incremental_position FROM exports WHERE id = $1",
        [id],
      );
      assert.equal(after.rows[0]!.incremental_position, before.rows[0]!.incremental_position);
      await member("F", {}, { segmentations: { Active: false } });
      await member("G", {}, { segmentations: { Active: true } });
      const second = await rowsOf(await t.run(id));
      assert.deepEqual(
        second.rows.map((r) => [r._operation, r.code]),
        [
          ["DELETE", "F"],
          ["CREATE", "G"],
        ],
      );
    });

    test("INCREMENTAL under concurrent writes and stamping: the next execution holds exactly what the first missed", async () => {
      const counters = "/v5/entities/acme/profile-tables/Counters/profiles";
      const table = await t.request("POST", "/v5/entities/acme/profile-tables", {
        name: "Counters",
        attributes: [
          { name: "code", type: "CUSTOM", valueType: "STRING", unique: true },
          { name: "points", type: "CUSTOM", valueType: "INTEGER" },
        ],
      });
      assert.equal(table.statusCode, 201, table.body);
      const put = async (code: string, points: number) => {
        const response = await t.request("PUT", counters, {
          key: { code },
          attributes: { points },
        });
        assert.ok([200, 201].includes(response.statusCode), response.body);
      };
      for (let i = 0; i < 40; i++) await put(`K${i}`, 0);
      const id = await t.define({
        name: "counters",
        source: { table: "Counters" },
        fields: ["code", "points"],
        mode: "INCREMENTAL",
      });
      let writing = true;
      let n = 0;
      const writer = (async () => {
        while (writing) {
          n++;
          await put(`K${(n * 7) % 45}`, n); // updates, and creates K40…K44
        }
      })();
      const stamper = setInterval(() => void stamp().catch(() => {}), 3);
      let first: ExportExecution;
      try {
        await new Promise((resolve) => setTimeout(resolve, 30));
        first = await t.run(id);
        await new Promise((resolve) => setTimeout(resolve, 30));
      } finally {
        // At least a dozen writes, so some create K40…K44 (on the embedded database the export
        // holds the only session, and a busy machine may fit only a few writes around it).
        for (let waited = 0; n < 12 && waited < 10_000; waited += 10)
          await new Promise((resolve) => setTimeout(resolve, 10));
        writing = false;
        clearInterval(stamper);
        await writer;
      }
      const second = await t.run(id);
      assert.equal(second.fromPosition, first.toPosition);
      const state = new Map<string, string>();
      for (const row of (await rowsOf(first)).rows) {
        assert.equal(row._operation, "CREATE");
        state.set(row.code!, row.points!);
      }
      for (const row of (await rowsOf(second)).rows) {
        assert.notEqual(row._operation, "DELETE");
        const before = state.get(row.code!);
        // Each row of the second file is a change the first did not hold: a greater value.
        if (before !== undefined)
          assert.ok(Number(row.points) > Number(before), `${row.code} again`);
        else assert.equal(row._operation, "CREATE");
        state.set(row.code!, row.points!);
      }
      const { rows } = await t.database.db.query<{ code: string; points: string }>(
        `SELECT r.attributes ->> 'code' AS code, r.attributes ->> 'points' AS points
           FROM records r JOIN data_tables d ON d.id = r.table_id AND d.name = 'Counters'`,
      );
      assert.equal(rows.length, state.size);
      assert.ok(state.size > 40, "the writes created no counter");
      assert.deepEqual(new Map(rows.map((r) => [r.code, r.points])), state);
      assert.ok(n > 0);
    });

    /**
     * Runs `during` while another connection moves both sides of a pair (or adds a new pair) in
     * one transaction after another; returns how many such transactions committed.
     */
    async function writingMeanwhile(tableId: string, during: () => Promise<void>) {
      const db = t.database.db;
      let writing = true;
      let writes = 0;
      const writer = (async () => {
        for (let n = 1; writing; n++) {
          const pair = `p${1 + (n % 320)}`;
          await db.query(
            `WITH moved AS (
               UPDATE records SET attributes = attributes || jsonb_build_object('value', $3::int)
                WHERE table_id = $1 AND attributes ->> 'pair' = $2 RETURNING 1)
             INSERT INTO records (table_id, attributes)
             SELECT $1, jsonb_build_object('pair', $2::text, 'side', s, 'value', $3::int)
               FROM unnest(ARRAY['L', 'R']) AS s
              WHERE NOT EXISTS (SELECT 1 FROM moved)`,
            [tableId, pair, (writeBase += 1)],
          );
          writes++;
          await new Promise((resolve) => setImmediate(resolve));
        }
      })();
      try {
        await new Promise((resolve) => setTimeout(resolve, 50));
        await during();
      } finally {
        writing = false;
        await writer;
      }
      return writes;
    }
    let writeBase = 0;

    const pairsTable = async () => {
      const { rows } = await t.database.db.query<{ id: string }>(
        "SELECT id FROM data_tables WHERE name = 'Pairs' AND deleted_at IS NULL",
      );
      return rows[0]!.id;
    };

    test("FULL is one snapshot while other transactions write (no pair half-visible)", async () => {
      const db = t.database.db;
      const tableId = await pairsTable();
      // 300 pairs, each written by one transaction (two rows) from now on.
      await db.query(
        `INSERT INTO records (table_id, attributes)
         SELECT $1, jsonb_build_object('pair', 'p' || i, 'side', s, 'value', 0)
           FROM generate_series(1, 300) AS i, unnest(ARRAY['L', 'R']) AS s`,
        [tableId],
      );
      const id = await t.define({
        name: "pairs-full",
        source: { table: "Pairs" },
        fields: ["pair", "side", "value"],
      });
      let execution: ExportExecution | undefined;
      const writes = await writingMeanwhile(tableId, async () => {
        execution = await t.run(id);
      });
      const { rows } = await rowsOf(execution!);
      const sides = new Map<string, Map<string, string>>();
      for (const row of rows) {
        const pair = sides.get(row.pair!) ?? new Map<string, string>();
        pair.set(row.side!, row.value!);
        sides.set(row.pair!, pair);
      }
      for (const [pair, values] of sides) {
        assert.equal(values.size, 2, `pair ${pair} has one side only`);
        assert.equal(values.get("L"), values.get("R"), `pair ${pair} is half-written`);
      }
      assert.ok(writes > 0);
      if (backend === "postgres") {
        // The writes went on while the snapshot was read: the table moved past the file.
        const { rows: now } = await db.query<{ total: string }>(
          "SELECT sum((attributes ->> 'value')::int)::text AS total FROM records WHERE table_id = $1",
          [tableId],
        );
        const inFile = rows.reduce((sum, r) => sum + Number(r.value), 0);
        assert.notEqual(String(inFile), now[0]!.total, "no write happened during the export");
      }
    });
  });
}
