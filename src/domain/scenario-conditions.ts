/**
 * The conditions of a scenario (SPEC §7.4, docs/scenarios.md): a FILTER block's, and a DATA_EVENT
 * start's on each side of the change. A list of `{attribute, operator, value}` in the conditions
 * language of `eventsToTrigger` (conditions.ts), checked against the profile table: the attribute
 * exists, the operator is one the place allows, and each value is one the attribute can hold
 * (checkScalar of its value type: `points > "abc"` on an INTEGER is a 400, not a condition that
 * silently never holds). Values are kept in the attribute's stored form ("12" → 12, "01/02/2024" →
 * "2024-02-01"), the form the profile's own values are compared in. Pure.
 */
import { checkScalar } from "./attribute-values.js";
import type { AttributeValue } from "./change-event.js";
import type { Condition } from "./conditions.js";
import { CONDITION_OPERATORS, validateConditions } from "./conditions.js";
import type { DataTable, ValueType } from "./data-table.js";
import { attributeNames } from "./data-table.js";

type Add = (path: string, message: string) => void;
type Scalar = string | number | boolean;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Operators that compare no value: a value given with them is not read. */
const WITHOUT_VALUE: readonly string[] = ["IS_NULL", "IS_NOT_NULL", "CHANGED"];

/** What a condition's value is checked against. */
interface ValueShape {
  valueType: ValueType;
  multiValued: boolean;
}

/** The value type of an attribute a condition names: the technical ones' own, or its declared one. */
function shapeOf(table: DataTable, name: string): ValueShape | undefined {
  if (table.kind === "PROFILE_TABLE") {
    if (name === "profileId") return { valueType: "LONG", multiValued: false };
    if (name === "creationMoment" || name === "updateMoment")
      return { valueType: "TIMESTAMP", multiValued: false };
  }
  const attribute = table.attributes.find((a) => a.name === name);
  return attribute && { valueType: attribute.valueType, multiValued: attribute.multiValued };
}

/** One value in the attribute's stored form; undefined (and a problem) when it cannot be one. */
function storedValue(
  raw: Scalar | null,
  name: string,
  shape: ValueShape,
  path: string,
  add: Add,
): Scalar | null | undefined {
  if (raw === null) return null;
  const check = checkScalar(shape.valueType, raw);
  if (check.kind === "valid") return check.value as Scalar;
  add(path, `${check.message}: '${name}' is of type ${shape.valueType}`);
  return undefined;
}

/**
 * The condition's value in the attribute's stored form, each item of an IN list (or of a list for
 * a multi-valued attribute) checked alone; undefined when one does not fit, with its problem.
 */
function typedValue(
  condition: Condition,
  shape: ValueShape,
  at: string,
  add: Add,
): AttributeValue | undefined {
  const { attribute, operator, value } = condition;
  if (WITHOUT_VALUE.includes(operator) || value === undefined) return value;
  if (Array.isArray(value)) {
    if (operator !== "IN" && !shape.multiValued) {
      add(`${at}.value`, `takes one value ('${attribute}' holds one); a list goes with IN`);
      return undefined;
    }
    const items = (value as (Scalar | null)[]).map((item, k) =>
      storedValue(item, attribute, shape, `${at}.value[${k}]`, add),
    );
    return items.includes(undefined) ? undefined : (items as AttributeValue);
  }
  return storedValue(value as Scalar | null, attribute, shape, `${at}.value`, add);
}

/**
 * A list of `{attribute, operator, value}` on the profile's attributes, checked with
 * validateConditions and then against the attributes' value types. CHANGED compares two states, so
 * only a DATA_EVENT start (`allowChanged`) may use it; a FILTER sees one state, the profile as it is.
 */
export function parseConditionList(
  raw: unknown,
  table: DataTable,
  path: string,
  add: Add,
  options: { allowChanged: boolean },
): Condition[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) {
    add(path, 'must be a list of {"attribute", "operator", "value"}');
    return [];
  }
  const operators = CONDITION_OPERATORS.filter((o) => options.allowChanged || o !== "CHANGED");
  const names = attributeNames(table);
  const conditions: Condition[] = [];
  raw.forEach((item: unknown, i) => {
    const at = `${path}[${i}]`;
    if (!isObject(item) || typeof item.attribute !== "string") {
      add(at, 'must be an object {"attribute", "operator", "value"}');
      return;
    }
    const operator = typeof item.operator === "string" ? item.operator.trim().toUpperCase() : "";
    if (!(operators as readonly string[]).includes(operator)) {
      add(
        `${at}.operator`,
        operator === "CHANGED"
          ? "CHANGED compares a change's two states; a FILTER sees the profile as it is now (use it in a DATA_EVENT start's conditions)"
          : `must be one of ${operators.join(", ")}`,
      );
      return;
    }
    const value = item.value;
    const scalar = (v: unknown) =>
      v === null || typeof v === "string" || typeof v === "number" || typeof v === "boolean";
    if (value !== undefined && !scalar(value) && !(Array.isArray(value) && value.every(scalar))) {
      add(`${at}.value`, "must be a string, a number, a boolean, or with IN a list of them");
      return;
    }
    const condition: Condition = {
      attribute: item.attribute,
      operator: operator as Condition["operator"],
    };
    if (value !== undefined) condition.value = value as AttributeValue;
    // validateConditions names a list's item as "<path>.stateAfterOperation[0]"; this is one item.
    const prefix = ".stateAfterOperation[0]";
    const problems = validateConditions({ stateAfterOperation: [condition] }, names, "");
    for (const problem of problems)
      add(`${at}${problem.path.slice(prefix.length)}`, problem.message);
    const shape = shapeOf(table, condition.attribute);
    if (problems.length === 0 && shape) {
      const typed = typedValue(condition, shape, at, add);
      if (typed !== undefined) condition.value = typed;
    }
    conditions.push(condition);
  });
  return conditions;
}
