/**
 * Custom tables' declared events (`eventsToTrigger`, SPEC §3): which ones fire for one operation.
 * A declared event fires when any of its trigger rules matches (rules are OR-ed). A rule matches
 * when its `onOperation` is the operation, at least one of its `onAnyAttribute` names was provided
 * or changed (when the list is given and not empty), and its `matchingConditions` hold on the
 * state before and after the operation (conditions inside a list are AND-ed).
 */
import type { AttributeMap } from "./change-event.js";
import { conditionsHold } from "./conditions.js";
import type { DeclaredEvent, TriggerRule } from "./data-table.js";

export type RecordOperation = TriggerRule["onOperation"];

export interface OperationFacts {
  operation: RecordOperation;
  /** null for a CREATE. */
  before: AttributeMap | null;
  /** null for a DELETE. */
  after: AttributeMap | null;
  /** Attributes the write provided (CREATE, UPDATE) or the record held (DELETE). */
  provided: readonly string[];
  /** Attributes whose value changed. */
  changed: readonly string[];
}

export function ruleMatches(rule: TriggerRule, facts: OperationFacts): boolean {
  if (rule.onOperation !== facts.operation) return false;
  const listed = rule.onAnyAttribute ?? [];
  if (
    listed.length > 0 &&
    !listed.some((name) => facts.provided.includes(name) || facts.changed.includes(name))
  )
    return false;
  return conditionsHold(rule.matchingConditions, facts.before, facts.after);
}

/** Names of the declared events that fire, in declaration order. */
export function firedDeclaredEvents(
  events: readonly DeclaredEvent[],
  facts: OperationFacts,
): string[] {
  return events
    .filter((event) => event.triggerRules.some((rule) => ruleMatches(rule, facts)))
    .map((event) => event.name);
}
