/**
 * The Change log page of an entity: a browser over the pull API (GET
 * /v5/entities/{entity}/change-events) with its filters (source table or job, event type), a start
 * position and a page size, newest events first, paged older and newer by position, each event
 * expandable to its JSON payload. The API validates every filter; a value it refuses is shown in
 * the page with its status and message. Pages are found with change-log-reader.ts's bounded search.
 */
import { EVENT_TYPES } from "../../domain/change-event.js";
import type { ConsoleApi } from "../console-api.js";
import { ConsoleApiError } from "../console-api.js";
import type { ConsolePage } from "../console-page.js";
import { consoleOf, entityHref, refusalText, sendPage } from "../console-page.js";
import type { SafeHtml } from "../html.js";
import { html } from "../html.js";
import type { KnownTable } from "./change-log-events.js";
import { eventList, sourceWords } from "./change-log-events.js";
import type { LogAnchor, LogPage, LogQuery } from "./change-log-reader.js";
import { checkLogQuery, readLogPage } from "./change-log-reader.js";
import type { EntityTables } from "./tables-api.js";
import { knownTables, listEntityTables, TABLE_KINDS, tablesPath } from "./tables-api.js";

export const DEFAULT_PAGE_SIZE = 50;
/** Events a page shows at most: each carries its JSON payload, and a page must stay quick. */
export const MAX_PAGE_SIZE = 200;

/** Sources that are not tables, offered as filters of every event of their kind. */
const JOB_SOURCES = ["ETL", "EXPORT", "FILE_SYNCHRONIZATION", "CUSTOM_ACTION"] as const;

/** The page's query, each field as its last value; empty fields are absent. */
interface LogParams {
  source?: string;
  eventType?: string;
  after?: string;
  before?: string;
  limit?: string;
}

const PARAM_NAMES = ["source", "eventType", "after", "before", "limit"] as const;

function paramsOf(query: unknown): LogParams {
  const params: LogParams = {};
  const given = (query ?? {}) as Record<string, unknown>;
  for (const name of PARAM_NAMES) {
    const raw = given[name];
    const value = Array.isArray(raw) ? raw.at(-1) : raw;
    if (typeof value === "string" && value.trim() !== "") params[name] = value.trim();
  }
  return params;
}

/** The page size asked for (checked by the API by the time it is used). */
function pageSizeOf(params: LogParams): number {
  return params.limit === undefined ? DEFAULT_PAGE_SIZE : Number(params.limit);
}

/** A filter the console refuses itself (its `before` parameter, its page size): a 400 page. */
class FilterRefusal extends Error {}

function anchorOf(params: LogParams): LogAnchor {
  if (params.after !== undefined && params.before !== undefined)
    throw new FilterRefusal(
      "Give either a position to start after or one to end before, not both.",
    );
  if (params.before !== undefined) {
    if (!/^[0-9]{1,15}$/.test(params.before))
      throw new FilterRefusal(
        "The position to end before must be a log position: a whole number such as 1042.",
      );
    return { kind: "before", position: Number(params.before) };
  }
  // `after` has been checked by the API by now (checkLogQuery).
  if (params.after !== undefined) return { kind: "after", position: Number(params.after) };
  return { kind: "newest" };
}

/**
 * The API's filters for a `source` value: `PROFILE_TABLE:<id>`, `CUSTOM_TABLE:<id>`, or a job kind
 * (`ETL`) with or without an id. A table the entity does not have is the API's 404 (thrown).
 */
async function queryOf(
  api: ConsoleApi,
  entity: string,
  source: string | undefined,
  known: Map<string, KnownTable>,
): Promise<LogQuery> {
  if (source === undefined) return {};
  const colon = source.indexOf(":");
  const on = colon < 0 ? source : source.slice(0, colon);
  const id = colon < 0 ? "" : source.slice(colon + 1);
  if (id === "") return { on };
  const kind =
    on === TABLE_KINDS.profile.source
      ? "profile"
      : on === TABLE_KINDS.custom.source
        ? "custom"
        : undefined;
  if (kind === undefined || known.has(source)) return { on, onElementId: id };
  // Not one of the listed tables: the API says whether the id (or a name) is one.
  const table = await api.get<{ id: string }>(tablesPath(entity, kind, id));
  return { on, onElementId: table.id };
}

