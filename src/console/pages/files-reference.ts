/**
 * A file reference's page, `/ui/e/{entity}/files/{id}`: its source without credentials (an HTTPS
 * source's header names, never their values), its schedule, its synchronisations newest first with
 * a download of each stored file, and "Synchronise now". While a synchronisation waits or runs,
 * the list refreshes itself every few seconds (htmx) until every one shown has ended.
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
import { bytes } from "./imports-view.js";
import type { ReferenceBody, SynchronizationBody, SynchronizationList } from "./files-view.js";
import {
  entityApi,
  errorText,
  isFinalRun,
  pageOf,
  pagerLinks,
  referenceHref,
  relayDownload,
  runBadge,
  runTimes,
  scheduleText,
  shortSha,
  sourceKind,
  sourceTarget,
} from "./files-view.js";

const PAGE_SIZE = 25;
/** How often the list asks again while a synchronisation waits or runs. */
const REFRESH = "every 2s";

type ReferenceRoute = {
  Params: { entity: string; id: string };
  Querystring: { page?: string; done?: string };
};
type FileRoute = { Params: { entity: string; id: string; syncId: string } };

export function registerReferencePage(app: FastifyInstance): void {
  app.get<ReferenceRoute>("/e/:entity/files/:id", async (request, reply) => {
    const { entity, id } = request.params;
    const { api } = consoleOf(request);
    const reference = await api.get<ReferenceBody>(entityApi(entity, "file-references", id));
    const page = pageOf(request.query.page);
    const list = await readSynchronizations(api, entity, reference.id, page);
    const started = request.query.done === "sync";
    sendPage(request, reply, {
      title: `File reference ${reference.name}`,
      entity,
      notice: started
        ? {
            kind: "ok",
            text: "Synchronisation asked: it waits for a worker, and this list follows it.",
          }
        : undefined,
      body: html`<p><a href="${entityHref(entity, "files")}">All file references</a></p>
        ${facts(reference)}
        <form
          method="post"
          action="${referenceHref(entity, reference.id)}/synchronize"
          class="actions"
        >
          ${csrfField(request)}
          <button type="submit">Synchronise now</button>
        </form>
        <h2>Synchronisations</h2>
        ${synchronizations(entity, reference.id, list, page)}`,
    });
  });

  // The list alone, for the self-refresh.
  app.get<ReferenceRoute>("/e/:entity/files/:id/synchronizations", async (request, reply) => {
    const { entity, id } = request.params;
    const { api } = consoleOf(request);
    const page = pageOf(request.query.page);
    const list = await readSynchronizations(api, entity, id, page);
    sendFragment(reply, synchronizations(entity, id, list, page));
  });

  app.post<ReferenceRoute>("/e/:entity/files/:id/synchronize", async (request, reply) => {
    const { entity, id } = request.params;
    const { api } = consoleOf(request);
    await api.post(entityApi(entity, "file-references", id, "synchronizations"));
    return reply.redirect(`${referenceHref(entity, id)}?done=sync`, 303);
  });

  // A synchronised file, relayed from the API as a download.
  app.get<FileRoute>(
    "/e/:entity/files/:id/synchronizations/:syncId/file",
    async (request, reply) => {
      const { entity, id, syncId } = request.params;
      return relayDownload(
        consoleOf(request).api,
        reply,
        entityApi(entity, "file-references", id, "synchronizations", syncId, "file"),
      );
    },
  );
}

function readSynchronizations(
  api: ConsoleApi,
  entity: string,
  id: string,
  page: number,
): Promise<SynchronizationList> {
  return api.get<SynchronizationList>(
    entityApi(entity, "file-references", id, "synchronizations"),
    {
      page,
      pageSize: PAGE_SIZE,
    },
  );
}

function facts(reference: ReferenceBody): SafeHtml {
  const source = reference.source;
  const headerNames = Array.isArray(source.headerNames)
    ? source.headerNames.filter((n): n is string => typeof n === "string")
    : [];
  return html`<dl class="facts">
    <dt>Source</dt>
    <dd>${sourceKind(source)}</dd>
    <dt>Target</dt>
    <dd class="mono">${sourceTarget(source)}</dd>
    ${
      source.type === "HTTPS"
        ? html`<dt>Headers</dt>
            <dd>
              ${headerNames.length > 0 ? `${headerNames.join(", ")} (values hidden)` : "none"}
            </dd>`
        : ""
    }
    ${
      source.type === "SFTP"
        ? html`<dt>Signs in as</dt>
            <dd>
              ${typeof source.username === "string" ? source.username : "—"}
              (${source.privateKeySet === true ? "private key" : source.passwordSet === true ? "password" : "no credential"})
            </dd>
            <dt>Host key</dt>
            <dd class="mono">
              ${typeof source.hostKeySha256 === "string" ? source.hostKeySha256 : "not pinned"}
            </dd>`
        : ""
    }
    <dt>Schedule</dt>
    <dd>${scheduleText(reference.schedule)}</dd>
    <dt>Next synchronisation</dt>
    <dd>${when(reference.nextSynchronizationAt)}</dd>
    <dt>Dates in paths</dt>
    <dd>${reference.timezone}</dd>
    <dt>Changed</dt>
    <dd>${when(reference.updatedAt)}</dd>
  </dl>`;
}

/** The synchronisations block; it asks for itself again while one of them has not ended. */
function synchronizations(
  entity: string,
  id: string,
  list: SynchronizationList,
  page: number,
): SafeHtml {
  const base = `${referenceHref(entity, id)}/synchronizations`;
  const waiting = list.synchronizations.some((s) => !isFinalRun(s.status));
  const refresh = waiting
    ? html`hx-get="${base}${page > 0 ? `?page=${page}` : ""}" hx-trigger="${REFRESH}"
      hx-swap="outerHTML"`
    : "";
  const href = (p: number) => `${referenceHref(entity, id)}${p > 0 ? `?page=${p}` : ""}`;
  return html`<div id="synchronizations" ${refresh}>
    ${dataTable(
      [
        { label: "Synchronisation", cell: (s: SynchronizationBody) => s.id },
        { label: "State", cell: (s) => runBadge(s.status) },
        { label: "Times", cell: (s) => runTimes(s) },
        {
          label: "File",
          cell: (s) =>
            s._links.file
              ? html`<a href="${base}/${s.id}/file" download>${s.fileName ?? "file"}</a>`
              : (s.fileName ?? "—"),
        },
        { label: "Size", numeric: true, cell: (s) => (s.bytes === null ? "—" : bytes(s.bytes)) },
        { label: "SHA-256", cell: (s) => shortSha(s.sha256) },
        { label: "Error", cell: (s) => errorText(s.error) },
      ],
      list.synchronizations,
      { empty: "Never synchronised yet." },
    )}
    ${pagerLinks(href, list, "synchronisations")}
  </div>`;
}
