/**
 * A scenario's blocks as a request gives them (SPEC §7.4, docs/scenarios.md "Blocks"), checked
 * one by one against the profile table and the entity's custom actions and turned into the stored
 * shapes of scenario.ts; what an UPDATE_PROFILE writes is read in scenario-profile-writes.ts. The
 * links between blocks are judged as a graph in scenario-graph.ts.
 * Pure: the caller hands in the table and a lookup of custom actions.
 */
import type { CustomAction } from "./custom-action.js";
import { checkActionParameters } from "./custom-action.js";
import type { DataTable } from "./data-table.js";
import type { IsoDuration } from "./iso-duration.js";
import { addIsoDuration, isTimeZone, parseIsoDuration } from "./iso-duration.js";
import type { BlockType, ScenarioBlock } from "./scenario.js";
import { parseConditionList } from "./scenario-conditions.js";
import { parseUpdateProfile } from "./scenario-profile-writes.js";
import { BLOCK_TYPES } from "./scenario.js";

export type Add = (path: string, message: string) => void;

/** What the blocks are checked against (the route looks both up). */
export interface BlockContext {
  table: DataTable;
  customActions: (idOrName: string) => CustomAction | undefined;
}

/** Longest block id: ids appear in runs, statistics and error messages. */
export const MAX_BLOCK_ID_LENGTH = 100;

