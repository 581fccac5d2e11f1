/**
 * A subscription's push attempts in the console: the live list on its page (an htmx fragment the
 * page asks for every 5 seconds), a full page of them with paging, and one push's own page (its
 * attempts and the events it carried). Each attempt opens as a `<details>` with the request (the
 * push's id, events and positions; the events' contents load when it is opened) and the response
 * (status, error class, duration and the start of the answer's body), as the attempts API gives
 * them. Opened attempts keep their place and state across refreshes (`hx-preserve`).
 */
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { ConsoleApi } from "../console-api.js";
import { consoleOf, sendFragment, sendPage } from "../console-page.js";
import type { SafeHtml } from "../html.js";
import { html, when } from "../html.js";
import type { SubscriptionJson } from "./subscriptions-view.js";
import { apiPath, pageHref, pageNumber, pager, subscriptionTable } from "./subscriptions-view.js";

/** One attempt as `GET …/attempts` answers it. */
export interface AttemptJson {
  pushId: string;
  eventIds: string[];
  positions: { first: number; last: number };
  attempt: number;
  attemptedAt: string;
  durationMs: number;
  outcome: string;
  statusCode: number | null;
  errorClass: string | null;
  errorMessage: string | null;
  responseExcerpt: string | null;
  nextAttemptAt: string | null;
}

export interface AttemptPage {
  attempts: AttemptJson[];
  page: number;
  pageSize: number;
  totalElements: number;
  totalElementsCapped: boolean;
}

/** Attempts on the subscription's page; the full list pages by this many too. */
export const RECENT_ATTEMPTS = 10;
/** Most events of one push shown (a BULK push may carry up to 1000). */
const EVENTS_SHOWN = 20;

const OUTCOME_BADGES: Record<string, string> = {
  DELIVERED: "ok",
  RETRY: "warn",
  FAILED: "bad",
  DISABLED: "bad",
};

export function outcomeBadge(outcome: string): SafeHtml {
  return html`<span class="badge ${OUTCOME_BADGES[outcome] ?? "muted"}">${outcome}</span>`;
}

/** "HTTP 500", "HTTP 500 · http_5xx", "timeout". */
export function answerText(a: { statusCode: number | null; errorClass: string | null }): string {
  return [a.statusCode === null ? "" : `HTTP ${a.statusCode}`, a.errorClass ?? ""]
    .filter(Boolean)
    .join(" · ");
}

export function pushHref(entity: string, id: number, pushId: string): string {
  return pageHref(entity, id, "pushes", pushId);
}

function attemptItem(entity: string, s: SubscriptionJson, a: AttemptJson): SafeHtml {
  const push = pushHref(entity, s.id, a.pushId);
  const positions =
    a.positions.first === a.positions.last
      ? `position ${a.positions.first}`
      : `positions ${a.positions.first}–${a.positions.last}`;
  return html`<li>
    <details
      id="attempt-${a.pushId}-${a.attempt}"
      hx-preserve="true"
      hx-get="${push}"
      hx-trigger="toggle once"
      hx-target="find .push-events"
      hx-swap="innerHTML"
    >
      <summary>
        ${outcomeBadge(a.outcome)} ${answerText(a) || "no answer"} · attempt ${a.attempt} ·
        ${a.durationMs} ms · <time datetime="${a.attemptedAt}">${when(a.attemptedAt)}</time>
      </summary>
      <div class="attempt">
        <h3>Request</h3>
        <dl class="facts">
          <dt>Sent</dt>
          <dd><code>POST ${s.targetUrl}</code> (the target as it is now)</dd>
          <dt>Push id</dt>
          <dd><code>${a.pushId}</code> (the <code>webhook-id</code> header)</dd>
          <dt>Events</dt>
          <dd>
            ${a.eventIds.length} (${positions}):
            ${a.eventIds.slice(0, 10).join(", ")}${a.eventIds.length > 10 ? " …" : ""}
          </dd>
        </dl>
        <div class="push-events">
          <a href="${push}">Show the events this push carried</a>
        </div>
        <h3>Response</h3>
        <dl class="facts">
          <dt>Status</dt>
          <dd>${a.statusCode === null ? "no HTTP answer" : `HTTP ${a.statusCode}`}</dd>
          ${
            a.errorClass
              ? html`<dt>Error class</dt>
                  <dd><code>${a.errorClass}</code></dd>`
              : ""
          }
          ${
            a.errorMessage
              ? html`<dt>Error</dt>
                  <dd>${a.errorMessage}</dd>`
              : ""
          }
          <dt>Duration</dt>
          <dd>${a.durationMs} ms</dd>
          ${
            a.nextAttemptAt
              ? html`<dt>Next attempt</dt>
                  <dd>${when(a.nextAttemptAt)}</dd>`
              : ""
          }
        </dl>
        ${
          a.responseExcerpt
            ? html`<p class="help">The answer's body (its first 4 KiB):</p>
                <pre>${a.responseExcerpt}</pre>`
            : html`<p class="empty">The answer had no body.</p>`
        }
      </div>
    </details>
  </li>`;
}

