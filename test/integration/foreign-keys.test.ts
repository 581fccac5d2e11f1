import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { TestApp } from "../helpers/test-app.js";
import { createTestApp } from "../helpers/test-app.js";
import { testBackends } from "../helpers/test-database.js";

// Customers (profiles) ← Orders (RESTRICT) ← OrderLines (CASCADE);
// Customers ← Notes (SET_NULL); Customers ← Carts (CASCADE) ← CartItems (CASCADE).
const TABLES = "/v5/entities/acme/custom-tables";
const CUSTOMERS = {
  name: "Customers",
  attributes: [
    { name: "emailAddress", type: "EMAIL_ADDRESS", unique: true },
    { name: "city", type: "CUSTOM", valueType: "STRING" },
  ],
};
const custom = (name: string, fk: Record<string, unknown>, extra: object[] = []) => ({
  name,
  type: "LINKED_DATA",
  primaryKeyAttribute: "id",
  attributes: [
    { name: "id", valueType: "STRING" },
    { name: fk.attribute as string, valueType: (fk.valueType as string) ?? "LONG" },
    ...extra,
  ],
  foreignKeys: [
    {
      attribute: fk.attribute,
      referencedTable: fk.referencedTable,
      ...(fk.onDelete ? { onDelete: fk.onDelete } : {}),
    },
  ],
});
const toCustomers = { kind: "PROFILE_TABLE", id: "Customers" };

interface EventRow {
  source_id: string;
  event_type: string;
  record_key: string;
  fields: string[];
  previous: Record<string, unknown>;
  state: Record<string, unknown>;
  version: number;
}

