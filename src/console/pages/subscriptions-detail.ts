/**
 * One subscription's page: its settings (never its secret), state and endpoint health, lag, the
 * throughput chart of the last hour, the actions (pause or resume, test, replay, rotate the secret,
 * edit, delete), the live list of attempts, the replays and the daily error log. The actions'
 * routes (subscriptions-actions.ts) render this page again with what they have to show once: a
 * test push's outcome, a new secret, or a refused replay with the values typed.
 */
import type { FastifyReply, FastifyRequest } from "fastify";
import type { Database } from "../../storage/database.js";
import {
  MINUTE_SAMPLE,
  readDeliveryStates,
  readMinuteSamples,
} from "../../storage/console-subscription-reads.js";
import type { ConsoleApi } from "../console-api.js";
import { ConsoleApiError } from "../console-api.js";
import { consoleOf, csrfField, sendPage } from "../console-page.js";
import type { SafeHtml } from "../html.js";
import { html, when } from "../html.js";
import {
  attemptsList,
  outcomeBadge,
  answerText,
  pushHref,
  readAttempts,
} from "./subscriptions-attempts.js";
import { throughputChart } from "./subscriptions-chart.js";
import { minuteCounts, numberText } from "./subscriptions-throughput.js";
import type { SubscriptionJson } from "./subscriptions-view.js";
import {
  subscriptionTable,
  apiPath,
  healthBadge,
  pageHref,
  pageNumber,
  pager,
  sourceText,
  stateBadge,
  stateOf,
  tableNames,
} from "./subscriptions-view.js";

/** A replay request as `GET …/replays` and `POST …/replay` answer it. */
export interface ReplayJson {
  id: number;
  fromPosition: number;
  toPosition: number;
  fromTime: string | null;
  cursor: number;
  status: string;
  statusReason: string | null;
  eventsSent: number;
  requestedAt: string;
  finishedAt: string | null;
}

/** `POST …/test`'s answer. */
export interface TestResult {
  pushId: string;
  delivered: boolean;
  statusCode: number | null;
  errorClass: string | null;
  errorMessage: string | null;
  durationMs: number;
  responseExcerpt: string | null;
}

interface DailyLog {
  date: string;
  failures: {
    time: string;
    pushId: string;
    eventIds: string[];
    positions: { first: number; last: number };
    attempt: number;
    outcome: string;
    statusCode: number | null;
    errorClass: string | null;
    errorMessage: string | null;
    responseExcerpt: string | null;
  }[];
  page: number;
  pageSize: number;
  totalElements: number;
  totalElementsCapped: boolean;
}

/** The replay form's fields as typed. */
export interface ReplayValues {
  fromPosition: string;
  fromTime: string;
  toPosition: string;
}

/** What an action has to show on the page once. */
export interface DetailExtras {
  status?: number;
  notice?: { kind: "ok" | "error"; text: string };
  testResult?: TestResult;
  newSecret?: { secret: string; previousSecretExpiresAt: string };
  replay?: { values: ReplayValues; errors: Partial<Record<keyof ReplayValues, string>> };
}

const ERROR_LOG_PAGE_SIZE = 20;
const REPLAYS_SHOWN = 10;

function today(): string {
  return new Date().toISOString().slice(0, 10);
}

