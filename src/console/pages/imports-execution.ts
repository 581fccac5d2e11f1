/**
 * An import's page, `/ui/e/{entity}/imports/{id}`: the file, table and mode, and the live block
 * (imports-live.ts) that follows the execution over server-sent events while it runs; the download
 * of its rejected rows; and its cancel button.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { readExecutionTargets } from "../../storage/execution-targets.js";
import { apiRefusal, ConsoleApiError } from "../console-api.js";
import type { ConsoleDeps } from "../console-page.js";
import { consoleOf, csrfField, entityHref, refusalText, sendPage } from "../console-page.js";
import { html, pathPart, when } from "../html.js";
import { afterLine, liveBlock, readRejectedPage } from "./imports-live.js";
import type { ExecutionBody } from "./imports-view.js";
import { bytes, executionHref, importsApi, isFinal, modeText, tableText } from "./imports-view.js";

type ExecutionRoute = {
  Params: { entity: string; id: string };
  Querystring: { after?: string; done?: string };
};

/** The fixed sentences of `?done=` after an action. */
const DONE_NOTICES: Record<string, string> = {
  cancel:
    "Cancel requested: an import still waiting ended at once; a running one stops after the batch it is writing.",
};

export function registerExecutionPage(app: FastifyInstance, deps: ConsoleDeps): void {
  app.get<ExecutionRoute>("/e/:entity/imports/:id", async (request, reply) => {
    const { entity, id } = request.params;
    const { api } = consoleOf(request);
    const execution = await api.get<ExecutionBody>(importsApi(entity, "etl-executions", id));
    const done = request.query.done ? DONE_NOTICES[request.query.done] : undefined;
    await showExecution(
      request,
      reply,
      deps,
      execution,
      done ? { kind: "ok", text: done } : undefined,
    );
  });

  app.post<ExecutionRoute>("/e/:entity/imports/:id/cancel", async (request, reply) => {
    const { entity, id } = request.params;
    const { api } = consoleOf(request);
    try {
      await api.post(importsApi(entity, "etl-executions", id, "cancel"));
    } catch (error) {
      // Finished in the meantime (409), say: the page as it is now, with the API's words.
      if (!(error instanceof ConsoleApiError) || error.status === 404) throw error;
      const execution = await api.get<ExecutionBody>(importsApi(entity, "etl-executions", id));
      return showExecution(
        request,
        reply,
        deps,
        execution,
        {
          kind: "error",
          text: `Nothing was cancelled: ${refusalText(error)}`,
        },
        error.status,
      );
    }
    return reply.redirect(`${executionHref(entity, id)}?done=cancel`, 303);
  });

  // The rejected rows file, as the API gives it, always as a download (never shown inline).
  app.get<ExecutionRoute>("/e/:entity/imports/:id/rejected-rows.csv", async (request, reply) => {
    const { entity, id } = request.params;
    const { api } = consoleOf(request);
    const answer = await api.raw("GET", importsApi(entity, "etl-executions", id, "rejected-rows"));
    if (answer.status >= 400) throw apiRefusal(answer.status, answer.body);
    const type = String(answer.headers["content-type"] ?? "text/csv; charset=utf-8");
    return reply
      .type(type)
      .header(
        "content-disposition",
        `attachment; filename="import-${safeFileName(id)}-rejected-rows.csv"`,
      )
      .send(answer.body);
  });
}

async function showExecution(
  request: FastifyRequest<ExecutionRoute>,
  reply: FastifyReply,
  deps: ConsoleDeps,
  execution: ExecutionBody,
  notice: { kind: "ok" | "error"; text: string } | undefined,
  status = 200,
): Promise<void> {
  const entity = request.params.entity;
  const after = afterLine(request.query.after);
  const target = (await readExecutionTargets(deps.db, entity, [execution.id])).get(execution.id);
  const live = liveBlock({
    entity,
    execution,
    rejected: await readRejectedPage(deps.db, execution, after),
    csrf: csrfField(request),
  });
  const href = executionHref(entity, execution.id);
  const stream = `${href}/progress${after > 0 ? `?after=${after}` : ""}`;
  sendPage(request, reply, {
    title: `Import ${execution.id}`,
    entity,
    status,
    notice,
    body: html`<p><a href="${entityHref(entity, "imports")}">All imports</a></p>
      <dl class="facts">
        <dt>File</dt>
        <dd>${execution.file.name} (${bytes(execution.file.bytes)})</dd>
        <dt>SHA-256</dt>
        <dd class="mono">${execution.file.sha256}</dd>
        <dt>Table</dt>
        <dd>${target ? tableText(target.table, target.tableKind) : "—"}</dd>
        <dt>Mode</dt>
        <dd>${modeText(target?.mode)}</dd>
        <dt>ETL</dt>
        <dd>
          ${
            execution.etlId !== null
              ? html`<a href="${entityHref(entity, "imports")}?etl=${pathPart(execution.etlId)}"
                  >${target?.etlName ?? `ETL ${execution.etlId}`}</a
                >`
              : "one-shot import"
          }
        </dd>
        <dt>Uploaded</dt>
        <dd>${when(execution.createdAt)}</dd>
      </dl>
      ${
        isFinal(execution.status)
          ? html`<div id="import-live">${live}</div>`
          : html`<div
              id="import-live"
              hx-ext="sse"
              sse-connect="${stream}"
              sse-swap="progress"
              sse-close="done"
            >
              ${live}
            </div>`
      }`,
  });
}

/** The id in a file name: digits only (the API found it, so it is one). */
function safeFileName(id: string): string {
  return id.replace(/[^0-9A-Za-z_-]/g, "_");
}
