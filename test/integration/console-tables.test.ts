/**
 * The console's Tables pages and change-log browser (SPEC §8), through the console's own session:
 * real tables and records written through the API, their counts, structures and recent events,
 * the change-log filters and paging, refusals as pages, the key's entity scope, and markup in
 * record values shown as text. The bounded SQL behind them (console-table-reads.ts) is checked
 * directly where a page cannot show its edges.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { countRecords, searchLog } from "../../src/storage/console-table-reads.js";
import { stampPendingEvents } from "../../src/storage/sequencer-repository.js";
import type { ConsoleBrowser } from "../helpers/console-session.js";
import { signInToConsole } from "../helpers/console-session.js";
import type { TestApp } from "../helpers/test-app.js";
import { createTestApp, TEST_ADMIN_KEY, TEST_ENTITY } from "../helpers/test-app.js";
import { testBackends } from "../helpers/test-database.js";

const SCRIPT = "<script>alert(1)</script>";
const IMG = "<img src=x onerror=alert(1)>";

const CUSTOMERS = {
  name: "Customers",
  attributes: [
    { name: "emailAddress", type: "EMAIL_ADDRESS", unique: true, mandatory: true },
    { name: "firstName", type: "FIRSTNAME" },
    { name: "age", type: "CUSTOM", valueType: "INTEGER" },
  ],
  subscriptions: [{ name: "newsletter" }],
  segmentations: [{ name: "ClientType", type: "EXCLUSIVE", segments: ["Gold", "Silver"] }],
};

const ORDERS = {
  name: "Orders",
  type: "INTERACTIONS",
  primaryKeyAttribute: "orderId",
  attributes: [
    { name: "orderId", valueType: "STRING" },
    { name: "note", valueType: "STRING" },
    { name: "customerId", valueType: "LONG" },
  ],
  foreignKeys: [
    { attribute: "customerId", referencedTable: { kind: "PROFILE_TABLE", id: "Customers" } },
  ],
  eventsToTrigger: [{ name: "order-removed", triggerRules: [{ onOperation: "DELETE" }] }],
};

/** The rows of the page's data table: each row's cells as text, tags removed. */
function rowsOf(body: string): string[][] {
  const tbody = /<tbody>([\s\S]*?)<\/tbody>/g;
  const rows: string[][] = [];
  for (let m = tbody.exec(body); m; m = tbody.exec(body)) {
    for (const tr of m[1]!.split("</tr>").slice(0, -1))
      rows.push(
        [...tr.matchAll(/<td[^>]*>([\s\S]*?)<\/td>/g)].map((c) =>
          c[1]!
            .replace(/<details[\s\S]*<\/details>/, "")
            .replace(/<[^>]+>/g, "")
            .replace(/\s+/g, " ")
            .trim(),
        ),
      );
  }
  return rows;
}

/** The positions of the events listed on a page, in the page's order. */
function positionsOf(body: string): number[] {
  return [...body.matchAll(/<td data-label="Position" class="num">\s*(\d+)\s*<\/td>/g)].map((m) =>
    Number(m[1]),
  );
}

function hrefOf(body: string, text: string): string {
  const match = new RegExp(`<a href="([^"]+)"[^>]*>\\s*${text}\\s*</a\\s*>`).exec(body);
  assert.ok(match, `a link "${text}"`);
  return match[1]!.replaceAll("&amp;", "&");
}