function facts(s: SubscriptionJson, tables: Map<string, string>, secret: SecretInfo): SafeHtml {
  const headers = Object.entries(s.headers);
  const bulk =
    s.pushMode === "BULK"
      ? ` (up to ${s.maxBlockSize} events per push; sent after ${s.lingerMs} ms without new events or when the oldest waited ${s.maxWaitMs} ms)`
      : "";
  return html`<dl class="facts settings">
    <dt>Source</dt>
    <dd>${sourceText(s, tables)}</dd>
    <dt>Event type</dt>
    <dd>${s.eventType}</dd>
    <dt>Only when involved</dt>
    <dd>
      ${s.onFields.length > 0 ? s.onFields.join(", ") : "any field (every event of the type)"}
    </dd>
    <dt>Target URL</dt>
    <dd><code>${s.targetUrl}</code></dd>
    <dt>Push mode</dt>
    <dd>${s.pushMode}${bulk}</dd>
    <dt>Concurrency</dt>
    <dd>${s.maxConcurrency} requests at a time</dd>
    <dt>Headers</dt>
    <dd>
      ${
        headers.length === 0
          ? "none"
          : html`<ul class="plain">
              ${headers.map(([name, value]) => html`<li><code>${name}: ${value}</code></li>`)}
            </ul>`
      }
    </dd>
    ${
      s.conditions
        ? html`<dt>Conditions</dt>
            <dd><pre>${JSON.stringify(s.conditions, null, 2)}</pre></dd>`
        : ""
    }
    <dt>Payload</dt>
    <dd>
      version ${s.payloadVersion}${s.includePrevious ? ", with the previous values of updates" : ""}
    </dd>
    <dt>Signing secret</dt>
    <dd>
      set (never shown
      here)${
        secret.previousSignsUntil
          ? html`; rotated: the previous secret also signs until ${when(secret.previousSignsUntil)}`
          : ""
      }
    </dd>
    ${
      s.expiresAt
        ? html`<dt>Expires</dt>
            <dd>${when(s.expiresAt)}</dd>`
        : ""
    }
    <dt>Created</dt>
    <dd>${when(s.createdAt)}</dd>
    <dt>Updated</dt>
    <dd>${when(s.updatedAt)}</dd>
  </dl>`;
}

interface SecretInfo {
  previousSignsUntil: string | undefined;
}

function testResultBlock(result: TestResult): SafeHtml {
  return html`<section class="test-result" aria-labelledby="test-title">
    <h2 id="test-title">Test push</h2>
    <p role="status">
      ${
        result.delivered
          ? html`<span class="badge ok">delivered</span> The endpoint accepted the sample push.`
          : html`<span class="badge bad">not delivered</span> The endpoint did not accept the sample
              push.`
      }
    </p>
    <dl class="facts">
      <dt>Answer</dt>
      <dd>${answerText(result) || "no HTTP answer"}</dd>
      ${
        result.errorMessage
          ? html`<dt>Error</dt>
              <dd>${result.errorMessage}</dd>`
          : ""
      }
      <dt>Duration</dt>
      <dd>${result.durationMs} ms</dd>
      <dt>Push id</dt>
      <dd><code>${result.pushId}</code></dd>
    </dl>
    ${result.responseExcerpt ? html`<pre>${result.responseExcerpt}</pre>` : ""}
  </section>`;
}

function newSecretBlock(rotated: NonNullable<DetailExtras["newSecret"]>): SafeHtml {
  return html`<section class="secret-once" aria-labelledby="secret-title">
    <h2 id="secret-title">New signing secret</h2>
    <p class="notice error" role="alert">
      Copy it now: this page shows it once and the console never shows it again.
    </p>
    <p><code class="secret">${rotated.secret}</code></p>
    <p class="help">
      The previous secret keeps signing pushes (a second signature) until
      ${when(rotated.previousSecretExpiresAt)}: deploy the new one to the receiver before then.
    </p>
  </section>`;
}

function actions(request: FastifyRequest, entity: string, s: SubscriptionJson): SafeHtml {
  const href = pageHref(entity, s.id);
  const csrf = csrfField(request);
  return html`<div class="actions">
    <a href="${href}/edit">Edit</a>
    ${
      s.isActive
        ? html`<form method="post" action="${href}/pause" class="inline">
            ${csrf}<button type="submit" class="secondary">Pause</button>
          </form>`
        : html`<form method="post" action="${href}/resume" class="inline">
            ${csrf}<button type="submit">Resume</button>
          </form>`
    }
    <form method="post" action="${href}/test" class="inline">
      ${csrf}<button type="submit" class="secondary">Send a test push</button>
    </form>
    <form method="post" action="${href}/rotate-secret" class="inline">
      ${csrf}<button type="submit" class="secondary">Rotate secret</button>
    </form>
    <a href="${href}/delete">Delete…</a>
  </div>`;
}