/** The list of attempts (the content that the page's live region swaps every 5 seconds). */
export function attemptsList(entity: string, s: SubscriptionJson, page: AttemptPage): SafeHtml {
  if (page.attempts.length === 0)
    return html`<p class="empty">No push attempts yet. They appear here as they happen.</p>`;
  const total = `${page.totalElements}${page.totalElementsCapped ? "+" : ""}`;
  return html`<p class="help">
      Newest first; ${total} in all. Open one to see its request and response.
    </p>
    <ul class="attempts">
      ${page.attempts.map((a) => attemptItem(entity, s, a))}
    </ul>`;
}

export function readAttempts(
  api: ConsoleApi,
  entity: string,
  id: string | number,
  page = 0,
): Promise<AttemptPage> {
  return api.get<AttemptPage>(apiPath(entity, id, "attempts"), {
    page,
    pageSize: RECENT_ATTEMPTS,
  });
}

/** Whether htmx asked (it then swaps the answer into the page; a browser gets a whole page). */
export function isFragmentRequest(request: FastifyRequest): boolean {
  return request.headers["hx-request"] === "true";
}

interface EventsOfPush {
  events: Record<string, unknown>[];
  /** Events of the push no longer in the change log (pruned by retention). */
  missing: number;
  /** Events of the push beyond EVENTS_SHOWN, not shown. */
  more: number;
}

/**
 * The events a push carried, read back from the change log API: from its first position, with the
 * subscription's own source and type, as many as the push had (up to EVENTS_SHOWN). Every event of
 * the push matches those filters and lies at or before its last position, so the read stops there.
 */
async function eventsOfPush(
  api: ConsoleApi,
  entity: string,
  s: SubscriptionJson,
  attempt: AttemptJson,
): Promise<EventsOfPush> {
  const wanted = attempt.eventIds.slice(0, EVENTS_SHOWN);
  const { events } = await api.get<{ events: Record<string, unknown>[] }>(
    `/v5/entities/${encodeURIComponent(entity)}/change-events`,
    {
      after: attempt.positions.first - 1,
      limit: wanted.length,
      on: s.on,
      onElementId: s.onElementId ?? undefined,
      eventType: s.eventType,
    },
  );
  const ids = new Set(wanted);
  const found = events.filter((e) => ids.has(String((e._event as { id?: unknown })?.id)));
  return {
    events: found,
    missing: wanted.length - found.length,
    more: attempt.eventIds.length - wanted.length,
  };
}

