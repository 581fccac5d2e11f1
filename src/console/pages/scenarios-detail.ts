/**
 * A scenario's page, `/ui/e/{entity}/scenarios/{id}` (SPEC §7.4, issue #17 item 4): its start and
 * re-entry policy, its blocks in order with their statistics (runs that entered each, wait in it,
 * passed it, left the scenario in it), "Activate" or "Deactivate" (letting the runs going on
 * finish, or cancelling them: a choice the person makes with one of two buttons), and its runs,
 * latest first, filtered by state and profile key as the API filters them, 25 a page
 * (scenarios-runs.ts).
 *
 * While the scenario is active or runs of it are going on, the statistics and the runs ask for
 * themselves again every few seconds (htmx), so a page left open follows the runs.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { ConsoleApi } from "../console-api.js";
import { ConsoleApiError } from "../console-api.js";
import {
  consoleOf,
  csrfField,
  dataTable,
  formOf,
  refusalText,
  sendFragment,
  sendPage,
} from "../console-page.js";
import type { SafeHtml } from "../html.js";
import { html, when } from "../html.js";
import { entityApi } from "./files-view.js";
import type { RunQuery } from "./scenarios-runs.js";
import { filtersOf, readRuns, runFilterForm, runsBlock } from "./scenarios-runs.js";
import type { BlockStatisticsBody, ScenarioBody } from "./scenarios-view.js";
import {
  blockLinks,
  blockText,
  count,
  profileTableHref,
  REFRESH,
  scenarioBadge,
  scenarioHref,
  startText,
} from "./scenarios-view.js";

type ScenarioParams = { entity: string; id: string };
type ScenarioRoute = {
  Params: ScenarioParams;
  Querystring: RunQuery & { done?: string; cancelled?: string };
};

interface Extras {
  status?: number;
  notice?: { kind: "ok" | "error"; text: string };
}

/** The statistics per block, in the order of the blocks. */
async function readStatistics(
  api: ConsoleApi,
  entity: string,
  id: string,
): Promise<BlockStatisticsBody[]> {
  const answer = await api.get<{ blocks: BlockStatisticsBody[] }>(
    entityApi(entity, "scenarios", id, "statistics"),
  );
  return answer.blocks;
}

function doneNotice(query: ScenarioRoute["Querystring"]): Extras["notice"] {
  switch (query.done) {
    case "activated":
      return {
        kind: "ok",
        text: "Activated: from now on its start begins runs (events already in the log start none).",
      };
    case "deactivated":
      return {
        kind: "ok",
        text: "Deactivated: no new run starts; runs going on continue to their end.",
      };
    case "cancelled": {
      const n = query.cancelled && /^\d{1,9}$/.test(query.cancelled) ? query.cancelled : "0";
      return {
        kind: "ok",
        text: `Deactivated: no new run starts, and ${n} run(s) going on were cancelled.`,
      };
    }
    default:
      return undefined;
  }
}

/** Whether the page follows the runs by itself: while new runs may start or runs go on. */
function following(scenario: ScenarioBody, statistics: BlockStatisticsBody[]): boolean {
  return scenario.status === "ACTIVE" || liveRuns(statistics) > 0;
}

function liveRuns(statistics: BlockStatisticsBody[]): number {
  return statistics.reduce((sum, s) => sum + s.waiting, 0);
}

async function sendScenario(
  request: FastifyRequest<{ Params: ScenarioParams }>,
  reply: FastifyReply,
  query: ScenarioRoute["Querystring"],
  extras: Extras = {},
): Promise<void> {
  const { entity, id } = request.params;
  const { api } = consoleOf(request);
  const scenario = await api.get<ScenarioBody>(entityApi(entity, "scenarios", id));
  const filters = filtersOf(query);
  const [statistics, runs] = await Promise.all([
    readStatistics(api, entity, scenario.id),
    readRuns(api, entity, scenario.id, filters),
  ]);
  const refusal = runs.refusal
    ? { kind: "error" as const, text: `${refusalText(runs.refusal)} No run is shown.` }
    : undefined;
  sendPage(request, reply, {
    title: `Scenario ${scenario.name}`,
    entity,
    status: extras.status ?? runs.refusal?.status,
    notice: extras.notice ?? refusal ?? doneNotice(query),
    body: html`<p><a href="${scenarioHref(entity)}">All scenarios</a></p>
      ${facts(entity, scenario)} ${actions(request, entity, scenario, statistics)}
      <h2>Blocks</h2>
      ${statisticsBlock(entity, scenario, statistics)}
      <h2>Runs</h2>
      ${runFilterForm(entity, scenario, filters)}
      ${runsBlock(entity, scenario, runs.list, filters, following(scenario, statistics))}`,
  });
}

