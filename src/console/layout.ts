/**
 * The frame of every console page: the head (styles and scripts served by Herald itself, nothing
 * inline, so the Content-Security-Policy forbids every inline script), the top bar with sign-out,
 * the entity's navigation and the page's own body.
 */
import type { FastifyRequest } from "fastify";
import type { HtmlValue, SafeHtml } from "./html.js";
import { html, pathPart } from "./html.js";

export interface PageOptions {
  title: string;
  /** The entity whose navigation is shown, if the page belongs to one. */
  entity?: string;
  body: HtmlValue;
  status?: number;
  /** A message shown above the page: a success, or a refusal in words a person understands. */
  notice?: { kind: "ok" | "error"; text: string };
}

/**
 * htmx's settings, read from a meta tag: no inline indicator styles (the CSP forbids them), no
 * `eval`, no scripts from swapped content. Fixed text: no value of the data is in it.
 */
const HTMX_CONFIG = JSON.stringify({
  includeIndicatorStyles: false,
  allowEval: false,
  allowScriptTags: false,
  selfRequestsOnly: true,
  historyCacheSize: 0,
});

export function layout(request: FastifyRequest, page: PageOptions): SafeHtml {
  const session = request.console;
  const entity = page.entity;
  const path = request.url.split("?")[0] ?? "";
  const nav =
    session && entity
      ? html`<nav class="entity-nav" aria-label="Pages of entity ${entity}">
          <ul>
            ${session.nav.map((link) => {
              const href = `/ui/e/${pathPart(entity)}/${link.path}`;
              const current = path === href || path.startsWith(`${href}/`);
              return html`<li>
                <a href="${href}" ${current ? html`aria-current="page"` : ""}>${link.label}</a>
              </li>`;
            })}
          </ul>
        </nav>`
      : "";
  const top = session
    ? html`<header class="top">
        <a class="brand" href="/ui">Herald</a>
        ${entity ? html`<span class="entity-name">${entity}</span>` : ""}
        <a href="/ui">Entities</a>
        <form method="post" action="/ui/sign-out" class="inline">
          <input type="hidden" name="_csrf" value="${session.session.csrfToken}" />
          <button type="submit" class="link">Sign out</button>
        </form>
      </header>`
    : html`<header class="top"><span class="brand">Herald</span></header>`;
  const notice = page.notice
    ? html`<p
        class="notice ${page.notice.kind}"
        role="${page.notice.kind === "error" ? "alert" : "status"}"
      >
        ${page.notice.text}
      </p>`
    : "";
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="htmx-config" content="${HTMX_CONFIG}" />
        <title>${page.title} · Herald</title>
        <link rel="stylesheet" href="/ui/assets/console.css" />
        <script src="/ui/assets/htmx.min.js" defer></script>
        <script src="/ui/assets/sse.js" defer></script>
      </head>
      <body
        ${session ? html`hx-headers="${JSON.stringify({ "X-CSRF-Token": session.session.csrfToken })}"` : ""}
      >
        ${top} ${nav}
        <main id="main">
          <h1>${page.title}</h1>
          ${notice} ${page.body}
        </main>
      </body>
    </html>`;
}