for (const { backend, skip } of await testBackends()) {
  describe(`custom-table foreign keys on ${backend}`, { skip }, () => {
    let t: TestApp;
    const ids: Record<string, string> = {};
    const events = async (): Promise<EventRow[]> =>
      (await t.database.db.query<EventRow>("SELECT * FROM change_events ORDER BY id")).rows;
    const clearEvents = () => t.database.db.query("DELETE FROM change_events");
    const record = (table: string, properties: Record<string, unknown>) =>
      t.request("POST", `/v4/entity/acme/customTable/${table}/record`, {
        properties: Object.entries(properties).map(([name, value]) => ({ name, value })),
      });
    const profile = async (email: string): Promise<number> => {
      const res = await t.request("POST", "/v4/entity/acme/table/Customers/profile", {
        attributes: [{ name: "emailAddress", value: email }],
      });
      assert.equal(res.statusCode, 200, res.body);
      return (res.json() as { profileId: number }).profileId;
    };
    const count = async (table: string): Promise<number> => {
      const { rows } = await t.database.db.query<{ n: number }>(
        "SELECT count(*)::integer AS n FROM records WHERE table_id = $1",
        [ids[table]],
      );
      return rows[0]!.n;
    };

    before(async () => {
      t = await createTestApp(backend);
      const created = await t.request("POST", "/v5/entities/acme/profile-tables", CUSTOMERS);
      assert.equal(created.statusCode, 201, created.body);
      ids.Customers = created.json().id;
      for (const [name, fk] of [
        ["Orders", { attribute: "customerId", referencedTable: toCustomers }],
        [
          "OrderLines",
          {
            attribute: "orderId",
            valueType: "STRING",
            referencedTable: { kind: "CUSTOM_TABLE", id: "Orders" },
            onDelete: "CASCADE",
          },
        ],
        ["Notes", { attribute: "customerId", referencedTable: toCustomers, onDelete: "SET_NULL" }],
        ["Carts", { attribute: "customerId", referencedTable: toCustomers, onDelete: "CASCADE" }],
        [
          "CartItems",
          {
            attribute: "cartId",
            valueType: "STRING",
            referencedTable: { kind: "CUSTOM_TABLE", id: "Carts" },
            onDelete: "CASCADE",
          },
        ],
      ] as const) {
        const res = await t.request("POST", TABLES, custom(name, fk));
        assert.equal(res.statusCode, 201, `${name}: ${res.body}`);
        ids[name] = res.json().id;
      }
    });
    after(() => t?.close());

    test("a foreign key is stored with its table by id, the identity and RESTRICT by default", async () => {
      const orders = (await t.request("GET", `${TABLES}/Orders`)).json();
      assert.deepEqual(orders.foreignKeys, [
        {
          attribute: "customerId",
          referencedTable: { kind: "PROFILE_TABLE", id: ids.Customers },
          referencedAttribute: "profileId",
          onDelete: "RESTRICT",
          // Actito's form of the same reference, always answered.
          reference: { tableType: "PROFILE_TABLE", tableId: ids.Customers, attribute: "profileId" },
        },
      ]);
      const lines = (await t.request("GET", `${TABLES}/OrderLines`)).json();
      assert.equal(lines.foreignKeys[0].referencedTable.id, ids.Orders);
      assert.equal(lines.foreignKeys[0].referencedAttribute, "id");
    });

    test("definitions that cannot hold: 422 naming the entry, 400 for a malformed one", async () => {
      const cases: [unknown, number, string][] = [
        [
          custom("X1", { attribute: "c", referencedTable: { kind: "PROFILE_TABLE", id: "Nope" } }),
          422,
          "foreignKeys[0].referencedTable",
        ],
        [
          custom("X2", { attribute: "c", valueType: "STRING", referencedTable: toCustomers }),
          422,
          "foreignKeys[0].attribute",
        ],
        [
          {
            ...custom("X3", { attribute: "c", valueType: "STRING", referencedTable: toCustomers }),
            foreignKeys: [
              { attribute: "c", referencedTable: toCustomers, referencedAttribute: "city" },
            ],
          },
          422,
          "foreignKeys[0].referencedAttribute",
        ],
        [
          {
            ...custom("X3b", { attribute: "c", referencedTable: toCustomers }),
            foreignKeys: [
              { attribute: "c", referencedTable: toCustomers, referencedAttribute: "emailAddress" },
            ],
          },
          422,
          "foreignKeys[0].attribute",
        ],
        [
          {
            ...custom("X4", { attribute: "c", referencedTable: toCustomers }),
            foreignKeys: [
              {
                attribute: "id",
                referencedTable: { kind: "CUSTOM_TABLE", id: "Orders" },
                onDelete: "SET_NULL",
              },
            ],
          },
          422,
          "foreignKeys[0].onDelete",
        ],
        [
          custom("X5", { attribute: "c", referencedTable: toCustomers, onDelete: "NOTHING" }),
          400,
          "foreignKeys[0].onDelete",
        ],
        [
          {
            ...custom("X6", { attribute: "c", referencedTable: toCustomers }),
            foreignKeys: [{ attribute: "c" }],
          },
          400,
          "foreignKeys[0].referencedTable",
        ],
        [
          custom("X7", { attribute: "c", referencedTable: { kind: "CUSTOM_TABLE", id: "X7" } }),
          422,
          "foreignKeys[0].referencedTable",
        ],
      ];
      for (const [body, status, path] of cases) {
        const res = await t.request("POST", TABLES, body);
        assert.equal(res.statusCode, status, res.body);
        assert.ok(
          (res.json().details as { path: string }[]).some((d) => d.path === path),
          `${path} in ${res.body}`,
        );
      }
      const list = (await t.request("GET", TABLES)).json().customTables as { name: string }[];
      assert.deepEqual(
        list.filter((table) => table.name.startsWith("X")),
        [],
      );
    });

    test("a write whose reference names no record is 422 and writes nothing", async () => {
      await clearEvents();
      const missing = await record("Orders", { id: "o-missing", customerId: 999_999 });
      assert.equal(missing.statusCode, 422, missing.body);
      assert.equal(missing.json().code, "HERALD_REFERENCED_RECORD_NOT_FOUND");
      assert.deepEqual(
        missing.json().details.map((d: { path: string }) => d.path),
        ["properties.customerId"],
      );
      assert.equal(await count("Orders"), 0);
      assert.deepEqual(await events(), []);

      const alice = await profile("alice@example.com");
      const ok = await record("Orders", { id: "o1", customerId: alice });
      assert.equal(ok.statusCode, 200, ok.body);
      const put = await t.request("PUT", "/v4/entity/acme/customTable/Orders/record/o1", {
        properties: [{ name: "customerId", value: 123_456 }],
      });
      assert.equal(put.statusCode, 422, put.body);
      const upsert = await record("Orders", { id: "o1", customerId: 123_456 });
      assert.equal(upsert.statusCode, 422, upsert.body);
      const stored = await t.request("GET", "/v4/entity/acme/customTable/Orders/record/o1");
      assert.ok(stored.body.includes(`"value":${alice}`), stored.body);
      // A record without the reference, and one whose reference is emptied, refer to nothing.
      assert.equal((await record("Orders", { id: "o2" })).statusCode, 200);
      assert.equal((await record("Orders", { id: "o1", customerId: null })).statusCode, 200);
      assert.equal((await record("Orders", { id: "o1", customerId: alice })).statusCode, 200);
      assert.equal((await record("OrderLines", { id: "l1", orderId: "nope" })).statusCode, 422);
    });

    test("RESTRICT: deleting a referred-to profile is 409 and changes nothing", async () => {
      const bob = await profile("bob@example.com");
      assert.equal((await record("Orders", { id: "o-bob", customerId: bob })).statusCode, 200);
      await clearEvents();
      const res = await t.request("DELETE", `/v4/entity/acme/table/Customers/profile/${bob}`);
      assert.equal(res.statusCode, 409, res.body);
      assert.equal(res.json().code, "HERALD_RECORD_REFERENCED");
      assert.match(res.json().message, /referred to by 1 record\(s\) of table 'Orders'/);
      assert.equal(
        (await t.request("GET", `/v4/entity/acme/table/Customers/profile/${bob}`)).statusCode,
        200,
      );
      assert.deepEqual(await events(), []);
      // Once the order is gone, the profile can go.
      const order = await t.request("DELETE", "/v4/entity/acme/customTable/Orders/record/o-bob");
      assert.equal(order.statusCode, 204, order.body);
      const again = await t.request("DELETE", `/v4/entity/acme/table/Customers/profile/${bob}`);
      assert.equal(again.statusCode, 204, again.body);
    });

    test("CASCADE: deleting an order deletes its lines, each with a DELETE event after the order's", async () => {
      const carol = await profile("carol@example.com");
      assert.equal((await record("Orders", { id: "o-c", customerId: carol })).statusCode, 200);
      for (const line of ["l-c1", "l-c2"])
        assert.equal((await record("OrderLines", { id: line, orderId: "o-c" })).statusCode, 200);
      assert.equal((await record("OrderLines", { id: "l-other", orderId: "o1" })).statusCode, 200);
      await clearEvents();
      const res = await t.request("DELETE", "/v4/entity/acme/customTable/Orders/record/o-c");
      assert.equal(res.statusCode, 204, res.body);
      assert.deepEqual(
        (await events()).map((e) => [e.source_id, e.event_type, e.record_key, e.version]),
        [
          [ids.Orders, "DELETE", "o-c", 2],
          [ids.OrderLines, "DELETE", "l-c1", 2],
          [ids.OrderLines, "DELETE", "l-c2", 2],
        ],
      );
      assert.equal(await count("OrderLines"), 1);
    });

    test("SET_NULL and a two-level CASCADE from one profile delete, all in one transaction", async () => {
      const dave = await profile("dave@example.com");
      assert.equal((await record("Notes", { id: "n1", customerId: dave })).statusCode, 200);
      assert.equal((await record("Carts", { id: "c1", customerId: dave })).statusCode, 200);
      assert.equal((await record("CartItems", { id: "i1", cartId: "c1" })).statusCode, 200);
      await clearEvents();
      const res = await t.request("DELETE", `/v4/entity/acme/table/Customers/profile/${dave}`);
      assert.equal(res.statusCode, 204, res.body);
      const rows = await events();
      assert.deepEqual(
        rows.map((e) => [e.source_id, e.event_type, e.record_key, e.version]),
        [
          [ids.Customers, "DELETE", String(dave), 2],
          [ids.Notes, "UPDATE", "n1", 2],
          [ids.Carts, "DELETE", "c1", 2],
          [ids.CartItems, "DELETE", "i1", 2],
        ],
      );
      const note = rows[1]!;
      assert.deepEqual(note.fields, ["customerId"]);
      assert.deepEqual(note.previous, { customerId: dave });
      const stored = await t.request("GET", "/v4/entity/acme/customTable/Notes/record/n1");
      assert.equal(stored.statusCode, 200);
      assert.ok(!stored.body.includes(String(dave)), stored.body);
      assert.equal(await count("Carts"), 0);
      assert.equal(await count("CartItems"), 0);
    });

    test("RESTRICT deep in a cascade refuses the whole delete", async () => {
      const erin = await profile("erin@example.com");
      assert.equal((await record("Carts", { id: "c-erin", customerId: erin })).statusCode, 200);
      assert.equal((await record("Orders", { id: "o-erin", customerId: erin })).statusCode, 200);
      assert.equal((await record("Notes", { id: "n-erin", customerId: erin })).statusCode, 200);
      await clearEvents();
      const res = await t.request("DELETE", `/v4/entity/acme/table/Customers/profile/${erin}`);
      assert.equal(res.statusCode, 409, res.body);
      assert.deepEqual(await events(), []);
      const cart = await t.request("GET", "/v4/entity/acme/customTable/Carts/record/c-erin");
      assert.equal(cart.statusCode, 200);
      const note = await t.request("GET", "/v4/entity/acme/customTable/Notes/record/n-erin");
      assert.ok(note.body.includes(String(erin)), note.body);
    });

    test("tables: a referred-to table cannot be deleted; a foreign key added later must hold", async () => {
      const del = await t.request("DELETE", `${TABLES}/Orders`);
      assert.equal(del.statusCode, 409, del.body);
      assert.match(del.json().message, /foreign key 'orderId' of table 'OrderLines'/);

      // Tags hold customer ids before they are declared a reference: one names no profile.
      const tags = custom("Tags", { attribute: "customerId", referencedTable: toCustomers });
      const plain = { ...tags, foreignKeys: [] };
      assert.equal((await t.request("POST", TABLES, plain)).statusCode, 201);
      const frank = await profile("frank@example.com");
      assert.equal((await record("Tags", { id: "t1", customerId: frank })).statusCode, 200);
      assert.equal((await record("Tags", { id: "t2", customerId: 424_242 })).statusCode, 200);
      const refused = await t.request("PUT", `${TABLES}/Tags`, tags);
      assert.equal(refused.statusCode, 422, refused.body);
      assert.match(refused.body, /record 't2' has customerId 424242/);
      assert.equal(
        (await t.request("DELETE", "/v4/entity/acme/customTable/Tags/record/t2")).statusCode,
        204,
      );
      const accepted = await t.request("PUT", `${TABLES}/Tags`, tags);
      assert.equal(accepted.statusCode, 200, accepted.body);
      assert.equal((await record("Tags", { id: "t3", customerId: 424_242 })).statusCode, 422);

      // The referred-to custom table keeps its identity while it is referred to.
      const emptyParent = {
        name: "Parents",
        type: "REPOSITORY",
        primaryKeyAttribute: "code",
        attributes: [
          { name: "code", valueType: "STRING" },
          { name: "other", valueType: "STRING" },
        ],
      };
      assert.equal((await t.request("POST", TABLES, emptyParent)).statusCode, 201);
      const child = custom("Children", {
        attribute: "parent",
        valueType: "STRING",
        referencedTable: { kind: "CUSTOM_TABLE", id: "Parents" },
      });
      assert.equal((await t.request("POST", TABLES, child)).statusCode, 201);
      const moved = await t.request("PUT", `${TABLES}/Parents`, {
        ...emptyParent,
        primaryKeyAttribute: "other",
      });
      assert.equal(moved.statusCode, 422, moved.body);
      assert.match(moved.body, /table 'Children' refers to this table's records by 'code'/);
      assert.equal((await t.request("DELETE", `${TABLES}/Children`)).statusCode, 204);
      assert.equal((await t.request("DELETE", `${TABLES}/Parents`)).statusCode, 204);
    });
  });
}

const postgres = (await testBackends()).find((b) => b.backend === "postgres")!;

describe(
  "foreign keys under concurrent writes and deletes on PostgreSQL",
  { skip: postgres.skip },
  () => {
    let t: TestApp;
    before(async () => {
      t = await createTestApp("postgres");
      assert.equal(
        (await t.request("POST", "/v5/entities/acme/profile-tables", CUSTOMERS)).statusCode,
        201,
      );
      for (const [name, onDelete] of [
        ["Kept", "RESTRICT"],
        ["Cascaded", "CASCADE"],
        ["Emptied", "SET_NULL"],
      ] as const) {
        const res = await t.request(
          "POST",
          TABLES,
          custom(name, { attribute: "customerId", referencedTable: toCustomers, onDelete }),
        );
        assert.equal(res.statusCode, 201, res.body);
      }
    });
    after(() => t?.close());

    test("a reference written while its profile is deleted never dangles", async () => {
      const statuses = new Map<number, number>();
      for (let round = 0; round < 15; round++) {
        const created = await t.request("POST", "/v4/entity/acme/table/Customers/profile", {
          attributes: [{ name: "emailAddress", value: `race${round}@example.com` }],
        });
        const id = (created.json() as { profileId: number }).profileId;
        const writes = ["Kept", "Cascaded", "Emptied"].flatMap((table) =>
          [0, 1, 2].map((i) =>
            t.request("POST", `/v4/entity/acme/customTable/${table}/record`, {
              properties: [
                { name: "id", value: `${table}-${round}-${i}` },
                { name: "customerId", value: id },
              ],
            }),
          ),
        );
        const results = await Promise.all([
          ...writes.slice(0, 4),
          t.request("DELETE", `/v4/entity/acme/table/Customers/profile/${id}`),
          ...writes.slice(4),
        ]);
        for (const res of results) {
          assert.ok([200, 204, 409, 422].includes(res.statusCode), res.body);
          statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
        }
      }
      const { rows } = await t.database.db.query<{ name: string; business_key: string }>(
        `SELECT d.name, r.business_key FROM records r JOIN data_tables d ON d.id = r.table_id
        WHERE d.kind = 'CUSTOM_TABLE' AND r.attributes ? 'customerId'
          AND NOT EXISTS (SELECT 1 FROM records p JOIN data_tables pt ON pt.id = p.table_id
                           WHERE pt.name = 'Customers'
                             AND p.record_id = (r.attributes ->> 'customerId')::bigint)`,
      );
      assert.deepEqual(rows, [], "records refer to deleted profiles");
      // Both orders happened: some deletes won (422 for later writes), some lost to RESTRICT (409).
      assert.ok(
        (statuses.get(422) ?? 0) + (statuses.get(409) ?? 0) > 0,
        JSON.stringify([...statuses]),
      );
    });

    test("a table defined with a foreign key while its referred-to table is deleted never dangles", async () => {
      for (let round = 0; round < 20; round++) {
        const parent = {
          name: `Parent${round}`,
          type: "REPOSITORY",
          primaryKeyAttribute: "code",
          attributes: [{ name: "code", valueType: "STRING" }],
        };
        assert.equal((await t.request("POST", TABLES, parent)).statusCode, 201);
        const child = custom(`Child${round}`, {
          attribute: "parent",
          valueType: "STRING",
          referencedTable: { kind: "CUSTOM_TABLE", id: parent.name },
        });
        // Two children defined beside the delete: one before it in the batch, one after.
        const results = await Promise.all([
          t.request("POST", TABLES, child),
          t.request("DELETE", `${TABLES}/${parent.name}`),
          t.request("POST", TABLES, { ...child, name: `Child${round}b` }),
        ]);
        // Whichever came first, the round ends consistent: a deleted parent has no child (both
        // refused, 422); a child defined first keeps its parent (the delete is refused, 409).
        const [first, deleted, second] = results.map((res) => res.statusCode);
        const outcome = JSON.stringify({ round, first, deleted, second });
        if (deleted === 204) assert.ok(first === 422 && second === 422, outcome);
        else {
          assert.equal(deleted, 409, outcome);
          assert.ok(first === 201 || second === 201, outcome);
          assert.ok([201, 422].includes(first!) && [201, 422].includes(second!), outcome);
        }
      }
      const { rows } = await t.database.db.query<{ name: string }>(
        // A deleted table's row lives on until its deletion job ends (deleted_at set).
        `SELECT d.name FROM data_tables d, jsonb_array_elements(d.definition -> 'foreignKeys') AS fk
          WHERE d.deleted_at IS NULL
            AND NOT EXISTS (SELECT 1 FROM data_tables p
                             WHERE p.id = fk -> 'referencedTable' ->> 'id' AND p.deleted_at IS NULL)`,
      );
      assert.deepEqual(rows, [], "tables refer to deleted tables");
    });
  },
);
