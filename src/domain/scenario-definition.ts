/**
 * A scenario's definition (SPEC §7.4, docs/scenarios.md): what a request may hold, checked against
 * the profile table and the entity's custom actions, and kept in the stored shapes of scenario.ts.
 * Every problem is collected with its path (`blocks[2].next`) and answered at once as a 400
 * HERALD_INVALID_SCENARIO; nothing is saved. The blocks are read in scenario-blocks.ts and their
 * links judged as a graph in scenario-graph.ts. Pure: the route looks the table and the custom
 * actions up and hands them in.
 */
import type { CustomAction } from "./custom-action.js";
import type { DataTable } from "./data-table.js";
import { attributeNames } from "./data-table.js";
import type { ErrorDetail } from "./errors.js";
import { HeraldError } from "./errors.js";
import type { Reentry, ScenarioBlock, ScenarioDefinition, ScenarioStart } from "./scenario.js";
import { REENTRY_POLICIES, START_TYPES } from "./scenario.js";
import type { Add, ParsedBlock } from "./scenario-blocks.js";
import {
  article,
  blockInOrder,
  dateAttributeProblem,
  isObject,
  parseBlock,
  parseTimeZone,
} from "./scenario-blocks.js";
import { parseConditionList } from "./scenario-conditions.js";
import { graphProblems } from "./scenario-graph.js";

export interface ScenarioContext {
  /** The profile table the body names (by name or id; the route resolves it with profileTableOf). */
  table: DataTable;
  /** The entity's custom actions by id or name (pre-loaded by the route). */
  customActions: (idOrName: string) => CustomAction | undefined;
}

/** Most blocks a scenario may have: a definition is checked, stored and read whole. */
export const MAX_BLOCKS = 200;
const MAX_NAME_LENGTH = 200;

/** Keys of a definition; those of its answer (`id`, `status`, …) are accepted back and ignored quietly. */
const KNOWN_KEYS = ["name", "profileTable", "profileTableId", "reentry", "start", "blocks"];
const ANSWER_KEYS = [
  "id",
  "status",
  "activatedAt",
  "deactivatedAt",
  "createdAt",
  "updatedAt",
  "cancelledRuns",
  "_links",
];

/** The keys each start type reads (`timeZone` is read as `timezone`). */
const START_KEYS: Record<ScenarioStart["type"], readonly string[]> = {
  DATA_EVENT: ["type", "eventType", "onFields", "conditions"],
  API: ["type"],
  SEGMENT_ENTRY: ["type", "segmentation", "segment"],
  SUBSCRIPTION: ["type", "subscription", "subscribe"],
  DATE: ["type", "attribute", "anniversary", "at", "timezone", "timeZone"],
};

export interface ParsedScenario {
  definition: ScenarioDefinition;
  /** Keys of the definition Herald ignored (the answer's `details`). */
  warnings: ErrorDetail[];
}

/** The profile table a body names (`profileTable`, or `profileTableId`), for the route to look up. */
export function profileTableOf(body: unknown): string | undefined {
  if (!isObject(body)) return undefined;
  for (const value of [body.profileTable, body.profileTableId])
    if ((typeof value === "string" && value.trim() !== "") || typeof value === "number")
      return String(value).trim();
  return undefined;
}

/** The definition's problems as the catalogue's 400; undefined when there are none. */
export function invalidScenario(problems: readonly ErrorDetail[]): HeraldError | undefined {
  if (problems.length === 0) return undefined;
  return new HeraldError(
    "HERALD_INVALID_SCENARIO",
    { reason: problems.map((p) => (p.path ? `${p.path} ${p.message}` : p.message)).join("; ") },
    [...problems],
  );
}

/**
 * Reads a request body into the stored definition; throws 400 HERALD_INVALID_SCENARIO naming every
 * problem. Unknown keys of the definition itself are ignored and come back as warnings (SPEC §7:
 * bodies are read leniently); an unknown key inside the start or a block is a problem, since a
 * misspelt one (`otherwize`, `untilAtribute`) would silently change what the scenario does. Names
 * are case-sensitive, types and operators are not.
 */
