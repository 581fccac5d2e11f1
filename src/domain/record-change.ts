/**
 * What a write changes in a record: the attributes after the write, which ones changed and their
 * previous values; the same for a profile's subscriptions and segment memberships. A write whose
 * diff is empty is a no-op: no event, no version bump (DESIGN §3).
 */
import type { AttributeMap, AttributeValue } from "./change-event.js";

/** A profile's subscriptions: subscription name → subscribed. Absent = not subscribed. */
export type SubscriptionStates = Record<string, boolean>;
/** A profile's segment memberships: segmentation name → the segment it belongs to (SIMPLE: its own name). */
export type SegmentMemberships = Record<string, string>;

/** One unique value of a record (`record_keys`); values are kept as their string rendering. */
export interface KeyValue {
  attribute: string;
  value: string;
}

export interface AttributeDiff {
  after: AttributeMap;
  /** Names of the attributes whose value changed, in the order they were provided. */
  changed: string[];
  /** Previous values of the changed attributes (null when there was none). */
  previous: AttributeMap;
}

function isEmpty(value: AttributeValue | undefined): boolean {
  return value === null || value === undefined || (Array.isArray(value) && value.length === 0);
}

/** Equality of stored values: no value equals no value; lists compare item by item. */
export function sameStoredValue(
  a: AttributeValue | undefined,
  b: AttributeValue | undefined,
): boolean {
  if (isEmpty(a) || isEmpty(b)) return isEmpty(a) && isEmpty(b);
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((item, i) => item === b[i]);
  }
  return a === b;
}

/**
 * Applies provided (already validated) values on top of `before`. A null value removes the
 * attribute. Attributes not provided keep their value.
 */
export function applyAttributes(before: AttributeMap, provided: AttributeMap): AttributeDiff {
  const after: AttributeMap = { ...before };
  const changed: string[] = [];
  const previous: AttributeMap = {};
  for (const [name, value] of Object.entries(provided)) {
    if (sameStoredValue(before[name], value)) continue;
    changed.push(name);
    previous[name] = before[name] ?? null;
    if (isEmpty(value)) delete after[name];
    else after[name] = value;
  }
  return { after, changed, previous };
}

export interface SubscriptionChange {
  subscriptionName: string;
  subscribe: boolean;
}

/** Applies requested subscription states; only real changes are listed, in request order. */
export function applySubscriptions(
  before: SubscriptionStates,
  requested: readonly SubscriptionChange[],
): { after: SubscriptionStates; changes: SubscriptionChange[] } {
  const after: SubscriptionStates = { ...before };
  const changes: SubscriptionChange[] = [];
  for (const { subscriptionName, subscribe } of requested) {
    if ((after[subscriptionName] ?? false) === subscribe) continue;
    if (subscribe) after[subscriptionName] = true;
    else delete after[subscriptionName];
    changes.push({ subscriptionName, subscribe });
  }
  return { after, changes };
}

export interface SegmentChange {
  segmentation: string;
  segment: string;
  belongs: boolean;
}

/**
 * Applies requested memberships. A segmentation holds at most one segment, so joining another
 * segment of an EXCLUSIVE segmentation first leaves the current one: the changes list
 * `belongs: false` for the old segment, then `belongs: true` for the new one. Leaving a segment the
 * profile is not in changes nothing.
 */
export function applySegments(
  before: SegmentMemberships,
  requested: readonly SegmentChange[],
): { after: SegmentMemberships; changes: SegmentChange[] } {
  const after: SegmentMemberships = { ...before };
  const changes: SegmentChange[] = [];
  for (const { segmentation, segment, belongs } of requested) {
    const current = after[segmentation];
    if (belongs) {
      if (current === segment) continue;
      if (current !== undefined) changes.push({ segmentation, segment: current, belongs: false });
      after[segmentation] = segment;
      changes.push({ segmentation, segment, belongs: true });
    } else {
      if (current !== segment) continue;
      delete after[segmentation];
      changes.push({ segmentation, segment, belongs: false });
    }
  }
  return { after, changes };
}
