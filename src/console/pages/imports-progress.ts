/**
 * `GET /ui/e/{entity}/imports/{id}/progress`: an import's live block as server-sent events. The
 * execution is read through the API (as the signed-in key) every POLL_MS; each time it changed,
 * its block is rendered and sent as an `event: progress` that htmx swaps into the page. When the
 * execution is final, the last block is followed by `event: done` (the page's `sse-close`) and the
 * stream ends. A comment every HEARTBEAT_MS keeps idle proxies from cutting it; it ends anyway
 * after LIFETIME_MS (the browser reconnects) and when the client or the server goes away.
 */
import type { FastifyBaseLogger, FastifyInstance } from "fastify";
import { ConsoleApiError } from "../console-api.js";
import type { ConsoleDeps } from "../console-page.js";
import { consoleOf, csrfField, refusalText } from "../console-page.js";
import type { SafeHtml } from "../html.js";
import { html } from "../html.js";
import type { EventStream } from "./imports-event-stream.js";
import { openEventStream } from "./imports-event-stream.js";
import { afterLine, liveBlock, readRejectedPage } from "./imports-live.js";
import type { ExecutionBody } from "./imports-view.js";
import { importsApi, isFinal } from "./imports-view.js";

/** Policy of a progress stream: how often the execution is read, kept alive, and how long at most. */
export const PROGRESS_STREAM = {
  pollMs: 500,
  heartbeatMs: 15_000,
  lifetimeMs: 3_600_000,
} as const;

export function registerProgressStream(app: FastifyInstance, deps: ConsoleDeps): void {
  const open = new Set<EventStream>();
  // Before the server stops listening: an open stream would hold its close back for an hour.
  app.addHook("preClose", async () => {
    for (const stream of open) stream.close();
  });

  app.get<{ Params: { entity: string; id: string }; Querystring: { after?: string } }>(
    "/e/:entity/imports/:id/progress",
    async (request, reply) => {
      const { api } = consoleOf(request);
      const { entity, id } = request.params;
      const after = afterLine(request.query.after);
      const csrf = csrfField(request);
      const read = () => api.get<ExecutionBody>(importsApi(entity, "etl-executions", id));
      // Read once before the stream opens: an unknown execution or entity is an error page.
      const first = await read();
      const stream = openEventStream(reply);
      open.add(stream);
      stream.onClose(() => open.delete(stream));
      follow(stream, first, {
        read,
        render: async (execution) =>
          liveBlock({
            entity,
            execution,
            rejected: await readRejectedPage(deps.db, execution, after),
            csrf,
          }),
        logger: request.log,
      });
    },
  );
}

interface Follower {
  read(): Promise<ExecutionBody>;
  render(execution: ExecutionBody): Promise<SafeHtml>;
  logger: FastifyBaseLogger;
}

/** Sends the execution's block at each change until it is final or the stream ends. */
function follow(stream: EventStream, first: ExecutionBody, follower: Follower): void {
  let lastState = "";
  let lastBlock = "";
  let poll: NodeJS.Timeout | undefined;
  const heartbeat = setInterval(
    () => stream.comment("waiting for the import"),
    PROGRESS_STREAM.heartbeatMs,
  );
  const lifetime = setTimeout(() => stream.close(), PROGRESS_STREAM.lifetimeMs);
  stream.onClose(() => {
    clearTimeout(poll);
    clearInterval(heartbeat);
    clearTimeout(lifetime);
  });

  const show = async (execution: ExecutionBody) => {
    const state = JSON.stringify(execution);
    if (state !== lastState) {
      const block = (await follower.render(execution)).text;
      if (stream.closed) return;
      stream.send("progress", block);
      lastState = state;
      lastBlock = block;
    }
    if (isFinal(execution.status)) {
      stream.send("done", execution.status);
      stream.close();
    }
  };
  const step = async (known?: ExecutionBody) => {
    try {
      await show(known ?? (await follower.read()));
    } catch (error) {
      if (stream.closed) return;
      stopWithNotice(stream, lastBlock, error, follower.logger);
      return;
    }
    if (!stream.closed) poll = setTimeout(() => void step(), PROGRESS_STREAM.pollMs);
  };
  void step(first);
}

/** The execution could no longer be read (the key revoked, the database away): say so and end. */
function stopWithNotice(
  stream: EventStream,
  lastBlock: string,
  error: unknown,
  logger: FastifyBaseLogger,
): void {
  let reason: string;
  if (error instanceof ConsoleApiError) reason = refusalText(error);
  else {
    logger.warn({ err: error }, "console: an import's progress stream could not read it");
    reason = "Herald could not read the import's state.";
  }
  const notice = html`<p class="notice error" role="alert">
    Live progress stopped: ${reason} Reload the page to see where the import stands.
  </p>`;
  stream.send("progress", `${notice.text}${lastBlock}`);
  stream.send("done", "stopped");
  stream.close();
}
