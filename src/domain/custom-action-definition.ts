/**
 * A custom action as a request defines it (SPEC §7.4): `{"name", "description", "parameters":
 * [{"name", "valueType", "mandatory"}]}`, checked and normalised. Every problem is collected with
 * its path (400 HERALD_INVALID_CUSTOM_ACTION); keys Herald does not know are ignored and reported
 * as warnings (SPEC §7: bodies are read leniently). A PATCH is a merge of the request into the
 * stored definition, checked as a whole. Pure: storing it is storage/custom-action-repository.ts.
 */
import type { CustomActionDefinition, CustomActionParameter } from "./custom-action.js";
import { checkActionParameters } from "./custom-action.js";
import type { ValueType } from "./data-table.js";
import { VALUE_TYPES } from "./data-table.js";
import type { ErrorDetail } from "./errors.js";
import { HeraldError } from "./errors.js";
import type { ScenarioDefinition, ScenarioStatus } from "./scenario.js";

export const MAX_ACTION_NAME_LENGTH = 100;
export const MAX_DESCRIPTION_LENGTH = 2_000;
export const MAX_PARAMETERS = 100;

/** Letters, digits, `-`, `_` and `.`: a name that reads well in a URL path and a log line. */
const ACTION_NAME = /^[A-Za-z0-9._-]+$/;
/**
 * A parameter's name becomes the key `actionParameters.<name>` of the TRIGGER payload: no dot
 * (it would read as one more level), nothing a receiver's JSON path would trip on.
 */
const PARAMETER_NAME = /^[A-Za-z0-9_-]+$/;
/**
 * Names every JavaScript object already has (`constructor`, `toString`, `__proto__`…): a receiver
 * reading parameters into an object, or a lookup that forgets to ask for own keys, would see an
 * inherited function where no value was given. Written out, not read from Object.prototype, so
 * that what is refused does not move with the runtime.
 */
const INHERITED_NAMES: readonly string[] = [
  "constructor",
  "__defineGetter__",
  "__defineSetter__",
  "hasOwnProperty",
  "__lookupGetter__",
  "__lookupSetter__",
  "isPrototypeOf",
  "propertyIsEnumerable",
  "toString",
  "valueOf",
  "__proto__",
  "toLocaleString",
];

/** Keys of a custom action; those of its answer (`id`, …) are accepted back and ignored quietly. */
const KNOWN_KEYS = ["name", "description", "parameters"];
const ANSWER_KEYS = ["id", "createdAt", "updatedAt", "_links"];
const PARAMETER_KEYS = ["name", "valueType", "mandatory"];

export interface ParsedCustomAction {
  definition: CustomActionDefinition;
  /** Keys Herald ignored (the answer's `details`). */
  warnings: ErrorDetail[];
}

type Add = (path: string, message: string) => void;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function invalidAction(problems: readonly ErrorDetail[]): HeraldError {
  const first = problems[0] ?? { path: "", message: "is invalid" };
  const reason = first.path ? `${first.path} ${first.message}` : first.message;
  return new HeraldError("HERALD_INVALID_CUSTOM_ACTION", { reason }, [...problems]);
}

function parseName(raw: unknown, add: Add): string {
  if (typeof raw !== "string" || raw.trim() === "") {
    add("name", "is required: a non-empty string that names the custom action in its entity");
    return "";
  }
  const name = raw.trim();
  if (name.length > MAX_ACTION_NAME_LENGTH)
    add("name", `must be at most ${MAX_ACTION_NAME_LENGTH} characters`);
  else if (!ACTION_NAME.test(name))
    add("name", "may hold only letters, digits, '-', '_' and '.' (no spaces)");
  else if (/^\d+$/.test(name))
    add("name", "must not be digits only: it would read as the id of another custom action");
  return name;
}

function parseDescription(raw: unknown, add: Add): string | null {
  if (raw === undefined || raw === null) return null;
  if (typeof raw !== "string") {
    add("description", "must be a string (or null for none)");
    return null;
  }
  if (raw.length > MAX_DESCRIPTION_LENGTH)
    add("description", `must be at most ${MAX_DESCRIPTION_LENGTH} characters`);
  return raw === "" ? null : raw;
}

function parseValueType(raw: unknown, path: string, add: Add): ValueType {
  if (raw === undefined || raw === null) return "STRING";
  const text = typeof raw === "string" ? raw.trim().toUpperCase() : raw;
  if (typeof text === "string" && (VALUE_TYPES as readonly string[]).includes(text))
    return text as ValueType;
  add(path, `must be one of ${VALUE_TYPES.join(", ")} (STRING when left out)`);
  return "STRING";
}

