/**
 * The Imports pages of an entity (SPEC §8): the executions, newest first, with their state and
 * counts, and the predefined ETLs; each execution's own page (imports-execution.ts) follows it
 * live over server-sent events (imports-progress.ts) and lists its rejected rows.
 */
import type { ExecutionStatus } from "../../storage/etl-execution-repository.js";
import { EXECUTION_STATUSES } from "../../storage/etl-execution-repository.js";
import { readExecutionTargets } from "../../storage/execution-targets.js";
import type { ExecutionTarget } from "../../storage/execution-targets.js";
import type { ConsolePage } from "../console-page.js";
import { consoleOf, dataTable, entityHref, sendPage } from "../console-page.js";
import type { SafeHtml } from "../html.js";
import { html, when } from "../html.js";
import { registerExecutionPage } from "./imports-execution.js";
import { registerProgressStream } from "./imports-progress.js";
import type { ExecutionBody } from "./imports-view.js";
import {
  count,
  duration,
  elapsedMs,
  executionHref,
  importsApi,
  isFinal,
  modeText,
  stateBadge,
  stateLabel,
  tableText,
} from "./imports-view.js";

const PAGE_SIZE = 25;
/** Predefined ETLs listed (an entity has a handful; more are counted, not listed). */
const ETLS_SHOWN = 100;

interface ExecutionList {
  etlExecutions: ExecutionBody[];
  page: number;
  pageSize: number;
  totalElements: number;
}

interface EtlBody {
  id: string;
  name: string;
  definition: { target?: { table?: unknown; tableType?: unknown }; mode?: unknown };
  updatedAt: string;
}

interface EtlList {
  etls: EtlBody[];
  totalElements: number;
}

type ListRoute = {
  Params: { entity: string };
  Querystring: { page?: string; status?: string; etl?: string };
};

/** The list's filters, kept only when they are valid (they are never echoed as typed). */
interface Filters {
  status: ExecutionStatus | undefined;
  etl: string | undefined;
}

const importsPage: ConsolePage = {
  nav: { label: "Imports", path: "imports" },
  register(app, deps) {
    app.get<ListRoute>("/e/:entity/imports", async (request, reply) => {
      const { entity } = request.params;
      const { api } = consoleOf(request);
      const query = request.query;
      // The API validates the page and the filters (a bad one is its 400, shown as a page).
      const list = await api.get<ExecutionList>(importsApi(entity, "etl-executions"), {
        page: query.page,
        pageSize: PAGE_SIZE,
        status: query.status,
        etlId: query.etl,
      });
      const etls = await api.get<EtlList>(importsApi(entity, "etls"), { pageSize: ETLS_SHOWN });
      const targets = await readExecutionTargets(
        deps.db,
        entity,
        list.etlExecutions.map((e) => e.id),
      );
      const filters: Filters = {
        status: EXECUTION_STATUSES.find((s) => s === query.status),
        etl: query.etl && /^\d{1,15}$/.test(query.etl) ? query.etl : undefined,
      };
      sendPage(request, reply, {
        title: "Imports",
        entity,
        body: html`<h2>Executions</h2>
          ${filterForm(entity, filters, etls.etls)}
          <div class="import-list">
            ${executionsTable(entity, list.etlExecutions, targets, filters)}
          </div>
          ${pager(entity, list, filters)}
          <h2>Predefined ETLs</h2>
          ${etlsTable(entity, etls)}`,
      });
    });
    registerExecutionPage(app, deps);
    registerProgressStream(app, deps);
  },
};

function listHref(entity: string, filters: Filters, page = 0): string {
  const params = new URLSearchParams();
  if (filters.status) params.set("status", filters.status);
  if (filters.etl) params.set("etl", filters.etl);
  if (page > 0) params.set("page", String(page));
  const text = params.toString();
  return `${entityHref(entity, "imports")}${text ? `?${text}` : ""}`;
}

