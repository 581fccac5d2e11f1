/**
 * Payload version 1 (SPEC §4 [ext] `payloadVersion: 1`): the older Actito push format of table
 * events, for consumers that still read `tableId` and `data.id`. The push envelope is the same as in
 * version 2 (`{"id", "data", "_links": {"webhook"}}`, signed alike); only each event object differs:
 *
 * ```json
 * { "tableType": "PROFILE_TABLE", "tableId": "3", "eventType": "UPDATE",
 *   "data": { "id": "7", "businessKey": "7", "profileId": "7", "emailAddress": "a@b.c", "firstName": "Ann" },
 *   "_links": { "self": { "href": "…" } },
 *   "_event": { "id": "evt_41", … } }
 * ```
 *
 * - `tableType`, `tableId`, `eventType`: the event's source, its table id, its type.
 * - `data`: `id` and `businessKey`, then exactly the attributes version 2 carries (the record's
 *   unique keys, the provided or changed attributes, the extra fields of UPDATED_* events), values
 *   as strings. A profile's `id` and `businessKey` are its profileId; a custom-table record's
 *   `businessKey` is its primary key value and its `id` its generated `id` when it has one, else the
 *   primary key value too. Herald's `id` and `businessKey` win over attributes of those names.
 * - `_links` and `_event` as in version 2, beside `data` (so receivers can still deduplicate on
 *   `_event.id` and order on `_event.position`).
 *
 * BULK: the envelope's `data` is an array of these objects, as in version 2. Trigger sources have no
 * version 1 (subscription validation refuses it); an event of one is shaped alike all the same, with
 * its dotted fields in `data`, so this function is total. Pure.
 */
import type { ChangeEvent, EventSource, EventType } from "./change-event.js";
import type { EventBlock, Link, PayloadOptions } from "./event-payload.js";
import { own, toDataObject } from "./event-payload.js";
import { renderValue } from "./rendered-values.js";
import type { RenderedValue } from "./rendered-values.js";

export interface EventObjectV1 {
  tableType: EventSource;
  tableId: string;
  eventType: EventType;
  data: Record<string, unknown> & { id: RenderedValue; businessKey: RenderedValue };
  _links: Record<string, Link>;
  _event: EventBlock;
}

/** `id` and `businessKey` of the event's record (see the file comment). */
function identity(event: ChangeEvent): { id: RenderedValue; businessKey: RenderedValue } {
  if (event.source === "PROFILE_TABLE") {
    const profileId = renderValue(own(event.keys, "profileId") ?? event.recordKey);
    return { id: profileId, businessKey: profileId };
  }
  const businessKey = renderValue(event.recordKey);
  const id = own(event.keys, "id");
  return { id: id === undefined || id === null ? businessKey : renderValue(id), businessKey };
}

/** The version 1 event object of `event`, built from its version 2 data object. */
export function toEventObjectV1(event: ChangeEvent, options: PayloadOptions): EventObjectV1 {
  const { _links, _event, ...attributes } = toDataObject(event, options);
  const data: EventObjectV1["data"] = identity(event);
  for (const [name, value] of Object.entries(attributes))
    if (name !== "id" && name !== "businessKey") data[name] = value;
  return {
    tableType: event.source,
    tableId: event.sourceId,
    eventType: event.eventType,
    data,
    _links,
    _event,
  };
}
