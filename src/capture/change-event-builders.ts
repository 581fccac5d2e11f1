/**
 * Builds the change events of record writes (DESIGN §3, NewChangeEvent in domain/change-event.ts).
 * Profiles: source PROFILE_TABLE, recordKey = profileId, state with the technical attributes.
 * Custom tables: source CUSTOM_TABLE, recordKey = business key, declared events that fired.
 */
import type { AttributeMap, EventType, NewChangeEvent, Origin } from "../domain/change-event.js";
import type { DataTable } from "../domain/data-table.js";
import type { SegmentChange, SubscriptionChange } from "../domain/record-change.js";
import { uniqueKeysOf } from "../domain/record-keys.js";

export interface RecordSnapshot {
  recordId: number;
  businessKey: string | null;
  attributes: AttributeMap;
  createdAt: Date;
  updatedAt: Date;
}

/** A profile as events carry it: technical attributes first, then the stored attributes. */
export function profileState(record: RecordSnapshot): AttributeMap {
  return {
    profileId: record.recordId,
    creationMoment: record.createdAt.toISOString(),
    updateMoment: record.updatedAt.toISOString(),
    ...record.attributes,
  };
}

export function recordKeys(table: DataTable, record: RecordSnapshot): AttributeMap {
  const keys: AttributeMap = table.kind === "PROFILE_TABLE" ? { profileId: record.recordId } : {};
  for (const key of uniqueKeysOf(table, record.attributes))
    keys[key.attribute] = record.attributes[key.attribute] ?? key.value;
  return keys;
}

/** Names of the attributes a record holds, in the table's declaration order (JSONB reorders keys). */
export function heldAttributes(table: DataTable, attributes: AttributeMap): string[] {
  return table.attributes
    .map((a) => a.name)
    .filter((name) => attributes[name] !== undefined && attributes[name] !== null);
}

export interface EventContext {
  table: DataTable;
  record: RecordSnapshot;
  version: number;
  origin: Origin;
}

export function dataEvent(
  context: EventContext,
  eventType: EventType,
  fields: string[],
  previous: AttributeMap = {},
  extra: Record<string, unknown> = {},
  declaredEvents: string[] = [],
): NewChangeEvent {
  const { table, record } = context;
  const isProfile = table.kind === "PROFILE_TABLE";
  return {
    entityId: table.entityId,
    source: table.kind,
    sourceId: table.id,
    eventType,
    recordKey: isProfile
      ? String(record.recordId)
      : (record.businessKey ?? String(record.recordId)),
    keys: recordKeys(table, record),
    state: isProfile ? profileState(record) : { ...record.attributes },
    fields,
    previous,
    extra,
    version: context.version,
    declaredEvents,
    origin: context.origin,
  };
}

/** One UPDATED_SUBSCRIPTION per changed subscription, then one UPDATED_SEGMENT per changed membership. */
export function membershipEvents(
  context: EventContext,
  subscriptions: readonly SubscriptionChange[],
  segments: readonly SegmentChange[],
): NewChangeEvent[] {
  return [
    ...subscriptions.map((s) =>
      dataEvent(
        context,
        "UPDATED_SUBSCRIPTION",
        [],
        {},
        {
          subscriptionName: s.subscriptionName,
          subscribe: s.subscribe,
        },
      ),
    ),
    ...segments.map((s) =>
      dataEvent(
        context,
        "UPDATED_SEGMENT",
        [],
        {},
        {
          segmentation: s.segmentation,
          segment: s.segment,
          belongs: s.belongs,
        },
      ),
    ),
  ];
}
