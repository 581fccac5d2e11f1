/**
 * What the Scenarios pages share (SPEC §7.4): a scenario, a run, the statistics of a block and a
 * custom action as the API answers them, and the words a person reads for each: a start, a block,
 * a run's state. Nothing here reads the database; the pages call the API as the signed-in key.
 */
import type { RunStatus, ScenarioStatus } from "../../domain/scenario.js";
import { RUN_STATUSES } from "../../domain/scenario.js";
import { entityHref } from "../console-page.js";
import type { SafeHtml } from "../html.js";
import { html } from "../html.js";

/** GET …/scenarios/{id}, as the API answers it (scenario-schemas.ts). */
export interface ScenarioBody {
  id: string;
  name: string;
  profileTable: string;
  profileTableId: string;
  reentry: string;
  start: Record<string, unknown>;
  /** As stored, in order; a CUSTOM_ACTION block names its action (customAction) and its id. */
  blocks: BlockBody[];
  status: ScenarioStatus;
  activatedAt: string | null;
  deactivatedAt: string | null;
  createdAt: string;
  updatedAt: string;
  cancelledRuns?: number;
}

export type BlockBody = Record<string, unknown> & { id: string; type: string };

export interface ScenarioList {
  scenarios: ScenarioBody[];
  page: number;
  pageSize: number;
  totalElements: number;
}

/** One run of `GET …/scenarios/{id}/runs`. */
export interface RunBody {
  id: string;
  profileId: number;
  status: RunStatus;
  blockId: string;
  dueAt: string | null;
  start?: Record<string, unknown> | null;
  steps: number;
  failures?: number;
  lastError: string | null;
  startedAt: string;
  updatedAt?: string;
  endedAt: string | null;
}

export interface RunList {
  runs: RunBody[];
  page: number;
  pageSize: number;
  totalElements: number;
}

/** One block of `GET …/scenarios/{id}/statistics`. */
export interface BlockStatisticsBody {
  blockId: string;
  type: string;
  entered: number;
  waiting: number;
  passed: number;
  left: number;
}

/** GET …/custom-actions/{id}, as the API answers it (custom-action-schemas.ts). */
export interface CustomActionBody {
  id: string;
  name: string;
  description: string | null;
  parameters: { name: string; valueType: string; mandatory: boolean }[];
}

export interface CustomActionList {
  customActions: CustomActionBody[];
  totalElements: number;
}

/** How often a scenario's figures and runs ask for themselves again while it is followed. */
export const REFRESH = "every 5s";

export function scenarioHref(entity: string, id?: string): string {
  return id === undefined ? entityHref(entity, "scenarios") : entityHref(entity, "scenarios", id);
}

export function profileTableHref(entity: string, scenario: ScenarioBody): string {
  return entityHref(entity, "tables", "profile", scenario.profileTableId);
}

export function scenarioBadge(status: ScenarioStatus): SafeHtml {
  return status === "ACTIVE"
    ? html`<span class="badge ok" data-state="ACTIVE">Active</span>`
    : html`<span class="badge muted" data-state="INACTIVE">Inactive</span>`;
}

/** The states of a run, in words, with their badges. */
const RUN_VIEW: Record<RunStatus, { label: string; badge: string }> = {
  WAITING: { label: "Waiting", badge: "warn" },
  RUNNING: { label: "Moving on", badge: "warn" },
  FINISHED: { label: "Finished", badge: "ok" },
  CANCELLED: { label: "Cancelled", badge: "muted" },
  FAILED: { label: "Failed", badge: "bad" },
};

export function runStatusOf(text: string | undefined): RunStatus | undefined {
  return RUN_STATUSES.find((s) => s === text);
}

export function runStatusLabel(status: RunStatus): string {
  return RUN_VIEW[status].label;
}

export function runBadge(status: string): SafeHtml {
  const view = RUN_VIEW[status as RunStatus] ?? { label: status, badge: "muted" };
  return html`<span class="badge ${view.badge}" data-state="${status}">${view.label}</span>`;
}

/** Whether a run is still going (it holds a due time). */
export function runIsLive(status: string): boolean {
  return status === "WAITING" || status === "RUNNING";
}

function text(value: unknown): string {
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return "";
}

function list(value: unknown): unknown[] {
  return Array.isArray(value) ? (value as unknown[]) : [];
}

/** `tier = Gold`, `points >= 10`, `email IS_NULL`, `country IN [BE, NL]`. */
export function conditionText(condition: unknown): string {
  const c = (condition ?? {}) as { attribute?: unknown; operator?: unknown; value?: unknown };
  const value = Array.isArray(c.value)
    ? `[${(c.value as unknown[]).map(text).join(", ")}]`
    : c.value === null
      ? "null"
      : text(c.value);
  return [text(c.attribute), text(c.operator), value].filter((p) => p !== "").join(" ");
}