function parseParameter(
  raw: unknown,
  path: string,
  add: Add,
  warn: Add,
): CustomActionParameter | undefined {
  if (!isObject(raw)) {
    add(path, "must be an object {name, valueType, mandatory}");
    return undefined;
  }
  for (const key of Object.keys(raw))
    if (!PARAMETER_KEYS.includes(key))
      warn(`${path}.${key}`, "is not a key of a parameter; ignored");
  let name: string | undefined;
  if (typeof raw.name !== "string" || raw.name.trim() === "")
    add(`${path}.name`, "is required: a non-empty string");
  else if (raw.name.trim().length > MAX_ACTION_NAME_LENGTH)
    add(`${path}.name`, `must be at most ${MAX_ACTION_NAME_LENGTH} characters`);
  else if (!PARAMETER_NAME.test(raw.name.trim()))
    add(`${path}.name`, "may hold only letters, digits, '-' and '_'");
  else if (INHERITED_NAMES.includes(raw.name.trim()))
    add(
      `${path}.name`,
      `'${raw.name.trim()}' is a name every JavaScript object already has (Object.prototype): a receiver would read an inherited function where no value was given; choose another name`,
    );
  else name = raw.name.trim();
  const valueType = parseValueType(raw.valueType, `${path}.valueType`, add);
  let mandatory = false;
  if (raw.mandatory !== undefined && raw.mandatory !== null) {
    if (typeof raw.mandatory !== "boolean") add(`${path}.mandatory`, "must be true or false");
    else mandatory = raw.mandatory;
  }
  return name === undefined ? undefined : { name, valueType, mandatory };
}

function parseParameters(raw: unknown, add: Add, warn: Add): CustomActionParameter[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) {
    add("parameters", "must be a list of {name, valueType, mandatory}");
    return [];
  }
  if (raw.length > MAX_PARAMETERS) {
    add("parameters", `may hold at most ${MAX_PARAMETERS} parameters`);
    return [];
  }
  const parameters: CustomActionParameter[] = [];
  const seen = new Set<string>();
  raw.forEach((item, i) => {
    const parameter = parseParameter(item, `parameters[${i}]`, add, warn);
    if (!parameter) return;
    if (seen.has(parameter.name)) {
      add(`parameters[${i}].name`, `'${parameter.name}' is already a parameter of this action`);
      return;
    }
    seen.add(parameter.name);
    parameters.push(parameter);
  });
  return parameters;
}

/** The definition of a POST body, with the keys that were ignored; 400 when anything is wrong. */
export function readCustomAction(body: unknown): ParsedCustomAction {
  if (!isObject(body))
    throw invalidAction([
      { path: "", message: "must be a JSON object {name, description, parameters}" },
    ]);
  const problems: ErrorDetail[] = [];
  const warnings: ErrorDetail[] = [];
  const add: Add = (path, message) => problems.push({ path, message });
  const warn: Add = (path, message) => warnings.push({ path, message });
  for (const key of Object.keys(body))
    if (!KNOWN_KEYS.includes(key) && !ANSWER_KEYS.includes(key))
      warn(key, "is not a key of a custom action; ignored");
  const definition: CustomActionDefinition = {
    name: parseName(body.name, add),
    description: parseDescription(body.description, add),
    parameters: parseParameters(body.parameters, add, warn),
  };
  if (problems.length > 0) throw invalidAction(problems);
  return { definition, warnings };
}

/** The definition of a request body (SPEC §7.4); 400 HERALD_INVALID_CUSTOM_ACTION when invalid. */
export function parseCustomAction(body: unknown): CustomActionDefinition {
  return readCustomAction(body).definition;
}

/**
 * PATCH: the keys the request gives replace the stored ones (`parameters` as a whole list,
 * `description: null` removes it), the others stay; the result is checked as a POST body is.
 */
export function applyCustomActionPatch(
  current: CustomActionDefinition,
  patch: unknown,
): ParsedCustomAction {
  if (!isObject(patch))
    throw invalidAction([
      {
        path: "",
        message: "must be a JSON object with the keys to change (name, description, parameters)",
      },
    ]);
  const merged: Record<string, unknown> = {
    name: current.name,
    description: current.description,
    parameters: current.parameters,
  };
  for (const [key, value] of Object.entries(patch)) merged[key] = value;
  return readCustomAction(merged);
}

/** A scenario that uses an action, as changeBreaksScenarios reads it. */
export interface ScenarioUsingAction {
  id: string;
  name: string;
  definition: Pick<ScenarioDefinition, "blocks">;
}

/** A scenario whose blocks use an action, with what holds the action in it (storage reads it). */
export interface ScenarioWithRuns extends ScenarioUsingAction {
  status: ScenarioStatus;
  /** Its runs still going (WAITING or RUNNING), counted by the block each is in. */
  liveRuns: Readonly<Record<string, number>>;
}

