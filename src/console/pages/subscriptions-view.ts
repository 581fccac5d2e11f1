/**
 * What the subscription pages share: the API's JSON shapes as the pages read them, the addresses of
 * the pages and of the API, and the small pieces of markup (state, health, figures) that both the
 * list and the detail page show.
 */
import type { StoredDeliveryState } from "../../storage/console-subscription-reads.js";
import { endpointHealth } from "../../domain/endpoint-health.js";
import type { Column } from "../console-page.js";
import { dataTable, entityHref } from "../console-page.js";
import type { SafeHtml } from "../html.js";
import { html, pathPart } from "../html.js";
import type { PushCounts } from "./subscriptions-throughput.js";
import { countText } from "./subscriptions-throughput.js";

/** A subscription as `GET …/webhookSubscription/{id}` answers it (the fields the pages read). */
export interface SubscriptionJson {
  id: number;
  on: string;
  onElementId: string | null;
  eventType: string;
  onFields: string[];
  targetUrl: string;
  headers: Record<string, string>;
  isActive: boolean;
  pushMode: string;
  maxBlockSize: number;
  lingerMs: number;
  maxWaitMs: number;
  maxConcurrency: number;
  includePrevious: boolean;
  conditions: unknown;
  payloadVersion: number;
  /** Present on servers that have temporary subscriptions; shown read-only. */
  expiresAt?: string | null;
  status: { state: string; reason: string | null; lag: number; parkedRecords: number };
  createdAt: string;
  updatedAt: string;
}

export interface SubscriptionList {
  webhookSubscriptions: SubscriptionJson[];
  page: number;
  pageSize: number;
  totalElements: number;
}

/** A table of the entity, for showing a name beside the id a subscription stores. */
export interface TableName {
  id: string;
  name: string;
}

/** `/v4/entity/{entity}/webhookSubscription[/{id}[/…]]`, each part encoded. */
export function apiPath(entity: string, id?: string | number, ...rest: string[]): string {
  const base = `/v4/entity/${pathPart(entity)}/webhookSubscription`;
  if (id === undefined) return base;
  return [base, pathPart(id), ...rest.map(pathPart)].join("/");
}

/** `/ui/e/{entity}/subscriptions[/…]`. */
export function pageHref(entity: string, ...segments: (string | number)[]): string {
  return entityHref(entity, "subscriptions", ...segments);
}

/** The entity's profile and custom tables by id (two API calls), to name a subscription's table. */
export async function tableNames(
  api: { get<T>(path: string): Promise<T> },
  entity: string,
): Promise<Map<string, string>> {
  const base = `/v5/entities/${pathPart(entity)}`;
  const [profiles, customs] = await Promise.all([
    api.get<{ profileTables: TableName[] }>(`${base}/profile-tables`),
    api.get<{ customTables: TableName[] }>(`${base}/custom-tables`),
  ]);
  return new Map([...profiles.profileTables, ...customs.customTables].map((t) => [t.id, t.name]));
}

/** `PROFILE_TABLE · Customers (id 3)`, `ETL · every ETL`. */
export function sourceText(s: SubscriptionJson, tables: Map<string, string>): string {
  if (s.onElementId === null) return `${s.on} · every element`;
  const name = tables.get(s.onElementId);
  return name === undefined
    ? `${s.on} · id ${s.onElementId}`
    : `${s.on} · ${name} (id ${s.onElementId})`;
}

export const STATE_KINDS = ["active", "paused", "failing", "disabled"] as const;
export type StateKind = (typeof STATE_KINDS)[number];

/**
 * The state in a person's words. The API says DISABLED both when a person paused the subscription
 * (`isActive: false`) and when delivery gave up on its endpoint; the stored state tells them apart.
 */
export function stateOf(s: SubscriptionJson, stored: StoredDeliveryState | undefined): StateKind {
  if (s.status.state === "ACTIVE") return "active";
  if (s.status.state === "FAILING") return "failing";
  return !s.isActive && stored?.state !== "DISABLED" ? "paused" : "disabled";
}