/** The form's label of each query parameter the API may name in a refusal. */
const FIELD_LABELS: Record<string, string> = {
  "querystring.after": "After position",
  "querystring.limit": "Page size",
  "querystring.eventType": "Event type",
  "querystring.on": "Table or source",
  "querystring.onElementId": "Table or source",
};

/** The API names its query parameters; the page adds which field of the form that is. */
function withFieldHint(text: string, error: ConsoleApiError): string {
  const labels = [
    ...new Set(
      error.details.flatMap((d) => {
        const label = FIELD_LABELS[d.path];
        return label ? [`“${label}”`] : [];
      }),
    ),
  ];
  return labels.length > 0 ? `${text.replace(/\.$/, "")}. Check ${labels.join(" and ")}.` : text;
}

function lowerFirst(text: string): string {
  return text.charAt(0).toLowerCase() + text.slice(1);
}

function logHref(entity: string, params: LogParams): string {
  const query = new URLSearchParams();
  for (const name of PARAM_NAMES) {
    const value = params[name];
    if (value !== undefined) query.set(name, value);
  }
  const text = query.toString();
  return `${entityHref(entity, "change-log")}${text ? `?${text}` : ""}`;
}

const changeLogPage: ConsolePage = {
  nav: { label: "Change log", path: "change-log" },
  register(app, deps) {
    app.get<{ Params: { entity: string } }>("/e/:entity/change-log", async (request, reply) => {
      const { api } = consoleOf(request);
      const entity = await api.get<{ id: number; name: string }>(
        `/v4/entity/${encodeURIComponent(request.params.entity)}`,
      );
      const tables = await listEntityTables(api, entity.name);
      const known = knownTables(tables);
      const params = paramsOf(request.query);
      let page: LogPage | undefined;
      let anchor: LogAnchor = { kind: "newest" };
      let refusal: { status: number; text: string } | undefined;
      try {
        anchor = anchorOf(params);
        const query: LogQuery = {
          ...(await queryOf(api, entity.name, params.source, known)),
          eventType: params.eventType,
        };
        await checkLogQuery(api, entity.name, query, params);
        const size = pageSizeOf(params);
        if (size > MAX_PAGE_SIZE)
          throw new FilterRefusal(
            `The console shows at most ${MAX_PAGE_SIZE} events a page: choose a smaller page size (the API itself reads up to 1,000 at a time).`,
          );
        page = await readLogPage(api, deps.db, entity, query, anchor, size);
      } catch (error) {
        if (error instanceof FilterRefusal) refusal = { status: 400, text: error.message };
        else if (error instanceof ConsoleApiError)
          refusal = { status: error.status, text: withFieldHint(refusalText(error), error) };
        else throw error;
      }
      sendPage(request, reply, {
        title: "Change log",
        entity: entity.name,
        status: refusal?.status,
        notice: refusal ? { kind: "error", text: refusal.text } : undefined,
        body: html`${filterForm(entity.name, params, tables)}
        ${page ? results(entity.name, params, anchor, page, known) : ""}`,
      });
    });
  },
};