/**
 * Why a scenario holds an action: it is ACTIVE (new runs may reach its block at any time), or it
 * is INACTIVE with runs still going that can reach a block triggering the action (deactivation
 * lets runs finish their way; without the action they would end CANCELLED at that block).
 */
export type ActionHold =
  { kind: "active" } | { kind: "runs"; runs: number; blocks: string[]; actionBlocks: string[] };

export interface ScenarioHoldingAction extends ScenarioUsingAction {
  hold: ActionHold;
}

/**
 * The ids of the blocks from which a run can still reach a CUSTOM_ACTION block of `actionId`,
 * those blocks included: the links (`next`, `otherwise`) followed backwards from them.
 */
export function blocksReachingAction(
  definition: Pick<ScenarioDefinition, "blocks">,
  actionId: string,
): Set<string> {
  const blocks = definition.blocks ?? [];
  const comingFrom = new Map<string, string[]>();
  for (const block of blocks)
    for (const target of [
      "next" in block ? block.next : undefined,
      block.type === "FILTER" ? block.otherwise : undefined,
    ])
      if (target !== undefined)
        comingFrom.set(target, [...(comingFrom.get(target) ?? []), block.id]);
  const reaching = new Set(
    blocks
      .filter((b) => b.type === "CUSTOM_ACTION" && String(b.customActionId) === actionId)
      .map((b) => b.id),
  );
  const queue = [...reaching];
  while (queue.length > 0)
    for (const from of comingFrom.get(queue.pop()!) ?? [])
      if (!reaching.has(from)) {
        reaching.add(from);
        queue.push(from);
      }
  return reaching;
}

/**
 * The scenarios that hold action `actionId` against a deletion or a breaking change (ActionHold),
 * in the order given; a scenario whose live runs are all past the action's blocks does not.
 */
export function scenariosHoldingAction(
  actionId: string,
  scenarios: readonly ScenarioWithRuns[],
): ScenarioHoldingAction[] {
  const holding: ScenarioHoldingAction[] = [];
  for (const scenario of scenarios) {
    const base = { id: scenario.id, name: scenario.name, definition: scenario.definition };
    if (scenario.status === "ACTIVE") {
      holding.push({ ...base, hold: { kind: "active" } });
      continue;
    }
    const reaching = blocksReachingAction(scenario.definition, actionId);
    // In the definition's order (the counts come from jsonb, whose keys have an order of their own).
    const blocks = (scenario.definition.blocks ?? [])
      .map((b) => b.id)
      .filter((id) => reaching.has(id) && (scenario.liveRuns[id] ?? 0) > 0);
    const runs = blocks.reduce((sum, id) => sum + (scenario.liveRuns[id] ?? 0), 0);
    if (runs === 0) continue;
    const actionBlocks = (scenario.definition.blocks ?? [])
      .filter((b) => b.type === "CUSTOM_ACTION" && String(b.customActionId) === actionId)
      .map((b) => b.id);
    holding.push({ ...base, hold: { kind: "runs", runs, blocks, actionBlocks } });
  }
  return holding;
}

/** What holds the action in one scenario, for a 409's message and details. */
export function describeHold(scenario: ScenarioHoldingAction): string {
  const named = `scenario '${scenario.name}' (id ${scenario.id})`;
  if (scenario.hold.kind === "active") return `${named} is ACTIVE and triggers it`;
  const { runs, blocks, actionBlocks } = scenario.hold;
  const blockNames = (ids: string[]) =>
    `${ids.length === 1 ? "block" : "blocks"} ${ids.map((id) => `'${id}'`).join(", ")}`;
  return `${named} is INACTIVE, but ${runs} of its runs still going (in ${blockNames(blocks)}) will reach ${blockNames(actionBlocks)}, which ${actionBlocks.length === 1 ? "triggers" : "trigger"} it`;
}

/**
 * What a new definition of action `actionId` would break in scenarios that use it: each of their
 * CUSTOM_ACTION blocks of that action must still give valid parameters (none that was removed,
 * every new mandatory one, values that fit the new types: checkActionParameters). One problem per
 * broken value, its path naming the scenario and the block; empty when the change is safe.
 */
export function changeBreaksScenarios(
  definition: Pick<CustomActionDefinition, "parameters">,
  actionId: string,
  scenarios: readonly ScenarioUsingAction[],
): ErrorDetail[] {
  const problems: ErrorDetail[] = [];
  for (const scenario of scenarios) {
    for (const block of scenario.definition.blocks ?? []) {
      if (block.type !== "CUSTOM_ACTION" || String(block.customActionId) !== actionId) continue;
      const at = `scenarios/${scenario.id}/blocks/${block.id}.parameters`;
      for (const problem of checkActionParameters(definition, block.parameters ?? {}, at))
        problems.push({
          path: problem.path,
          message: `${problem.message}, in block '${block.id}' of scenario '${scenario.name}'`,
        });
    }
  }
  return problems;
}
