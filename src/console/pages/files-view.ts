/**
 * What the Files pages share (and the Exports pages borrow): a file reference and a
 * synchronisation as the API answers them, their states in words, a source's target without its
 * secrets, and a download relayed from the API.
 */
import type { FastifyReply } from "fastify";
import type { ConsoleApi } from "../console-api.js";
import { entityHref } from "../console-page.js";
import type { SafeHtml } from "../html.js";
import { html, pathPart, when } from "../html.js";

/** GET …/file-references/{id}, as the API answers it (file-reference-schemas.ts). */
export interface ReferenceBody {
  id: string;
  name: string;
  /** Without credentials: `headerNames` (HTTPS), `passwordSet` / `privateKeySet` (SFTP). */
  source: Record<string, unknown>;
  schedule: { cron: string; timezone: string } | null;
  timezone: string;
  nextSynchronizationAt: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface ReferenceList {
  fileReferences: ReferenceBody[];
  page: number;
  pageSize: number;
  totalElements: number;
}

/** GET …/synchronizations/{id}, as the API answers it. */
export interface SynchronizationBody {
  id: string;
  fileReferenceId: string;
  status: string;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  fileName: string | null;
  bytes: number | null;
  sha256: string | null;
  error: { code: string; message: string } | null;
  _links: { file?: { href: string } };
}

export interface SynchronizationList {
  synchronizations: SynchronizationBody[];
  page: number;
  pageSize: number;
  totalElements: number;
}

/** The states of a job run (a synchronisation, an export execution), with their badges. */
const STATES: Record<string, { label: string; badge: string; final: boolean }> = {
  PENDING: { label: "Waiting for a worker", badge: "muted", final: false },
  RUNNING: { label: "Running", badge: "warn", final: false },
  SUCCESS: { label: "Succeeded", badge: "ok", final: true },
  UNCHANGED: { label: "Unchanged", badge: "ok", final: true },
  NOT_FOUND: { label: "No file found", badge: "warn", final: true },
  ERROR: { label: "Failed", badge: "bad", final: true },
};

export function isFinalRun(state: string): boolean {
  return STATES[state]?.final ?? true;
}

export function runBadge(state: string): SafeHtml {
  const view = STATES[state] ?? { label: state, badge: "muted" };
  return html`<span class="badge ${view.badge}" data-state="${state}">${view.label}</span>`;
}

/** The API's paths of an entity's objects. */
export function entityApi(entity: string, ...segments: string[]): string {
  return ["/v5/entities", pathPart(entity), ...segments.map(pathPart)].join("/");
}

export function referenceHref(entity: string, id: string): string {
  return entityHref(entity, "files", id);
}

function text(value: unknown): string {
  return typeof value === "string" || typeof value === "number" ? String(value) : "";
}

/** An HTTPS URL without its query string, fragment or user information (they may hold secrets). */
export function publicUrl(url: string): string {
  const cut = url.split(/[?#]/, 1)[0] ?? "";
  return cut.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^/]*@/, "$1");
}

/** Where a reference reads from, with nothing secret: a URL, `host:port path`, or a drop path. */
export function sourceTarget(source: Record<string, unknown>): string {
  if (source.type === "HTTPS") return publicUrl(text(source.url));
  if (source.type === "SFTP")
    return `${text(source.host)}:${text(source.port) || "22"} ${text(source.path)}`;
  if (source.type === "DIRECTORY") return text(source.path);
  return "";
}

export function sourceKind(source: Record<string, unknown>): string {
  return text(source.type) || "—";
}

/** A schedule in words: the cron expression and its zone, or "on demand". */
export function scheduleText(schedule: { cron?: unknown; timezone?: unknown } | null): string {
  if (!schedule || typeof schedule.cron !== "string") return "on demand only";
  return `${schedule.cron} (${text(schedule.timezone) || "UTC"})`;
}

/** A SHA-256 shortened for a table, the whole one in its title. */
export function shortSha(sha: string | null): SafeHtml | string {
  if (!sha) return "—";
  return html`<span class="mono" title="${sha}">${sha.slice(0, 12)}…</span>`;
}

export function errorText(error: { code: string; message: string } | null): SafeHtml | string {
  if (!error) return "";
  return html`<span class="mono">${error.code}</span> ${error.message}`;
}

/** Both ends of a run. */
export function runTimes(run: {
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}): SafeHtml {
  return html`<span class="nowrap">asked ${when(run.createdAt)}</span>
    ${run.startedAt ? html`<br /><span class="nowrap">started ${when(run.startedAt)}</span>` : ""}
    ${run.finishedAt ? html`<br /><span class="nowrap">ended ${when(run.finishedAt)}</span>` : ""}`;
}

/** Newer / Older links of a paged list, or nothing when it fits one page. */
export function pagerLinks(
  href: (page: number) => string,
  list: { page: number; pageSize: number; totalElements: number },
  label: string,
): SafeHtml {
  const pages = Math.ceil(list.totalElements / list.pageSize);
  if (pages <= 1) return html``;
  return html`<nav class="actions pager" aria-label="Pages of ${label}">
    <span>Page ${list.page + 1} of ${pages} (${list.totalElements} ${label})</span>
    ${list.page > 0 ? html`<a href="${href(list.page - 1)}" rel="prev">Newer</a>` : ""}
    ${list.page + 1 < pages ? html`<a href="${href(list.page + 1)}" rel="next">Older</a>` : ""}
  </nav>`;
}

/** A page number from the query: a small whole number, else the first page (never echoed). */
export function pageOf(value: string | undefined): number {
  return value && /^\d{1,6}$/.test(value) ? Number(value) : 0;
}

/**
 * A file the API serves, relayed as a download: its type, length and attachment name as the API
 * gave them. A refusal (an unfinished run, an expired file, another entity) is the API's error,
 * which the console renders as its error page.
 */
export async function relayDownload(
  api: ConsoleApi,
  reply: FastifyReply,
  path: string,
): Promise<FastifyReply> {
  const answer = await api.download(path);
  const header = (name: string) => {
    const value = answer.headers[name];
    return typeof value === "string" || typeof value === "number" ? String(value) : undefined;
  };
  const length = header("content-length");
  if (length !== undefined) void reply.header("content-length", length);
  return reply
    .type(header("content-type") ?? "application/octet-stream")
    .header("content-disposition", header("content-disposition") ?? "attachment")
    .send(answer.stream);
}