function filterForm(entity: string, filters: Filters, etls: EtlBody[]): SafeHtml {
  const etl = filters.etl ? etls.find((e) => e.id === filters.etl) : undefined;
  return html`<form method="get" action="${entityHref(entity, "imports")}" class="filters">
    <label for="import-status"
      >State
      <select id="import-status" name="status">
        <option value="">Any state</option>
        ${EXECUTION_STATUSES.map(
          (s) =>
            html`<option value="${s}" ${filters.status === s ? html`selected` : ""}>
              ${stateLabel(s)}
            </option>`,
        )}
      </select>
    </label>
    ${filters.etl ? html`<input type="hidden" name="etl" value="${filters.etl}" />` : ""}
    <button type="submit" class="secondary">Show</button>
    ${
      filters.etl
        ? html`<span
            >Only the runs of ETL ${etl ? etl.name : filters.etl}.
            <a href="${listHref(entity, { status: filters.status, etl: undefined })}"
              >Show every import</a
            ></span
          >`
        : ""
    }
  </form>`;
}

function executionsTable(
  entity: string,
  executions: ExecutionBody[],
  targets: Map<string, ExecutionTarget>,
  filters: Filters,
): SafeHtml {
  const filtered = filters.status !== undefined || filters.etl !== undefined;
  return dataTable(
    [
      {
        label: "Import",
        cell: (e: ExecutionBody) =>
          html`<div>
            <a href="${executionHref(entity, e.id)}">Import ${e.id}</a>
            <span class="help import-file">${e.file.name}</span>
          </div>`,
      },
      {
        label: "Table",
        cell: (e) => {
          const target = targets.get(e.id);
          if (!target) return "—";
          return html`<div>
            ${tableText(target.table, target.tableKind)}
            ${target.etlName ? html`<span class="help import-file">ETL ${target.etlName}</span>` : ""}
          </div>`;
        },
      },
      { label: "Mode", cell: (e) => modeText(targets.get(e.id)?.mode) },
      { label: "State", cell: (e) => stateBadge(e.status) },
      { label: "Started", cell: (e) => when(e.startedAt) },
      {
        label: "Took",
        cell: (e) =>
          isFinal(e.status)
            ? duration(elapsedMs(e.startedAt, e.finishedAt))
            : e.startedAt
              ? "running"
              : "—",
      },
      { label: "Read", numeric: true, cell: (e) => count(e.counts.read) },
      { label: "Created", numeric: true, cell: (e) => count(e.counts.created) },
      { label: "Updated", numeric: true, cell: (e) => count(e.counts.updated) },
      { label: "Unchanged", numeric: true, cell: (e) => count(e.counts.unchanged) },
      { label: "Rejected", numeric: true, cell: (e) => count(e.counts.rejected) },
    ],
    executions,
    {
      empty: filtered
        ? "No import matches these filters."
        : `No import has run in this entity yet. Start one with POST /mass-imports/v5/entities/${entity}/etl-executions, or with herald import FILE --table TABLE --entity ${entity}.`,
    },
  );
}

function pager(entity: string, list: ExecutionList, filters: Filters): SafeHtml {
  const pages = Math.ceil(list.totalElements / PAGE_SIZE);
  if (pages <= 1) return html``;
  const page = list.page;
  return html`<nav class="actions import-pager" aria-label="Pages of imports">
    <span>Page ${count(page + 1)} of ${count(pages)} (${count(list.totalElements)} imports)</span>
    ${page > 0 ? html`<a href="${listHref(entity, filters, page - 1)}" rel="prev">Newer</a>` : ""}
    ${
      page + 1 < pages
        ? html`<a href="${listHref(entity, filters, page + 1)}" rel="next">Older</a>`
        : ""
    }
  </nav>`;
}

function etlsTable(entity: string, list: EtlList): SafeHtml {
  const text = (value: unknown) => (typeof value === "string" ? value : "—");
  return html`${dataTable(
    [
      { label: "Name", cell: (e: EtlBody) => e.name },
      {
        label: "Table",
        cell: (e) =>
          tableText(text(e.definition.target?.table), text(e.definition.target?.tableType)),
      },
      { label: "Mode", cell: (e) => modeText(text(e.definition.mode)) },
      { label: "Changed", cell: (e) => when(e.updatedAt) },
      {
        label: "Runs",
        cell: (e) =>
          html`<a href="${listHref(entity, { status: undefined, etl: e.id })}"
            >Runs of ${e.name}</a
          >`,
      },
    ],
    list.etls,
    { empty: "This entity has no predefined ETL." },
  )}
  ${
    list.totalElements > list.etls.length
      ? html`<p class="help">
          The first ${count(list.etls.length)} of ${count(list.totalElements)} ETLs are listed.
        </p>`
      : ""
  }`;
}

export default importsPage;
