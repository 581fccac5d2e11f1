/** Signs in to the console of a test app through its own sign-in form, and sends as that browser. */
import assert from "node:assert/strict";
import type { LightMyRequestResponse } from "fastify";
import type { TestApp } from "./test-app.js";

export interface ConsoleBrowser {
  cookie: string;
  csrf: string;
  get(url: string, headers?: Record<string, string>): Promise<LightMyRequestResponse>;
  /** A form post with the session's CSRF token unless `fields._csrf` is given. */
  post(
    url: string,
    fields?: Record<string, string>,
    headers?: Record<string, string>,
  ): Promise<LightMyRequestResponse>;
}

export async function signInToConsole(t: TestApp, apiKey: string): Promise<ConsoleBrowser> {
  const signIn = await t.app.inject({
    method: "POST",
    url: "/ui/sign-in",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    payload: new URLSearchParams({ apiKey }).toString(),
  });
  assert.equal(signIn.statusCode, 303, signIn.body);
  const setCookie = String(signIn.headers["set-cookie"]);
  const cookie = setCookie.split(";")[0]!;
  const home = await t.app.inject({ method: "GET", url: "/ui", headers: { cookie } });
  const csrf = /name="_csrf" value="([^"]+)"/.exec(home.body)?.[1];
  assert.ok(csrf, "the signed-in page carries a CSRF token");
  return {
    cookie,
    csrf,
    get: (url, headers = {}) =>
      t.app.inject({ method: "GET", url, headers: { cookie, ...headers } }),
    post: (url, fields = {}, headers = {}) =>
      t.app.inject({
        method: "POST",
        url,
        headers: { cookie, "content-type": "application/x-www-form-urlencoded", ...headers },
        payload: new URLSearchParams({ _csrf: csrf, ...fields }).toString(),
      }),
  };
}