function replayForm(
  request: FastifyRequest,
  entity: string,
  s: SubscriptionJson,
  replay: DetailExtras["replay"],
): SafeHtml {
  const values = replay?.values ?? { fromPosition: "", fromTime: "", toPosition: "" };
  const errors = replay?.errors ?? {};
  const field = (name: keyof ReplayValues, label: string, help: string) =>
    html`<div class="field">
      <label for="r-${name}">${label}</label>
      <input
        id="r-${name}"
        name="${name}"
        value="${values[name]}"
        autocomplete="off"
        aria-describedby="r-${name}-help${errors[name] ? ` r-${name}-error` : ""}"
        ${errors[name] ? html`aria-invalid="true"` : ""}
      />
      <span class="help" id="r-${name}-help">${help}</span>
      ${errors[name] ? html`<p class="field-error" id="r-${name}-error">${errors[name]}</p>` : ""}
    </div>`;
  return html`<form method="post" action="${pageHref(entity, s.id)}/replay" class="replay-form">
    ${csrfField(request)}
    <div class="replay-fields">
      ${field("fromPosition", "From log position", "Inclusive.")}
      ${field("fromTime", "Or since (UTC)", "Such as 2026-11-30T08:00.")}
      ${field("toPosition", "Up to position", "Optional; default: the log head now.")}
    </div>
    <div class="actions"><button type="submit">Replay</button></div>
  </form>`;
}

function replaysTable(replays: ReplayJson[]): SafeHtml {
  return subscriptionTable(
    [
      { label: "Replay", cell: (r) => r.id, numeric: true },
      { label: "Positions", cell: (r) => `${r.fromPosition}–${r.toPosition}` },
      {
        label: "State",
        cell: (r) =>
          html`<span
              class="badge ${r.status === "DONE" ? "ok" : r.status === "CANCELLED" ? "muted" : "warn"}"
              >${r.status}</span
            >${r.statusReason ? html` ${r.statusReason}` : ""}`,
      },
      { label: "Reached", cell: (r) => r.cursor, numeric: true },
      { label: "Events delivered", cell: (r) => r.eventsSent, numeric: true },
      { label: "Requested", cell: (r) => when(r.requestedAt) },
    ],
    replays.slice(0, REPLAYS_SHOWN),
    { empty: "No replays." },
  );
}

function errorLogSection(
  entity: string,
  s: SubscriptionJson,
  day: string,
  log: DailyLog | { refused: string },
): SafeHtml {
  const href = pageHref(entity, s.id);
  const form = html`<form method="get" action="${href}#errors" class="filters">
    <label for="e-day">Day (UTC) <input id="e-day" name="day" type="date" value="${day}" /></label>
    <button type="submit" class="secondary">Show</button>
  </form>`;
  if ("refused" in log)
    return html`${form}
      <p class="field-error">${log.refused}</p>`;
  const pageHrefOf = (p: number) => `${href}?day=${encodeURIComponent(day)}&errorsPage=${p}#errors`;
  return html`${form}
  ${subscriptionTable(
    [
      { label: "Time", cell: (f) => when(f.time) },
      { label: "Outcome", cell: (f) => outcomeBadge(f.outcome) },
      { label: "Answer", cell: (f) => answerText(f) || "no answer" },
      { label: "Attempt", cell: (f) => f.attempt, numeric: true },
      {
        label: "Push",
        cell: (f) =>
          html`<a href="${pushHref(entity, s.id, f.pushId)}"
            ><code>${f.pushId.slice(0, 8)}</code></a
          >`,
      },
      {
        label: "Positions",
        cell: (f) =>
          f.positions.first === f.positions.last
            ? String(f.positions.first)
            : `${f.positions.first}–${f.positions.last}`,
      },
      {
        label: "Response or error",
        cell: (f) => f.errorMessage ?? f.responseExcerpt?.slice(0, 200) ?? "—",
      },
    ],
    log.failures,
    { empty: `No failed pushes on ${log.date}.` },
  )}
  ${pager(log.page, log.pageSize, log.totalElements, pageHrefOf, "failures")}`;
}

/**
 * The day's failed attempts, or the API's refusal of the day in words. Only a day's shape reaches
 * the API's `…/{id}/{day}` path (`…/{id}/secret` is a path of its own); the API judges the rest
 * (2026-02-30 is no day).
 */
async function dailyLog(
  api: ConsoleApi,
  entity: string,
  id: number,
  day: string,
  page: number,
): Promise<DailyLog | { refused: string }> {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(day))
    return { refused: "The day of the error log must be written yyyy-MM-dd, such as 2026-11-30." };
  try {
    return await api.get<DailyLog>(apiPath(entity, id, day), {
      page,
      pageSize: ERROR_LOG_PAGE_SIZE,
    });
  } catch (error) {
    if (!(error instanceof ConsoleApiError) || error.status >= 500) throw error;
    return { refused: error.message };
  }
}

