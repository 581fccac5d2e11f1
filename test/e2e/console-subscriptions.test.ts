/**
 * The Subscriptions pages in Chromium, against a Herald with a real sequencer, delivery worker and
 * loopback receiver: sign in, create a subscription through the form (a refused one first), make
 * another fail (its receiver path answers 500) and write profiles so attempts exist, walk from the
 * list to it and open an attempt (request and response), replay, pause and resume (the page and the
 * API agree), a 390-pixel phone that never scrolls sideways, markup in data shown as text, and no
 * console error or CSP violation. Screenshots for docs/console.md.
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
import type { TestApp } from "../helpers/test-app.js";
import { testBackends } from "../helpers/test-database.js";

const API = "/v4/entity/acme/webhookSubscription";
const MARKUP = "<b>x</b>";

interface Sub {
  id: number;
  isActive: boolean;
  status: { state: string };
}

/** Polls `check` until it holds; fails with `what` after `timeoutMs`. */
async function eventually(
  check: () => Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const noBrowser = chromiumUnavailable();

for (const { backend, skip } of await testBackends()) {
  describe(`console subscriptions in Chromium on ${backend}`, { skip: skip || noBrowser }, () => {
    let server: ConsoleServer;
    let t: TestApp;
    let browser: Browser;
    let failing: Sub;

    const read = async (id: number): Promise<Sub> =>
      (await t.request("GET", `${API}/${id}`)).json() as Sub;

    before(async () => {
      server = await startConsoleServer(backend);
      t = server.engine.app;
      browser = await launchChromium();
      const table = await t.request("POST", "/v5/entities/acme/profile-tables", {
        name: "Customers",
        attributes: [
          { name: "emailAddress", type: "EMAIL_ADDRESS", unique: true, mandatory: true },
          { name: "city", type: "CUSTOM", valueType: "STRING" },
        ],
      });
      assert.equal(table.statusCode, 201, table.body);
      // The receiver's /hook/fail path answers 500 to everything.
      server.engine.receiver.respondWith((request) =>
        request.path.startsWith("/hook/fail")
          ? { status: 500, body: `${MARKUP} down for maintenance` }
          : undefined,
      );
      const created = await t.request("POST", API, {
        on: "PROFILE_TABLE",
        onElementId: "Customers",
        eventType: "CREATE",
        targetUrl: `${server.engine.receiver.url}/fail?note=${MARKUP}`,
        headers: { "X-Note": MARKUP },
      });
      assert.equal(created.statusCode, 201, created.body);
      failing = created.json() as Sub;
      server.engine.worker.wake();
      for (let i = 1; i <= 6; i++) {
        const written = await t.request("POST", "/v4/entity/acme/table/Customers/profile", {
          attributes: [
            { name: "emailAddress", value: `p${i}@example.com` },
            { name: "city", value: `City ${i}` },
          ],
        });
        assert.ok(written.statusCode < 300, written.body);
      }
    });
    after(async () => {
      await browser?.close();
      await server?.close();
    });

    test("create through the form, after a refusal shown by the field", async () => {
      const context = await newContext(browser);
      const page = await context.newPage();
      const errors = watchPageErrors(page);
      await signIn(page, server.baseUrl);
      await page.goto(`${server.baseUrl}/ui/e/acme/subscriptions`);
      await page.getByRole("link", { name: "New subscription" }).click();
      await page.getByLabel("Table or element (name or id)").fill("Customers");
      await page.getByLabel("Event type").selectOption("UPDATE");
      await page.getByLabel("Only when these fields are involved (onFields)").fill("city");
      await page.getByLabel("Target URL").fill("ftp://example.com/hook");
      await page.getByLabel("Extra request headers").fill(`X-Note: ${MARKUP}`);
      await page.getByRole("button", { name: "Create subscription" }).click();
      await page.locator("#f-targetUrl-error").waitFor();
      assert.match(await page.locator("#f-targetUrl-error").innerText(), /https?:\/\//);
      assert.equal(
        await page.getByLabel("Target URL").getAttribute("aria-describedby"),
        "f-targetUrl-error",
      );
      assert.equal(
        await page.getByLabel("Extra request headers").inputValue(),
        `X-Note: ${MARKUP}`,
      );
      await screenshot(page, "subscription-form-error");

      await page.getByLabel("Target URL").fill(`${server.engine.receiver.url}/created`);
      await page.getByRole("button", { name: "Create subscription" }).click();
      await page.getByText("The subscription was created").waitFor();
      const id = Number(/subscriptions\/(\d+)/.exec(page.url())?.[1]);
      const created = (await t.request("GET", `${API}/${id}`)).json() as {
        onFields: string[];
        headers: Record<string, string>;
        eventType: string;
      };
      assert.deepEqual(created.onFields, ["city"]);
      assert.deepEqual(created.headers, { "X-Note": MARKUP });
      assert.equal(created.eventType, "UPDATE");
      // The header's markup is text on the page.
      await page.getByText(`X-Note: ${MARKUP}`).waitFor();
      assert.equal(await page.locator("main dl.facts b").count(), 0);
      assert.deepEqual(errors, []);
      await context.close();
    });

    test("walk to the failing subscription, read an attempt, replay, pause and resume", async () => {
      // Every record fails twice at once (the schedule's first retry is immediate): after ten
      // failures in a row the circuit opens.
      await eventually(
        async () => (await read(failing.id)).status.state === "FAILING",
        20_000,
        "the failing subscription to be FAILING",
      );
      const context = await newContext(browser);
      const page = await context.newPage();
      const errors = watchPageErrors(page);
      await signIn(page, server.baseUrl);
      await page.goto(`${server.baseUrl}/ui/e/acme/subscriptions`);
      const row = page.locator("tr", { has: page.getByRole("link", { name: `#${failing.id}` }) });
      await row.getByText("FAILING", { exact: true }).waitFor();
      await row.getByText(/failing for/).waitFor();
      await screenshot(page, "subscriptions-list");

      await page.getByRole("link", { name: `#${failing.id}`, exact: true }).click();
      await page.waitForURL(`**/subscriptions/${failing.id}`);
      await page.locator("main .badge", { hasText: "FAILING" }).first().waitFor();
      // The target's markup is text.
      await page.locator("dl.settings dd code", { hasText: `note=${MARKUP}` }).waitFor();
      assert.equal(await page.locator("main code b, main dd b").count(), 0);

      // The newest attempt: its response, then the events of its request once opened.
      const attempt = page.locator("#attempts details").first();
      await attempt.locator("summary").click();
      await attempt.getByText("HTTP 500", { exact: true }).waitFor();
      await attempt.locator("pre", { hasText: `${MARKUP} down for maintenance` }).waitFor();
      await attempt.locator(".push-events pre", { hasText: "@example.com" }).waitFor();
      assert.match(await attempt.locator("dd code").first().innerText(), /^POST http:/);
      await screenshot(page, "subscription-detail");

      // Replay from position 1.
      await page.getByLabel("From log position").fill("1");
      await page.getByRole("button", { name: "Replay", exact: true }).click();
      await page.getByText("The replay was requested").waitFor();
      const replays = (
        (await t.request("GET", `${API}/${failing.id}/replays`)).json() as {
          replays: { id: number; fromPosition: number }[];
        }
      ).replays;
      assert.equal(replays.length, 1);
      assert.equal(replays[0]!.fromPosition, 1);
      await page.locator("td[data-label='Replay']", { hasText: String(replays[0]!.id) }).waitFor();

      // Pause, then resume: the page and the API agree.
      await page.getByRole("button", { name: "Pause" }).click();
      await page.getByText("The subscription is paused").waitFor();
      await page.locator("dl.status .badge", { hasText: "paused" }).waitFor();
      assert.equal((await read(failing.id)).isActive, false);
      await page.getByRole("button", { name: "Resume" }).click();
      await page.getByText("The subscription is active again").waitFor();
      const state = await page.locator("dl.status dd .badge").first().innerText();
      assert.ok(["active", "FAILING"].includes(state), `state after resume: ${state}`);
      assert.equal((await read(failing.id)).isActive, true);
      assert.deepEqual(errors, []);
      await context.close();
    });

    test("a 390-pixel phone reads the list and a subscription without scrolling sideways", async () => {
      const context = await newContext(browser, "phone");
      const page: Page = await context.newPage();
      const errors = watchPageErrors(page);
      await signIn(page, server.baseUrl);
      await page.goto(`${server.baseUrl}/ui/e/acme/subscriptions`);
      await page.getByRole("link", { name: `#${failing.id}`, exact: true }).waitFor();
      assert.equal(await scrollsSideways(page), false, "the list fits the phone");
      // The list as cards (the subscription's own page is long on a phone: its attempts and the
      // day's error log each make a card per row).
      await screenshot(page, "subscription-phone");
      await page.goto(`${server.baseUrl}/ui/e/acme/subscriptions/${failing.id}`);
      await page.locator("#attempts details").first().locator("summary").click();
      await page.locator("#attempts .push-events pre").first().waitFor();
      assert.equal(await scrollsSideways(page), false, "the subscription's page fits the phone");
      assert.deepEqual(errors, []);
      await context.close();
    });
  });
}
