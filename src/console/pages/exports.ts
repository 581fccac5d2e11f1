/**
 * The Exports pages of an entity (SPEC §7.3, §8): its exports with their table, mode, format,
 * schedule and destination; each export's own page (exports-detail.ts) lists its executions,
 * downloads a successful one's file and runs the export on demand.
 */
import type { ConsolePage } from "../console-page.js";
import { consoleOf, dataTable, entityHref, sendPage } from "../console-page.js";
import { html, when } from "../html.js";
import { registerExportPage } from "./exports-detail.js";
import type { ExportBody, ExportList } from "./exports-view.js";
import {
  destinationText,
  exportHref,
  formatText,
  referenceNames,
  tableOf,
} from "./exports-view.js";
import { entityApi, pageOf, pagerLinks, scheduleText } from "./files-view.js";

const PAGE_SIZE = 25;

type ListRoute = { Params: { entity: string }; Querystring: { page?: string } };

const exportsPage: ConsolePage = {
  nav: { label: "Exports", path: "exports" },
  register(app) {
    app.get<ListRoute>("/e/:entity/exports", async (request, reply) => {
      const { entity } = request.params;
      const { api } = consoleOf(request);
      const list = await api.get<ExportList>(entityApi(entity, "exports"), {
        page: pageOf(request.query.page),
        pageSize: PAGE_SIZE,
      });
      const names = list.exports.some((e) => e.destination)
        ? await referenceNames(api, entity)
        : new Map<string, string>();
      const href = (page: number) =>
        `${entityHref(entity, "exports")}${page > 0 ? `?page=${page}` : ""}`;
      sendPage(request, reply, {
        title: "Exports",
        entity,
        body: html`${dataTable(
          [
            {
              label: "Export",
              cell: (e: ExportBody) => html`<a href="${exportHref(entity, e.id)}">${e.name}</a>`,
            },
            { label: "Table", cell: (e) => tableOf(e) },
            { label: "Mode", cell: (e) => e.mode },
            { label: "Format", cell: (e) => formatText(e.format) },
            { label: "Schedule", cell: (e) => scheduleText(e.schedule) },
            { label: "Next run", cell: (e) => when(e.nextRunAt) },
            { label: "Destination", cell: (e) => destinationText(entity, e, names) },
          ],
          list.exports,
          {
            empty: `This entity has no export. Define one with POST /v5/entities/${entity}/exports (docs/files-and-exports.md).`,
          },
        )}
        ${pagerLinks(href, list, "exports")}`,
      });
    });
    registerExportPage(app);
  },
};

export default exportsPage;
