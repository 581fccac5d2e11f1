/**
 * A table's definition changes while writes are under way, or while an API process still holds the
 * previous definition in its cache: no record is ever written against a definition that is gone
 * (the table write gate, migration 013), and a request refused with an outdated definition is
 * answered with the current one.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { buildApp } from "../../src/api/app.js";
import type { HeraldApp } from "../../src/api/app.js";
import { ProfileUpserts } from "../../src/capture/profile-upsert.js";
import { parseProfileInput } from "../../src/capture/profile-writer.js";
import { StaleTableDefinition } from "../../src/capture/write-retry.js";
import { findTable } from "../../src/storage/data-table-repository.js";
import { createLogger } from "../../src/logger.js";
import type { TestApp } from "../helpers/test-app.js";
import { createTestApp } from "../helpers/test-app.js";
import { testBackends } from "../helpers/test-database.js";

const attributes = (extra: object[] = []) => [
  { name: "emailAddress", type: "EMAIL_ADDRESS", unique: true, mandatory: true },
  { name: "code", type: "CUSTOM", valueType: "STRING" },
  ...extra,
];

/** Changes a stored definition behind the API's back, as another process's PUT would. */
async function changeDefinitionInSql(t: TestApp, tableId: string, change: (d: never) => object) {
  const { rows } = await t.database.db.query<{ definition: never }>(
    "SELECT definition FROM data_tables WHERE id = $1",
    [tableId],
  );
  await t.database.db.query(
    "UPDATE data_tables SET definition = $2::jsonb, version = version + 1 WHERE id = $1",
    [tableId, JSON.stringify(change(rows[0]!.definition))],
  );
}

for (const { backend, skip } of await testBackends()) {
  describe(`table definition changes and record writes on ${backend}`, { skip }, () => {
    let t: TestApp;
    let n = 0;
    const newTable = async (extra: object[] = []) => {
      const name = `Defs${++n}`;
      const created = await t.request("POST", "/v5/entities/acme/profile-tables", {
        name,
        attributes: attributes(extra),
      });
      assert.equal(created.statusCode, 201, created.body);
      return { id: created.json().id as string, url: `/v4/entity/acme/table/${name}/profile` };
    };

    before(async () => {
      t = await createTestApp(backend);
    });
    after(() => t?.close());

    test("a write validated against a definition that is no longer the table's writes nothing", async () => {
      const { id } = await newTable();
      const table = await findTable(t.database.db, 1, "PROFILE_TABLE", id);
      assert.ok(table);
      await changeDefinitionInSql(t, id, (d) => d);
      const write = parseProfileInput(table, {
        attributes: [{ name: "emailAddress", value: "old@example.com" }],
      });
      await assert.rejects(
        new ProfileUpserts(t.database).upsert(table, write, {
          allowUpdate: true,
          origin: { kind: "SYSTEM" },
        }),
        StaleTableDefinition,
      );
      const { rows } = await t.database.db.query("SELECT 1 FROM records WHERE table_id = $1", [id]);
      assert.equal(rows.length, 0);
    });

    test("an attribute made unique elsewhere is enforced by the next write, not 3 s later", async () => {
      const { id, url } = await newTable();
      // Warm this process's cache with the definition where `code` is not unique.
      assert.equal((await t.request("GET", `${url}?search=code=X`)).statusCode, 200);
      await changeDefinitionInSql(t, id, (d: { attributes: { name: string }[] }) => ({
        ...d,
        attributes: d.attributes.map((a) => (a.name === "code" ? { ...a, unique: true } : a)),
      }));
      const first = await t.request("POST", url, {
        attributes: [
          { name: "emailAddress", value: "a@example.com" },
          { name: "code", value: "X" },
        ],
      });
      assert.equal(first.statusCode, 200, first.body);
      const second = await t.request("POST", url, {
        attributes: [
          { name: "emailAddress", value: "b@example.com" },
          { name: "code", value: "X" },
        ],
      });
      assert.equal(second.statusCode, 409, second.body);
      assert.equal(second.json().code, "HERALD_UNIQUE_KEY_TAKEN");
    });

    test("a request refused by an outdated definition is answered with the current one", async () => {
      const { id, url } = await newTable();
      assert.equal((await t.request("GET", `${url}?search=code=X`)).statusCode, 200);
      await changeDefinitionInSql(t, id, (d: { attributes: object[] }) => ({
        ...d,
        attributes: [...d.attributes, { name: "vip", type: "CUSTOM", valueType: "BOOLEAN" }],
      }));
      const res = await t.request("POST", url, {
        attributes: [
          { name: "emailAddress", value: "vip@example.com" },
          { name: "vip", value: true },
        ],
      });
      assert.equal(res.statusCode, 200, res.body);
      const stored = await t.request("GET", `${url}/emailAddress=vip@example.com`);
      assert.equal(stored.statusCode, 200, stored.body);
      assert.ok(JSON.stringify(stored.json()).includes('"vip"'), stored.body);
    });

    test("a table deleted elsewhere answers 404 to a write through the cached definition", async () => {
      const { id, url } = await newTable();
      assert.equal((await t.request("GET", `${url}?search=code=X`)).statusCode, 200);
      await t.database.db.query("DELETE FROM data_tables WHERE id = $1", [id]);
      for (const allowUpdate of [false, true]) {
        const res = await t.request("POST", `${url}?allowUpdate=${allowUpdate}`, {
          attributes: [{ name: "emailAddress", value: "gone@example.com" }],
        });
        assert.equal(res.statusCode, 404, res.body);
        assert.equal(res.json().code, "HERALD_TABLE_NOT_FOUND");
      }
    });

    test("a custom-table record write sees a definition changed elsewhere at once", async () => {
      const created = await t.request("POST", "/v5/entities/acme/custom-tables", {
        name: "Orders",
        type: "REPOSITORY",
        attributes: [
          { name: "orderId", valueType: "STRING", unique: true, mandatory: true },
          { name: "total", valueType: "NUMBER" },
        ],
        primaryKeyAttribute: "orderId",
      });
      assert.equal(created.statusCode, 201, created.body);
      const url = "/v4/entity/acme/customTable/Orders/record";
      const first = await t.request("POST", url, {
        properties: [
          { name: "orderId", value: "o-1" },
          { name: "total", value: 3 },
        ],
      });
      assert.equal(first.statusCode, 200, first.body);
      // `total` is dropped elsewhere: this process must refuse it now, not store it.
      await changeDefinitionInSql(
        t,
        created.json().id,
        (d: { attributes: { name: string }[] }) => ({
          ...d,
          attributes: d.attributes.filter((a) => a.name !== "total"),
        }),
      );
      const res = await t.request("POST", url, {
        properties: [
          { name: "orderId", value: "o-2" },
          { name: "total", value: 4 },
        ],
      });
      assert.equal(res.statusCode, 400, res.body);
    });
  });
}

