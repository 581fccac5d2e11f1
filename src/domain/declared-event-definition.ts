/**
 * Custom tables' `eventsToTrigger` as posted (SPEC §3), checked at definition time: rule operations,
 * `onAnyAttribute` names and `matchingConditions` (attributes, operators, values) against the
 * table's attribute names. Evaluation lives in `declared-events.ts`.
 */
import type { Condition, MatchingConditions } from "./conditions.js";
import { CONDITION_OPERATORS, validateConditions } from "./conditions.js";
import type { DeclaredEvent, TriggerRule } from "./data-table.js";
import type { Problems } from "./definition-reader.js";
import { arrayAt, duplicates, isObject, oneOf, stringAt } from "./definition-reader.js";

export const TRIGGER_OPERATIONS = ["CREATE", "UPDATE", "DELETE"] as const;

function conditionsAt(
  p: Problems,
  raw: unknown,
  path: string,
  names: readonly string[],
): MatchingConditions | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (!isObject(raw)) {
    p.bad(path, "must be an object");
    return undefined;
  }
  const out: MatchingConditions = {};
  for (const side of ["stateBeforeOperation", "stateAfterOperation"] as const) {
    const list = arrayAt(p, raw[side], `${path}.${side}`);
    const conditions: Condition[] = [];
    list.forEach((c, i) => {
      const at = `${path}.${side}[${i}]`;
      if (!isObject(c)) return p.bad(at, "must be an object");
      const attribute = stringAt(p, c.attribute, `${at}.attribute`, true);
      const operator = oneOf(p, c.operator, CONDITION_OPERATORS, `${at}.operator`, true);
      if (attribute !== undefined && operator !== undefined)
        conditions.push({
          attribute,
          operator,
          ...(c.value === undefined ? {} : { value: c.value as Condition["value"] }),
        });
    });
    if (list.length > 0) out[side] = conditions;
  }
  for (const problem of validateConditions(out, names, path)) {
    if (problem.message.includes("not an attribute")) p.conflict(problem.path, problem.message);
    else p.bad(problem.path, problem.message);
  }
  return out;
}

export function eventsAt(p: Problems, raw: unknown, names: readonly string[]): DeclaredEvent[] {
  const events: DeclaredEvent[] = [];
  const list = arrayAt(p, raw, "eventsToTrigger");
  list.forEach((e, i) => {
    const at = `eventsToTrigger[${i}]`;
    if (!isObject(e)) return p.bad(at, "must be an object");
    const name = stringAt(p, e.name, `${at}.name`, true);
    const rulesRaw = arrayAt(p, e.triggerRules, `${at}.triggerRules`);
    if (rulesRaw.length === 0) p.bad(`${at}.triggerRules`, "must hold at least one rule");
    const triggerRules: TriggerRule[] = [];
    rulesRaw.forEach((r, j) => {
      const rp = `${at}.triggerRules[${j}]`;
      if (!isObject(r)) return p.bad(rp, "must be an object");
      const onOperation = oneOf(p, r.onOperation, TRIGGER_OPERATIONS, `${rp}.onOperation`, true);
      const rule: TriggerRule = { onOperation: onOperation ?? "CREATE" };
      const onAny = arrayAt(p, r.onAnyAttribute, `${rp}.onAnyAttribute`);
      if (r.onAnyAttribute !== undefined && r.onAnyAttribute !== null) {
        rule.onAnyAttribute = [];
        onAny.forEach((n, k) => {
          if (typeof n !== "string") return p.bad(`${rp}.onAnyAttribute[${k}]`, "must be a string");
          if (!names.includes(n))
            p.conflict(`${rp}.onAnyAttribute[${k}]`, `'${n}' is not an attribute of the table`);
          rule.onAnyAttribute!.push(n);
        });
      }
      const conditions = conditionsAt(p, r.matchingConditions, `${rp}.matchingConditions`, names);
      if (conditions) rule.matchingConditions = conditions;
      triggerRules.push(rule);
    });
    events.push({ name: name ?? "", triggerRules });
  });
  duplicates(events.map((e) => e.name)).forEach((i) =>
    p.conflict(`eventsToTrigger[${i}].name`, "is declared twice"),
  );
  return events;
}
