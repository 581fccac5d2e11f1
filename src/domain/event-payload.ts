/**
 * Payload shaping (SPEC §5): a change event from the log becomes the flat data object a subscriber
 * receives (pushed one by one or in a BULK block) or reads from the pull API, and a push wraps one or
 * more of them in an envelope. Pure: no I/O, never throws on whatever a stored event contains.
 *
 * Rendering rules, in one place:
 * - Values are strings, as Actito renders them: numbers and booleans become their text, strings stay,
 *   `null` (or a provided attribute missing from the state) stays `null`. Multi-valued attributes
 *   (arrays) become arrays of strings, so one value containing a comma is not confused with two.
 * - Record events (CREATE, UPDATE, DELETE, UPDATED_*) carry the record's unique keys, then the
 *   attributes in `fields` (provided on CREATE/DELETE, changed on UPDATE) with their value from
 *   `state`. UPDATED_SUBSCRIPTION adds `subscriptionName` and `subscribe`; UPDATED_SEGMENT adds
 *   `segmentation`, `segment` and `belongs` (all taken from the event's `extra`).
 * - Trigger events (ETL, EXPORT, FILE_SYNCHRONIZATION, CUSTOM_ACTION) carry the entries of `state`
 *   then `extra` under dotted keys: nested objects are flattened (`{etl: {id: 3}}` → `"etl.id": "3"`),
 *   keys that already contain dots are kept as they are.
 * - Names beginning with `_` never come from data (SPEC §5 forbids them in attribute names), so the
 *   `_links` and `_event` blocks cannot be overwritten.
 */
import type { AttributeMap, ChangeEvent, EventSource, Origin } from "./change-event.js";
import { eventPublicId } from "./change-event.js";
import type { RenderedValue } from "./rendered-values.js";
import {
  AttributeTextWriter,
  isDataName,
  mayBeIndex,
  plainIntegerJson,
  remembered,
  renderValue,
  valueJson,
} from "./rendered-values.js";

export type { RenderedValue } from "./rendered-values.js";
export { renderValue } from "./rendered-values.js";

/** The Herald-only block describing the event itself (SPEC §5 [ext]). */
export interface EventBlock {
  id: string;
  type: ChangeEvent["eventType"];
  position: number;
  occurredAt: string;
  version: number | null;
  changedFields: string[];
  /** Present only when the reader asked for previous values (`includePrevious`). */
  previous?: Record<string, RenderedValue>;
  origin: Origin;
  declaredEvents: string[];
}

export interface Link {
  href: string;
}

/** The flat data object: rendered attributes (`Record<string, RenderedValue>`) plus the blocks. */
export type DataObject = Record<string, unknown> & {
  _links: { self: Link };
  _event: EventBlock;
};

export interface PayloadOptions {
  entityName: string;
  /** Adds `_event.previous` (the values the changed attributes had before the write). */
  includePrevious: boolean;
}

export interface PushEnvelope<D> {
  id: string;
  data: D;
  _links: { webhook: Link };
}

/** Sources whose events are executions or triggers rather than writes to a record. */
export const TRIGGER_SOURCES: readonly EventSource[] = [
  "ETL",
  "EXPORT",
  "FILE_SYNCHRONIZATION",
  "CUSTOM_ACTION",
];

/** The extra keys each record-level event type adds to its data object. */
const EXTRA_KEYS: Partial<Record<ChangeEvent["eventType"], readonly string[]>> = {
  UPDATED_SUBSCRIPTION: ["subscriptionName", "subscribe"],
  UPDATED_SEGMENT: ["segmentation", "segment", "belongs"],
};

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** `map[key]` when `map` is a plain object holding `key` itself (never an inherited property). */
export function own(map: unknown, key: string): unknown {
  return isPlainObject(map) && Object.prototype.hasOwnProperty.call(map, key)
    ? map[key]
    : undefined;
}