function facts(entity: string, scenario: ScenarioBody): SafeHtml {
  return html`<dl class="facts">
    <dt>Status</dt>
    <dd>${scenarioBadge(scenario.status)}</dd>
    <dt>Profile table</dt>
    <dd><a href="${profileTableHref(entity, scenario)}">${scenario.profileTable}</a></dd>
    <dt>Start</dt>
    <dd><span class="mono">${String(scenario.start.type)}</span>: ${startText(scenario.start)}</dd>
    <dt>Re-entry</dt>
    <dd>${reentryText(scenario.reentry)}</dd>
    <dt>Activated</dt>
    <dd>${when(scenario.activatedAt)}</dd>
    <dt>Deactivated</dt>
    <dd>${when(scenario.deactivatedAt)}</dd>
    <dt>Changed</dt>
    <dd>${when(scenario.updatedAt)}</dd>
  </dl>`;
}

function reentryText(reentry: string): string {
  switch (reentry) {
    case "NEVER":
      return "NEVER: a profile runs it once";
    case "AFTER_EXIT":
      return "AFTER_EXIT: a profile runs it again once its run ended";
    case "ALWAYS":
      return "ALWAYS: a profile may be in several runs at once";
    default:
      return reentry;
  }
}

function actions(
  request: FastifyRequest,
  entity: string,
  scenario: ScenarioBody,
  statistics: BlockStatisticsBody[],
): SafeHtml {
  const href = scenarioHref(entity, scenario.id);
  const live = liveRuns(statistics);
  const going = `${count(live)} run${live === 1 ? "" : "s"} going on`;
  if (scenario.status === "INACTIVE")
    return html`<form method="post" action="${href}/activate" class="actions">
        ${csrfField(request)}
        <button type="submit">Activate</button>
        <span class="help"
          >From then on, its start begins runs; events already in the log start none.</span
        >
      </form>
      ${
        live > 0
          ? html`<form method="post" action="${href}/deactivate" class="actions">
              ${csrfField(request)}
              <button type="submit" name="cancelRuns" value="true" class="danger">
                Cancel the ${going}
              </button>
              <span class="help">Each ends CANCELLED in the block it is in.</span>
            </form>`
          : ""
      }`;
  return html`<form method="post" action="${href}/deactivate" class="stack">
    ${csrfField(request)}
    <p class="help">
      Deactivating stops new runs. The runs going on (the Waiting column below) either go on to
      their end, or end CANCELLED at once in the block they are in: choose one.
    </p>
    <div class="actions">
      <button type="submit" name="cancelRuns" value="false">
        Deactivate, let running runs finish
      </button>
      <button type="submit" name="cancelRuns" value="true" class="danger">
        Deactivate and cancel running runs
      </button>
    </div>
  </form>`;
}

/** The blocks in order with their figures; asks for itself again while runs may move. */
function statisticsBlock(
  entity: string,
  scenario: ScenarioBody,
  statistics: BlockStatisticsBody[],
): SafeHtml {
  const byId = new Map(statistics.map((s) => [s.blockId, s]));
  const zero = { entered: 0, waiting: 0, passed: 0, left: 0 };
  const rows = scenario.blocks.map((block) => ({ block, figures: byId.get(block.id) ?? zero }));
  const refresh = following(scenario, statistics)
    ? html`hx-get="${scenarioHref(entity, scenario.id)}/statistics" hx-trigger="${REFRESH}"
      hx-swap="outerHTML"`
    : "";
  type Row = (typeof rows)[number];
  return html`<div id="statistics" ${refresh}>
    <p class="help">
      Runs begin at the first block. Entered: runs that reached the block; waiting: runs in it now;
      passed: runs that went on from it; left: runs that left the scenario in it.
    </p>
    ${dataTable(
      [
        { label: "Block", cell: (r: Row) => html`<span class="mono">${r.block.id}</span>` },
        { label: "Type", cell: (r) => r.block.type },
        { label: "What it does", cell: (r) => blockText(r.block) },
        { label: "Then", cell: (r) => blockLinks(r.block) },
        { label: "Entered", numeric: true, cell: (r) => count(r.figures.entered) },
        { label: "Waiting", numeric: true, cell: (r) => count(r.figures.waiting) },
        { label: "Passed", numeric: true, cell: (r) => count(r.figures.passed) },
        { label: "Left", numeric: true, cell: (r) => count(r.figures.left) },
      ],
      rows,
      { empty: "This scenario has no block." },
    )}
  </div>`;
}