function eventsBlock(s: SubscriptionJson, shown: EventsOfPush): SafeHtml {
  const body =
    shown.events.length === 1 && s.pushMode === "ONE_BY_ONE" ? shown.events[0] : shown.events;
  return html`<p class="help">
      The body's <code>data</code>, as the change log holds these
      events${s.payloadVersion === 1 ? " (this subscription sends them in the older version 1 shape)" : ""}:
    </p>
    ${shown.events.length > 0 ? html`<pre>${JSON.stringify(body, null, 2)}</pre>` : ""}
    ${
      shown.missing > 0
        ? html`<p class="empty">
            ${shown.missing} of its events are no longer in the change log (pruned by retention).
          </p>`
        : ""
    }
    ${shown.more > 0 ? html`<p class="help">And ${shown.more} more events, not shown.</p>` : ""}`;
}

type SubscriptionParams = { Params: { entity: string; id: string } };

export function registerAttemptPages(app: FastifyInstance): void {
  app.get<SubscriptionParams & { Querystring: { page?: string } }>(
    "/e/:entity/subscriptions/:id/attempts",
    async (request, reply) => {
      const { entity, id } = request.params;
      const { api } = consoleOf(request);
      const page = pageNumber(request.query.page);
      const [s, attempts] = await Promise.all([
        api.get<SubscriptionJson>(apiPath(entity, id)),
        readAttempts(api, entity, id, page),
      ]);
      if (isFragmentRequest(request)) return sendFragment(reply, attemptsList(entity, s, attempts));
      const href = (p: number) => `${pageHref(entity, s.id, "attempts")}?page=${p}`;
      sendPage(request, reply, {
        title: `Attempts of subscription ${s.id}`,
        entity,
        body: html`<p><a href="${pageHref(entity, s.id)}">Back to subscription ${s.id}</a></p>
          ${attemptsList(entity, s, attempts)}
          ${pager(page, attempts.pageSize, attempts.totalElements, href)}`,
      });
    },
  );

  app.get<{ Params: { entity: string; id: string; pushId: string } }>(
    "/e/:entity/subscriptions/:id/pushes/:pushId",
    async (request, reply) => {
      const { entity, id, pushId } = request.params;
      const { api } = consoleOf(request);
      const [s, history] = await Promise.all([
        api.get<SubscriptionJson>(apiPath(entity, id)),
        api.get<AttemptPage>(apiPath(entity, id, "attempts"), { pushId, pageSize: 100 }),
      ]);
      const latest = history.attempts[0];
      if (!latest) {
        const text = "This subscription has no push with this id (or its attempts were pruned).";
        if (isFragmentRequest(request))
          return sendFragment(reply, html`<p class="empty">${text}</p>`, 404);
        return sendPage(request, reply, {
          title: "No such push",
          entity,
          status: 404,
          notice: { kind: "error", text },
          body: html`<p><a href="${pageHref(entity, s.id)}">Back to subscription ${s.id}</a></p>`,
        });
      }
      const events = eventsBlock(s, await eventsOfPush(api, entity, s, latest));
      if (isFragmentRequest(request)) return sendFragment(reply, events);
      sendPage(request, reply, {
        title: `Push ${latest.pushId}`,
        entity,
        body: html`<p><a href="${pageHref(entity, s.id)}">Back to subscription ${s.id}</a></p>
          <h2>Attempts</h2>
          ${subscriptionTable(
            [
              { label: "Attempt", cell: (a) => a.attempt, numeric: true },
              { label: "When", cell: (a) => when(a.attemptedAt) },
              { label: "Outcome", cell: (a) => outcomeBadge(a.outcome) },
              { label: "Answer", cell: (a) => answerText(a) || "no answer" },
              { label: "Duration (ms)", cell: (a) => a.durationMs, numeric: true },
              {
                label: "Response body",
                cell: (a) => (a.responseExcerpt ? html`<pre>${a.responseExcerpt}</pre>` : "—"),
              },
            ],
            history.attempts,
            { empty: "No attempts." },
          )}
          <h2>Events</h2>
          ${events}`,
      });
    },
  );
}