/** Copies `map` into `out` under dotted names (trigger events), skipping `_`-names. */
function flattenInto(out: Record<string, unknown>, map: unknown, prefix: string, depth = 0): void {
  if (!isPlainObject(map)) return;
  for (const [key, value] of Object.entries(map)) {
    if (!isDataName(key)) continue;
    const name = prefix ? `${prefix}.${key}` : key;
    if (isPlainObject(value) && depth < 8) flattenInto(out, value, name, depth + 1);
    else out[name] = renderValue(value);
  }
}

function segment(value: string | number): string {
  return encodeURIComponent(String(value));
}

/**
 * The `_links.self` href of an event's subject, on Herald's own API (with the Actito service prefix,
 * which Herald strips before routing):
 * - profile: `/profiles/v4/entity/{entity}/table/{tableId}/profile/{profileId}`
 * - custom-table record: `/custom-data/v4/entity/{entity}/customTable/{tableId}/record/{businessKey}`
 * - ETL execution: `/mass-imports/v5/entities/{entity}/etl-executions/{executionId}`
 * - export execution: `/v5/entities/{entity}/exports/{exportId}/executions/{executionId}`
 * - file synchronisation: `/v5/entities/{entity}/file-references/{referenceId}/synchronizations/{syncId}`
 * - custom action: `/v5/entities/{entity}/custom-actions/{actionId}`
 */
export function recordHref(
  event: ChangeEvent,
  entityName: string,
  entitySegment = segment(entityName),
): string {
  const entity = entitySegment;
  switch (event.source) {
    case "PROFILE_TABLE": {
      const profileId = own(event.keys, "profileId") ?? event.recordKey;
      return `/profiles/v4/entity/${entity}/table/${segment(event.sourceId)}/profile/${segment(String(profileId))}`;
    }
    case "CUSTOM_TABLE":
      return `/custom-data/v4/entity/${entity}/customTable/${segment(event.sourceId)}/record/${segment(event.recordKey)}`;
    case "ETL":
      return `/mass-imports/v5/entities/${entity}/etl-executions/${segment(event.recordKey)}`;
    case "EXPORT":
      return `/v5/entities/${entity}/exports/${segment(event.sourceId)}/executions/${segment(event.recordKey)}`;
    case "FILE_SYNCHRONIZATION":
      return `/v5/entities/${entity}/file-references/${segment(event.sourceId)}/synchronizations/${segment(event.recordKey)}`;
    case "CUSTOM_ACTION":
      return `/v5/entities/${entity}/custom-actions/${segment(event.sourceId)}`;
    default:
      return `/v5/entities/${entity}/change-events?after=${Math.max(0, event.position - 1)}&limit=1`;
  }
}

function renderMap(map: unknown, names: readonly string[]): Record<string, RenderedValue> {
  const out: Record<string, RenderedValue> = {};
  for (const name of names) if (isDataName(name)) out[name] = renderValue(own(map, name));
  return out;
}

function namesOf(list: unknown): string[] {
  return Array.isArray(list) ? list.filter((item): item is string => typeof item === "string") : [];
}

/** The JSON of a list of names as the `_event` block holds it (`changedFields`, `declaredEvents`). */
export function namesJson(list: unknown): string {
  return JSON.stringify(namesOf(list));
}

/** `_event.occurredAt`: ISO 8601 in UTC with milliseconds (the epoch for a date that is not one). */
export function toIso(date: unknown): string {
  const parsed = date instanceof Date ? date : new Date(String(date));
  return Number.isFinite(parsed.getTime()) ? parsed.toISOString() : new Date(0).toISOString();
}

/**
 * A trigger event's own links (`_links` of its `extra`, set when it was appended: the ETL and the
 * execution of an ETL event, SPEC §7.1), each `{href}` with a string href; none for record events.
 */
