/**
 * The console at `/ui` (SPEC §8): server-rendered pages, partial updates with htmx and live
 * progress with server-sent events, all served by Herald itself. This plugin owns what every page
 * shares: the security headers, sign-in and sign-out, the session check, CSRF protection of every
 * write, the HTML rendering of errors, and the static assets. The pages are `pages/index.ts`.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Authenticator } from "../api/auth.js";
import { toHeraldError } from "../api/error-handler.js";
import type { HeraldError } from "../domain/errors.js";
import { consoleApi, ConsoleApiError } from "./console-api.js";
import type { ConsoleDeps, NavLink } from "./console-page.js";
import { sendPage } from "./console-page.js";
import { html } from "./html.js";
import { CONSOLE_PAGES } from "./pages/index.js";
import { closeSession, csrfMatches, findSession, openSession } from "./session.js";

/**
 * No inline script or style, nothing from another host, no framing, forms post only here. The SVG
 * charts are markup with attributes, which `style-src` does not restrict.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join("; ");

const SAFE_METHODS: ReadonlySet<string> = new Set(["GET", "HEAD", "OPTIONS"]);

/** A refusal the console answers itself (a cross-site post, a bad CSRF token). */
class ConsoleRefusal extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

interface Asset {
  type: string;
  body: Buffer;
}

function loadAssets(): Map<string, Asset> {
  const require = createRequire(import.meta.url);
  const here = dirname(fileURLToPath(import.meta.url));
  const js = "text/javascript; charset=utf-8";
  return new Map<string, Asset>([
    ["htmx.min.js", { type: js, body: readFileSync(require.resolve("htmx.org/dist/htmx.min.js")) }],
    ["sse.js", { type: js, body: readFileSync(require.resolve("htmx-ext-sse/dist/sse.min.js")) }],
    [
      "console.css",
      { type: "text/css; charset=utf-8", body: readFileSync(join(here, "assets", "console.css")) },
    ],
  ]);
}

export interface ConsolePluginOptions {
  deps: ConsoleDeps;
  authenticator: Authenticator;
  /** The application whose API the console calls (in process). */
  api: FastifyInstance;
}

export async function consolePlugin(
  app: FastifyInstance,
  { deps, authenticator, api }: ConsolePluginOptions,
): Promise<void> {
  const assets = loadAssets();
  const nav: NavLink[] = CONSOLE_PAGES.flatMap((page) => (page.nav ? [page.nav] : []));
  const open = new Set(["/ui/sign-in", "/ui/assets/:name"]);

  app.decorateRequest("console", undefined);
  // Every console route authenticates by session here, not by the API's Authorization header,
  // and is a page, not an operation of the API's OpenAPI document.
  app.addHook("onRoute", (route) => {
    route.config = { ...(route.config as object), public: true };
    route.schema = { ...route.schema, hide: true };
  });
  app.addContentTypeParser(
    "application/x-www-form-urlencoded",
    { parseAs: "string" },
    (_request, body, done) => done(null, Object.fromEntries(new URLSearchParams(body as string))),
  );

  app.addHook("onRequest", async (request, reply) => {
    reply.header("content-security-policy", CONTENT_SECURITY_POLICY);
    reply.header("x-content-type-options", "nosniff");
    reply.header("x-frame-options", "DENY");
    reply.header("referrer-policy", "same-origin");
    if (!SAFE_METHODS.has(request.method)) refuseCrossSite(request);
    const route = request.routeOptions.url;
    if (route !== undefined && open.has(route)) return;
    reply.header("cache-control", "no-store");
    const session = await findSession(deps.db, request);
    if (!session) return signInAgain(request, reply);
    request.console = {
      session,
      api: consoleApi(api, authenticator.consoleAuthorization(session)),
      nav,
    };
  });
  // After the body is parsed: every write echoes the session's CSRF token.
  app.addHook("preHandler", async (request) => {
    if (SAFE_METHODS.has(request.method) || !request.console) return;
    const field = (request.body as Record<string, unknown> | undefined)?._csrf;
    const header = request.headers["x-csrf-token"];
    const sent = typeof field === "string" ? field : typeof header === "string" ? header : "";
    if (!csrfMatches(request.console.session, sent))
      throw new ConsoleRefusal(
        403,
        "This form is out of date or did not come from this console, so nothing was changed. Reload the page and try again.",
      );
  });

  app.setErrorHandler((error: FastifyError, request, reply) => renderError(error, request, reply));
  app.setNotFoundHandler((request, reply) =>
    sendPage(request, reply, {
      title: "Not found",
      status: 404,
      body: html`<p>There is no console page at this address.</p>
        <p><a href="/ui">Go to the entities</a></p>`,
    }),
  );

  app.get<{ Params: { name: string } }>("/assets/:name", async (request, reply) => {
    const asset = assets.get(request.params.name);
    if (!asset) throw new ConsoleRefusal(404, "There is no such file.");
    reply.header("cache-control", "public, max-age=3600");
    return reply.type(asset.type).send(asset.body);
  });

  app.get<{ Querystring: { next?: string; ended?: string } }>(
    "/sign-in",
    async (request, reply) => {
      if (await findSession(deps.db, request)) return reply.redirect("/ui", 303);
      signInPage(request, reply, request.query.next, {
        notice:
          request.query.ended !== undefined
            ? { kind: "error", text: "Your session has ended. Sign in again to go on." }
            : undefined,
      });
    },
  );

  app.post<{ Body: { apiKey?: string; next?: string } | undefined }>(
    "/sign-in",
    async (request, reply) => {
      const rawKey = request.body?.apiKey?.trim() ?? "";
      const next = request.body?.next;
      if (!rawKey)
        return signInPage(request, reply, next, {
          status: 400,
          notice: { kind: "error", text: "Enter an API key to sign in." },
        });
      const key = await authenticator.findKey(rawKey);
      if (!key)
        return signInPage(request, reply, next, {
          status: 401,
          notice: {
            kind: "error",
            text: "This API key is not valid: it may be mistyped, incomplete or revoked. Keys start with hk_.",
          },
        });
      await openSession(deps.db, reply, request, key.id);
      return reply.redirect(safeNext(next), 303);
    },
  );

  app.post("/sign-out", async (request, reply) => {
    await closeSession(deps.db, request, reply);
    return reply.redirect("/ui/sign-in", 303);
  });

  for (const page of CONSOLE_PAGES) await page.register(app, deps);
}

