/**
 * The console's guards in a real browser: a form on another site that posts to the console is
 * refused (the SameSite=Strict cookie stays home, and the request is a cross-site write), no page
 * breaks its own Content-Security-Policy, and the sign-in page works from the keyboard.
 */
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import type { Browser } from "playwright-core";
import type { ConsoleServer } from "../helpers/console-browser.js";
import {
  chromiumUnavailable,
  launchChromium,
  newContext,
  screenshot,
  signIn,
  startConsoleServer,
  watchPageErrors,
} from "../helpers/console-browser.js";
import { TEST_ADMIN_KEY } from "../helpers/test-app.js";
import { testBackends } from "../helpers/test-database.js";

const noBrowser = chromiumUnavailable();

for (const { backend, skip } of await testBackends()) {
  describe(`console security in Chromium on ${backend}`, { skip: skip || noBrowser }, () => {
    let server: ConsoleServer;
    let browser: Browser;
    before(async () => {
      server = await startConsoleServer(backend);
      browser = await launchChromium();
    });
    after(async () => {
      await browser?.close();
      await server?.close();
    });

    test("a form posted from another site is refused and the session lives on", async () => {
      const context = await newContext(browser);
      const page = await context.newPage();
      await signIn(page, server.baseUrl);
      const csrf = await page.locator('input[name="_csrf"]').first().inputValue();
      // Another site (localhost is another site than 127.0.0.1) with a form aimed at the console,
      // even carrying a valid CSRF token it somehow learnt: the browser marks the post cross-site.
      const target = `${server.baseUrl}/ui/sign-out`;
      const evil = createServer((_request, response) => {
        response.setHeader("content-type", "text/html");
        response.end(
          `<!doctype html><form id="f" method="post" action="${target}"><input name="_csrf" value="${csrf}"></form>` +
            `<script>document.getElementById("f").submit()</script>`,
        );
      });
      await new Promise<void>((resolve) => evil.listen(0, "127.0.0.1", resolve));
      try {
        const port = (evil.address() as AddressInfo).port;
        const attack = await context.newPage();
        const answer = attack.waitForResponse((r) => r.url() === target);
        await attack.goto(`http://localhost:${port}/`);
        const refused = await answer;
        assert.equal(refused.status(), 403);
        await attack.waitForLoadState();
        assert.match(
          await attack.content(),
          /came from another site|did not come from this console/,
        );
        await page.goto(`${server.baseUrl}/ui`);
        assert.equal(new URL(page.url()).pathname, "/ui", "still signed in");
      } finally {
        await new Promise((resolve) => evil.close(resolve));
        await context.close();
      }
    });

    test("signing in and out works from the keyboard, with no CSP violation", async () => {
      const context = await newContext(browser);
      const page = await context.newPage();
      const errors = watchPageErrors(page);
      await page.goto(`${server.baseUrl}/ui/e/acme/subscriptions`);
      assert.equal(new URL(page.url()).pathname, "/ui/sign-in");
      await page.keyboard.type("hk_wrong_key_0123456789");
      await page.keyboard.press("Enter");
      await page.getByText("This API key is not valid").waitFor();
      await screenshot(page, "sign-in-error");
      await page.getByLabel("API key").fill(TEST_ADMIN_KEY);
      await page.keyboard.press("Enter");
      await page.waitForURL(`${server.baseUrl}/ui/e/acme/subscriptions`);
      await page.getByRole("button", { name: "Sign out" }).focus();
      await page.keyboard.press("Enter");
      await page.waitForURL(`${server.baseUrl}/ui/sign-in`);
      assert.deepEqual(errors, []);
      await context.close();
    });
  });
}