function triggerLinks(event: ChangeEvent): Record<string, Link> {
  if (!TRIGGER_SOURCES.includes(event.source)) return {};
  const links = own(event.extra, "_links");
  const out: Record<string, Link> = {};
  if (!isPlainObject(links)) return out;
  for (const [name, link] of Object.entries(links)) {
    const href = own(link, "href");
    if (name !== "self" && typeof href === "string") out[name] = { href };
  }
  return out;
}

/** The `_event` block of an event. */
export function eventBlock(event: ChangeEvent, includePrevious: boolean): EventBlock {
  const changedFields = namesOf(event.fields);
  const block: EventBlock = {
    id: eventPublicId(event.id),
    type: event.eventType,
    position: event.position,
    occurredAt: toIso(event.occurredAt),
    version: event.version ?? null,
    changedFields,
    origin: event.origin,
    declaredEvents: namesOf(event.declaredEvents),
  };
  if (includePrevious) {
    const previous = isPlainObject(event.previous) ? event.previous : {};
    block.previous = renderMap(previous, Object.keys(previous));
  }
  return block;
}

/** The flat data object of one event (SPEC §5), as pushed in `data` and listed by the pull API. */
export function toDataObject(event: ChangeEvent, options: PayloadOptions): DataObject {
  const data: Record<string, unknown> = {};
  if (TRIGGER_SOURCES.includes(event.source)) {
    flattenInto(data, event.state, "");
    flattenInto(data, event.extra, "");
  } else {
    const keys: AttributeMap = isPlainObject(event.keys) ? event.keys : {};
    Object.assign(data, renderMap(keys, Object.keys(keys)));
    for (const name of namesOf(event.fields)) {
      if (isDataName(name) && !Object.prototype.hasOwnProperty.call(data, name))
        data[name] = renderValue(own(event.state, name));
    }
    for (const name of EXTRA_KEYS[event.eventType] ?? []) {
      data[name] = renderValue(own(event.extra, name));
    }
  }
  // Data names never begin with `_`, so the two blocks are added last and overwrite nothing.
  data._links = { self: { href: recordHref(event, options.entityName) }, ...triggerLinks(event) };
  data._event = eventBlock(event, options.includePrevious);
  return data as DataObject;
}

/**
 * Texts of an event's `_event` parts that a log reader already holds, used as they are instead of
 * being serialised again: each must be exactly what the comment says.
 */
export interface PrerenderedParts {
  /** `toIso(event.occurredAt)`: ISO 8601 in UTC with milliseconds. */
  occurredAtText: string;
  /** The names in `fields` (`namesOf`), shared between events: never to be changed. */
  changedFieldNames: readonly string[];
  /** `JSON.stringify` of the `changedFields`, `origin` and `declaredEvents` of the `_event` block. */
  changedFieldsJson: string;
  originJson: string;
  declaredEventsJson: string;
  /**
   * When the reader sent only the changed attributes' values (a lean page): the JSON text of `keys`
   * as jsonb writes it, and the JSON texts of the values of `changedFieldNames`, in their order,
   * separated by U+001F (an empty one for a missing attribute). The attributes are then written from
   * these texts (recordAttributesFromJson) and no `keys` or `state` object is built. Undefined
   * otherwise.
   */
  keysJson?: string | undefined;
  changedValuesJson?: string | undefined;
}

/** A number as JSON.stringify writes it. */
function numberJson(value: number): string {
  return Number.isFinite(value) ? String(value) : "null";
}

/**
 * Writes data objects as text (dataText), with what it keeps from event to event: the JSON texts of
 * attribute names and event types, the href segments of the last entity and source, and the
 * attribute writer's scratch space. One per encoder (delivery's push-body.ts keeps one), whose
 * calls run to their end one at a time; nothing of it is shared between writers.
 */
export class DataTextWriter {
  private readonly attributes = new AttributeTextWriter();
  /** `JSON.stringify(type)` of event types, remembered (see remembered). */
  private readonly typeJson = new Map<string, string>();
  /** The href segments of the last entity name and source id asked for (they rarely change). */
  private entity = { name: "", segment: "" };
  private source = { id: "", segment: "" };

