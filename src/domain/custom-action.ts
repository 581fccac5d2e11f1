/**
 * Custom actions (SPEC §7.4): a named call to an outside system with typed parameters. Triggering
 * one (the trigger call, or a scenario's CUSTOM_ACTION block) appends a TRIGGER event whose payload
 * carries the parameters, rendered as strings, and every attribute of the profile.
 */
import { checkScalar, renderValue } from "./attribute-values.js";
import type { AttributeMap, AttributeValue } from "./change-event.js";
import type { ValueType } from "./data-table.js";

export interface CustomActionParameter {
  name: string;
  valueType: ValueType;
  mandatory: boolean;
}

/** A custom action's definition as stored (parseCustomAction's result). */
export interface CustomActionDefinition {
  name: string;
  description: string | null;
  parameters: CustomActionParameter[];
}

export interface CustomAction extends CustomActionDefinition {
  id: string;
  entityId: number;
  createdAt: Date;
  updatedAt: Date;
}

/** A scenario run that triggered the action (absent for the trigger call). */
export interface TriggeringRun {
  scenarioId: string;
  runId: string;
}

/** A problem with a request's values, with the JSON path of the offending field. */
export interface Problem {
  path: string;
  message: string;
}

/** Parameter values as a request gives them: JSON scalars. */
export type GivenParameters = Record<string, unknown>;

/**
 * The value given for `name`, read from the object's own keys only: `given.constructor` of a
 * plain object is an inherited function, not a parameter someone gave.
 */
function ownValue(given: GivenParameters, name: string): unknown {
  return Object.hasOwn(given, name) ? given[name] : undefined;
}

/**
 * The problems of parameter values given for `action` (the trigger call's `parameters`, a
 * CUSTOM_ACTION block's): an unknown parameter, a mandatory one missing (null counts as missing),
 * a value that is not of the parameter's type (checkScalar's rules: "12" is a valid INTEGER, "x"
 * is not). Empty when the values are valid. `path` prefixes each problem's path ("parameters").
 */
export function checkActionParameters(
  action: Pick<CustomActionDefinition, "parameters">,
  given: GivenParameters,
  path: string,
): Problem[] {
  const problems: Problem[] = [];
  const declared = new Map(action.parameters.map((p) => [p.name, p]));
  for (const [name, raw] of Object.entries(given)) {
    const parameter = declared.get(name);
    if (!parameter) {
      const known = action.parameters.map((p) => p.name).join(", ") || "none";
      problems.push({
        path: `${path}.${name}`,
        message: `is not a parameter of the custom action (its parameters: ${known})`,
      });
      continue;
    }
    if (raw === null || raw === undefined) continue;
    if (typeof raw !== "string" && typeof raw !== "number" && typeof raw !== "boolean") {
      problems.push({ path: `${path}.${name}`, message: "must be a string, number or boolean" });
      continue;
    }
    const check = checkScalar(parameter.valueType, raw);
    if (check.kind === "invalid")
      problems.push({
        path: `${path}.${name}`,
        message: `${check.message} (${parameter.valueType})`,
      });
  }
  for (const parameter of action.parameters) {
    const value = ownValue(given, parameter.name);
    if (parameter.mandatory && (value === undefined || value === null))
      problems.push({ path: `${path}.${parameter.name}`, message: "is mandatory" });
  }
  return problems;
}

/**
 * The values of valid parameters (checkActionParameters found no problem) as the TRIGGER payload
 * shows them: each in its type's stored form, rendered as a string (SPEC §5: values are strings);
 * parameters not given are left out.
 */
export function renderActionParameters(
  action: Pick<CustomActionDefinition, "parameters">,
  given: GivenParameters,
): Record<string, string> {
  const rendered = new Map<string, string>();
  for (const parameter of action.parameters) {
    const raw = ownValue(given, parameter.name);
    if (raw === undefined || raw === null) continue;
    const check = checkScalar(parameter.valueType, raw as string | number | boolean);
    const value = check.kind === "valid" ? check.value : raw;
    const text = renderValue(value as AttributeValue);
    rendered.set(parameter.name, Array.isArray(text) ? text.join(",") : (text ?? ""));
  }
  // fromEntries defines own keys, so even a stored `__proto__` stays a parameter.
  return Object.fromEntries(rendered);
}

/** The API path of a custom action: `/v5/entities/{entity}/custom-actions/{id}`. */
export function customActionHref(entityName: string, actionId: string): string {
  return `/v5/entities/${encodeURIComponent(entityName)}/custom-actions/${encodeURIComponent(actionId)}`;
}

/** The path of a profile as data events link it (event-payload.ts recordHref, PROFILE_TABLE). */
export function triggerProfileHref(entityName: string, tableId: string, profileId: number): string {
  return `/profiles/v4/entity/${encodeURIComponent(entityName)}/table/${encodeURIComponent(tableId)}/profile/${profileId}`;
}

/** What a TRIGGER event says (SPEC §7.4), before it is shaped as a change event. */
export interface TriggerContent {
  action: Pick<CustomAction, "id" | "name">;
  /** renderActionParameters' result. */
  parameters: Record<string, string>;
  /** The profile as events carry it (profileId, creationMoment, updateMoment, its attributes). */
  profile: AttributeMap;
  run?: TriggeringRun | undefined;
}

/**
 * The TRIGGER payload's fields, as the event's `state` keeps them: Actito's flat dotted keys with
 * text values (SPEC §5), so the pushed data object and the pull API show them as they are.
 * `actionParameters.<name>` for each parameter given; `profileAttributes.<name>` for each attribute
 * the profile holds (a value left empty is absent; a multi-valued one is a list of texts, as in
 * every payload); `customAction.id`, `customAction.name`; `scenario.id` and `scenario.runId` only
 * when a scenario's run triggered it.
 */
export function triggerState(content: TriggerContent): AttributeMap {
  const state: AttributeMap = {};
  for (const [name, value] of Object.entries(content.parameters))
    state[`actionParameters.${name}`] = value;
  for (const [name, value] of Object.entries(content.profile)) {
    const text = renderValue(value);
    if (text !== null) state[`profileAttributes.${name}`] = text;
  }
  state["customAction.id"] = content.action.id;
  state["customAction.name"] = content.action.name;
  if (content.run) {
    state["scenario.id"] = content.run.scenarioId;
    state["scenario.runId"] = content.run.runId;
  }
  return state;
}

/** The TRIGGER event's own links (its `extra._links`): the profile and the custom action. */
export function triggerLinks(
  entityName: string,
  actionId: string,
  tableId: string,
  profileId: number,
): { profile: { href: string }; customAction: { href: string } } {
  return {
    profile: { href: triggerProfileHref(entityName, tableId, profileId) },
    customAction: { href: customActionHref(entityName, actionId) },
  };
}
