/**
 * What a person can do to a subscription from its page, each a small form posted with the session's
 * CSRF token and carried out by the JSON API: pause and resume (a PUT of the stored settings with
 * `isActive` switched), a test push (its outcome shown on the page), a replay (from a position or a
 * time), rotating the signing secret (the new one shown once) and deleting it (after a confirmation
 * page). A change redirects back to the page with a fixed notice; a refusal shows the page again
 * with the API's words and a 4xx status, nothing changed.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Database } from "../../storage/database.js";
import { ConsoleApiError } from "../console-api.js";
import { consoleOf, csrfField, formOf, sendPage } from "../console-page.js";
import { html } from "../html.js";
import type { DetailExtras, ReplayValues, TestResult } from "./subscriptions-detail.js";
import { sendDetail } from "./subscriptions-detail.js";
import type { SubscriptionJson } from "./subscriptions-view.js";
import { apiPath, pageHref, sourceText, tableNames } from "./subscriptions-view.js";

type SubscriptionParams = { Params: { entity: string; id: string } };

const REPLAY_FIELDS = ["fromPosition", "fromTime", "toPosition"] as const;

/** A position as a number when it is written as one; otherwise the text, for the API to name. */
function position(text: string): number | string {
  return /^\d{1,15}$/.test(text) ? Number(text) : text;
}

/**
 * A time typed without a zone (`2026-11-30T08:00`, `2026-11-30 08:00:00`) is meant as UTC, as the
 * form says; the API would read it in the server's zone. Anything else goes as typed.
 */
function utcTime(text: string): string {
  const m = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)$/.exec(text);
  return m ? `${m[1]}T${m[2]}Z` : text;
}

export function replayBody(values: ReplayValues): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  const from = values.fromPosition.trim();
  const since = values.fromTime.trim();
  const to = values.toPosition.trim();
  if (from !== "") body.fromPosition = position(from);
  if (since !== "") body.fromTime = utcTime(since);
  if (to !== "") body.toPosition = position(to);
  return body;
}

function replayErrors(error: ConsoleApiError): NonNullable<DetailExtras["replay"]>["errors"] {
  const errors: NonNullable<DetailExtras["replay"]>["errors"] = {};
  for (const detail of error.details) {
    const field = detail.path.replace(/^body[./]/, "");
    if ((REPLAY_FIELDS as readonly string[]).includes(field))
      errors[field as keyof ReplayValues] = detail.message;
  }
  return errors;
}

export function registerSubscriptionActions(app: FastifyInstance, db: Database): void {
  const switchActive =
    (isActive: boolean) =>
    async (request: FastifyRequest<SubscriptionParams>, reply: FastifyReply) => {
      const { entity, id } = request.params;
      const { api } = consoleOf(request);
      try {
        // PATCH: only isActive changes, whatever else someone changed meanwhile.
        await api.patch(apiPath(entity, id), { isActive });
      } catch (error) {
        if (!(error instanceof ConsoleApiError) || error.status >= 500) throw error;
        return sendDetail(request, reply, db, request.params, {
          status: error.status,
          notice: { kind: "error", text: `${error.message}. Nothing was changed.` },
        });
      }
      return reply.redirect(`${pageHref(entity, id)}?done=${isActive ? "resumed" : "paused"}`, 303);
    };
  app.post<SubscriptionParams>("/e/:entity/subscriptions/:id/pause", switchActive(false));
  app.post<SubscriptionParams>("/e/:entity/subscriptions/:id/resume", switchActive(true));

  app.post<SubscriptionParams>("/e/:entity/subscriptions/:id/test", async (request, reply) => {
    const { entity, id } = request.params;
    const result = await consoleOf(request).api.post<TestResult>(apiPath(entity, id, "test"));
    await sendDetail(request, reply, db, request.params, { testResult: result });
  });

  app.post<SubscriptionParams>(
    "/e/:entity/subscriptions/:id/rotate-secret",
    async (request, reply) => {
      const { entity, id } = request.params;
      const rotated = await consoleOf(request).api.post<{
        secret: string;
        previousSecretExpiresAt: string;
      }>(apiPath(entity, id, "rotate-secret"));
      await sendDetail(request, reply, db, request.params, { newSecret: rotated });
    },
  );

  app.post<SubscriptionParams>("/e/:entity/subscriptions/:id/replay", async (request, reply) => {
    const { entity, id } = request.params;
    const fields = formOf(request);
    const values: ReplayValues = {
      fromPosition: fields.fromPosition ?? "",
      fromTime: fields.fromTime ?? "",
      toPosition: fields.toPosition ?? "",
    };
    try {
      await consoleOf(request).api.post(apiPath(entity, id, "replay"), replayBody(values));
    } catch (error) {
      if (!(error instanceof ConsoleApiError) || error.status >= 500) throw error;
      // An unknown subscription or another entity's is the error page, like any other address.
      if (error.code === "HERALD_SUBSCRIPTION_NOT_FOUND" || error.status === 403) throw error;
      return sendDetail(request, reply, db, request.params, {
        status: error.status,
        notice: { kind: "error", text: `${error.message}. Nothing was replayed.` },
        replay: { values, errors: replayErrors(error) },
      });
    }
    return reply.redirect(`${pageHref(entity, id)}?done=replayed#replays`, 303);
  });

  app.get<SubscriptionParams>("/e/:entity/subscriptions/:id/delete", async (request, reply) => {
    const { entity, id } = request.params;
    const { api } = consoleOf(request);
    const s = await api.get<SubscriptionJson>(apiPath(entity, id));
    const tables = await tableNames(api, entity);
    const href = pageHref(entity, s.id);
    sendPage(request, reply, {
      title: `Delete subscription ${s.id}?`,
      entity,
      body: html`<dl class="facts">
          <dt>Source</dt>
          <dd>${sourceText(s, tables)}</dd>
          <dt>Event type</dt>
          <dd>${s.eventType}</dd>
          <dt>Target URL</dt>
          <dd><code>${s.targetUrl}</code></dd>
        </dl>
        <p>
          Its delivery stops at once, and its attempts, parked events and replays are deleted with
          it. The change log keeps its events. This cannot be undone; to stop delivery for a while,
          pause it instead.
        </p>
        <form method="post" action="${href}/delete" class="actions">
          ${csrfField(request)}
          <button type="submit" class="danger">Delete subscription ${s.id}</button>
          <a href="${href}">Cancel</a>
        </form>`,
    });
  });

  app.post<SubscriptionParams>("/e/:entity/subscriptions/:id/delete", async (request, reply) => {
    const { entity, id } = request.params;
    await consoleOf(request).api.delete(apiPath(entity, id));
    return reply.redirect(`${pageHref(entity)}?done=deleted`, 303);
  });
}
