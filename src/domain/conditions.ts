/**
 * Value and transition conditions in the `matchingConditions` form (SPEC §3): a list of
 * `{attribute, operator, value}` checked on the state before and/or after an operation. Used by
 * custom tables' declared events (`eventsToTrigger`) and by subscriptions' [ext] `conditions`.
 * Conditions inside a list are AND-ed.
 */
import type { AttributeMap, AttributeValue } from "./change-event.js";

export const CONDITION_OPERATORS = [
  "=",
  "!=",
  "<",
  "<=",
  ">",
  ">=",
  "IN",
  "IS_NULL",
  "IS_NOT_NULL",
  "CHANGED",
] as const;
export type ConditionOperator = (typeof CONDITION_OPERATORS)[number];

export interface Condition {
  attribute: string;
  operator: ConditionOperator;
  /** Absent for IS_NULL, IS_NOT_NULL and CHANGED; an array for IN. */
  value?: AttributeValue;
}

export interface MatchingConditions {
  stateBeforeOperation?: Condition[];
  stateAfterOperation?: Condition[];
}

/** Values compare as numbers when both sides are numeric, else as strings (Actito renders values as strings). */
function compare(a: AttributeValue | undefined, b: AttributeValue | undefined): number | undefined {
  if (a === null || a === undefined || b === null || b === undefined) return undefined;
  if (Array.isArray(a) || Array.isArray(b)) return undefined;
  const na = typeof a === "number" ? a : typeof a === "string" && a.trim() !== "" ? Number(a) : NaN;
  const nb = typeof b === "number" ? b : typeof b === "string" && b.trim() !== "" ? Number(b) : NaN;
  if (!Number.isNaN(na) && !Number.isNaN(nb)) return na === nb ? 0 : na < nb ? -1 : 1;
  const sa = String(a);
  const sb = String(b);
  return sa === sb ? 0 : sa < sb ? -1 : 1;
}

function isNull(value: AttributeValue | undefined): boolean {
  return (
    value === null ||
    value === undefined ||
    value === "" ||
    (Array.isArray(value) && value.length === 0)
  );
}

function sameValue(a: AttributeValue | undefined, b: AttributeValue | undefined): boolean {
  if (isNull(a) && isNull(b)) return true;
  if (Array.isArray(a) || Array.isArray(b)) return JSON.stringify(a) === JSON.stringify(b);
  return compare(a, b) === 0;
}

/** Checks one condition on one state; `other` is the opposite state, used by CHANGED. */
export function conditionHolds(
  condition: Condition,
  state: AttributeMap | null,
  other: AttributeMap | null,
): boolean {
  const actual = state?.[condition.attribute];
  const order = compare(actual, condition.value);
  switch (condition.operator) {
    case "=":
      return sameValue(actual, condition.value);
    case "!=":
      return !sameValue(actual, condition.value);
    case "<":
      return order !== undefined && order < 0;
    case "<=":
      return order !== undefined && order <= 0;
    case ">":
      return order !== undefined && order > 0;
    case ">=":
      return order !== undefined && order >= 0;
    case "IN":
      return Array.isArray(condition.value) && condition.value.some((v) => sameValue(actual, v));
    case "IS_NULL":
      return isNull(actual);
    case "IS_NOT_NULL":
      return !isNull(actual);
    case "CHANGED":
      return !sameValue(actual, other?.[condition.attribute]);
  }
}

/**
 * True when every condition holds. `before` is null for a CREATE, `after` is null for a DELETE; a
 * missing state reads as every attribute null (so IS_NULL and `!=` a value hold, `=` a value and the
 * ordering operators do not, and CHANGED holds when the other state has a value).
 */
export function conditionsHold(
  conditions: MatchingConditions | undefined,
  before: AttributeMap | null,
  after: AttributeMap | null,
): boolean {
  if (!conditions) return true;
  const beforeOk = (conditions.stateBeforeOperation ?? []).every((c) =>
    conditionHolds(c, before, after),
  );
  const afterOk = (conditions.stateAfterOperation ?? []).every((c) =>
    conditionHolds(c, after, before),
  );
  return beforeOk && afterOk;
}

/** Problems with a conditions object against the table's attribute names; empty when valid. */
export function validateConditions(
  conditions: MatchingConditions,
  attributeNames: readonly string[],
  path: string,
): { path: string; message: string }[] {
  const problems: { path: string; message: string }[] = [];
  const known = new Set(attributeNames);
  for (const side of ["stateBeforeOperation", "stateAfterOperation"] as const) {
    (conditions[side] ?? []).forEach((condition, i) => {
      const at = `${path}.${side}[${i}]`;
      if (!known.has(condition.attribute))
        problems.push({
          path: `${at}.attribute`,
          message: `'${condition.attribute}' is not an attribute of the table`,
        });
      if (!(CONDITION_OPERATORS as readonly string[]).includes(condition.operator)) {
        problems.push({
          path: `${at}.operator`,
          message: `must be one of ${CONDITION_OPERATORS.join(", ")}`,
        });
      }
      const needsValue = !["IS_NULL", "IS_NOT_NULL", "CHANGED"].includes(condition.operator);
      if (needsValue && condition.value === undefined)
        problems.push({
          path: `${at}.value`,
          message: `is required with operator ${condition.operator}`,
        });
      if (condition.operator === "IN" && !Array.isArray(condition.value))
        problems.push({ path: `${at}.value`, message: "must be an array with operator IN" });
    });
  }
  return problems;
}