  /**
   * The attributes of a record event's data object as JSON members (`"k":"v",` each, a comma after
   * every member) in the order toDataObject adds them; undefined when that order or content needs
   * the object path. Built by concatenation: V8 links the pieces and copies them once, when the
   * push's bytes are encoded.
   */
  private recordAttributesText(event: ChangeEvent, fields: readonly string[]): string | undefined {
    const keys: AttributeMap = isPlainObject(event.keys) ? event.keys : {};
    let out = "";
    for (const name of Object.keys(keys)) {
      if (!isDataName(name)) continue;
      if (mayBeIndex(name)) return undefined;
      out += this.attributes.nameJson(name) + valueJson(keys[name]) + ",";
    }
    for (let i = 0; i < fields.length; i++) {
      const name = fields[i] as string;
      if (!isDataName(name) || Object.prototype.hasOwnProperty.call(keys, name)) continue;
      if (fields.indexOf(name) < i) continue; // a repeated name: the first one is in already
      if (mayBeIndex(name)) return undefined;
      out += this.attributes.nameJson(name) + valueJson(own(event.state, name)) + ",";
    }
    for (const name of EXTRA_KEYS[event.eventType] ?? []) {
      // Already present: toDataObject overwrites it in place, which appending cannot do.
      if (Object.prototype.hasOwnProperty.call(keys, name) || fields.includes(name))
        return undefined;
      out += this.attributes.nameJson(name) + valueJson(own(event.extra, name)) + ",";
    }
    return out;
  }

  /**
   * recordHref, with the entity's and the source's segments remembered between calls and a profile
   * id that is a safe integer written as it is (its text has nothing encodeURIComponent changes).
   * `keyedId` is the event's `profileId` key (`own(event.keys, "profileId")`), or, when `plainId`,
   * the text of a safe integer's.
   */
  private cachedRecordHref(
    event: ChangeEvent,
    entityName: string,
    keyedId: unknown,
    plainId: boolean,
  ): string {
    if (this.entity.name !== entityName)
      this.entity = { name: entityName, segment: segment(entityName) };
    if (event.source !== "PROFILE_TABLE" && event.source !== "CUSTOM_TABLE")
      return recordHref(event, entityName, this.entity.segment);
    if (this.source.id !== event.sourceId)
      this.source = { id: event.sourceId, segment: segment(event.sourceId) };
    if (event.source === "CUSTOM_TABLE")
      return `/custom-data/v4/entity/${this.entity.segment}/customTable/${this.source.segment}/record/${segment(event.recordKey)}`;
    const profileId = keyedId ?? event.recordKey;
    const id = plainId
      ? (keyedId as string)
      : Number.isSafeInteger(profileId)
        ? String(profileId)
        : segment(String(profileId));
    return `/profiles/v4/entity/${this.entity.segment}/table/${this.source.segment}/profile/${id}`;
  }

