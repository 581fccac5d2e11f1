/**
 * Does an event concern a subscription? A pure function of the two (DESIGN §5), read by the delivery
 * engine for every event of the log it walks. It looks only at what the subscription selects; it
 * does not look at `isActive` or `state` (whether to deliver at all is the engine's decision).
 *
 * The rules, in order:
 * 1. same entity, `on` = the event's source, `onElementId` null (any element) or = its source id,
 *    `eventType` = the event's type;
 * 2. `onFields` (when not empty) on CREATE and UPDATE: at least one listed field is in `event.fields`
 *    (the attributes provided on CREATE, the attributes changed on UPDATE). Other event types ignore
 *    `onFields`: a DELETE removes the whole record, UPDATED_SEGMENT / UPDATED_SUBSCRIPTION change no
 *    attribute, trigger events have no table attributes;
 * 3. a CUSTOM_TABLE UPDATE subscription passes only when at least one of the table's declared events
 *    (`eventsToTrigger`) fired for the write (`event.declaredEvents` not empty): SPEC §3 says UPDATE
 *    events of a custom table exist only where declared, so an update that fires none is no event;
 * 4. [ext] `conditions` hold on the states before and after the operation (see `eventStates`).
 */
import type { AttributeMap, ChangeEvent } from "./change-event.js";
import { conditionsHold } from "./conditions.js";
import type { Subscription } from "./subscription.js";

/** The part of a subscription that matching reads. */
export type MatchCriteria = Pick<
  Subscription,
  "entityId" | "on" | "onElementId" | "eventType" | "onFields" | "conditions"
>;

/** The part of an event that matching reads. */
export type MatchedEvent = Pick<
  ChangeEvent,
  | "entityId"
  | "source"
  | "sourceId"
  | "eventType"
  | "fields"
  | "state"
  | "previous"
  | "declaredEvents"
>;

/** Event types whose `fields` say which attributes the operation involved (SPEC §4 `onFields`). */
const FIELD_FILTERED_TYPES: ReadonlySet<string> = new Set(["CREATE", "UPDATE"]);

/**
 * The record before and after the operation, as conditions see them: CREATE has no before, DELETE
 * has no after (its `state` is the record as it was). Any other event's after is its `state`, and
 * its before is that state with the previous values of the changed attributes put back.
 */
export function eventStates(event: Pick<ChangeEvent, "eventType" | "state" | "previous">): {
  before: AttributeMap | null;
  after: AttributeMap | null;
} {
  switch (event.eventType) {
    case "CREATE":
      return { before: null, after: event.state };
    case "DELETE":
      return { before: event.state, after: null };
    default:
      return { before: { ...event.state, ...event.previous }, after: event.state };
  }
}

/** True when the subscription's `onFields` let the event through (rule 2). */
export function onFieldsPass(onFields: readonly string[], event: MatchedEvent): boolean {
  if (onFields.length === 0 || !FIELD_FILTERED_TYPES.has(event.eventType)) return true;
  const involved = new Set(event.fields);
  return onFields.some((field) => involved.has(field));
}

export function matchesSubscription(subscription: MatchCriteria, event: MatchedEvent): boolean {
  if (subscription.entityId !== event.entityId) return false;
  if (subscription.on !== event.source) return false;
  if (subscription.onElementId !== null && subscription.onElementId !== event.sourceId)
    return false;
  if (subscription.eventType !== event.eventType) return false;
  if (!onFieldsPass(subscription.onFields, event)) return false;
  if (
    event.source === "CUSTOM_TABLE" &&
    event.eventType === "UPDATE" &&
    event.declaredEvents.length === 0
  ) {
    return false;
  }
  if (subscription.conditions) {
    const { before, after } = eventStates(event);
    if (!conditionsHold(subscription.conditions, before, after)) return false;
  }
  return true;
}