const STATE_BADGES: Record<StateKind, { text: string; badge: string }> = {
  active: { text: "active", badge: "ok" },
  paused: { text: "paused", badge: "muted" },
  failing: { text: "FAILING", badge: "bad" },
  disabled: { text: "disabled", badge: "bad" },
};

export function stateBadge(kind: StateKind): SafeHtml {
  const { text, badge } = STATE_BADGES[kind];
  return html`<span class="badge ${badge}">${text}</span>`;
}

/** "2 h 5 min", "3 days 4 h", "40 s". */
export function duration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  const min = Math.floor(s / 60);
  if (min < 60) return `${min} min`;
  const h = Math.floor(min / 60);
  if (h < 48) return `${h} h ${min % 60} min`;
  return `${Math.floor(h / 24)} days ${h % 24} h`;
}

/**
 * The endpoint's health: how long it has failed everything (SPEC §6), else records parked behind
 * a rejected push, else failed attempts in the last hour, else healthy.
 */
export function healthBadge(
  s: SubscriptionJson,
  stored: StoredDeliveryState | undefined,
  hour: PushCounts | undefined,
  now: Date,
): SafeHtml {
  const health = endpointHealth(stored?.failingSince ?? null, now);
  if (health.kind !== "healthy") {
    const text =
      health.kind === "failing"
        ? `failing for ${duration(health.failingForMs)}`
        : `failing for ${duration(health.failingForMs)}, operators warned`;
    return html`<span class="badge bad">${text}</span>`;
  }
  const parked = s.status.parkedRecords;
  if (parked > 0)
    return html`<span class="badge warn"
      >${parked} ${parked === 1 ? "record" : "records"} parked</span
    >`;
  if (hour && hour.failed > 0)
    return html`<span class="badge warn"
      >${countText(hour.failed, hour.estimated)} failed in the last hour</span
    >`;
  return html`<span class="badge ok">healthy</span>`;
}

/** The fixed sentence of a `?done=` notice; anything else in the query shows nothing. */
const DONE_NOTICES: Record<string, string> = {
  created:
    "The subscription was created. Its signing secret is kept by Herald: rotate it below to see a new one once, or read it with GET …/secret.",
  updated: "The subscription was saved.",
  paused: "The subscription is paused: nothing is sent, and nothing is skipped when it resumes.",
  resumed: "The subscription is active again: delivery goes on from where it stopped.",
  replayed: "The replay was requested. Its progress is under Replays below.",
  deleted: "The subscription was deleted.",
};

export function doneNotice(done: unknown): { kind: "ok"; text: string } | undefined {
  const text = typeof done === "string" ? DONE_NOTICES[done] : undefined;
  return text === undefined ? undefined : { kind: "ok", text };
}

/** A page number from the query: a whole number from 0, else 0. */
export function pageNumber(raw: unknown): number {
  return typeof raw === "string" && /^\d{1,5}$/.test(raw) ? Number(raw) : 0;
}

/** Previous / next links of a paged list (`query` builds the href of a page). */
export function pager(
  page: number,
  pageSize: number,
  total: number,
  href: (page: number) => string,
  label = "page",
): SafeHtml | string {
  const last = Math.max(0, Math.ceil(total / pageSize) - 1);
  if (last === 0 && page === 0) return "";
  return html`<nav class="pager" aria-label="Pages">
    ${page > 0 ? html`<a href="${href(page - 1)}" rel="prev">Previous ${label}</a>` : ""}
    <span>Page ${Math.min(page, last) + 1} of ${last + 1}</span>
    ${page < last ? html`<a href="${href(page + 1)}" rel="next">Next ${label}</a>` : ""}
  </nav>`;
}

/**
 * `dataTable` in a wrapper of these pages' own, whose styles keep a badge its own width in a phone's
 * card layout and column headings whole on a wide screen.
 */
export function subscriptionTable<Row>(
  columns: Column<Row>[],
  rows: Row[],
  options: { empty: string },
): SafeHtml {
  return html`<div class="sub-table">${dataTable(columns, rows, options)}</div>`;
}
