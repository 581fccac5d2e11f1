/**
 * What a console page module is and the helpers every page uses. A page is one file under
 * `pages/` that registers its routes and, when it belongs in an entity's navigation, names its
 * link; `pages/index.ts` lists them. Pages read and write through `request.console.api` (the JSON
 * API, as the signed-in key) and render with `html` (which escapes every value).
 */
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { HeraldConfig } from "../config/config.js";
import type { Database } from "../storage/database.js";
import type { ConsoleApi } from "./console-api.js";
import { ConsoleApiError } from "./console-api.js";
import type { HtmlValue, SafeHtml } from "./html.js";
import { html, pathPart } from "./html.js";
import type { PageOptions } from "./layout.js";
import { layout } from "./layout.js";
import type { ConsoleSession } from "./session.js";

export interface ConsoleDeps {
  db: Database;
  config: HeraldConfig;
  logger: FastifyBaseLogger;
}

/** What the console knows of a signed-in request (set before any page handler runs). */
export interface ConsoleRequest {
  session: ConsoleSession;
  api: ConsoleApi;
  /** The navigation of an entity's pages, in the order of `pages/index.ts`. */
  nav: NavLink[];
}

export interface NavLink {
  label: string;
  /** Relative to `/ui/e/{entity}/`. */
  path: string;
}

declare module "fastify" {
  interface FastifyRequest {
    console: ConsoleRequest | undefined;
  }
}

export interface ConsolePage {
  /** The page's link in an entity's navigation, relative to `/ui/e/{entity}/`; none for sub-pages. */
  nav?: NavLink;
  /** Registers the page's routes (full paths, starting with `/ui/`). */
  register(app: FastifyInstance, deps: ConsoleDeps): void | Promise<void>;
}

/** The signed-in request's console state; the console's hook guarantees it on every page route. */
export function consoleOf(request: FastifyRequest): ConsoleRequest {
  if (!request.console) throw new Error("console page reached without a session");
  return request.console;
}

/** The form fields of a POST (`application/x-www-form-urlencoded`), each as its last value. */
export type FormFields = Record<string, string>;

export function formOf(request: FastifyRequest): FormFields {
  return (request.body ?? {}) as FormFields;
}

/** `/ui/e/{entity}/…` with every segment encoded. */
export function entityHref(entity: string, ...segments: (string | number)[]): string {
  return ["/ui/e", pathPart(entity), ...segments.map(pathPart)].join("/");
}

/** The hidden field that carries the session's CSRF token in every form. */
export function csrfField(request: FastifyRequest): SafeHtml {
  return html`<input type="hidden" name="_csrf" value="${consoleOf(request).session.csrfToken}" />`;
}

/** Sends a whole page (a fragment for an htmx swap goes through `sendFragment`). */
export function sendPage(request: FastifyRequest, reply: FastifyReply, page: PageOptions): void {
  reply
    .code(page.status ?? 200)
    .type("text/html; charset=utf-8")
    .send(layout(request, page).text);
}

/** Sends a fragment (an htmx swap target). */
export function sendFragment(reply: FastifyReply, fragment: SafeHtml, status = 200): void {
  reply.code(status).type("text/html; charset=utf-8").send(fragment.text);
}

/** An API refusal in words for the page, with the fields it names. */
export function refusalText(error: unknown): string {
  if (error instanceof ConsoleApiError) {
    const details = error.details
      .map((d) => [d.path, d.message].filter(Boolean).join(" "))
      .filter((d) => d && !error.message.includes(d));
    return details.length > 0 ? `${error.message} (${details.join("; ")})` : error.message;
  }
  throw error;
}

export interface Column<Row> {
  label: string;
  cell: (row: Row) => HtmlValue;
  /** Right-aligned figures. */
  numeric?: boolean;
}

/**
 * A table that becomes a list of labelled cards on a narrow screen (each cell carries its column's
 * label), so that a phone never scrolls sideways.
 */
export function dataTable<Row>(
  columns: Column<Row>[],
  rows: Row[],
  options: { empty: string; caption?: string } = { empty: "Nothing yet." },
): SafeHtml {
  if (rows.length === 0) return html`<p class="empty">${options.empty}</p>`;
  return html`<table class="data">
    ${
      options.caption
        ? html`<caption>
            ${options.caption}
          </caption>`
        : ""
    }
    <thead>
      <tr>
        ${columns.map((c) => html`<th scope="col" class="${c.numeric ? "num" : ""}">${c.label}</th>`)}
      </tr>
    </thead>
    <tbody>
      ${rows.map(
        (row) =>
          html`<tr>
            ${columns.map(
              (c) =>
                html`<td data-label="${c.label}" class="${c.numeric ? "num" : ""}">
                  ${c.cell(row)}
                </td>`,
            )}
          </tr>`,
      )}
    </tbody>
  </table>`;
}
