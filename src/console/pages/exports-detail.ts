/**
 * An export's page, `/ui/e/{entity}/exports/{id}`: its definition, its executions newest first
 * (state, rows, bytes, the log positions they cover, times, error) with a download of each
 * successful one's file, and "Run now". While an execution waits or runs, the list refreshes
 * itself every few seconds (htmx) until every one shown has ended.
 */
import type { FastifyInstance } from "fastify";
import type { ConsoleApi } from "../console-api.js";
import {
  consoleOf,
  csrfField,
  dataTable,
  entityHref,
  sendFragment,
  sendPage,
} from "../console-page.js";
import type { SafeHtml } from "../html.js";
import { html, when } from "../html.js";
import type { ExportBody, ExportExecutionBody, ExportExecutionList } from "./exports-view.js";
import {
  destinationText,
  exportHref,
  formatText,
  referenceNames,
  tableOf,
} from "./exports-view.js";
import {
  entityApi,
  errorText,
  isFinalRun,
  pageOf,
  pagerLinks,
  relayDownload,
  runBadge,
  runTimes,
  scheduleText,
} from "./files-view.js";
import { bytes, count } from "./imports-view.js";

const PAGE_SIZE = 25;
const REFRESH = "every 2s";

type ExportRoute = {
  Params: { entity: string; id: string };
  Querystring: { page?: string; done?: string };
};
type FileRoute = { Params: { entity: string; id: string; executionId: string } };

export function registerExportPage(app: FastifyInstance): void {
  app.get<ExportRoute>("/e/:entity/exports/:id", async (request, reply) => {
    const { entity, id } = request.params;
    const { api } = consoleOf(request);
    const exp = await api.get<ExportBody>(entityApi(entity, "exports", id));
    const page = pageOf(request.query.page);
    const list = await readExecutions(api, entity, exp.id, page);
    const names = exp.destination ? await referenceNames(api, entity) : new Map<string, string>();
    sendPage(request, reply, {
      title: `Export ${exp.name}`,
      entity,
      notice:
        request.query.done === "run"
          ? { kind: "ok", text: "Run asked: it waits for a worker, and this list follows it." }
          : undefined,
      body: html`<p><a href="${entityHref(entity, "exports")}">All exports</a></p>
        <dl class="facts">
          <dt>Table</dt>
          <dd>${tableOf(exp)}</dd>
          <dt>Fields</dt>
          <dd>${exp.fields ? exp.fields.join(", ") : "every attribute"}</dd>
          <dt>Mode</dt>
          <dd>${exp.mode}</dd>
          <dt>Format</dt>
          <dd>${formatText(exp.format)}</dd>
          <dt>Schedule</dt>
          <dd>${scheduleText(exp.schedule)}</dd>
          <dt>Next run</dt>
          <dd>${when(exp.nextRunAt)}</dd>
          <dt>Destination</dt>
          <dd>${destinationText(entity, exp, names)}</dd>
          <dt>Changed</dt>
          <dd>${when(exp.updatedAt)}</dd>
        </dl>
        <form method="post" action="${exportHref(entity, exp.id)}/run" class="actions">
          ${csrfField(request)}
          <button type="submit">Run now</button>
        </form>
        <h2>Executions</h2>
        ${executions(entity, exp.id, list, page)}`,
    });
  });

  // The list alone, for the self-refresh.
  app.get<ExportRoute>("/e/:entity/exports/:id/executions", async (request, reply) => {
    const { entity, id } = request.params;
    const page = pageOf(request.query.page);
    const list = await readExecutions(consoleOf(request).api, entity, id, page);
    sendFragment(reply, executions(entity, id, list, page));
  });

  app.post<ExportRoute>("/e/:entity/exports/:id/run", async (request, reply) => {
    const { entity, id } = request.params;
    await consoleOf(request).api.post(entityApi(entity, "exports", id, "executions"));
    return reply.redirect(`${exportHref(entity, id)}?done=run`, 303);
  });

  // A SUCCESS execution's file, relayed from the API as a download.
  app.get<FileRoute>(
    "/e/:entity/exports/:id/executions/:executionId/file",
    async (request, reply) => {
      const { entity, id, executionId } = request.params;
      return relayDownload(
        consoleOf(request).api,
        reply,
        entityApi(entity, "exports", id, "executions", executionId, "file"),
      );
    },
  );
}

function readExecutions(
  api: ConsoleApi,
  entity: string,
  id: string,
  page: number,
): Promise<ExportExecutionList> {
  return api.get<ExportExecutionList>(entityApi(entity, "exports", id, "executions"), {
    page,
    pageSize: PAGE_SIZE,
  });
}

function position(value: number | null): string {
  return value === null ? "—" : String(value);
}

/** The executions block; it asks for itself again while one of them has not ended. */
function executions(entity: string, id: string, list: ExportExecutionList, page: number): SafeHtml {
  const base = `${exportHref(entity, id)}/executions`;
  const waiting = list.executions.some((e) => !isFinalRun(e.status));
  const refresh = waiting
    ? html`hx-get="${base}${page > 0 ? `?page=${page}` : ""}" hx-trigger="${REFRESH}"
      hx-swap="outerHTML"`
    : "";
  const href = (p: number) => `${exportHref(entity, id)}${p > 0 ? `?page=${p}` : ""}`;
  return html`<div id="executions" ${refresh}>
    ${dataTable(
      [
        { label: "Execution", cell: (e: ExportExecutionBody) => e.id },
        { label: "State", cell: (e) => runBadge(e.status) },
        { label: "Mode", cell: (e) => e.mode ?? "—" },
        {
          label: "Rows",
          numeric: true,
          cell: (e) => (e.rowCount === null ? "—" : count(e.rowCount)),
        },
        { label: "Size", numeric: true, cell: (e) => (e.bytes === null ? "—" : bytes(e.bytes)) },
        {
          label: "Positions",
          cell: (e) =>
            html`<span class="nowrap"
              >${position(e.fromPosition)} → ${position(e.toPosition)}</span
            >`,
        },
        { label: "Times", cell: (e) => runTimes(e) },
        {
          label: "File",
          cell: (e) =>
            e.status === "SUCCESS" && e._links.file
              ? html`<a href="${base}/${e.id}/file" download>${e.fileName ?? "file"}</a>`
              : (e.fileName ?? "—"),
        },
        { label: "Copied to", cell: (e) => e.destination ?? "—" },
        { label: "Error", cell: (e) => errorText(e.error) },
      ],
      list.executions,
      { empty: "Never run yet." },
    )}
    ${pagerLinks(href, list, "executions")}
  </div>`;
}
