/**
 * The console's frame (SPEC §8): sign-in with an API key, the session cookie, CSRF on every write,
 * cross-site writes refused, the key's entity scope, security headers and errors as pages. The
 * pages themselves are tested in the browser (test/e2e/console-*.test.ts).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { ConsoleBrowser } from "../helpers/console-session.js";
import { signInToConsole } from "../helpers/console-session.js";
import type { TestApp } from "../helpers/test-app.js";
import { createTestApp, TEST_ADMIN_KEY, TEST_ENTITY } from "../helpers/test-app.js";
import { testBackends } from "../helpers/test-database.js";

const FORM = { "content-type": "application/x-www-form-urlencoded" };

for (const { backend, skip } of await testBackends()) {
  describe(`console frame on ${backend}`, { skip }, () => {
    let t: TestApp;
    let admin: ConsoleBrowser;
    let limitedKey: string;
    let limitedKeyId: number;
    before(async () => {
      t = await createTestApp(backend);
      assert.equal((await t.request("POST", "/v4/entity", { name: "beta" })).statusCode, 201);
      const created = await t.request("POST", "/v4/api-keys", {
        name: "acme-only",
        entities: [TEST_ENTITY],
      });
      limitedKey = created.json().key;
      limitedKeyId = created.json().id;
      admin = await signInToConsole(t, TEST_ADMIN_KEY);
    });
    after(() => t?.close());

    test("the sign-in page is a labelled form, and a wrong key is told so without a session", async () => {
      const page = await t.app.inject({ method: "GET", url: "/ui/sign-in" });
      assert.equal(page.statusCode, 200);
      assert.match(page.headers["content-type"] as string, /text\/html/);
      assert.match(page.body, /<label for="apiKey">API key<\/label>/);
      const wrong = await t.app.inject({
        method: "POST",
        url: "/ui/sign-in",
        headers: FORM,
        payload: "apiKey=hk_not_a_key_of_this_herald",
      });
      assert.equal(wrong.statusCode, 401);
      assert.match(wrong.body, /This API key is not valid/);
      assert.equal(wrong.headers["set-cookie"], undefined);
      const empty = await t.app.inject({
        method: "POST",
        url: "/ui/sign-in",
        headers: FORM,
        payload: "apiKey=",
      });
      assert.equal(empty.statusCode, 400);
      assert.match(empty.body, /Enter an API key/);
    });

    test("the session cookie is HttpOnly, SameSite=Strict and scoped to /ui", async () => {
      const signIn = await t.app.inject({
        method: "POST",
        url: "/ui/sign-in",
        headers: FORM,
        payload: new URLSearchParams({
          apiKey: TEST_ADMIN_KEY,
          next: "//evil.example/",
        }).toString(),
      });
      assert.equal(signIn.statusCode, 303);
      // A `next` that leaves the console is not followed.
      assert.equal(signIn.headers.location, "/ui");
      const cookie = String(signIn.headers["set-cookie"]);
      assert.match(cookie, /^herald_session=[A-Za-z0-9_-]{40,};/);
      assert.match(cookie, /HttpOnly/);
      assert.match(cookie, /SameSite=Strict/);
      assert.match(cookie, /Path=\/ui/);
      assert.doesNotMatch(cookie, /Secure/, "plain HTTP here; Secure is set over HTTPS");
      const proxied = await t.app.inject({
        method: "POST",
        url: "/ui/sign-in",
        headers: { ...FORM, "x-forwarded-proto": "https" },
        payload: new URLSearchParams({ apiKey: TEST_ADMIN_KEY }).toString(),
      });
      assert.match(
        String(proxied.headers["set-cookie"]),
        /; Secure/,
        "served over HTTPS by a proxy",
      );
    });

    test("pages carry a CSP without inline scripts and are not cached", async () => {
      const home = await admin.get("/ui");
      assert.equal(home.statusCode, 200);
      const csp = String(home.headers["content-security-policy"]);
      assert.match(csp, /script-src 'self'/);
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
      assert.match(csp, /frame-ancestors 'none'/);
      assert.equal(home.headers["cache-control"], "no-store");
      assert.doesNotMatch(home.body, /<script>|<script [^>]*>[^<]/, "no inline script");
      assert.doesNotMatch(home.body, / style="/, "no inline style");
      assert.match(home.body, new RegExp(`>${TEST_ENTITY}</a>`));
      assert.match(home.body, />beta<\/a>/);
      const htmx = await t.app.inject({ method: "GET", url: "/ui/assets/htmx.min.js" });
      assert.equal(htmx.statusCode, 200);
      assert.match(htmx.headers["content-type"] as string, /javascript/);
    });

    test("without a session a page sends the browser to sign in, and back afterwards", async () => {
      const page = await t.app.inject({ method: "GET", url: `/ui/e/${TEST_ENTITY}` });
      assert.equal(page.statusCode, 303);
      assert.equal(page.headers.location, `/ui/sign-in?next=%2Fui%2Fe%2F${TEST_ENTITY}`);
      const fragment = await t.app.inject({
        method: "GET",
        url: "/ui",
        headers: { "hx-request": "true" },
      });
      assert.equal(fragment.statusCode, 401);
      assert.match(String(fragment.headers["hx-redirect"]), /^\/ui\/sign-in/);
      const forged = await t.app.inject({
        method: "GET",
        url: "/ui",
        headers: { cookie: "herald_session=forged-or-expired" },
      });
      assert.equal(forged.statusCode, 303);
      assert.match(String(forged.headers.location), /&ended$/);
      const ended = await t.app.inject({ method: "GET", url: "/ui/sign-in?ended" });
      assert.match(ended.body, /Your session has ended/);
    });

    test("a write without the session's CSRF token, or from another site, changes nothing", async () => {
      const browser = await signInToConsole(t, TEST_ADMIN_KEY);
      const missing = await browser.post("/ui/sign-out", { _csrf: "" });
      assert.equal(missing.statusCode, 403);
      assert.match(missing.body, /nothing was changed/);
      const forged = await browser.post("/ui/sign-out", { _csrf: "x".repeat(32) });
      assert.equal(forged.statusCode, 403);
      const crossSite = await browser.post("/ui/sign-out", {}, { origin: "http://evil.example" });
      assert.equal(crossSite.statusCode, 403);
      assert.match(crossSite.body, /came from another site/);
      const fetchSite = await browser.post("/ui/sign-out", {}, { "sec-fetch-site": "cross-site" });
      assert.equal(fetchSite.statusCode, 403);
      assert.equal((await browser.get("/ui")).statusCode, 200, "still signed in");
    });

    test("sign-out ends the session everywhere", async () => {
      const browser = await signInToConsole(t, TEST_ADMIN_KEY);
      const out = await browser.post("/ui/sign-out");
      assert.equal(out.statusCode, 303);
      assert.match(String(out.headers["set-cookie"]), /Max-Age=0/);
      assert.equal((await browser.get("/ui")).statusCode, 303);
    });

    test("a key limited to one entity sees only that entity; another is refused as a page", async () => {
      const limited = await signInToConsole(t, limitedKey);
      const home = await limited.get("/ui");
      assert.match(home.body, new RegExp(`>${TEST_ENTITY}</a>`));
      assert.doesNotMatch(home.body, />beta<\/a>/);
      const other = await limited.get("/ui/e/beta");
      assert.equal(other.statusCode, 403);
      assert.match(other.headers["content-type"] as string, /text\/html/);
      assert.match(other.body, /beta/);
      assert.doesNotMatch(other.body, /at .*\.ts:\d+/, "no stack trace");
    });

    test("revoking the key ends its sessions", async () => {
      const limited = await signInToConsole(t, limitedKey);
      assert.equal((await limited.get("/ui")).statusCode, 200);
      assert.equal((await t.request("DELETE", `/v4/api-keys/${limitedKeyId}`)).statusCode, 204);
      assert.equal((await limited.get("/ui")).statusCode, 303);
    });

    test("an unknown console address is a 404 page; text the database cannot store is refused", async () => {
      const missing = await admin.get("/ui/no/such/page");
      assert.equal(missing.statusCode, 404);
      assert.match(missing.body, /no console page at this address/);
      const nul = await admin.get("/ui/e/%00");
      assert.equal(nul.statusCode, 400);
      assert.match(nul.headers["content-type"] as string, /text\/html/);
    });
  });
}