export function readScenario(body: unknown, context: ScenarioContext): ParsedScenario {
  const problems: ErrorDetail[] = [];
  const warnings: ErrorDetail[] = [];
  const add: Add = (path, message) => problems.push({ path, message });
  if (!isObject(body)) throw invalidScenario([{ path: "", message: "must be a JSON object" }])!;
  for (const key of Object.keys(body))
    if (!KNOWN_KEYS.includes(key) && !ANSWER_KEYS.includes(key))
      warnings.push({ path: key, message: "is not a key of a scenario; ignored" });
  const table = context.table;
  const name = typeof body.name === "string" ? body.name.trim() : "";
  if (name === "" || name.length > MAX_NAME_LENGTH)
    add("name", `is required: a text of 1 to ${MAX_NAME_LENGTH} characters`);
  // The API finds a scenario by id or name, the id first: a name of digits would name another one.
  else if (/^\d+$/.test(name))
    add("name", "must not be digits only: it would read as the id of another scenario");
  // Compared as profileTableOf read it (trimmed), so that " Customers " names the table it found.
  for (const key of ["profileTable", "profileTableId"] as const) {
    const value = body[key];
    if (value === undefined || value === null) continue;
    const named = String(value).trim();
    if (named !== table.id && named !== table.name)
      add(key, `names '${named}', another table than '${table.name}' (id ${table.id})`);
  }
  const reentry = parseReentry(body.reentry, add);
  const start = parseStart(body.start, table, add);
  const blocks = parseBlocks(body.blocks, context, add);
  const invalid = invalidScenario(problems);
  if (invalid || !start) throw invalid ?? invalidScenario([{ path: "start", message: "?" }])!;
  return { definition: { name, tableId: table.id, reentry, start, blocks }, warnings };
}

/** readScenario's definition alone (activation's re-check, which has no request to answer). */
export function parseScenario(body: unknown, context: ScenarioContext): ScenarioDefinition {
  return readScenario(body, context).definition;
}

/** A value as JSON with every object's keys sorted: jsonb keeps keys in an order of its own. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (isObject(value))
    return `{${Object.keys(value)
      .filter((key) => value[key] !== undefined)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonicalJson(value[key])}`)
      .join(",")}}`;
  return JSON.stringify(value);
}

/**
 * True when a new definition's blocks differ from the stored ones in anything (an id, a link, a
 * value): a replacement that changes them starts the statistics afresh, since the old counts
 * would be added to blocks that only share an id with the ones they counted.
 */
export function blocksChanged(
  before: Pick<ScenarioDefinition, "blocks">,
  after: Pick<ScenarioDefinition, "blocks">,
): boolean {
  return canonicalJson(before.blocks) !== canonicalJson(after.blocks);
}

/** The custom actions the definition's blocks trigger (each once, in the order of the blocks). */
export function customActionIdsOf(definition: Pick<ScenarioDefinition, "blocks">): string[] {
  const ids = definition.blocks.flatMap((b) =>
    b.type === "CUSTOM_ACTION" ? [b.customActionId] : [],
  );
  return [...new Set(ids)];
}

/** A definition in the form a request gives it (and an answer shows it). */
export interface ScenarioBody {
  name: string;
  profileTable: string;
  profileTableId: string;
  reentry: Reentry;
  start: ScenarioStart;
  blocks: Record<string, unknown>[];
}

/**
 * The stored definition as a body again: what the API answers (with `naming`: the table and the
 * custom actions by name beside their ids), and what activation parses anew (without: by id) to
 * check it against the table and the custom actions as they are now.
 */
export function scenarioBody(
  definition: ScenarioDefinition,
  naming?: { tableName: string; customActionName: (id: string) => string | undefined },
): ScenarioBody {
  const blocks = definition.blocks.map((block): Record<string, unknown> => {
    if (block.type !== "CUSTOM_ACTION") return blockInOrder(block);
    const { customActionId, ...rest } = block;
    return blockInOrder({
      ...rest,
      customAction: naming?.customActionName(customActionId) ?? customActionId,
      customActionId,
    });
  });
  return {
    name: definition.name,
    profileTable: naming?.tableName ?? definition.tableId,
    profileTableId: definition.tableId,
    reentry: definition.reentry,
    start: definition.start,
    blocks,
  };
}

