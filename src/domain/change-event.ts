/** Change events: what capture writes (DESIGN §3) and what the log hands downstream (§4). */

export const EVENT_SOURCES = [
  "PROFILE_TABLE",
  "CUSTOM_TABLE",
  "ETL",
  "EXPORT",
  "CUSTOM_ACTION",
  "FILE_SYNCHRONIZATION",
] as const;
export type EventSource = (typeof EVENT_SOURCES)[number];

export const EVENT_TYPES = [
  "CREATE",
  "UPDATE",
  "DELETE",
  "UPDATED_SEGMENT",
  "UPDATED_SUBSCRIPTION",
  "STARTED",
  "FINISHED",
  "TRIGGER",
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** Which event types each source can emit (SPEC §4, the `eventType` row). */
export const EVENT_TYPES_BY_SOURCE: Record<EventSource, readonly EventType[]> = {
  PROFILE_TABLE: ["CREATE", "UPDATE", "DELETE", "UPDATED_SEGMENT", "UPDATED_SUBSCRIPTION"],
  CUSTOM_TABLE: ["CREATE", "UPDATE", "DELETE"],
  ETL: ["STARTED", "FINISHED"],
  EXPORT: ["FINISHED"],
  CUSTOM_ACTION: ["TRIGGER"],
  FILE_SYNCHRONIZATION: ["STARTED", "FINISHED"],
};

/** Who caused a change. */
export type Origin =
  | { kind: "API_KEY"; apiKeyId: number; apiKeyName: string }
  /** A row of an import (SPEC §7.1: `{"type": "ETL_EXECUTION", "id", "line"}`; `kind` as the others). */
  | { kind: "ETL_EXECUTION"; type: "ETL_EXECUTION"; id: string; line: number; etlId?: string }
  /** A scenario run's UPDATE_PROFILE block (SPEC §7.4: `{"type": "SCENARIO_RUN", "id"}`, the run's id). */
  | { kind: "SCENARIO_RUN"; type: "SCENARIO_RUN"; id: string; scenarioId: string }
  /** The deletion of a whole table (its records' DELETE events), asked for by an API key. */
  | {
      kind: "TABLE_DELETION";
      type: "TABLE_DELETION";
      tableId: string;
      tableName: string;
      apiKeyId: number;
      apiKeyName: string;
    }
  | { kind: "SYSTEM" };

/** Attribute values as stored: JSON scalars (strings, numbers, booleans) or arrays of them. */
export type AttributeValue =
  string | number | boolean | null | readonly (string | number | boolean)[];
export type AttributeMap = Record<string, AttributeValue>;

/** An event as capture appends it, inside the writing transaction. */
export interface NewChangeEvent {
  entityId: number;
  source: EventSource;
  sourceId: string;
  eventType: EventType;
  /** Ordering key inside the source: the profileId, the business key, the execution id. */
  recordKey: string;
  /** The record's unique keys, e.g. `{ profileId: 7, emailAddress: "a@b.c" }`. */
  keys: AttributeMap;
  /** The record after the write (before it, for DELETE); for trigger events, the payload fields. */
  state: AttributeMap;
  /** CREATE/DELETE: the attributes provided; UPDATE: the attributes whose value changed. */
  fields: string[];
  /** Previous values of the changed attributes (UPDATE). */
  previous: AttributeMap;
  /** Event-type specific data: `{subscriptionName, subscribe}`, `{segmentation, segment, belongs}`, … */
  extra: Record<string, unknown>;
  /** The record version after the write. */
  version: number | null;
  /** Names of the table's declared events (`eventsToTrigger`) that fired. */
  declaredEvents: string[];
  origin: Origin;
}

/** An event read back from the log: stamped with its global position. */
export interface ChangeEvent extends NewChangeEvent {
  id: number;
  position: number;
  occurredAt: Date;
}

/** The public event id (`_event.id`). */
export function eventPublicId(id: number): string {
  return `evt_${id}`;
}
