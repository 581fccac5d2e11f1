/**
 * Which events of the change log start a scenario's runs, and which profiles a DATE start picks on
 * a given day (SPEC §7.4, docs/scenarios.md). Pure functions of the start and the event (or the
 * day): the scenario starters (jobs/scenarios/start-*.ts) read the log and the schedules, these
 * decide.
 *
 * Log starts, for events of the scenario's profile table in its entity:
 * - DATA_EVENT: the event type asked (CREATE or UPDATE), `onFields` and `conditions` exactly as a
 *   subscription matches them (subscription-matching.ts: at least one listed field involved; the
 *   conditions on the states before and after the operation);
 * - SEGMENT_ENTRY: an UPDATED_SEGMENT event that puts the profile in `segment` of `segmentation`
 *   (capture writes `{segmentation, segment, belongs}` in its extra; leaving is `belongs: false`);
 * - SUBSCRIPTION: an UPDATED_SUBSCRIPTION event of `subscription` whose `subscribe` is the value
 *   asked (capture writes `{subscriptionName, subscribe}`).
 *
 * DATE starts: the profiles whose date attribute is the day of the schedule's due time in the
 * start's time zone; an anniversary is the same month and day any year, and a 29 February is
 * celebrated on 28 February in years without one.
 */
import type { ChangeEvent, EventType } from "./change-event.js";
import { conditionsHold } from "./conditions.js";
import { wallClockOf } from "./iso-duration.js";
import type { Reentry, ScenarioStart } from "./scenario.js";
import { entryKey } from "./scenario.js";
import { eventStates, onFieldsPass } from "./subscription-matching.js";

/** The start types whose runs begin with an event of the change log. */
export const LOG_START_TYPES = ["DATA_EVENT", "SEGMENT_ENTRY", "SUBSCRIPTION"] as const;
export type LogStartType = (typeof LOG_START_TYPES)[number];
export type LogStart = Extract<ScenarioStart, { type: LogStartType }>;
export type DateStart = Extract<ScenarioStart, { type: "DATE" }>;

export function isLogStart(start: ScenarioStart): start is LogStart {
  return (LOG_START_TYPES as readonly string[]).includes(start.type);
}

/** What a scenario's start reads of the log: its entity, profile table and start. */
export interface StartCriteria {
  entityId: number;
  /** The profile table's id (events' sourceId). */
  tableId: string;
  start: LogStart;
}

/** The part of an event that start matching reads. */
export type StartEvent = Pick<
  ChangeEvent,
  | "entityId"
  | "source"
  | "sourceId"
  | "eventType"
  | "recordKey"
  | "fields"
  | "state"
  | "previous"
  | "extra"
  | "declaredEvents"
>;

/** The one event type a log start listens to (the SQL pre-filter reads only those). */
export function startEventType(start: LogStart): EventType {
  switch (start.type) {
    case "DATA_EVENT":
      return start.eventType;
    case "SEGMENT_ENTRY":
      return "UPDATED_SEGMENT";
    case "SUBSCRIPTION":
      return "UPDATED_SUBSCRIPTION";
  }
}

/**
 * True when a DATA_EVENT start has conditions to check: only then does matching read the states
 * before and after the operation (otherwise the log may be read lean).
 */
export function startReadsState(start: LogStart): boolean {
  if (start.type !== "DATA_EVENT") return false;
  const { stateBeforeOperation = [], stateAfterOperation = [] } = start.conditions;
  return stateBeforeOperation.length > 0 || stateAfterOperation.length > 0;
}

/** Does this event start a run of the scenario? */
export function startMatches(criteria: StartCriteria, event: StartEvent): boolean {
  if (event.entityId !== criteria.entityId) return false;
  if (event.source !== "PROFILE_TABLE" || event.sourceId !== criteria.tableId) return false;
  const { start } = criteria;
  if (event.eventType !== startEventType(start)) return false;
  switch (start.type) {
    case "DATA_EVENT": {
      if (!onFieldsPass(start.onFields, event)) return false;
      if (!startReadsState(start)) return true;
      const { before, after } = eventStates(event);
      return conditionsHold(start.conditions, before, after);
    }
    case "SEGMENT_ENTRY":
      return (
        event.extra.belongs === true &&
        event.extra.segmentation === start.segmentation &&
        event.extra.segment === start.segment
      );
    case "SUBSCRIPTION":
      return (
        event.extra.subscriptionName === start.subscription &&
        event.extra.subscribe === start.subscribe
      );
  }
}

/**
 * The profile a matching event is about: its record id, which is a profile event's record key.
 * Undefined for an event that carries none (never for a profile table's events).
 */
export function startedProfileId(event: Pick<ChangeEvent, "recordKey">): number | undefined {
  const id = /^\d+$/.test(event.recordKey) ? Number(event.recordKey) : NaN;
  return Number.isSafeInteger(id) && id > 0 ? id : undefined;
}

/** A day as `YYYY-MM-DD`, the way DATE attributes are stored. */
export type Day = string;

/** The calendar day that `at` falls on in `timezone` (an IANA name). */
export function dayIn(timezone: string, at: Date): Day {
  const { year, month, day } = wallClockOf(at, timezone);
  const two = (n: number) => String(n).padStart(2, "0");
  return `${String(year).padStart(4, "0")}-${two(month)}-${two(day)}`;
}

function isLeapYear(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}

/** Which stored dates a DATE start picks on a day: that exact day, or month-days of any year. */
export type DayMatch = { kind: "exact"; day: Day } | { kind: "anniversary"; monthDays: string[] };

/**
 * Which stored dates a DATE start picks on `day`. Not an anniversary: that exact day. An
 * anniversary: any year's `MM-DD` of that day (see anniversaryMonthDays).
 */
export function dateStartMatch(start: Pick<DateStart, "anniversary">, day: Day): DayMatch {
  return start.anniversary
    ? { kind: "anniversary", monthDays: anniversaryMonthDays(day) }
    : { kind: "exact", day };
}

/**
 * The `MM-DD` of the anniversaries celebrated on `day`: its own, and on 28 February of a year
 * without a 29th, also 29 February (else those profiles would be picked only every fourth year).
 */
export function anniversaryMonthDays(day: Day): string[] {
  const year = Number(day.slice(0, 4));
  const monthDay = day.slice(5);
  return monthDay === "02-28" && !isLeapYear(year) ? ["02-28", "02-29"] : [monthDay];
}

/**
 * The re-entry key of a DATE start's runs, as SQL builds it for every profile of a day at once: the
 * prefix of entryKey's key, to which the profile's id is appended; null when the policy sets none
 * (ALWAYS). Derived from entryKey, so both always make the same key.
 */
export function entryKeyPrefix(reentry: Reentry): string | null {
  const sample = entryKey(reentry, 1);
  if (sample === null) return null;
  if (!sample.endsWith("1"))
    throw new Error(
      `entryKey no longer ends with the profile id ('${sample}'): update entryKeyPrefix`,
    );
  return sample.slice(0, -1);
}