/** Renders the subscription's page (after an action too, with what it has to show once). */
export async function sendDetail(
  request: FastifyRequest,
  reply: FastifyReply,
  db: Database,
  params: { entity: string; id: string; day?: string; errorsPage?: number },
  extras: DetailExtras = {},
): Promise<void> {
  const { entity, id } = params;
  const { api } = consoleOf(request);
  // First the subscription through the API: it checks the key's scope (403/404) before any SQL.
  const s = await api.get<SubscriptionJson>(apiPath(entity, id));
  const day = params.day ?? today();
  const [tables, secret, replays, attempts, log, states, samples] = await Promise.all([
    tableNames(api, entity),
    api.get<{ previousSecretExpiresAt?: string }>(apiPath(entity, s.id, "secret")),
    api.get<{ replays: ReplayJson[] }>(apiPath(entity, s.id, "replays")),
    readAttempts(api, entity, s.id),
    dailyLog(api, entity, s.id, day, params.errorsPage ?? 0),
    readDeliveryStates(db, [s.id]),
    readMinuteSamples(db, s.id),
  ]);
  const status = extras.status ?? ("refused" in log ? 400 : undefined);
  const stored = states.get(s.id);
  const href = pageHref(entity, s.id);
  const minutes = samples.minutes.map((m) => minuteCounts(m, MINUTE_SAMPLE, samples.now));
  const hour = {
    delivered: minutes.reduce((n, m) => n + m.delivered, 0),
    failed: minutes.reduce((n, m) => n + m.failed, 0),
    estimated: minutes.some((m) => m.estimated),
  };
  const notice =
    extras.notice ?? ("refused" in log ? { kind: "error" as const, text: log.refused } : undefined);
  sendPage(request, reply, {
    title: `Subscription ${s.id}`,
    entity,
    status,
    notice,
    body: html`<p><a href="${pageHref(entity)}">All subscriptions</a></p>
      ${extras.newSecret ? newSecretBlock(extras.newSecret) : ""}
      ${extras.testResult ? testResultBlock(extras.testResult) : ""}
      <dl class="facts status">
        <dt>State</dt>
        <dd>${stateBadge(stateOf(s, stored))} ${s.status.reason ?? ""}</dd>
        <dt>Health</dt>
        <dd>${healthBadge(s, stored, hour, new Date())}</dd>
        <dt>Lag</dt>
        <dd>${numberText(s.status.lag)} log positions behind the head</dd>
        <dt>Parked records</dt>
        <dd>${s.status.parkedRecords}</dd>
      </dl>
      ${actions(request, entity, s)}
      <h2>Throughput, last hour</h2>
      ${throughputChart(minutes)}
      <h2 id="attempts-title">Recent attempts</h2>
      <div
        id="attempts"
        class="live"
        aria-labelledby="attempts-title"
        hx-get="${href}/attempts"
        hx-trigger="every 5s"
        hx-swap="innerHTML"
      >
        ${attemptsList(entity, s, attempts)}
      </div>
      <p><a href="${href}/attempts">All attempts</a></p>
      <h2>Settings</h2>
      ${facts(s, tables, { previousSignsUntil: secret.previousSecretExpiresAt })}
      <h2 id="replays">Replays</h2>
      ${replaysTable(replays.replays)}
      <h3>Replay events</h3>
      <p class="help">
        Re-sends the events of a range that this subscription matches, as new pushes; live delivery
        goes on beside it. Give a log position or a time, not both.
      </p>
      ${replayForm(request, entity, s, extras.replay)}
      <h2 id="errors">Daily error log</h2>
      ${errorLogSection(entity, s, day, log)}`,
  });
}

export type DetailRoute = {
  Params: { entity: string; id: string };
  Querystring: { done?: string; day?: string; errorsPage?: string };
};

/** The query of the page's own GET: the day of the error log and its page. */
export function detailQuery(query: DetailRoute["Querystring"]): {
  day?: string;
  errorsPage: number;
} {
  return {
    ...(typeof query.day === "string" && query.day !== "" ? { day: query.day } : {}),
    errorsPage: pageNumber(query.errorsPage),
  };
}
