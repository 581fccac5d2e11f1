/**
 * The live part of an import's page: its state, the progress bar, the counters and timings, and the
 * rejected rows. The page renders it once; while the execution runs, the progress stream
 * (imports-progress.ts) renders it again at each change and the browser swaps it in.
 */
import type { Database } from "../../storage/database.js";
import type { RejectedRow } from "../../storage/etl-rejected-rows.js";
import { readRejectedRows } from "../../storage/etl-rejected-rows.js";
import { dataTable } from "../console-page.js";
import type { SafeHtml } from "../html.js";
import { html, when } from "../html.js";
import type { ExecutionBody } from "./imports-view.js";
import {
  bytes,
  count,
  duration,
  elapsedMs,
  executionHref,
  isFinal,
  stateBadge,
} from "./imports-view.js";

/** Rejected rows shown per page. */
export const REJECTED_PAGE_ROWS = 50;
/** Characters of a rejected line shown in the table (the download has the whole line). */
const RAW_SHOWN = 400;

export interface RejectedPage {
  /** The page starts after this line (0: the first rows). */
  after: number;
  rows: RejectedRow[];
  more: boolean;
}

/** `?after=` as a line number; anything else is the first page. */
export function afterLine(raw: unknown): number {
  return typeof raw === "string" && /^\d{1,15}$/.test(raw) ? Number(raw) : 0;
}

/**
 * A page of rejected rows with their raw lines, which the API's JSON leaves out (its CSV file has
 * them). Read only for an execution the API has just answered for this key.
 */
export async function readRejectedPage(
  db: Database,
  execution: ExecutionBody,
  after: number,
): Promise<RejectedPage> {
  if (execution.counts.rejected === 0) return { after, rows: [], more: false };
  const rows = await readRejectedRows(db, execution.id, after, REJECTED_PAGE_ROWS + 1);
  return { after, rows: rows.slice(0, REJECTED_PAGE_ROWS), more: rows.length > REJECTED_PAGE_ROWS };
}

export interface LiveView {
  entity: string;
  execution: ExecutionBody;
  rejected: RejectedPage;
  /** The CSRF field of the cancel form. */
  csrf: SafeHtml;
}

export function liveBlock(view: LiveView): SafeHtml {
  return html`${progressSection(view)} ${rejectedSection(view)}`;
}

function progressSection({ entity, execution, csrf }: LiveView): SafeHtml {
  const { status, progress, counts } = execution;
  const final = isFinal(status);
  const total = progress.bytesTotal;
  const read = Math.min(progress.bytesRead, total);
  const known = total > 0 && status !== "PENDING";
  const percent = known ? Math.floor((100 * read) / total) : 0;
  const took = elapsedMs(execution.startedAt, execution.finishedAt);
  const seconds = took === null ? 0 : took / 1000;
  const rate = seconds >= 1 && counts.read > 0 ? `${count(Math.round(counts.read / seconds))}` : "";
  const bar = known
    ? html`<progress id="import-bar" class="progress" max="${total}" value="${read}">
        ${percent}%
      </progress>`
    : html`<progress id="import-bar" class="progress">waiting</progress>`;
  return html`<h2>Progress</h2>
    <p class="import-state">State: ${stateBadge(status)}</p>
    <label for="import-bar">File read</label>
    ${bar}
    <p class="help" data-progress-text>
      ${
        known
          ? html`${bytes(read)} of ${bytes(total)} read (${percent}%)`
          : html`Waiting for a worker to start reading ${bytes(total)}.`
      }
    </p>
    <dl class="facts import-counts">
      <dt>Rows read</dt>
      <dd class="num" data-count="read">${count(counts.read)}</dd>
      <dt>Created</dt>
      <dd class="num" data-count="created">${count(counts.created)}</dd>
      <dt>Updated</dt>
      <dd class="num" data-count="updated">${count(counts.updated)}</dd>
      <dt>Unchanged</dt>
      <dd class="num" data-count="unchanged">${count(counts.unchanged)}</dd>
      <dt>Rejected</dt>
      <dd class="num" data-count="rejected">${count(counts.rejected)}</dd>
      <dt>Started</dt>
      <dd>${when(execution.startedAt)}</dd>
      <dt>Finished</dt>
      <dd>${final ? when(execution.finishedAt) : "not yet"}</dd>
      <dt>${final ? "Took" : "Running for"}</dt>
      <dd>${duration(took)}${rate ? html` (${rate} rows a second)` : ""}</dd>
    </dl>
    ${
      execution.error
        ? html`<p class="notice error" role="alert">
            The import stopped: ${execution.error.message} (${execution.error.code})
          </p>`
        : ""
    }
    ${
      final
        ? ""
        : html`<form
            method="post"
            action="${executionHref(entity, execution.id)}/cancel"
            class="actions"
          >
            ${csrf}
            <button type="submit" class="danger">Cancel this import</button>
            <span class="help">Rows already written stay.</span>
          </form>`
    }`;
}

function rejectedSection({ entity, execution, rejected }: LiveView): SafeHtml {
  const total = execution.counts.rejected;
  const final = isFinal(execution.status);
  const href = executionHref(entity, execution.id);
  if (total === 0)
    return html`<h2>Rejected rows</h2>
      <p class="empty">${final ? "No row was rejected." : "No row rejected so far."}</p>`;
  const first = rejected.rows[0]?.line;
  const last = rejected.rows[rejected.rows.length - 1]?.line;
  const pager = html`<nav class="actions import-pager" aria-label="Pages of rejected rows">
    ${rejected.after > 0 ? html`<a href="${href}">First rejected rows</a>` : ""}
    ${
      rejected.more && last !== undefined
        ? html`<a href="${href}?after=${last}">Next ${REJECTED_PAGE_ROWS} rejected rows</a>`
        : ""
    }
  </nav>`;
  return html`<h2>Rejected rows</h2>
    <p>
      ${count(total)} ${total === 1 ? "row was" : "rows were"} rejected${final ? "" : " so far"}.
      ${
        first !== undefined && last !== undefined
          ? html`Shown here: lines ${count(first)} to ${count(last)}.`
          : ""
      }
      <a href="${href}/rejected-rows.csv" download data-download="rejected-rows"
        >Download all rejected rows (CSV)</a
      >
    </p>
    ${dataTable(
      [
        { label: "Line", numeric: true, cell: (r: RejectedRow) => count(r.line) },
        { label: "Column", cell: (r) => r.column ?? "—" },
        {
          label: "Reason",
          cell: (r) =>
            html`<div>${r.message} <span class="help mono import-code">${r.code}</span></div>`,
        },
        {
          label: "Line as written",
          cell: (r) => html`<code class="raw-line">${shortened(r.raw)}</code>`,
        },
      ],
      rejected.rows,
      { empty: "No rejected row after this line." },
    )}
    ${pager}`;
}

/** A rejected line cut to RAW_SHOWN characters (never inside a surrogate pair). */
function shortened(raw: string): string {
  if (raw.length <= RAW_SHOWN) return raw;
  const code = raw.charCodeAt(RAW_SHOWN - 1);
  const end = code >= 0xd800 && code <= 0xdbff ? RAW_SHOWN - 1 : RAW_SHOWN;
  return `${raw.slice(0, end)} …`;
}