for (const { backend, skip } of await testBackends()) {
  if (backend !== "postgres") continue;
  describe("two API processes on one PostgreSQL database", { skip }, () => {
    let t: TestApp;
    let other: HeraldApp;
    const otherRequest = (method: string, url: string, body?: unknown) =>
      other.inject({
        method: method as "GET",
        url,
        headers: {
          authorization: `Bearer ${t.token}`,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
      }) as Promise<LightMyRequestResponse>;

    before(async () => {
      t = await createTestApp(backend);
      // A second API with its own pool and its own table cache: another process.
      other = await buildApp({
        db: await t.database.connect(8),
        config: t.config,
        logger: createLogger("silent"),
      });
      await other.ready();
    });
    after(async () => {
      await other?.close();
      await t?.close();
    });

    /** A profile table created through `t`, its definition then cached by the other process. */
    const tableCachedByOther = async (name: string) => {
      const created = await t.request("POST", "/v5/entities/acme/profile-tables", {
        name,
        attributes: attributes(),
      });
      assert.equal(created.statusCode, 201, created.body);
      const url = `/v4/entity/acme/table/${name}/profile`;
      // A read caches the definition (the cache keeps an entry 3 s).
      assert.equal((await otherRequest("GET", `${url}?search=code=X`)).statusCode, 200);
      return { id: created.json().id as string, url };
    };

    test("an attribute made unique through one process is enforced by the other's next write", async () => {
      const { url } = await tableCachedByOther("Shared");
      const put = await t.request("PUT", "/v5/entities/acme/profile-tables/Shared", {
        name: "Shared",
        attributes: attributes().map((a) =>
          (a as { name: string }).name === "code" ? { ...a, unique: true } : a,
        ),
      });
      assert.equal(put.statusCode, 200, put.body);
      const codes = [];
      for (const email of ["a@example.com", "b@example.com"])
        codes.push(
          (
            await otherRequest("POST", url, {
              attributes: [
                { name: "emailAddress", value: email },
                { name: "code", value: "X" },
              ],
            })
          ).statusCode,
        );
      assert.deepEqual(codes, [200, 409]);
    });

    test("a table changed through one process is read with its new definition by the other at once", async () => {
      const { url } = await tableCachedByOther("Reads");
      const put = await t.request("PUT", "/v5/entities/acme/profile-tables/Reads", {
        name: "Reads",
        attributes: attributes([{ name: "vip", type: "CUSTOM", valueType: "BOOLEAN" }]),
      });
      assert.equal(put.statusCode, 200, put.body);
      // A search by the new attribute is a read: no write gate. The change's notification makes
      // the other process forget its copy well before the 3 s are up.
      const deadline = Date.now() + 1_500;
      let search = await otherRequest("GET", `${url}?search=vip=true`);
      while (search.statusCode !== 200 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        search = await otherRequest("GET", `${url}?search=vip=true`);
      }
      assert.equal(search.statusCode, 200, search.body);
    });

    test("a PUT that deadlocks with a record write runs again instead of answering 500", async () => {
      const parent = await t.request("POST", "/v5/entities/acme/profile-tables", {
        name: "Owners",
        attributes: attributes(),
      });
      assert.equal(parent.statusCode, 201, parent.body);
      const child = {
        name: "Pets",
        type: "LINKED_DATA",
        primaryKeyAttribute: "id",
        attributes: [
          { name: "id", valueType: "STRING" },
          { name: "ownerId", valueType: "LONG" },
        ],
        foreignKeys: [
          { attribute: "ownerId", referencedTable: { kind: "PROFILE_TABLE", id: "Owners" } },
        ],
      };
      const created = await t.request("POST", "/v5/entities/acme/custom-tables", child);
      assert.equal(created.statusCode, 201, created.body);
      // The PUT locks both tables' writes, in sorted order. A writer holding the gate of the
      // second one and then asking for the first's closes the cycle (as a delete of an owner does,
      // gating Owners, then Pets for its onDelete).
      const [first, second] = [parent.json().id as string, created.json().id as string].sort();
      const writer = await t.database.connect(1);
      let writerGotBoth = false;
      const { pending } = await writer.transaction(async (tx) => {
        // The PUT, which waits first, is the one PostgreSQL's deadlock check picks.
        await tx.query("SET LOCAL deadlock_timeout = '10s'");
        const gate = "SELECT herald_table_write_gate(ARRAY[$1::text], ARRAY[1::bigint])";
        await tx.query(gate, [second]);
        const pending = t.request("PUT", `/v5/entities/acme/custom-tables/Pets`, child);
        // Wait until the PUT waits for the write lock this transaction holds.
        for (let i = 0; i < 200; i++) {
          const { rows } = await t.database.db.query(
            "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
          );
          if (rows.length > 0) break;
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        await tx.query(gate, [first]);
        writerGotBoth = true;
        // Committed before the PUT's answer is awaited: the PUT's second try waits for it.
        return { pending };
      });
      assert.ok(writerGotBoth);
      const put = await pending;
      assert.equal(put.statusCode, 200, put.body);
    });

    test("a PUT making an attribute unique while the other process writes leaves no duplicate", async () => {
      for (let round = 0; round < 8; round++) {
        const name = `Race${round}`;
        // The other process caches the definition where `code` is not unique.
        const { id, url } = await tableCachedByOther(name);
        const writes = Array.from({ length: 12 }, async (_, i) => {
          await new Promise((resolve) => setTimeout(resolve, i));
          return otherRequest("POST", url, {
            attributes: [
              { name: "emailAddress", value: `w${i}@example.com` },
              { name: "code", value: "X" },
            ],
          });
        });
        const put = t.request("PUT", `/v5/entities/acme/profile-tables/${name}`, {
          name,
          attributes: attributes().map((a) =>
            (a as { name: string }).name === "code" ? { ...a, unique: true } : a,
          ),
        });
        const [putResult, ...writeResults] = await Promise.all([put, ...writes]);
        for (const w of writeResults) assert.ok([200, 409].includes(w.statusCode), w.body);
        const { rows } = await t.database.db.query<{ records: number; keyed: number }>(
          `SELECT count(*)::integer AS records,
                  count(*) FILTER (WHERE EXISTS (
                    SELECT 1 FROM record_keys k
                     WHERE k.record_id = r.record_id AND k.attribute = 'code'))::integer AS keyed
             FROM records r WHERE r.table_id = $1 AND r.attributes->>'code' = 'X'`,
          [id],
        );
        if (putResult.statusCode === 200) {
          // `code` is unique now: at most one record holds X, and through its key row.
          assert.ok(rows[0]!.records <= 1, `round ${round}: ${rows[0]!.records} records hold X`);
          assert.equal(rows[0]!.keyed, rows[0]!.records, `round ${round}: a record without key`);
        } else {
          // Records were written first, so the key change was refused.
          assert.equal(putResult.statusCode, 422, putResult.body);
          assert.ok(rows[0]!.records >= 1);
        }
      }
    });
  });
}