function parseReentry(raw: unknown, add: Add): Reentry {
  if (raw === undefined || raw === null) return "AFTER_EXIT";
  const text = typeof raw === "string" ? raw.trim().toUpperCase() : "";
  if ((REENTRY_POLICIES as readonly string[]).includes(text)) return text as Reentry;
  add(
    "reentry",
    "must be NEVER (a profile runs the scenario once), AFTER_EXIT (again once its run ended) or ALWAYS (any number of runs at once)",
  );
  return "AFTER_EXIT";
}

function parseBlocks(raw: unknown, context: ScenarioContext, add: Add): ScenarioBlock[] {
  if (!Array.isArray(raw) || raw.length === 0 || raw.length > MAX_BLOCKS) {
    add(
      "blocks",
      `is required: a list of 1 to ${MAX_BLOCKS} blocks, the first being where runs begin`,
    );
    return [];
  }
  const parsed: (ParsedBlock | undefined)[] = raw.map((item: unknown, i) =>
    parseBlock(item, `blocks[${i}]`, context, add),
  );
  const seen = new Map<string, number>();
  let complete = parsed.every((p) => p !== undefined);
  parsed.forEach((p, i) => {
    if (!p) return;
    const earlier = seen.get(p.block.id);
    if (earlier !== undefined) {
      add(`blocks[${i}].id`, `'${p.block.id}' is also the id of blocks[${earlier}]`);
      complete = false;
    } else seen.set(p.block.id, i);
  });
  // The graph is judged only when every block's id, type and links could be read.
  if (complete)
    for (const problem of graphProblems(
      parsed.map((p) => ({
        id: p!.block.id,
        type: p!.block.type,
        ...("next" in p!.block ? { next: p!.block.next } : {}),
        ...(p!.block.type === "FILTER" && p!.block.otherwise !== undefined
          ? { otherwise: p!.block.otherwise }
          : {}),
        pauses: p!.pauses,
      })),
    ))
      add(problem.path, problem.message);
  return parsed.flatMap((p) => (p ? [p.block] : []));
}

const START_HINT = `must be an object {"type": ${START_TYPES.join(" | ")}, …}`;

function parseStart(raw: unknown, table: DataTable, add: Add): ScenarioStart | undefined {
  if (!isObject(raw)) {
    add("start", `is required: ${START_HINT}`);
    return undefined;
  }
  const type = typeof raw.type === "string" ? raw.type.trim().toUpperCase() : "";
  if (Object.hasOwn(START_KEYS, type)) {
    const known = START_KEYS[type as ScenarioStart["type"]];
    for (const key of Object.keys(raw))
      if (!known.includes(key))
        add(
          `start.${key}`,
          `is not a key of ${article(type)} ${type} start (its keys: ${known.join(", ")}); a misspelt key would change when runs start, so it is refused`,
        );
  }
  switch (type) {
    case "API":
      return { type: "API" };
    case "DATA_EVENT":
      return parseDataEventStart(raw, table, add);
    case "SEGMENT_ENTRY":
      return parseSegmentEntryStart(raw, table, add);
    case "SUBSCRIPTION":
      return parseSubscriptionStart(raw, table, add);
    case "DATE":
      return parseDateStart(raw, table, add);
    default:
      add("start.type", `must be one of ${START_TYPES.join(", ")}`);
      return undefined;
  }
}