  /**
   * `JSON.stringify(toDataObject(event, options))`, written directly as text for record events (no
   * data object is built and stringified); trigger events, names JavaScript would reorder and
   * unusual stored values go through the object, which is what decides the text. `parts`, when
   * given, are the `_event` texts a log reader already has (see PrerenderedParts).
   */
  dataText(event: ChangeEvent, options: PayloadOptions, parts?: PrerenderedParts): string {
    const plain = !(
      TRIGGER_SOURCES.includes(event.source) ||
      typeof event.id !== "number" ||
      typeof event.position !== "number" ||
      typeof event.eventType !== "string" ||
      (parts === undefined && event.origin === undefined) ||
      (event.version !== null && event.version !== undefined && typeof event.version !== "number")
    );
    let attributes: string | undefined;
    let keyedId: unknown;
    let plainId = false;
    if (
      plain &&
      parts?.keysJson !== undefined &&
      parts.changedValuesJson !== undefined &&
      EXTRA_KEYS[event.eventType] === undefined
    ) {
      attributes = this.attributes.recordAttributesFromJson(
        parts.keysJson,
        parts.changedFieldNames,
        parts.changedValuesJson,
      );
      const json = this.attributes.profileIdJson;
      // A plain integer's text is the id's text; anything else is read as JSON.parse reads it.
      plainId = json !== undefined && plainIntegerJson(json);
      keyedId = json === undefined || plainId ? json : JSON.parse(json);
    }
    if (plain && attributes === undefined) {
      attributes = this.recordAttributesText(
        event,
        parts ? parts.changedFieldNames : namesOf(event.fields),
      );
      keyedId = own(event.keys, "profileId");
    }
    if (attributes === undefined) return JSON.stringify(toDataObject(event, options));
    let text =
      "{" +
      attributes +
      '"_links":{"self":{"href":' +
      // An href is made of encodeURIComponent'd segments, digits and fixed ASCII: nothing in it is
      // escaped in JSON, so its JSON is the text between quotes.
      '"' +
      this.cachedRecordHref(event, options.entityName, keyedId, plainId) +
      '"' +
      '}},"_event":{"id":"evt_' +
      // eventPublicId; the text of a number needs no escaping
      String(event.id) +
      '","type":' +
      remembered(this.typeJson, event.eventType, "") +
      ',"position":' +
      numberJson(event.position) +
      ',"occurredAt":"' +
      (parts ? parts.occurredAtText : toIso(event.occurredAt)) +
      '","version":' +
      (typeof event.version === "number" ? numberJson(event.version) : "null") +
      ',"changedFields":' +
      (parts ? parts.changedFieldsJson : JSON.stringify(namesOf(event.fields))) +
      ',"origin":' +
      (parts ? parts.originJson : (JSON.stringify(event.origin) as string)) +
      ',"declaredEvents":' +
      (parts ? parts.declaredEventsJson : JSON.stringify(namesOf(event.declaredEvents)));
    if (options.includePrevious) {
      const map = isPlainObject(event.previous) ? event.previous : {};
      text += ',"previous":' + JSON.stringify(renderMap(map, Object.keys(map)));
    }
    return text + "}}";
  }
}

/** The href of a subscription, as Actito writes it in `_links.webhook`. */
export function subscriptionHref(subscription: { id: number; entityName: string }): string {
  return `/webhooks/v4/entity/${segment(subscription.entityName)}/webhookSubscription/${subscription.id}`;
}

/**
 * The body of one push: `data` is one data object (ONE_BY_ONE) or an array of them (BULK).
 * `pushId` is stable across retries of the same push (it is also the `webhook-id` header).
 */
export function buildEnvelope<D extends object | object[]>(
  pushId: string,
  subscription: { id: number; entityName: string },
  data: D,
): PushEnvelope<D> {
  return { id: pushId, data, _links: { webhook: { href: subscriptionHref(subscription) } } };
}

/**
 * The text of `JSON.stringify(buildEnvelope(pushId, subscription, data))` from data objects already
 * serialised one by one (`dataTexts`): `data` is the array of them when `bulk`, else the only one.
 * A BULK block is assembled from per-event texts instead of stringifying one large object graph.
 */
export function envelopeText(
  pushId: string,
  subscription: { id: number; entityName: string },
  dataTexts: readonly string[],
  bulk: boolean,
): string {
  const data = bulk ? `[${dataTexts.join(",")}]` : (dataTexts[0] ?? "null");
  const [head, tail] = envelopeFrame(pushId, subscription);
  return `${head}${data}${tail}`;
}

/** The text of the envelope before and after `data` (see envelopeText). */
export function envelopeFrame(
  pushId: string,
  subscription: { id: number; entityName: string },
): [head: string, tail: string] {
  const href = JSON.stringify(subscriptionHref(subscription));
  return [`{"id":${JSON.stringify(pushId)},"data":`, `,"_links":{"webhook":{"href":${href}}}}`];
}