function filterForm(entity: string, params: LogParams, tables: EntityTables): SafeHtml {
  const option = (value: string, label: string) =>
    html`<option value="${value}" ${params.source === value ? html`selected` : ""}>
      ${label}
    </option>`;
  const tableOptions = (kind: "profile" | "custom") =>
    tables[kind].map((t) => option(`${TABLE_KINDS[kind].source}:${t.id}`, t.name));
  const listed = new Set([
    ...tables.profile.map((t) => `${TABLE_KINDS.profile.source}:${t.id}`),
    ...tables.custom.map((t) => `${TABLE_KINDS.custom.source}:${t.id}`),
    ...JOB_SOURCES,
  ]);
  // A value from a link or a typed address that no option holds stays visible as it is.
  const other =
    params.source !== undefined && !listed.has(params.source)
      ? option(params.source, params.source)
      : "";
  return html`<form method="get" action="${entityHref(entity, "change-log")}" class="filters">
      <label for="log-source"
        >Table or source
        <select id="log-source" name="source">
          <option value="">Any</option>
          ${other}
          ${
            tables.profile.length > 0
              ? html`<optgroup label="Profile tables">${tableOptions("profile")}</optgroup>`
              : ""
          }
          ${
            tables.custom.length > 0
              ? html`<optgroup label="Custom tables">${tableOptions("custom")}</optgroup>`
              : ""
          }
          <optgroup label="Jobs">
            ${JOB_SOURCES.map((s) => option(s, `Every ${lowerFirst(sourceWords(s))}`))}
          </optgroup>
        </select>
      </label>
      <label for="log-event-type"
        >Event type
        <select id="log-event-type" name="eventType">
          <option value="">Any</option>
          ${EVENT_TYPES.map(
            (t) =>
              html`<option value="${t}" ${params.eventType === t ? html`selected` : ""}>
                ${t}
              </option>`,
          )}
        </select>
      </label>
      <label for="log-after"
        >After position
        <input
          id="log-after"
          name="after"
          inputmode="numeric"
          autocomplete="off"
          size="10"
          value="${params.after ?? ""}"
        />
      </label>
      <label for="log-limit"
        >Page size
        <input
          id="log-limit"
          name="limit"
          type="number"
          min="1"
          max="${MAX_PAGE_SIZE}"
          value="${params.limit ?? DEFAULT_PAGE_SIZE}"
        />
      </label>
      <button type="submit">Show</button>
    </form>
    <p class="help">
      Leave “After position” empty for the newest events. There is no filter by record key: the
      change-log API does not offer one. Filter by table, then find the key in the Key column (or
      open the record through the API).
    </p>`;
}

function results(
  entity: string,
  params: LogParams,
  anchor: LogAnchor,
  page: LogPage,
  known: Map<string, KnownTable>,
): SafeHtml {
  const filters: LogParams = {
    source: params.source,
    eventType: params.eventType,
    limit: params.limit,
  };
  const size = pageSizeOf(params);
  const positions = page.events.map((e) => e._event.position);
  const lowest = positions[0];
  const highest = positions.at(-1);
  const heading =
    anchor.kind === "newest"
      ? "Newest events"
      : anchor.kind === "after"
        ? `Events after position ${anchor.position}`
        : `Events before position ${anchor.position}`;
  const backward = anchor.kind !== "after";
  // Older and newer pages by position; a window that ran out goes on from where it stopped.
  let older: number | undefined;
  let newer: number | undefined;
  if (backward) {
    if (page.searchedTo !== undefined) older = page.searchedTo;
    else if (lowest !== undefined && positions.length >= size) older = lowest;
    // The newest page has nothing newer: reloading it is how to see what came since.
    if (anchor.kind === "before") newer = highest ?? anchor.position - 1;
  } else {
    older = lowest ?? anchor.position + 1;
    newer = page.searchedTo ?? highest ?? anchor.position;
  }
  const searched =
    page.searchedTo === undefined
      ? ""
      : html`<p class="help">
          This page looked through log positions ${page.range.first} to ${page.range.last} (the
          log's positions are shared by every entity) and found
          ${positions.length === 0 ? "no event that matches" : `only ${positions.length} that match`}.
          Follow “${backward ? "Older events" : "Newer events"}” to look further.
        </p>`;
  return html`<h2>${heading}</h2>
    ${eventList([...page.events].reverse(), {
      entity,
      tables: known,
      empty: "No event here matches these filters.",
    })}
    ${searched}
    <nav class="actions log-pager" aria-label="Pages of the change log">
      ${
        newer !== undefined && newer >= 0
          ? html`<a href="${logHref(entity, { ...filters, after: String(newer) })}"
              >Newer events</a
            >`
          : ""
      }
      ${
        older !== undefined && older > 1
          ? html`<a href="${logHref(entity, { ...filters, before: String(older) })}"
              >Older events</a
            >`
          : ""
      }
      ${anchor.kind === "newest" ? "" : html`<a href="${logHref(entity, filters)}">Newest events</a>`}
    </nav>`;
}

export default changeLogPage;
