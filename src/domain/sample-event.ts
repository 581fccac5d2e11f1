/**
 * The sample event of `POST …/webhookSubscription/{id}/test` (SPEC §4 [ext]): a made-up change that
 * looks like what the subscription would receive — its source, its event type, a record with a value
 * for every attribute of its table — so a receiver can be checked end to end without writing data.
 * Pure. The push that carries it (`testPushBody`) is shaped as the subscription's real pushes are
 * (its push mode, its payload version) and marked `"test": true` (envelope and `_event`).
 */
import type { AttributeMap, AttributeValue, ChangeEvent } from "./change-event.js";
import { triggerLinks, triggerState } from "./custom-action.js";
import type { AttributeDefinition, DataTable } from "./data-table.js";
import { buildEnvelope, toDataObject } from "./event-payload.js";
import { toEventObjectV1 } from "./event-payload-v1.js";
import type { Subscription } from "./subscription.js";

/** Sample events have id 0 and position 0: no real event ever does (both start at 1). */
export const SAMPLE_EVENT_ID = 0;

function sampleScalar(attribute: AttributeDefinition, now: Date): string | number | boolean {
  switch (attribute.valueType) {
    case "INTEGER":
    case "LONG":
      return 42;
    case "NUMBER":
      return 3.5;
    case "BOOLEAN":
      return true;
    case "DATE":
      return now.toISOString().slice(0, 10);
    case "TIMESTAMP":
      return now.toISOString();
    case "STRING": {
      const accepted = attribute.valueRestriction?.acceptedValues?.[0];
      if (accepted !== undefined) return accepted;
      const text = /mail/i.test(attribute.type ?? attribute.name)
        ? "sample@example.com"
        : `sample ${attribute.name}`;
      const max = attribute.valueRestriction?.maxLength;
      return max !== undefined && max > 0 ? text.slice(0, max) : text;
    }
  }
}

/** A value of the attribute's type (a one-item list for a multi-valued attribute). */
export function sampleValue(attribute: AttributeDefinition, now: Date): AttributeValue {
  const value = sampleScalar(attribute, now);
  return attribute.multiValued ? [value] : value;
}

type SampleSubject = Pick<
  Subscription,
  "entityId" | "on" | "onElementId" | "eventType" | "onFields"
> &
  Partial<Pick<Subscription, "entityName">>;

function base(subject: SampleSubject, now: Date): ChangeEvent {
  return {
    id: SAMPLE_EVENT_ID,
    position: 0,
    occurredAt: now,
    entityId: subject.entityId,
    source: subject.on,
    sourceId: subject.onElementId ?? "sample",
    eventType: subject.eventType,
    recordKey: "sample",
    keys: {},
    state: {},
    fields: [],
    previous: {},
    extra: {},
    version: null,
    declaredEvents: [],
    origin: { kind: "SYSTEM" },
  };
}

function tableEvent(subject: SampleSubject, table: DataTable, now: Date): ChangeEvent {
  const event = base(subject, now);
  const state: AttributeMap = {};
  for (const attribute of table.attributes) state[attribute.name] = sampleValue(attribute, now);
  const keys: AttributeMap = table.kind === "PROFILE_TABLE" ? { profileId: 0 } : {};
  for (const attribute of table.attributes) {
    if (attribute.unique || attribute.name === table.primaryKeyAttribute)
      keys[attribute.name] = state[attribute.name] ?? null;
  }
  if (table.kind === "PROFILE_TABLE") state.profileId = 0;
  const names = table.attributes.map((a) => a.name);
  let fields = names;
  const previous: AttributeMap = {};
  if (subject.eventType === "UPDATE") {
    const listed = subject.onFields.filter((name) => names.includes(name));
    fields = listed.length > 0 ? listed : names.filter((name) => !(name in keys)).slice(0, 3);
    for (const name of fields) previous[name] = null;
  }
  if (subject.eventType === "UPDATED_SUBSCRIPTION" || subject.eventType === "UPDATED_SEGMENT")
    fields = [];
  const extra: Record<string, unknown> = {};
  if (subject.eventType === "UPDATED_SUBSCRIPTION") {
    extra.subscriptionName = table.subscriptions[0]?.name ?? "sample subscription";
    extra.subscribe = true;
  }
  if (subject.eventType === "UPDATED_SEGMENT") {
    const segmentation = table.segmentations[0];
    extra.segmentation = segmentation?.name ?? "sample segmentation";
    extra.segment = segmentation?.segments?.[0] ?? segmentation?.name ?? "sample segment";
    extra.belongs = true;
  }
  const declaredEvents = table.eventsToTrigger
    .filter((declared) => declared.triggerRules.some((r) => r.onOperation === subject.eventType))
    .map((declared) => declared.name);
  return {
    ...event,
    sourceId: table.id,
    recordKey: String(
      keys[table.primaryKeyAttribute ?? ""] ?? (table.kind === "PROFILE_TABLE" ? 0 : "sample"),
    ),
    keys,
    state,
    fields,
    previous,
    extra,
    version: 1,
    declaredEvents,
  };
}