/** "a" or "an" before a type's name as it is read out ("an EXIT", "an API", "a WAIT"). */
export function article(type: string): "a" | "an" {
  return /^[AEIOU]/.test(type) ? "an" : "a";
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A block as parsed, with what the graph checks need to know of it beside the stored shape. */
export interface ParsedBlock {
  block: ScenarioBlock;
  /** A WAIT that holds every run for at least LOOP_PAUSE (scenario-graph.ts: it breaks a loop). */
  pauses: boolean;
}

/**
 * The least a WAIT must hold a run for a loop through it to be allowed: with less (PT0.001S), a
 * run would go round the loop many times a second, each pass a TRIGGER or a profile write.
 */
export const LOOP_PAUSE = "PT1M";
const LOOP_PAUSE_MS = 60_000;

/** True when `duration` lasts at least LOOP_PAUSE (any day, week, month or year does). */
export function lastsLoopPause(duration: IsoDuration): boolean {
  const from = new Date(0);
  return addIsoDuration(from, duration).getTime() - from.getTime() >= LOOP_PAUSE_MS;
}

/**
 * One block of the request's `blocks` list. Undefined when its id, type or links are unusable,
 * which keeps the graph checks from running on a list they would misread; a problem of its
 * contents alone (an unknown attribute, a bad parameter) still gives the block.
 */
export function parseBlock(
  raw: unknown,
  at: string,
  context: BlockContext,
  add: Add,
): ParsedBlock | undefined {
  if (!isObject(raw)) {
    add(at, 'must be an object {"id", "type", "next", …}');
    return undefined;
  }
  const id = raw.id;
  let usable = true;
  if (typeof id !== "string" || id.trim() === "" || id.length > MAX_BLOCK_ID_LENGTH) {
    add(`${at}.id`, `is required: a text of 1 to ${MAX_BLOCK_ID_LENGTH} characters`);
    usable = false;
  }
  const type = typeof raw.type === "string" ? raw.type.trim().toUpperCase() : raw.type;
  if (typeof type !== "string" || !(BLOCK_TYPES as readonly string[]).includes(type)) {
    add(`${at}.type`, `must be one of ${BLOCK_TYPES.join(", ")}`);
    return undefined;
  }
  unknownKeys(raw, type as BlockType, at, add);
  const links = parseLinks(raw, type as BlockType, at, add);
  if (!usable || !links) return undefined;
  const base = { id: (id as string).trim(), next: links.next ?? "" };
  const parsed = contentsOf(raw, type as BlockType, base, links, at, context, add);
  return { block: blockInOrder(parsed.block), pauses: parsed.pauses };
}

/**
 * The keys each block type reads beside `id`, `type`, `next` and `otherwise` (whose misuse
 * parseLinks names). `timeZone` is read as `timezone`.
 */
const BLOCK_KEYS: Record<BlockType, readonly string[]> = {
  WAIT: ["duration", "untilAttribute", "timezone", "timeZone"],
  FILTER: ["conditions"],
  CUSTOM_ACTION: ["customAction", "customActionId", "parameters"],
  UPDATE_PROFILE: ["attributes", "subscriptions", "segmentations"],
  EXIT: [],
};
const LINK_KEYS = ["id", "type", "next", "otherwise"];

/**
 * A key the block's type does not read is a problem, not a warning: a misspelt one (`otherwize`,
 * `untilAtribute`) would silently change where runs go or how long they wait.
 */
function unknownKeys(raw: Record<string, unknown>, type: BlockType, at: string, add: Add): void {
  const known = BLOCK_KEYS[type];
  for (const key of Object.keys(raw))
    if (!LINK_KEYS.includes(key) && !known.includes(key)) {
      const keys = ["id", "type", ...known, ...(type === "EXIT" ? [] : ["next"])];
      if (type === "FILTER") keys.push("otherwise");
      add(
        `${at}.${key}`,
        `is not a key of ${article(type)} ${type} block (its keys: ${keys.join(", ")}); a misspelt key would change what the block does, so it is refused`,
      );
    }
}

/**
 * A block with its keys in reading order: id and type first, the links last (jsonb keeps its own
 * order, so the API answers go through this too).
 */
export function blockInOrder<T extends { id: string; type: string }>(block: T): T {
  const { id, type, next, otherwise, ...contents } = block as T & {
    next?: string;
    otherwise?: string;
  };
  return {
    id,
    type,
    ...contents,
    ...(next === undefined ? {} : { next }),
    ...(otherwise === undefined ? {} : { otherwise }),
  } as unknown as T;
}

function contentsOf(
  raw: Record<string, unknown>,
  type: BlockType,
  base: { id: string; next: string },
  links: { otherwise?: string },
  at: string,
  context: BlockContext,
  add: Add,
): ParsedBlock {
  switch (type) {
    case "EXIT":
      return { block: { id: base.id, type: "EXIT" }, pauses: false };
    case "WAIT":
      return parseWait(raw, base, at, context.table, add);
    case "FILTER": {
      // Also read: the matchingConditions object, whose stateAfterOperation is the current state.
      const given = isObject(raw.conditions) ? raw.conditions.stateAfterOperation : raw.conditions;
      const conditions = parseConditionList(given, context.table, `${at}.conditions`, add, {
        allowChanged: false,
      });
      if (conditions.length === 0 && (!Array.isArray(given) || given.length === 0))
        add(`${at}.conditions`, 'a FILTER needs at least one {"attribute", "operator", "value"}');
      const block: ScenarioBlock = { ...base, type: "FILTER", conditions };
      if (links.otherwise !== undefined) block.otherwise = links.otherwise;
      return { block, pauses: false };
    }
    case "CUSTOM_ACTION":
      return { block: parseCustomAction(raw, base, at, context, add), pauses: false };
    case "UPDATE_PROFILE":
      return { block: parseUpdateProfile(raw, base, at, context.table, add), pauses: false };
  }
}

/** `next` (every block but EXIT) and `otherwise` (FILTER only, optional). */
function parseLinks(
  raw: Record<string, unknown>,
  type: BlockType,
  at: string,
  add: Add,
): { next?: string; otherwise?: string } | undefined {
  const isLink = (value: unknown): value is string =>
    typeof value === "string" && value.trim() !== "";
  let ok = true;
  const links: { next?: string; otherwise?: string } = {};
  if (type === "EXIT") {
    if (raw.next !== undefined && raw.next !== null) {
      add(`${at}.next`, "an EXIT ends the run: it has no next block");
      ok = false;
    }
  } else if (!isLink(raw.next)) {
    add(`${at}.next`, "is required: the id of the block that comes after this one");
    ok = false;
  } else links.next = raw.next.trim();
  if (raw.otherwise !== undefined && raw.otherwise !== null) {
    if (type !== "FILTER") {
      add(`${at}.otherwise`, "belongs to FILTER blocks only");
      ok = false;
    } else if (!isLink(raw.otherwise)) {
      add(
        `${at}.otherwise`,
        "must be the id of the block for runs the filter does not let through",
      );
      ok = false;
    } else links.otherwise = raw.otherwise.trim();
  }
  return ok ? links : undefined;
}

/** DATE and TIMESTAMP attributes of the table, single-valued: what a date can be read from. */
export function dateAttributes(table: DataTable): string[] {
  return table.attributes
    .filter((a) => (a.valueType === "DATE" || a.valueType === "TIMESTAMP") && !a.multiValued)
    .map((a) => a.name);
}

/** The problem with `name` as a date attribute of the table, or undefined when it is one. */
export function dateAttributeProblem(table: DataTable, name: unknown): string | undefined {
  const dates = dateAttributes(table);
  const known = dates.join(", ") || "none";
  if (typeof name !== "string" || name === "")
    return `must name a DATE or TIMESTAMP attribute of table '${table.name}' (its DATE and TIMESTAMP attributes: ${known})`;
  if (dates.includes(name)) return undefined;
  const attribute = table.attributes.find((a) => a.name === name);
  if (!attribute)
    return `'${name}' is not an attribute of table '${table.name}' (its DATE and TIMESTAMP attributes: ${known})`;
  return `'${name}' is a ${attribute.multiValued ? "multi-valued " : ""}${attribute.valueType} attribute, not a date: name a DATE or TIMESTAMP attribute (table '${table.name}' has: ${known})`;
}

/** Checks an optional IANA zone; problems through `add`. */
export function parseTimeZone(raw: unknown, path: string, add: Add): string | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw === "string" && isTimeZone(raw.trim())) return raw.trim();
  add(path, `must be an IANA time zone name such as "Europe/Brussels" or "UTC"`);
  return undefined;
}