for (const { backend, skip } of await testBackends()) {
  describe(`console tables and change log on ${backend}`, { skip }, () => {
    let t: TestApp;
    let admin: ConsoleBrowser;
    let limitedKey: string;
    let customersId: string;
    let ordersId: string;
    let entityId: number;
    const profileUrl = `/v4/entity/${TEST_ENTITY}/table/Customers/profile`;
    const orderUrl = `/v4/entity/${TEST_ENTITY}/customTable/Orders/record`;

    before(async () => {
      t = await createTestApp(backend);
      assert.equal((await t.request("POST", "/v4/entity", { name: "beta" })).statusCode, 201);
      limitedKey = (
        await t.request("POST", "/v4/api-keys", { name: "acme-only", entities: [TEST_ENTITY] })
      ).json().key;
      const customers = await t.request(
        "POST",
        `/v5/entities/${TEST_ENTITY}/profile-tables`,
        CUSTOMERS,
      );
      assert.equal(customers.statusCode, 201, customers.body);
      customersId = customers.json().id;
      const orders = await t.request("POST", `/v5/entities/${TEST_ENTITY}/custom-tables`, ORDERS);
      assert.equal(orders.statusCode, 201, orders.body);
      ordersId = orders.json().id;
      const profileIds: number[] = [];
      for (const [email, firstName] of [
        ["ann@example.com", SCRIPT],
        ["bob@example.com", "Bob"],
        ["cy@example.com", "Cy"],
      ]) {
        const created = await t.request("POST", profileUrl, {
          attributes: [
            { name: "emailAddress", value: email },
            { name: "firstName", value: firstName },
          ],
        });
        assert.equal(created.statusCode, 200, created.body);
        profileIds.push(created.json().profileId);
      }
      for (const [orderId, note] of [
        ["o-1", IMG],
        ["o-2", "second"],
      ]) {
        const created = await t.request("POST", orderUrl, {
          properties: [
            { name: "orderId", value: orderId },
            { name: "note", value: note },
            { name: "customerId", value: profileIds[0] },
          ],
        });
        assert.equal(created.statusCode, 200, created.body);
      }
      const update = await t.request("PUT", `${orderUrl}/o-2`, {
        properties: [{ name: "note", value: "changed" }],
      });
      assert.equal(update.statusCode, 200, update.body);
      assert.equal((await t.request("DELETE", `${profileUrl}/${profileIds[2]}`)).statusCode, 204);
      await stampPendingEvents(t.database.db);
      const entity = await t.request("GET", `/v4/entity/${TEST_ENTITY}`);
      entityId = entity.json().id;
      admin = await signInToConsole(t, TEST_ADMIN_KEY);
    });
    after(() => t?.close());

    test("the Tables page lists both tables with their attributes, record counts and last event", async () => {
      const page = await admin.get(`/ui/e/${TEST_ENTITY}/tables`);
      assert.equal(page.statusCode, 200, page.body);
      const rows = rowsOf(page.body);
      const customers = rows.find((r) => r[0] === "Customers");
      const orders = rows.find((r) => r[0] === "Orders");
      assert.ok(customers && orders, JSON.stringify(rows));
      // Name, Id, Attributes, Records, Last event.
      assert.equal(customers[1], customersId);
      assert.equal(customers[2], "3");
      assert.equal(customers[3], "2", "three profiles written, one deleted");
      assert.match(customers[4]!, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/);
      // Name, Type, Primary key, Attributes, Records, Last event.
      assert.deepEqual(orders.slice(1, 5), ["INTERACTIONS", "orderId", "3", "2"]);
      assert.match(orders[5]!, /^\d{4}-/);
      assert.match(page.body, new RegExp(`href="/ui/e/${TEST_ENTITY}/tables/custom/${ordersId}"`));
      assert.match(page.body, /aria-current="page">Tables</);
    });

    test("a profile table's page shows its structure, record count and recent events, markup as text", async () => {
      const page = await admin.get(`/ui/e/${TEST_ENTITY}/tables/profile/${customersId}`);
      assert.equal(page.statusCode, 200, page.body);
      assert.match(page.body, /<h1>Profile table Customers<\/h1>/);
      assert.match(page.body, /<dt>Records<\/dt>\s*<dd>2<\/dd>/);
      const rows = rowsOf(page.body);
      assert.deepEqual(rows[0], [
        "emailAddress",
        "EMAIL_ADDRESS (STRING)",
        "yes",
        "yes",
        "no",
        "—",
      ]);
      assert.deepEqual(rows[2]?.slice(0, 2), ["age", "INTEGER"]);
      assert.match(page.body, /<code>newsletter<\/code>/);
      assert.match(page.body, /ClientType[\s\S]*EXCLUSIVE[\s\S]*Gold, Silver/);
      // Recent events, newest first: the DELETE of Cy, then the three CREATEs.
      const events = rows.filter((r) => /^\d+$/.test(r[0]!));
      assert.deepEqual(
        events.map((r) => r[2]),
        ["DELETE", "CREATE", "CREATE", "CREATE"],
      );
      const positions = positionsOf(page.body);
      assert.deepEqual(
        positions,
        [...positions].sort((a, b) => b - a),
      );
      assert.match(page.body, /<details class="event-payload">\s*<summary>JSON/);
      assert.match(
        page.body,
        /&quot;firstName&quot;: &quot;&lt;script&gt;alert\(1\)&lt;\/script&gt;&quot;/,
      );
      assert.doesNotMatch(page.body, /<script>alert/);
      const all = hrefOf(page.body, "All events of this table");
      assert.equal(
        all,
        `/ui/e/${TEST_ENTITY}/change-log?source=${encodeURIComponent(`PROFILE_TABLE:${customersId}`)}`,
      );
    });

    test("a custom table's page shows its key, foreign key and declared events", async () => {
      const page = await admin.get(`/ui/e/${TEST_ENTITY}/tables/custom/Orders`);
      assert.equal(page.statusCode, 200, page.body);
      assert.match(page.body, /<h1>Custom table Orders<\/h1>/);
      assert.match(page.body, /<dt>Primary key<\/dt>\s*<dd><code>orderId<\/code><\/dd>/);
      assert.match(
        page.body,
        new RegExp(
          `<a href="/ui/e/${TEST_ENTITY}/tables/profile/${customersId}">Customers</a\\s*>\\.<code>profileId</code>\\s*\\(on delete\\s+RESTRICT\\)`,
        ),
      );
      assert.match(page.body, /<code>order-removed<\/code>[\s\S]*DELETE/);
      const events = rowsOf(page.body).filter((r) => /^\d+$/.test(r[0]!));
      assert.deepEqual(
        events.map((r) => [r[2], r[3], r[4]]),
        [
          ["UPDATE", "o-2", "note"],
          ["CREATE", "o-2", "orderId, note, customerId"],
          ["CREATE", "o-1", "orderId, note, customerId"],
        ],
      );
      assert.match(page.body, /&lt;img src=x onerror=alert\(1\)&gt;/);
      assert.doesNotMatch(page.body, /<img src=x/);
    });

    test("the change log lists the newest events first and filters by table and event type", async () => {
      const all = await admin.get(`/ui/e/${TEST_ENTITY}/change-log`);
      assert.equal(all.statusCode, 200, all.body);
      const positions = positionsOf(all.body);
      assert.equal(
        positions.length,
        7,
        "3 profiles and 2 orders created, 1 order updated, 1 profile deleted",
      );
      assert.deepEqual(
        positions,
        [...positions].sort((a, b) => b - a),
      );
      assert.match(all.body, /<h2>Newest events<\/h2>/);
      assert.match(all.body, /&lt;img src=x onerror=alert\(1\)&gt;/);
      assert.doesNotMatch(all.body, /<img src=x|<script>alert/);
      assert.match(
        all.body,
        new RegExp(`<a href="/ui/e/${TEST_ENTITY}/tables/custom/${ordersId}">Orders</a>`),
      );

      const orders = await admin.get(
        `/ui/e/${TEST_ENTITY}/change-log?source=CUSTOM_TABLE%3A${ordersId}&eventType=`,
      );
      assert.equal(orders.statusCode, 200, orders.body);
      const orderRows = rowsOf(orders.body);
      assert.deepEqual(
        orderRows.map((r) => [r[2], r[3], r[4]]),
        [
          ["UPDATE", "Orders", "o-2"],
          ["CREATE", "Orders", "o-2"],
          ["CREATE", "Orders", "o-1"],
        ],
      );
      assert.match(orders.body, new RegExp(`<option value="CUSTOM_TABLE:${ordersId}" selected`));

      const deletes = await admin.get(`/ui/e/${TEST_ENTITY}/change-log?eventType=DELETE`);
      assert.deepEqual(
        rowsOf(deletes.body).map((r) => r[2]),
        ["DELETE"],
      );
      assert.match(deletes.body, /<option value="DELETE" selected/);
    });

    test("the change log pages older and newer by position, and reads after a position", async () => {
      // Seven events, three a page: 7 6 5, then 4 3 2, then 1.
      const newest = await admin.get(`/ui/e/${TEST_ENTITY}/change-log?limit=3`);
      const all = positionsOf((await admin.get(`/ui/e/${TEST_ENTITY}/change-log`)).body);
      assert.equal(all.length, 7);
      assert.deepEqual(positionsOf(newest.body), all.slice(0, 3));
      assert.doesNotMatch(newest.body, />\s*Newer events\s*</, "nothing is newer than the newest");
      const older = await admin.get(hrefOf(newest.body, "Older events"));
      assert.equal(older.statusCode, 200, older.body);
      assert.deepEqual(positionsOf(older.body), all.slice(3, 6));
      assert.match(older.body, /<input[^>]*name="limit"[^>]*value="3"/);
      const oldest = await admin.get(hrefOf(older.body, "Older events"));
      assert.deepEqual(positionsOf(oldest.body), all.slice(6));
      assert.doesNotMatch(oldest.body, />\s*Older events\s*</, "the start of the log");
      const back = await admin.get(hrefOf(oldest.body, "Newer events"));
      assert.deepEqual(positionsOf(back.body), all.slice(3, 6));
      const head = await admin.get(hrefOf(back.body, "Newest events"));
      assert.deepEqual(positionsOf(head.body), all.slice(0, 3));
      const lowest = all.at(-1)!;
      const afterFirst = await admin.get(`/ui/e/${TEST_ENTITY}/change-log?after=${lowest}&limit=2`);
      assert.equal(afterFirst.statusCode, 200);
      assert.match(afterFirst.body, new RegExp(`<h2>Events after position ${lowest}</h2>`));
      assert.deepEqual(positionsOf(afterFirst.body), all.slice(-3, -1));
      assert.match(afterFirst.body, new RegExp(`name="after"[^>]*value="${lowest}"`));
    });

    test("filters the API refuses are shown in the page with the API's status and message", async () => {
      const cases: [string, number, RegExp][] = [
        ["after=abc", 400, /after/],
        ["limit=5000", 400, /limit must be between 1 and 1000/],
        ["eventType=BOGUS", 400, /eventType/],
        ["source=NOWHERE", 400, /\bon\b/],
        [
          "source=PROFILE_TABLE%3A999",
          404,
          /Table &#39;999&#39; does not exist in entity &#39;acme&#39;/,
        ],
        ["before=x", 400, /must be a log position/],
        ["limit=500", 400, /at most 200 events a page/],
        ["after=1&before=5", 400, /not both/],
      ];
      for (const [query, status, message] of cases) {
        const page = await admin.get(`/ui/e/${TEST_ENTITY}/change-log?${query}`);
        assert.equal(page.statusCode, status, `${query}: ${page.body}`);
        assert.match(page.body, /class="notice error"/, query);
        assert.match(page.body, message, query);
        assert.match(page.body, /<form method="get"[^>]*class="filters"/, "the form stays");
        assert.doesNotMatch(page.body, /<h2>Newest events/, query);
      }
      const typed = await admin.get(`/ui/e/${TEST_ENTITY}/change-log?after=abc`);
      assert.match(typed.body, /name="after"[\s\S]*?value="abc"/, "the value typed is kept");
    });

    test("unknown tables and table kinds are 404 pages", async () => {
      const kind = await admin.get(`/ui/e/${TEST_ENTITY}/tables/other/${customersId}`);
      assert.equal(kind.statusCode, 404);
      assert.match(kind.body, /no such kind of table/);
      const missing = await admin.get(`/ui/e/${TEST_ENTITY}/tables/custom/${customersId}`);
      assert.equal(missing.statusCode, 404);
      assert.match(missing.body, /does not exist in entity/);
      assert.match(missing.headers["content-type"] as string, /text\/html/);
    });

    test("a key limited to one entity is refused another's tables and change log", async () => {
      const limited = await signInToConsole(t, limitedKey);
      assert.equal((await limited.get(`/ui/e/${TEST_ENTITY}/tables`)).statusCode, 200);
      for (const path of ["tables", `tables/profile/${customersId}`, "change-log"]) {
        const page = await limited.get(`/ui/e/beta/${path}`);
        assert.equal(page.statusCode, 403, path);
        assert.match(page.headers["content-type"] as string, /text\/html/);
        assert.doesNotMatch(page.body, /Customers|<tbody>/, path);
      }
    });

    test("record counts are exact up to a cap, then PostgreSQL's estimate or 'more than'", async () => {
      const table = async (name: string, records: number) => {
        const created = await t.request("POST", `/v5/entities/${TEST_ENTITY}/custom-tables`, {
          name,
          type: "REPOSITORY",
          primaryKeyAttribute: "k",
          attributes: [{ name: "k", valueType: "STRING" }],
        });
        const id = created.json().id as string;
        // Straight into the storage: many records without their events.
        await t.database.db.query(
          `INSERT INTO records (table_id, business_key, attributes)
           SELECT $1, 'k' || n, jsonb_build_object('k', 'k' || n) FROM generate_series(1, $2::int) n`,
          [id, records],
        );
        return id;
      };
      const bigId = await table("Big", 10_001);
      await t.database.db.query("ANALYZE records");
      // Written after the statistics were taken: they do not know this table.
      const laterId = await table("Later", 1_001);
      const list = rowsOf((await admin.get(`/ui/e/${TEST_ENTITY}/tables`)).body);
      assert.equal(list.find((r) => r[0] === "Big")?.[4], "about 10,000");
      assert.equal(list.find((r) => r[0] === "Later")?.[4], "more than 1,000");
      assert.equal(list.find((r) => r[0] === "Orders")?.[4], "2");
      const big = await admin.get(`/ui/e/${TEST_ENTITY}/tables/custom/${bigId}`);
      assert.match(big.body, /<dt>Records<\/dt>\s*<dd>about 10,000<\/dd>/);
      assert.match(big.body, /has no event in the change log/);
      const later = await admin.get(`/ui/e/${TEST_ENTITY}/tables/custom/${laterId}`);
      assert.match(later.body, /<dt>Records<\/dt>\s*<dd>1,001<\/dd>/);
      const counts = await countRecords(t.database.db, [bigId, laterId, customersId, "none"], 100);
      const estimate = counts.get(bigId);
      assert.equal(estimate?.kind, "about");
      assert.ok(Math.abs(estimate.count - 10_001) <= 2, `estimate ${estimate.count}`);
      assert.deepEqual(counts.get(laterId), { kind: "more", count: 100 });
      assert.deepEqual(counts.get(customersId), { kind: "exact", count: 2 });
      assert.deepEqual(counts.get("none"), { kind: "exact", count: 0 });
    });

    test("a log search looks at a bounded range of positions and says where it stopped", async () => {
      // Positions 1-3 create the profiles, 4-5 the orders, 6 updates an order, 7 deletes Cy.
      const all = positionsOf((await admin.get(`/ui/e/${TEST_ENTITY}/change-log`)).body);
      assert.deepEqual(all, [7, 6, 5, 4, 3, 2, 1]);
      const orders = { source: "CUSTOM_TABLE", sourceId: ordersId };
      const search = (s: Partial<Parameters<typeof searchLog>[1]>) =>
        searchLog(t.database.db, {
          entityId,
          filter: {},
          direction: "newest",
          from: 0,
          count: 50,
          window: 100,
          ...s,
        });
      // The three newest positions hold two order events: the window ran out before the log did.
      assert.deepEqual(await search({ filter: orders, count: 5, window: 3 }), {
        positions: [5, 6],
        searchedTo: 5,
        range: { first: 5, last: 7 },
      });
      assert.deepEqual(await search({ direction: "before", from: 5, filter: orders, window: 3 }), {
        positions: [4],
        searchedTo: 2,
        range: { first: 2, last: 4 },
      });
      assert.deepEqual(await search({ direction: "before", from: 3, window: 5 }), {
        positions: [1, 2],
        searchedTo: undefined,
        range: { first: 1, last: 2 },
      });
      assert.deepEqual(await search({ direction: "after", from: 1, count: 3 }), {
        positions: [2, 3, 4],
        searchedTo: undefined,
        range: { first: 2, last: 7 },
      });
      assert.deepEqual(await search({ direction: "after", from: 0, filter: orders, window: 2 }), {
        positions: [],
        searchedTo: 2,
        range: { first: 1, last: 2 },
      });
      assert.deepEqual(await search({ direction: "after", from: 0, filter: orders }), {
        positions: [4, 5, 6],
        searchedTo: undefined,
        range: { first: 1, last: 7 },
      });
      assert.deepEqual((await search({ entityId: entityId + 1000 })).positions, []);
    });

    // Last: it buries acme's events under another entity's.
    test("when another entity's events fill the window, the pages say how far they looked", async () => {
      const beta = (await t.request("GET", "/v4/entity/beta")).json().id as number;
      await t.database.db.query(
        `INSERT INTO change_events (position, entity_id, source, source_id, event_type, record_key, sequenced_at)
         SELECT n, $1, 'CUSTOM_TABLE', 'elsewhere', 'CREATE', n::text, now() FROM generate_series(8, 20012) n`,
        [beta],
      );
      await t.database.db.query("UPDATE log_head SET position = 20012");
      const source = `source=CUSTOM_TABLE%3A${ordersId}`;
      const newest = await admin.get(`/ui/e/${TEST_ENTITY}/change-log?${source}`);
      assert.equal(newest.statusCode, 200, newest.body);
      assert.deepEqual(positionsOf(newest.body), []);
      assert.match(
        newest.body,
        /looked through log positions 13 to 20012 \(the\s+log's positions are shared by every entity\) and found\s+no event that matches/,
      );
      const older = await admin.get(hrefOf(newest.body, "Older events"));
      assert.deepEqual(positionsOf(older.body), [6, 5, 4]);
      const detail = await admin.get(`/ui/e/${TEST_ENTITY}/tables/custom/${ordersId}`);
      assert.match(
        detail.body,
        /This table has no event among the log&#39;s last 20,000 positions/,
      );
      const list = rowsOf((await admin.get(`/ui/e/${TEST_ENTITY}/tables`)).body);
      assert.equal(list.find((r) => r[0] === "Orders")?.[5], "—");
      // Forward from the start: the window ends at 20,000 and the next page goes on from there.
      const forward = await admin.get(`/ui/e/${TEST_ENTITY}/change-log?after=7&${source}`);
      assert.deepEqual(positionsOf(forward.body), []);
      assert.match(hrefOf(forward.body, "Newer events"), /after=20007/);
    });
  });
}