/**
 * A trigger event shaped like the real ones (SPEC §7.1–§7.4): flat dotted keys with string values
 * in `state`, and the links the real event carries. An ETL, export or file reference named by the
 * subscription keeps its id; the execution, synchronisation and counts are samples.
 */
function triggerEvent(subject: SampleSubject, now: Date, entityName: string): ChangeEvent {
  const event = base(subject, now);
  const id = subject.onElementId ?? "sample";
  const entity = encodeURIComponent(entityName);
  const element = encodeURIComponent(id);
  const started = subject.eventType === "STARTED";
  switch (subject.on) {
    case "ETL":
      event.state = {
        "etl.id": id,
        "etl.name": "sample ETL",
        "etl.executionId": "sample",
        "etl.executionStatus": started ? "RUNNING" : "SUCCESS",
        "etl.rowsRead": started ? "0" : "3",
        "etl.rowsCreated": started ? "0" : "1",
        "etl.rowsUpdated": started ? "0" : "1",
        "etl.rowsUnchanged": started ? "0" : "1",
        "etl.rowsRejected": "0",
      };
      event.extra = {
        _links: {
          etlExecution: { href: `/mass-imports/v5/entities/${entity}/etl-executions/sample` },
          etl: { href: `/mass-imports/v5/entities/${entity}/etls/${element}` },
        },
      };
      break;
    case "EXPORT":
      event.state = {
        "export.id": id,
        "export.name": "sample export",
        "export.executionId": "sample",
        "export.executionStatus": "SUCCESS",
        "export.rowCount": "3",
        "export.bytes": "64",
      };
      event.extra = {
        _links: {
          exportExecution: {
            href: `/v5/entities/${entity}/exports/${element}/executions/sample`,
          },
          file: { href: `/v5/entities/${entity}/exports/${element}/executions/sample/file` },
        },
      };
      break;
    case "FILE_SYNCHRONIZATION":
      event.state = {
        "fileSynchronization.id": "sample",
        "fileSynchronization.fileReferenceId": id,
        "fileSynchronization.status": started ? "RUNNING" : "SUCCESS",
        "fileSynchronization.fileName": started ? "" : "sample.csv",
        "fileSynchronization.bytes": started ? "" : "64",
        "fileSynchronization.sha256": started ? "" : "0".repeat(64),
      };
      event.extra = {
        _links: {
          fileSynchronization: {
            href: `/v5/entities/${entity}/file-references/${element}/synchronizations/sample`,
          },
          fileReference: { href: `/v5/entities/${entity}/file-references/${element}` },
        },
      };
      break;
    default: {
      // The real event's builder (jobs/custom-action-events.ts) makes its state and links alike.
      const moment = now.toISOString();
      event.recordKey = "0";
      event.state = triggerState({
        action: { id, name: "sample custom action" },
        parameters: { sample: "value" },
        profile: { profileId: 0, creationMoment: moment, updateMoment: moment },
      });
      event.extra = { _links: triggerLinks(entityName, id, "sample", 0) };
    }
  }
  return event;
}

/**
 * The sample event of a subscription. `table` is the subscription's table (profile or custom
 * sources); for trigger sources it is ignored and the event carries dotted trigger fields.
 */
export function sampleEvent(
  subject: SampleSubject,
  table: DataTable | undefined,
  now: Date,
): ChangeEvent {
  return table
    ? tableEvent(subject, table, now)
    : triggerEvent(subject, now, subject.entityName ?? "sample");
}

/**
 * The JSON body of a test push of `event` (a sample event): the subscription's envelope, its
 * payload version's event object with `_event.test: true`, alone (ONE_BY_ONE) or as a block of one
 * (BULK), and `test: true` on the envelope.
 */
export function testPushBody(
  subscription: Pick<
    Subscription,
    "id" | "entityName" | "includePrevious" | "pushMode" | "payloadVersion"
  >,
  event: ChangeEvent,
  pushId: string,
): string {
  const options = {
    entityName: subscription.entityName,
    includePrevious: subscription.includePrevious,
  };
  const object =
    subscription.payloadVersion === 1
      ? toEventObjectV1(event, options)
      : toDataObject(event, options);
  const marked = { ...object, _event: { ...object._event, test: true } };
  const envelope = buildEnvelope(
    pushId,
    subscription,
    subscription.pushMode === "BULK" ? [marked] : marked,
  );
  return JSON.stringify({ ...envelope, test: true });
}