function parseDataEventStart(
  raw: Record<string, unknown>,
  table: DataTable,
  add: Add,
): ScenarioStart {
  const eventType = typeof raw.eventType === "string" ? raw.eventType.trim().toUpperCase() : "";
  if (eventType !== "CREATE" && eventType !== "UPDATE")
    add(
      "start.eventType",
      eventType === "DELETE"
        ? "cannot be DELETE: a run follows a profile, and a deleted profile has none left to follow"
        : "must be CREATE or UPDATE",
    );
  const names = attributeNames(table);
  let onFields: string[] = [];
  if (raw.onFields !== undefined && raw.onFields !== null) {
    if (!Array.isArray(raw.onFields) || raw.onFields.some((f) => typeof f !== "string"))
      add("start.onFields", "must be a list of attribute names");
    else {
      onFields = raw.onFields as string[];
      onFields.forEach((field, i) => {
        if (!names.includes(field))
          add(`start.onFields[${i}]`, `'${field}' is not an attribute of table '${table.name}'`);
      });
    }
  }
  const conditions: Extract<ScenarioStart, { type: "DATA_EVENT" }>["conditions"] = {};
  const given = raw.conditions;
  // Also read: a plain list, the conditions on the profile after the change.
  const sides = Array.isArray(given) ? { stateAfterOperation: given } : given;
  if (sides !== undefined && sides !== null && !isObject(sides))
    add(
      "start.conditions",
      'must be an object {"stateBeforeOperation": [...], "stateAfterOperation": [...]}',
    );
  else if (isObject(sides))
    for (const side of ["stateBeforeOperation", "stateAfterOperation"] as const) {
      const list = parseConditionList(sides[side], table, `start.conditions.${side}`, add, {
        allowChanged: true,
      });
      if (list.length > 0) conditions[side] = list;
    }
  return {
    type: "DATA_EVENT",
    eventType: eventType === "UPDATE" ? "UPDATE" : "CREATE",
    onFields,
    conditions,
  };
}

function parseSegmentEntryStart(
  raw: Record<string, unknown>,
  table: DataTable,
  add: Add,
): ScenarioStart {
  const name = raw.segmentation;
  const segmentation = table.segmentations.find((s) => s.name === name);
  if (!segmentation) {
    const known = table.segmentations.map((s) => s.name).join(", ") || "none";
    add(
      "start.segmentation",
      `must name a segmentation of table '${table.name}' (its segmentations: ${known})`,
    );
    return { type: "SEGMENT_ENTRY", segmentation: String(name ?? ""), segment: "" };
  }
  // A SIMPLE segmentation's one segment has its own name, so it need not be given.
  const segments =
    segmentation.type === "SIMPLE" ? [segmentation.name] : (segmentation.segments ?? []);
  const segment = raw.segment ?? (segmentation.type === "SIMPLE" ? segmentation.name : undefined);
  if (typeof segment !== "string" || !segments.includes(segment))
    add("start.segment", `must name a segment of '${segmentation.name}' (${segments.join(", ")})`);
  return { type: "SEGMENT_ENTRY", segmentation: segmentation.name, segment: String(segment ?? "") };
}

function parseSubscriptionStart(
  raw: Record<string, unknown>,
  table: DataTable,
  add: Add,
): ScenarioStart {
  const known = table.subscriptions.map((s) => s.name);
  const subscription = raw.subscription;
  if (typeof subscription !== "string" || !known.includes(subscription))
    add(
      "start.subscription",
      `must name a subscription of table '${table.name}' (its subscriptions: ${known.join(", ") || "none"})`,
    );
  const subscribe = raw.subscribe ?? true;
  if (typeof subscribe !== "boolean")
    add(
      "start.subscribe",
      "must be true (runs start when a profile subscribes) or false (when it unsubscribes)",
    );
  return {
    type: "SUBSCRIPTION",
    subscription: String(subscription ?? ""),
    subscribe: subscribe !== false,
  };
}

function parseDateStart(raw: Record<string, unknown>, table: DataTable, add: Add): ScenarioStart {
  const problem = dateAttributeProblem(table, raw.attribute);
  if (problem) add("start.attribute", problem);
  const anniversary = raw.anniversary ?? false;
  if (typeof anniversary !== "boolean")
    add(
      "start.anniversary",
      "must be true (the same day and month every year) or false (that date only)",
    );
  let at = "00:00";
  if (raw.at !== undefined && raw.at !== null) {
    const match =
      typeof raw.at === "string" ? /^([01]?\d|2[0-3]):([0-5]\d)$/.exec(raw.at.trim()) : null;
    if (match) at = `${match[1]!.padStart(2, "0")}:${match[2]}`;
    else add("start.at", 'must be a time of day HH:mm, such as "09:30"');
  }
  const timezone = parseTimeZone(raw.timezone ?? raw.timeZone, "start.timezone", add) ?? "UTC";
  return {
    type: "DATE",
    attribute: String(raw.attribute ?? ""),
    anniversary: anniversary === true,
    at,
    timezone,
  };
}
