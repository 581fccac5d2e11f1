/**
 * The runs of a scenario's page (scenarios-detail.ts): the filters by state and profile key, read
 * from the query and passed to the API's own filters (`GET …/runs?status=&profileKey=`), and the
 * runs table, latest first, 25 a page, which asks for itself again while the page follows the
 * scenario.
 */
import type { RunStatus } from "../../domain/scenario.js";
import { RUN_STATUSES } from "../../domain/scenario.js";
import type { ConsoleApi } from "../console-api.js";
import { ConsoleApiError } from "../console-api.js";
import { dataTable } from "../console-page.js";
import type { SafeHtml } from "../html.js";
import { html, when } from "../html.js";
import { entityApi, pageOf, pagerLinks } from "./files-view.js";
import type { BlockBody, RunBody, RunList, ScenarioBody } from "./scenarios-view.js";
import {
  count,
  REFRESH,
  runBadge,
  runIsLive,
  runStartText,
  runStatusLabel,
  runStatusOf,
  scenarioHref,
} from "./scenarios-view.js";

const PAGE_SIZE = 25;
/** A profile key typed in the filter is passed to the API up to this length (it checks the rest). */
const MAX_PROFILE_KEY = 500;

export type RunQuery = { status?: string; profileKey?: string; page?: string };

/** The runs' filters as the page keeps them: a known state, a profile key as typed (escaped). */
export interface RunFilters {
  status: RunStatus | undefined;
  profileKey: string | undefined;
  page: number;
}

const NO_FILTER: RunFilters = { status: undefined, profileKey: undefined, page: 0 };

export function filtersOf(query: RunQuery): RunFilters {
  const key = query.profileKey?.trim().slice(0, MAX_PROFILE_KEY);
  return {
    status: runStatusOf(query.status),
    profileKey: key ? key : undefined,
    page: pageOf(query.page),
  };
}

function filterQuery(filters: RunFilters, page = filters.page): string {
  const params = new URLSearchParams();
  if (filters.status) params.set("status", filters.status);
  if (filters.profileKey) params.set("profileKey", filters.profileKey);
  if (page > 0) params.set("page", String(page));
  const text = params.toString();
  return text ? `?${text}` : "";
}

/** The runs the filters select; a filter the API refuses (say, an unknown profile) is its words. */
export async function readRuns(
  api: ConsoleApi,
  entity: string,
  id: string,
  filters: RunFilters,
): Promise<{ list: RunList | undefined; refusal?: ConsoleApiError }> {
  try {
    const list = await api.get<RunList>(entityApi(entity, "scenarios", id, "runs"), {
      status: filters.status,
      profileKey: filters.profileKey,
      page: filters.page,
      pageSize: PAGE_SIZE,
    });
    return { list };
  } catch (error) {
    // The scenario was just read, so a 4xx here is about the filters.
    if (error instanceof ConsoleApiError && error.status >= 400 && error.status < 500)
      return { list: undefined, refusal: error };
    throw error;
  }
}

export function runFilterForm(
  entity: string,
  scenario: ScenarioBody,
  filters: RunFilters,
): SafeHtml {
  return html`<form method="get" action="${scenarioHref(entity, scenario.id)}" class="filters">
    <label for="run-status"
      >State
      <select id="run-status" name="status">
        <option value="">Any state</option>
        ${RUN_STATUSES.map(
          (s) =>
            html`<option value="${s}" ${filters.status === s ? html`selected` : ""}>
              ${runStatusLabel(s)}
            </option>`,
        )}
      </select>
    </label>
    <label for="run-profile"
      >Profile key
      <input
        id="run-profile"
        name="profileKey"
        type="text"
        spellcheck="false"
        value="${filters.profileKey ?? ""}"
        aria-describedby="run-profile-help"
      />
    </label>
    <button type="submit" class="secondary">Show</button>
    <span id="run-profile-help" class="help"
      >A profile id, or <code>attribute=value</code> of a unique attribute of
      ${scenario.profileTable}.</span
    >
  </form>`;
}

/** When a run started (and what started it), and when it ended. */
function runTimes(run: RunBody): SafeHtml {
  return html`<span class="nowrap">started ${when(run.startedAt)}</span>
    <span class="help">${runStartText(run.start)}</span>
    ${run.endedAt ? html`<br /><span class="nowrap">ended ${when(run.endedAt)}</span>` : ""}`;
}

function blockOf(scenario: ScenarioBody, id: string): BlockBody | undefined {
  return scenario.blocks.find((b) => b.id === id);
}

export function runsBlock(
  entity: string,
  scenario: ScenarioBody,
  list: RunList | undefined,
  filters: RunFilters,
  follow: boolean,
): SafeHtml {
  const href = scenarioHref(entity, scenario.id);
  const refresh =
    follow && list
      ? html`hx-get="${href}/runs${filterQuery(filters)}" hx-trigger="${REFRESH}"
        hx-swap="outerHTML"`
      : "";
  const filtered = filters.status !== undefined || filters.profileKey !== undefined;
  return html`<div id="runs" ${refresh}>
    ${
      list
        ? html`${dataTable(
            [
              { label: "Run", cell: (r: RunBody) => r.id },
              {
                // The console has no profile pages: the link shows this profile's runs.
                label: "Profile id",
                cell: (r) =>
                  html`<a
                    class="mono"
                    href="${href}${filterQuery({ ...NO_FILTER, profileKey: `profileId=${r.profileId}` })}"
                    title="The runs of profile ${r.profileId}"
                    >${r.profileId}</a
                  >`,
              },
              { label: "State", cell: (r) => runBadge(r.status) },
              {
                label: "Block",
                cell: (r) => {
                  const block = blockOf(scenario, r.blockId);
                  return html`<span class="mono">${r.blockId}</span>${
                      block ? html` <span class="help">${block.type}</span>` : ""
                    }`;
                },
              },
              { label: "Due", cell: (r) => (runIsLive(r.status) ? when(r.dueAt) : "—") },
              { label: "Steps", numeric: true, cell: (r) => count(r.steps) },
              { label: "Last error", cell: (r) => r.lastError ?? "" },
              { label: "Times", cell: (r) => runTimes(r) },
            ],
            list.runs,
            {
              empty: filtered
                ? "No run matches these filters."
                : scenario.status === "ACTIVE"
                  ? "No run yet: runs begin when the start happens."
                  : "No run yet. Activate the scenario for its start to begin runs.",
            },
          )}
          ${pagerLinks((p) => `${href}${filterQuery(filters, p)}`, list, "runs")}`
        : html`<p class="empty">No run is shown: the filter was refused.</p>`
    }
  </div>`;
}