function parseWait(
  raw: Record<string, unknown>,
  base: { id: string; next: string },
  at: string,
  table: DataTable,
  add: Add,
): ParsedBlock {
  const block: ScenarioBlock = { ...base, type: "WAIT" };
  // A WAIT pauses (breaks a loop) when it holds every run for LOOP_PAUSE at least: a duration that
  // long, and no untilAttribute, whose date (plus the duration) may be long past, so that the run
  // goes on at once. A duration that does not parse still counts as a pause, so that the graph
  // checks do not add a second, misleading problem about the loop it stands in.
  let pauses = false;
  if (raw.duration !== undefined && raw.duration !== null) {
    const duration = typeof raw.duration === "string" ? parseIsoDuration(raw.duration) : undefined;
    if (!duration)
      add(
        `${at}.duration`,
        "must be an ISO 8601 duration such as PT1H, P1D, P2W, P1M or P1Y2M3DT4H5M6S (no sign, at most 1,000 years)",
      );
    else block.duration = (raw.duration as string).trim().toUpperCase();
    pauses = !duration || lastsLoopPause(duration);
  }
  if (raw.untilAttribute !== undefined && raw.untilAttribute !== null) {
    const problem = dateAttributeProblem(table, raw.untilAttribute);
    if (problem) add(`${at}.untilAttribute`, problem);
    else block.untilAttribute = raw.untilAttribute as string;
    pauses = false;
  }
  if (raw.duration == null && raw.untilAttribute == null)
    add(
      at,
      'a WAIT needs a duration ("PT1H", "P1D"…), an untilAttribute (a DATE or TIMESTAMP attribute), or both',
    );
  const timezone = parseTimeZone(raw.timezone ?? raw.timeZone, `${at}.timezone`, add);
  if (timezone !== undefined) block.timezone = timezone;
  return { block, pauses };
}

function parseCustomAction(
  raw: Record<string, unknown>,
  base: { id: string; next: string },
  at: string,
  context: BlockContext,
  add: Add,
): ScenarioBlock {
  const block: ScenarioBlock = {
    ...base,
    type: "CUSTOM_ACTION",
    customActionId: "",
    parameters: {},
  };
  const action = namedCustomAction(raw, at, context, add);
  const given = raw.parameters ?? {};
  if (!isObject(given)) {
    add(`${at}.parameters`, 'must be an object {"<parameter>": value}');
    return block;
  }
  // fromEntries defines own keys: a parameter named like an Object.prototype property (which
  // parseCustomAction refuses, but an older action may hold) is kept as a value, not a prototype.
  block.parameters = Object.fromEntries(
    Object.entries(given).filter(
      (entry): entry is [string, string | number | boolean] =>
        typeof entry[1] === "string" ||
        typeof entry[1] === "number" ||
        typeof entry[1] === "boolean",
    ),
  );
  if (!action) return block;
  block.customActionId = action.id;
  for (const problem of checkActionParameters(action, given, `${at}.parameters`))
    add(problem.path, `${problem.message} (custom action '${action.name}')`);
  return block;
}

/** The custom action a block names by `customAction` (name or id) and/or `customActionId`. */
function namedCustomAction(
  raw: Record<string, unknown>,
  at: string,
  context: BlockContext,
  add: Add,
): CustomAction | undefined {
  const named: { key: "customAction" | "customActionId"; action: CustomAction | undefined }[] = [];
  for (const key of ["customAction", "customActionId"] as const) {
    const value = raw[key];
    if (value === undefined || value === null) continue;
    if (typeof value !== "string" && typeof value !== "number") {
      add(`${at}.${key}`, "must be the name or id of a custom action");
      return undefined;
    }
    const action = context.customActions(String(value));
    if (!action) {
      add(`${at}.${key}`, `no custom action of the entity has the name or id '${value}'`);
      return undefined;
    }
    named.push({ key, action });
  }
  const [first, second] = named;
  if (!first) {
    add(`${at}.customAction`, "is required: the name or id of the custom action to trigger");
    return undefined;
  }
  if (second && second.action!.id !== first.action!.id) {
    add(
      `${at}.customActionId`,
      `names custom action '${second.action!.name}' but customAction names '${first.action!.name}'`,
    );
    return undefined;
  }
  return first.action;
}
