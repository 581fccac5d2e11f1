/**
 * The Files pages of an entity (SPEC §7.2, §8): its file references with their source (never a
 * credential), schedule and last synchronisation; each reference's own page (files-reference.ts)
 * lists its synchronisations, downloads their files and synchronises on demand.
 */
import type { ConsolePage } from "../console-page.js";
import { consoleOf, dataTable, entityHref, sendPage } from "../console-page.js";
import { html, when } from "../html.js";
import { registerReferencePage } from "./files-reference.js";
import type { ReferenceBody, ReferenceList, SynchronizationList } from "./files-view.js";
import {
  entityApi,
  pageOf,
  pagerLinks,
  referenceHref,
  runBadge,
  scheduleText,
  sourceKind,
  sourceTarget,
} from "./files-view.js";

/** References a page lists; each costs one call for its last synchronisation. */
const PAGE_SIZE = 25;

type ListRoute = { Params: { entity: string }; Querystring: { page?: string } };

interface Row {
  reference: ReferenceBody;
  last: SynchronizationList["synchronizations"][number] | undefined;
}

const filesPage: ConsolePage = {
  nav: { label: "Files", path: "files" },
  register(app) {
    app.get<ListRoute>("/e/:entity/files", async (request, reply) => {
      const { entity } = request.params;
      const { api } = consoleOf(request);
      const list = await api.get<ReferenceList>(entityApi(entity, "file-references"), {
        page: pageOf(request.query.page),
        pageSize: PAGE_SIZE,
      });
      // Each reference's last synchronisation: the calls go side by side, not one after another.
      const rows: Row[] = await Promise.all(
        list.fileReferences.map(async (reference) => {
          const latest = await api.get<SynchronizationList>(
            entityApi(entity, "file-references", reference.id, "synchronizations"),
            { pageSize: 1 },
          );
          return { reference, last: latest.synchronizations[0] };
        }),
      );
      const href = (page: number) =>
        `${entityHref(entity, "files")}${page > 0 ? `?page=${page}` : ""}`;
      sendPage(request, reply, {
        title: "Files",
        entity,
        body: html`<p class="help">
            File references: where Herald fetches a file from, on demand or on a schedule. Their
            credentials are never shown.
          </p>
          ${dataTable(
            [
              {
                label: "Reference",
                cell: (r: Row) =>
                  html`<a href="${referenceHref(entity, r.reference.id)}">${r.reference.name}</a>`,
              },
              { label: "Source", cell: (r) => sourceKind(r.reference.source) },
              {
                label: "Target",
                cell: (r) => html`<span class="mono">${sourceTarget(r.reference.source)}</span>`,
              },
              { label: "Schedule", cell: (r) => scheduleText(r.reference.schedule) },
              { label: "Next", cell: (r) => when(r.reference.nextSynchronizationAt) },
              {
                label: "Last synchronisation",
                cell: (r) =>
                  r.last
                    ? html`${runBadge(r.last.status)}
                        <span class="nowrap">${when(r.last.finishedAt ?? r.last.createdAt)}</span>`
                    : "never",
              },
            ],
            rows,
            {
              empty: `This entity has no file reference. Define one with POST /v5/entities/${entity}/file-references (docs/files-and-exports.md).`,
            },
          )}
          ${pagerLinks(href, list, "references")}`,
      });
    });
    registerReferencePage(app);
  },
};

export default filesPage;
