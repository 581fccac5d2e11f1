/**
 * The Tables pages and the change-log browser in Chromium: from the entity to a table, its
 * structure and recent events, an event's payload, on to the change log filtered on the table and
 * an event type, paging; markup in record values shown as text; a 390-pixel phone never scrolling
 * sideways. Screenshots for docs/console.md: tables, table-detail, change-log, change-log-phone.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { Browser, Page } from "playwright-core";
import type { ConsoleServer } from "../helpers/console-browser.js";
import {
  chromiumUnavailable,
  launchChromium,
  newContext,
  screenshot,
  scrollsSideways,
  signIn,
  startConsoleServer,
  watchPageErrors,
} from "../helpers/console-browser.js";
import { TEST_ENTITY } from "../helpers/test-app.js";
import { testBackends } from "../helpers/test-database.js";

const noBrowser = chromiumUnavailable();
const SCRIPT = "<script>alert(1)</script>";
const IMG = "<img src=x onerror=alert(1)>";

/** The positions listed on the page, top to bottom. */
async function positions(page: Page): Promise<number[]> {
  const cells = await page.locator('td[data-label="Position"]').allInnerTexts();
  return cells.map((c) => Number(c.trim()));
}

for (const { backend, skip } of await testBackends()) {
  describe(
    `console tables and change log in Chromium on ${backend}`,
    { skip: skip || noBrowser },
    () => {
      let server: ConsoleServer;
      let browser: Browser;
      let customersId: string;
      let ordersId: string;
      before(async () => {
        [server, browser] = await Promise.all([startConsoleServer(backend), launchChromium()]);
        const api = server.engine.app;
        const customers = await api.request("POST", `/v5/entities/${TEST_ENTITY}/profile-tables`, {
          name: "Customers",
          attributes: [
            { name: "emailAddress", type: "EMAIL_ADDRESS", unique: true, mandatory: true },
            { name: "firstName", type: "FIRSTNAME" },
          ],
          subscriptions: [{ name: "newsletter" }],
          segmentations: [{ name: "ClientType", type: "EXCLUSIVE", segments: ["Gold", "Silver"] }],
        });
        assert.equal(customers.statusCode, 201, customers.body);
        customersId = customers.json().id;
        const orders = await api.request("POST", `/v5/entities/${TEST_ENTITY}/custom-tables`, {
          name: "Orders",
          type: "INTERACTIONS",
          primaryKeyAttribute: "orderId",
          attributes: [
            { name: "orderId", valueType: "STRING" },
            { name: "note", valueType: "STRING" },
            { name: "customerId", valueType: "LONG" },
          ],
          foreignKeys: [
            {
              attribute: "customerId",
              referencedTable: { kind: "PROFILE_TABLE", id: "Customers" },
            },
          ],
        });
        assert.equal(orders.statusCode, 201, orders.body);
        ordersId = orders.json().id;
        const names = ["Ann", SCRIPT, "Cy", "Di", "Ed"];
        const profileIds: number[] = [];
        for (const [i, firstName] of names.entries()) {
          const created = await api.request(
            "POST",
            `/v4/entity/${TEST_ENTITY}/table/Customers/profile`,
            {
              attributes: [
                { name: "emailAddress", value: `p${i}@example.com` },
                { name: "firstName", value: firstName },
              ],
            },
          );
          assert.equal(created.statusCode, 200, created.body);
          profileIds.push(created.json().profileId);
        }
        const renamed = await api.request(
          "PUT",
          `/v4/entity/${TEST_ENTITY}/table/Customers/profile/${profileIds[0]}`,
          { attributes: [{ name: "firstName", value: "Anne" }] },
        );
        assert.equal(renamed.statusCode, 200, renamed.body);
        const order = await api.request(
          "POST",
          `/v4/entity/${TEST_ENTITY}/customTable/Orders/record`,
          {
            properties: [
              { name: "orderId", value: "o-1" },
              { name: "note", value: IMG },
              { name: "customerId", value: profileIds[1] },
            ],
          },
        );
        assert.equal(order.statusCode, 200, order.body);
        // Seven events; the sequencer stamps them within moments.
        const deadline = Date.now() + 10_000;
        for (;;) {
          const log = await api.request("GET", `/v5/entities/${TEST_ENTITY}/change-events`);
          if (log.json().events.length >= 7) break;
          assert.ok(Date.now() < deadline, "the sequencer stamped the events");
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      });
      after(async () => {
        await browser?.close();
        await server?.close();
      });

      test("from the entity to a table, its events and payloads, and on to the filtered change log", async () => {
        const context = await newContext(browser);
        const page = await context.newPage();
        const errors = watchPageErrors(page);
        await signIn(page, server.baseUrl);
        await page.getByRole("link", { name: TEST_ENTITY, exact: true }).click();
        await page.waitForURL(`${server.baseUrl}/ui/e/${TEST_ENTITY}/tables`);
        const customersRow = page.locator("tr", {
          has: page.getByRole("link", { name: "Customers" }),
        });
        assert.equal(
          (await customersRow.locator('td[data-label="Records"]').innerText()).trim(),
          "5",
        );
        assert.equal(
          (await customersRow.locator('td[data-label="Attributes"]').innerText()).trim(),
          "2",
        );
        await screenshot(page, "tables");

        await page.getByRole("link", { name: "Customers" }).click();
        await page.waitForURL(
          `${server.baseUrl}/ui/e/${TEST_ENTITY}/tables/profile/${customersId}`,
        );
        await page.getByRole("heading", { name: "Profile table Customers" }).waitFor();
        await page.getByRole("cell", { name: "emailAddress", exact: true }).waitFor();
        await page.getByRole("cell", { name: "Gold, Silver" }).waitFor();
        // Newest first: the UPDATE of Ann, then the five CREATEs.
        const listed = await positions(page);
        assert.equal(listed.length, 6);
        assert.deepEqual(
          listed,
          [...listed].sort((a, b) => b - a),
        );
        // The profile whose first name is a script tag: its payload opens as text.
        const scriptEvent = listed[listed.length - 2]!;
        await page.getByText(`JSON of event ${scriptEvent}`).click();
        const payload = page.locator("details[open] pre");
        await payload.waitFor();
        assert.match(await payload.innerText(), /"firstName": "<script>alert\(1\)<\/script>"/);
        assert.equal(await page.locator("script:not([src])").count(), 0, "no script element made");
        await screenshot(page, "table-detail");

        await page.getByRole("link", { name: "All events of this table" }).click();
        await page.waitForURL(/\/change-log\?source=PROFILE_TABLE%3A/);
        assert.equal(
          await page.getByLabel("Table or source").inputValue(),
          `PROFILE_TABLE:${customersId}`,
        );
        await page.getByLabel("Event type").selectOption("CREATE");
        await page.getByLabel("Page size").fill("2");
        await page.getByRole("button", { name: "Show" }).click();
        await page.waitForURL(/eventType=CREATE/);
        const first = await positions(page);
        assert.equal(first.length, 2);
        const types = await page.locator('td[data-label="Event"]').allInnerTexts();
        assert.deepEqual(
          types.map((t) => t.trim()),
          ["CREATE", "CREATE"],
        );
        await page.getByRole("link", { name: "Older events" }).click();
        await page.waitForURL(/before=/);
        const second = await positions(page);
        assert.equal(second.length, 2);
        assert.ok(second[0]! < first[1]!, `older ${second} after ${first}`);
        await page.getByRole("link", { name: "Newer events" }).click();
        await page.waitForURL(/after=/);
        assert.deepEqual(await positions(page), first);

        // Another table: the order whose note is an image tag.
        await page.getByLabel("Table or source").selectOption({ label: "Orders" });
        await page.getByLabel("Event type").selectOption("");
        await page.getByLabel("Page size").fill("50");
        // The paging left its position in the form; the newest events again.
        assert.equal(await page.getByLabel("After position").inputValue(), String(second[0]));
        await page.getByLabel("After position").fill("");
        await page.getByRole("button", { name: "Show" }).click();
        await page.waitForURL(new RegExp(`source=CUSTOM_TABLE%3A${ordersId}`));
        assert.equal((await positions(page)).length, 1);
        await page.getByText(/^JSON/).first().click();
        await page.getByText(`"note": "${IMG}"`, { exact: false }).waitFor();
        assert.equal(await page.locator("img[src=x]").count(), 0, "no image element made");
        await page.getByLabel("Table or source").selectOption("");
        await page.getByRole("button", { name: "Show" }).click();
        await page.waitForURL(/source=&/);
        assert.equal((await positions(page)).length, 7);
        await screenshot(page, "change-log");
        assert.deepEqual(errors, []);
        await context.close();
      });

      test("a 390-pixel phone does not scroll sideways on any of these pages", async () => {
        const context = await newContext(browser, "phone");
        const page = await context.newPage();
        const errors = watchPageErrors(page);
        await signIn(page, server.baseUrl);
        const base = `${server.baseUrl}/ui/e/${TEST_ENTITY}`;
        for (const path of [
          "/tables",
          `/tables/profile/${customersId}`,
          `/tables/custom/${ordersId}`,
          "/change-log",
        ]) {
          await page.goto(`${base}${path}`);
          assert.equal(await scrollsSideways(page), false, path);
          const payloads = page.locator("details.event-payload summary");
          if ((await payloads.count()) === 0) continue;
          // With a payload open, too.
          await payloads.first().click();
          await page.locator("details[open] pre").waitFor();
          assert.equal(await scrollsSideways(page), false, `${path} with a payload open`);
        }
        await screenshot(page, "change-log-phone");
        assert.deepEqual(errors, []);
        await context.close();
      });
    },
  );
}