function conditionsText(conditions: unknown): string {
  const all = list(conditions).map(conditionText);
  return all.length > 0 ? all.join(" and ") : "any profile";
}

/** What starts a run, in words. */
export function startText(start: Record<string, unknown>): string {
  switch (start.type) {
    case "DATA_EVENT": {
      const fields = list(start.onFields).map(text);
      const conditions = (start.conditions ?? {}) as Record<string, unknown>;
      const before = list(conditions.stateBeforeOperation);
      const after = list(conditions.stateAfterOperation);
      const parts = [`${text(start.eventType) || "a change"} of a profile`];
      if (fields.length > 0) parts.push(`changing ${fields.join(", ")}`);
      if (before.length > 0) parts.push(`where before: ${conditionsText(before)}`);
      if (after.length > 0) parts.push(`where after: ${conditionsText(after)}`);
      return parts.join(", ");
    }
    case "API":
      return "an API call (POST …/start with a profile key)";
    case "SEGMENT_ENTRY":
      return `a profile enters segment ${text(start.segment)} of ${text(start.segmentation)}`;
    case "SUBSCRIPTION":
      return start.subscribe === false
        ? `a profile unsubscribes from ${text(start.subscription)}`
        : `a profile subscribes to ${text(start.subscription)}`;
    case "DATE":
      return `every day at ${text(start.at)} (${text(start.timezone)}), the profiles whose ${text(start.attribute)} is ${start.anniversary === true ? "that day of the year" : "that day"}`;
    default:
      return text(start.type) || "—";
  }
}

/** `{a: 1, b: "x"}` as `a = 1, b = x`. */
function pairs(value: unknown, separator = " = "): string {
  if (!value || typeof value !== "object") return "";
  return Object.entries(value as Record<string, unknown>)
    .map(([name, v]) => `${name}${separator}${v === null ? "null" : text(v)}`)
    .join(", ");
}

/** What a block does, in words (its links are shown apart). */
export function blockText(block: BlockBody): string {
  switch (block.type) {
    case "WAIT": {
      const until = text(block.untilAttribute);
      const duration = text(block.duration);
      if (until) {
        const zone = text(block.timezone) || "UTC";
        return `until the profile's ${until} (${zone})${duration ? ` + ${duration}` : ""}`;
      }
      return duration ? `for ${duration}` : "—";
    }
    case "FILTER":
      return `goes on when ${conditionsText(block.conditions)}`;
    case "CUSTOM_ACTION": {
      const parameters = pairs(block.parameters);
      const action = text(block.customAction) || text(block.customActionId);
      return `triggers ${action}${parameters ? ` with ${parameters}` : ""}`;
    }
    case "UPDATE_PROFILE": {
      const parts: string[] = [];
      const attributes = pairs(block.attributes);
      if (attributes) parts.push(`sets ${attributes}`);
      const subscriptions = Object.entries((block.subscriptions ?? {}) as Record<string, unknown>);
      for (const [name, on] of subscriptions)
        parts.push(on === false ? `unsubscribes from ${name}` : `subscribes to ${name}`);
      const segmentations = Object.entries((block.segmentations ?? {}) as Record<string, unknown>);
      for (const [name, segment] of segmentations)
        parts.push(
          segment === false
            ? `leaves ${name}`
            : `joins ${segment === true ? name : text(segment)} of ${name}`,
        );
      return parts.length > 0 ? parts.join("; ") : "changes nothing";
    }
    case "EXIT":
      return "the run ends here";
    default:
      return "";
  }
}

/** Where a block leads: `next`, and a FILTER's `otherwise` (or "leaves" when it has none). */
export function blockLinks(block: BlockBody): string {
  if (block.type === "EXIT") return "—";
  const next = text(block.next);
  if (block.type !== "FILTER") return next ? `→ ${next}` : "—";
  const otherwise = text(block.otherwise);
  return `→ ${next}; otherwise ${otherwise ? `→ ${otherwise}` : "leaves the scenario"}`;
}

/** What started a run, in words. */
export function runStartText(start: Record<string, unknown> | null | undefined): string {
  if (!start) return "";
  switch (start.type) {
    case "API":
      return `API call by ${text(start.apiKeyName) || `key ${text(start.apiKeyId)}`}`;
    case "DATE":
      return `date ${text(start.date)}`;
    case "DATA_EVENT":
    case "SEGMENT_ENTRY":
    case "SUBSCRIPTION":
      return `event at log position ${text(start.position)}`;
    default:
      return text(start.type);
  }
}

const NUMBER = new Intl.NumberFormat("en-GB");

export function count(value: number): string {
  return NUMBER.format(value);
}
