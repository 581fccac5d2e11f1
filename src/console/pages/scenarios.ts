/**
 * The Scenarios pages of an entity (SPEC §7.4, issue #17): its scenarios with their table, start,
 * status and last activation, and its custom actions with their parameters (read-only); each
 * scenario's own page (scenarios-detail.ts) shows its blocks with their statistics, its runs, and
 * activates or deactivates it. Everything is read and changed through the JSON API as the
 * signed-in key.
 */
import type { ScenarioStatus } from "../../domain/scenario.js";
import { SCENARIO_STATUSES } from "../../domain/scenario.js";
import type { ConsolePage } from "../console-page.js";
import { consoleOf, dataTable, sendPage } from "../console-page.js";
import type { SafeHtml } from "../html.js";
import { html, when } from "../html.js";
import { entityApi, pageOf, pagerLinks } from "./files-view.js";
import { registerScenarioPage } from "./scenarios-detail.js";
import type {
  CustomActionBody,
  CustomActionList,
  ScenarioBody,
  ScenarioList,
} from "./scenarios-view.js";
import {
  count,
  profileTableHref,
  scenarioBadge,
  scenarioHref,
  startText,
} from "./scenarios-view.js";

const PAGE_SIZE = 25;
/** Custom actions listed (an entity has a handful; more are counted, not listed). */
const ACTIONS_SHOWN = 100;

type ListRoute = { Params: { entity: string }; Querystring: { page?: string; status?: string } };

const scenariosPage: ConsolePage = {
  nav: { label: "Scenarios", path: "scenarios" },
  register(app) {
    app.get<ListRoute>("/e/:entity/scenarios", async (request, reply) => {
      const { entity } = request.params;
      const { api } = consoleOf(request);
      // Only a status the API knows is passed on (and shown as chosen); anything else is "any".
      const status = SCENARIO_STATUSES.find((s) => s === request.query.status);
      const page = pageOf(request.query.page);
      const list = await api.get<ScenarioList>(entityApi(entity, "scenarios"), {
        page,
        pageSize: PAGE_SIZE,
        status,
      });
      const actions = await api.get<CustomActionList>(entityApi(entity, "custom-actions"), {
        pageSize: ACTIONS_SHOWN,
      });
      const href = (p: number) => listHref(entity, status, p);
      sendPage(request, reply, {
        title: "Scenarios",
        entity,
        body: html`${filterForm(entity, status)} ${scenariosTable(entity, list.scenarios, status)}
          ${pagerLinks(href, list, "scenarios")}
          <h2>Custom actions</h2>
          ${actionsTable(entity, actions)}`,
      });
    });
    registerScenarioPage(app);
  },
};

function listHref(entity: string, status: ScenarioStatus | undefined, page: number): string {
  const params = new URLSearchParams();
  if (status) params.set("status", status);
  if (page > 0) params.set("page", String(page));
  const query = params.toString();
  return `${scenarioHref(entity)}${query ? `?${query}` : ""}`;
}

function filterForm(entity: string, status: ScenarioStatus | undefined): SafeHtml {
  return html`<form method="get" action="${scenarioHref(entity)}" class="filters">
    <label for="scenario-status"
      >Status
      <select id="scenario-status" name="status">
        <option value="">Any status</option>
        <option value="ACTIVE" ${status === "ACTIVE" ? html`selected` : ""}>Active</option>
        <option value="INACTIVE" ${status === "INACTIVE" ? html`selected` : ""}>Inactive</option>
      </select>
    </label>
    <button type="submit" class="secondary">Show</button>
  </form>`;
}

function scenariosTable(
  entity: string,
  scenarios: ScenarioBody[],
  status: ScenarioStatus | undefined,
): SafeHtml {
  return dataTable(
    [
      {
        label: "Scenario",
        cell: (s: ScenarioBody) => html`<a href="${scenarioHref(entity, s.id)}">${s.name}</a>`,
      },
      {
        label: "Profile table",
        cell: (s) => html`<a href="${profileTableHref(entity, s)}">${s.profileTable}</a>`,
      },
      {
        label: "Start",
        cell: (s) =>
          html`<span class="mono">${String(s.start.type)}</span>
            <span class="help">${startText(s.start)}</span>`,
      },
      { label: "Status", cell: (s) => scenarioBadge(s.status) },
      { label: "Activated", cell: (s) => when(s.activatedAt) },
      { label: "Blocks", numeric: true, cell: (s) => count(s.blocks.length) },
    ],
    scenarios,
    {
      empty: status
        ? "No scenario of this entity has this status."
        : `This entity has no scenario. Define one with POST /v5/entities/${entity}/scenarios (docs/scenarios.md).`,
    },
  );
}

function actionsTable(entity: string, actions: CustomActionList): SafeHtml {
  return html`${dataTable(
    [
      { label: "Custom action", cell: (a: CustomActionBody) => a.name },
      { label: "Description", cell: (a) => a.description ?? "" },
      {
        label: "Parameters",
        cell: (a) =>
          a.parameters.length === 0
            ? "none"
            : html`<ul class="plain">
                ${a.parameters.map(
                  (p) =>
                    html`<li>
                      <span class="mono">${p.name}</span> ${p.valueType}${
                        p.mandatory ? html` <span class="badge warn">mandatory</span>` : ""
                      }
                    </li>`,
                )}
              </ul>`,
      },
    ],
    actions.customActions,
    {
      empty: `This entity has no custom action. Define one with POST /v5/entities/${entity}/custom-actions (docs/custom-actions.md).`,
    },
  )}
  ${
    actions.totalElements > actions.customActions.length
      ? html`<p class="help">
          The first ${count(actions.customActions.length)} of ${count(actions.totalElements)} custom
          actions are listed.
        </p>`
      : ""
  }`;
}

export default scenariosPage;