/** A write from another site (the browser says so) is refused before anything else runs. */
function refuseCrossSite(request: FastifyRequest): void {
  const site = request.headers["sec-fetch-site"];
  const origin = request.headers.origin;
  const crossSite = site === "cross-site" || site === "same-site";
  let otherOrigin = false;
  if (typeof origin === "string" && origin !== "null") {
    try {
      otherOrigin = new URL(origin).host !== request.headers.host;
    } catch {
      otherOrigin = true;
    }
  } else if (origin === "null") otherOrigin = true;
  if (crossSite || otherOrigin)
    throw new ConsoleRefusal(
      403,
      "This request came from another site, so it was refused and nothing was changed. Use the console's own pages.",
    );
}

/** No session (never signed in, signed out, expired, key revoked): back to the sign-in page. */
function signInAgain(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const ended = request.headers.cookie?.includes("herald_session=") ? "&ended" : "";
  const target = SAFE_METHODS.has(request.method)
    ? `/ui/sign-in?next=${encodeURIComponent(request.url)}${ended}`
    : `/ui/sign-in?${ended.slice(1) || "ended"}`;
  if (request.headers["hx-request"] === "true") {
    // htmx follows this header with a full page load instead of swapping a fragment.
    return reply.code(401).header("hx-redirect", target).send();
  }
  return reply.redirect(target, 303);
}

/** Where a sign-in goes on: a console path only (never another host). */
function safeNext(next: string | undefined): string {
  if (!next || !next.startsWith("/ui") || next.startsWith("//") || next.includes("\\"))
    return "/ui";
  return next;
}

function signInPage(
  request: FastifyRequest,
  reply: FastifyReply,
  next: string | undefined,
  options: { status?: number; notice?: { kind: "ok" | "error"; text: string } },
): void {
  sendPage(request, reply, {
    title: "Sign in",
    status: options.status,
    notice: options.notice,
    body: html`<form method="post" action="/ui/sign-in" class="stack sign-in">
      <label for="apiKey">API key</label>
      <input
        id="apiKey"
        name="apiKey"
        type="password"
        autocomplete="off"
        spellcheck="false"
        required
        aria-describedby="apiKey-help"
        autofocus
      />
      <p id="apiKey-help" class="help">
        An API key of this Herald (it starts with <code>hk_</code>). The console shows and changes
        only what the key may reach.
      </p>
      <input type="hidden" name="next" value="${safeNext(next)}" />
      <button type="submit">Sign in</button>
    </form>`,
  });
}

function renderError(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  let status: number;
  let text: string;
  if (error instanceof ConsoleRefusal) {
    status = error.status;
    text = error.message;
  } else if (error instanceof ConsoleApiError) {
    status = error.status;
    text = error.message;
  } else {
    const herald: HeraldError = toHeraldError(error, request);
    status = herald.status;
    text = herald.message;
    for (const [name, value] of Object.entries(herald.headers)) reply.header(name, value);
  }
  sendPage(request, reply, {
    title: status >= 500 ? "Herald could not show this page" : "This cannot be done",
    status,
    notice: { kind: "error", text },
    body: html`<p><a href="/ui">Go to the entities</a></p>`,
  });
}