export function registerScenarioPage(app: FastifyInstance): void {
  app.get<ScenarioRoute>("/e/:entity/scenarios/:id", async (request, reply) => {
    await sendScenario(request, reply, request.query);
  });

  // The statistics alone, for the self-refresh.
  app.get<ScenarioRoute>("/e/:entity/scenarios/:id/statistics", async (request, reply) => {
    const { entity, id } = request.params;
    const { api } = consoleOf(request);
    const scenario = await api.get<ScenarioBody>(entityApi(entity, "scenarios", id));
    const statistics = await readStatistics(api, entity, scenario.id);
    sendFragment(reply, statisticsBlock(entity, scenario, statistics));
  });

  // The runs alone, for the self-refresh (with the filters of the page).
  app.get<ScenarioRoute>("/e/:entity/scenarios/:id/runs", async (request, reply) => {
    const { entity, id } = request.params;
    const { api } = consoleOf(request);
    const scenario = await api.get<ScenarioBody>(entityApi(entity, "scenarios", id));
    const filters = filtersOf(request.query);
    const [statistics, runs] = await Promise.all([
      readStatistics(api, entity, scenario.id),
      readRuns(api, entity, scenario.id, filters),
    ]);
    sendFragment(
      reply,
      runsBlock(entity, scenario, runs.list, filters, following(scenario, statistics)),
    );
  });

  app.post<{ Params: ScenarioParams }>(
    "/e/:entity/scenarios/:id/activate",
    async (request, reply) => {
      const { entity, id } = request.params;
      try {
        await consoleOf(request).api.post(entityApi(entity, "scenarios", id, "activate"));
      } catch (error) {
        // A definition that no longer fits its table or custom actions: the page, with why.
        if (!refusedHere(error)) throw error;
        return sendScenario(
          request,
          reply,
          {},
          {
            status: error.status,
            notice: { kind: "error", text: `${refusalText(error)} It was not activated.` },
          },
        );
      }
      return reply.redirect(`${scenarioHref(entity, id)}?done=activated`, 303);
    },
  );

  app.post<{ Params: ScenarioParams }>(
    "/e/:entity/scenarios/:id/deactivate",
    async (request, reply) => {
      const { entity, id } = request.params;
      const choice = formOf(request).cancelRuns;
      if (choice !== "true" && choice !== "false")
        return sendScenario(
          request,
          reply,
          {},
          {
            status: 400,
            notice: {
              kind: "error",
              text: "Choose whether the runs going on finish or are cancelled (one of the two buttons). Nothing was changed.",
            },
          },
        );
      const cancelRuns = choice === "true";
      let answer: ScenarioBody;
      try {
        answer = await consoleOf(request).api.post<ScenarioBody>(
          entityApi(entity, "scenarios", id, "deactivate"),
          { cancelRuns },
        );
      } catch (error) {
        if (!refusedHere(error)) throw error;
        return sendScenario(
          request,
          reply,
          {},
          {
            status: error.status,
            notice: { kind: "error", text: `${refusalText(error)} Nothing was changed.` },
          },
        );
      }
      const done = cancelRuns
        ? `done=cancelled&cancelled=${answer.cancelledRuns ?? 0}`
        : "done=deactivated";
      return reply.redirect(`${scenarioHref(entity, id)}?${done}`, 303);
    },
  );
}

/**
 * A refusal shown on the scenario's page: a 4xx about the scenario as it is. An unknown scenario
 * or another entity's is the error page, like any other address.
 */
function refusedHere(error: unknown): error is ConsoleApiError {
  return (
    error instanceof ConsoleApiError &&
    error.status >= 400 &&
    error.status < 500 &&
    error.status !== 403 &&
    error.code !== "HERALD_SCENARIO_NOT_FOUND" &&
    error.code !== "HERALD_ENTITY_NOT_FOUND"
  );
}
