/**
 * Profile writes (SPEC §3, DESIGN §3): each one writes (and so locks) the record row, then appends
 * its change events, in one transaction. A rollback leaves no event; a write that changes nothing
 * appends none and keeps the version. These functions and upsertProfile (profile-upsert.ts, which
 * group-commits creates and upserts) are the one way to write profiles: the API routes call them,
 * and so can imports.
 *
 * PUT, DELETE and the membership calls run in a transaction: BEGIN, find with a row lock, UPDATE
 * (or DELETE), events, COMMIT. Upserts use the same planning (planProfileUpdate) and, when they
 * cannot go in one statement, the same locked path (applyToProfile). An update that changes or
 * clears a unique value always takes that path (hasUniqueValueChange): a custom table's foreign key
 * may refer to the profile by that value, and that is checked under the row lock, after the table
 * write gate.
 */
import type { AttributeMap, NewChangeEvent, Origin } from "../domain/change-event.js";
import type { DataCollection } from "../domain/data-collection.js";
import { dataCollectionChanges, parseDataCollection } from "../domain/data-collection.js";
import type { DataTable } from "../domain/data-table.js";
import { HeraldError } from "../domain/errors.js";
import type {
  KeyValue,
  SegmentChange,
  SegmentMemberships,
  SubscriptionChange,
  SubscriptionStates,
} from "../domain/record-change.js";
import { applyAttributes, applySegments, applySubscriptions } from "../domain/record-change.js";
import type { ProfileKey } from "../domain/record-keys.js";
import { keyText, uniqueKeysOf } from "../domain/record-keys.js";
import type { NamedValue, SegmentationInput } from "../domain/record-input.js";
import {
  checkMandatory,
  parseAttributeList,
  parseSegmentationList,
  parseSubscriptionList,
} from "../domain/record-input.js";
import { appendChangeEvents } from "../storage/change-event-repository.js";
import type { Queryable } from "../storage/database.js";
import type { InboxNotifyTurns } from "../storage/log-channels.js";
import type { CaptureContext } from "./capture-context.js";
import type { RecordUpdate, StoredRecord } from "../storage/record-repository.js";
import {
  deleteRecord,
  findRecordById,
  findRecordByKey,
  setDataCollection,
  updateRecord,
} from "../storage/record-repository.js";
import type { EventContext, RecordSnapshot } from "./change-event-builders.js";
import { dataEvent, heldAttributes, membershipEvents } from "./change-event-builders.js";
import { applyOnDelete, assertUniqueValuesUnreferenced } from "./foreign-key-enforcement.js";
import { captureTransaction } from "./capture-transaction.js";
import { RetryWrite } from "./write-retry.js";

/** The v4 write body (SPEC §3). */
export interface ProfileInput {
  attributes?: NamedValue[];
  subscriptions?: { name: string; subscribe?: boolean }[];
  segmentations?: SegmentationInput[];
  dataCollectionInformation?: Partial<Record<string, unknown>>;
}

/** A profile write checked against its table: stored values and the membership changes asked for. */
export interface ProfileWrite {
  attributes: ReturnType<typeof parseAttributeList>;
  subscriptions: SubscriptionChange[];
  segments: SegmentChange[];
  /**
   * Segmentations to leave, whatever segment the profile is in (v4 `{"belongs": false}` naming no
   * segment, v5 `false`); resolved against the profile under its row lock.
   */
  leaveSegmentations?: string[];
  /** The dataCollectionInformation to store; undefined keeps the stored one. */
  dataCollection?: DataCollection;
}

export type WriteOutcome = "CREATED" | "UPDATED" | "UNCHANGED";

export interface ProfileWriteResult {
  profileId: number;
  outcome: WriteOutcome;
  version: number;
}

/** Validates a write body against the table (400 with the offending field; nothing is written). */
export function parseProfileInput(table: DataTable, input: ProfileInput): ProfileWrite {
  return {
    attributes: parseAttributeList(table, input.attributes ?? [], "attributes"),
    subscriptions: parseSubscriptionList(table, input.subscriptions ?? []),
    segments: parseSegmentationList(table, input.segmentations ?? []),
    dataCollection: parseDataCollection(input.dataCollectionInformation),
  };
}

export function uniqueKeyTaken(key: KeyValue, listName = "attributes"): HeraldError {
  return new HeraldError(
    "HERALD_UNIQUE_KEY_TAKEN",
    { attribute: key.attribute, value: key.value },
    [
      {
        path: `${listName}.${key.attribute}`,
        message: `'${key.value}' is already used by another record`,
      },
    ],
  );
}

export function context(
  table: DataTable,
  record: RecordSnapshot,
  version: number,
  origin: Origin,
): EventContext {
  return { table, record, version, origin };
}

/** What a write creates: the profile, its keys, and its events once its id and moments are known. */
interface ProfileCreatePlan {
  attributes: AttributeMap;
  subscriptions: SubscriptionStates;
  segments: SegmentMemberships;
  keys: KeyValue[];
  dataCollection: DataCollection | undefined;
  /** Why the write cannot create a profile (a missing mandatory value), if it cannot. */
  mandatoryProblem: unknown;
  events(created: RecordSnapshot): NewChangeEvent[];
}

export function planProfileCreate(
  table: DataTable,
  write: ProfileWrite,
  origin: Origin,
): ProfileCreatePlan {
  const subscriptions = applySubscriptions({}, write.subscriptions);
  const segments = applySegments({}, write.segments);
  const created: AttributeMap = applyAttributes({}, write.attributes).after;
  let mandatoryProblem: unknown;
  try {
    checkMandatory(table, created, "attributes");
  } catch (error) {
    mandatoryProblem = error;
  }
  return {
    attributes: created,
    subscriptions: subscriptions.after,
    segments: segments.after,
    keys: uniqueKeysOf(table, created),
    dataCollection: write.dataCollection,
    mandatoryProblem,
    events: (record) => {
      const ctx = context(table, record, 1, origin);
      return [
        dataEvent(ctx, "CREATE", heldAttributes(table, created)),
        ...membershipEvents(ctx, subscriptions.changes, segments.changes),
      ];
    },
  };
}

/**
 * What a write does to an existing profile: nothing (but store `dataCollection` when given: a change
 * of it alone is no UPDATE, SPEC §3, so no event and no version bump), or this update and these
 * events.
 */
export type ProfileUpdatePlan =
  | { kind: "unchanged"; dataCollection?: DataCollection }
  | {
      kind: "update";
      update: RecordUpdate;
      /** The events, given the version and time the UPDATE wrote. */
      events(version: number, updatedAt: Date): NewChangeEvent[];
    };

export function planProfileUpdate(
  table: DataTable,
  record: StoredRecord,
  write: ProfileWrite,
  origin: Origin,
): ProfileUpdatePlan {
  const diff = applyAttributes(record.attributes, write.attributes);
  checkMandatory(table, diff.after, "attributes", write.attributes);
  const subscriptions = applySubscriptions(record.subscriptions, write.subscriptions);
  const segments = applySegments(record.segments, [
    ...write.segments,
    ...leavingChanges(record, write.leaveSegmentations ?? []),
  ]);
  const collection = dataCollectionChanges(record.dataCollection, write.dataCollection)
    ? write.dataCollection
    : undefined;
  if (diff.changed.length + subscriptions.changes.length + segments.changes.length === 0)
    return collection ? { kind: "unchanged", dataCollection: collection } : { kind: "unchanged" };
  const uniqueChanged = diff.changed.filter(
    (name) => table.attributes.find((a) => a.name === name)?.unique,
  );
  const addKeys = uniqueChanged.flatMap((attribute) => {
    const value = keyText(diff.after[attribute]);
    return value === undefined ? [] : [{ attribute, value }];
  });
  return {
    kind: "update",
    update: {
      recordId: record.recordId,
      tableId: table.id,
      attributes: diff.after,
      subscriptions: subscriptions.after,
      segments: segments.after,
      dropKeys: uniqueChanged,
      addKeys,
      ...(collection ? { dataCollection: collection } : {}),
    },
    events: (version, updatedAt) => {
      const after = { ...record, attributes: diff.after, updatedAt };
      const ctx = context(table, after, version, origin);
      const events: NewChangeEvent[] = [];
      if (diff.changed.length > 0)
        events.push(dataEvent(ctx, "UPDATE", diff.changed, diff.previous));
      events.push(...membershipEvents(ctx, subscriptions.changes, segments.changes));
      return events;
    },
  };
}

/**
 * True when the update changes or clears a unique value. Foreign keys of custom tables may refer to
 * a profile by such a value, and only the locked path (applyToProfile) checks that none still does:
 * the single statements hand such an update over to it. An update that keeps every unique value
 * (the usual one) never looks for references.
 */
export function hasUniqueValueChange(plan: ProfileUpdatePlan): boolean {
  return plan.kind === "update" && plan.update.dropKeys.length > 0;
}

/** Leaving these segmentations, as changes: the segment the profile is in, for each it is in. */
function leavingChanges(record: StoredRecord, segmentations: readonly string[]): SegmentChange[] {
  return segmentations.flatMap((segmentation) => {
    const segment = record.segments[segmentation];
    return segment === undefined ? [] : [{ segmentation, segment, belongs: false }];
  });
}

/**
 * Applies a write to a locked existing profile: diff, UPDATE, events. A unique value it changes or
 * clears while a custom table's foreign key still refers to the profile by it is 409
 * HERALD_REFERENCED_VALUE_IN_USE, with nothing written (foreign-key-enforcement.ts).
 */
export async function applyToProfile(
  tx: Queryable,
  table: DataTable,
  record: StoredRecord,
  write: ProfileWrite,
  origin: Origin,
  notifyTurns: InboxNotifyTurns,
): Promise<ProfileWriteResult> {
  const plan = planProfileUpdate(table, record, write, origin);
  if (plan.kind === "unchanged") {
    if (plan.dataCollection)
      await setDataCollection(tx, table.id, record.recordId, plan.dataCollection);
    return { profileId: record.recordId, outcome: "UNCHANGED", version: record.version };
  }
  await assertUniqueValuesUnreferenced(tx, table, record, plan.update.dropKeys);
  const written = await updateRecord(tx, plan.update);
  if (written.takenKeys[0]) throw uniqueKeyTaken(written.takenKeys[0]);
  await appendChangeEvents(tx, plan.events(written.version, written.updatedAt), notifyTurns);
  return { profileId: record.recordId, outcome: "UPDATED", version: written.version };
}

/** The one profile that holds the unique values given (409 when they belong to several). */
export function onlyRecord(records: readonly StoredRecord[]): StoredRecord {
  const [record, other] = records;
  if (other)
    throw new HeraldError(
      "HERALD_CONFLICT",
      { reason: "the unique values given belong to different profiles" },
      records.map((r) => ({
        path: "attributes",
        message: `profile ${r.recordId} holds one of the unique values`,
      })),
    );
  return record!;
}

/** The record still holds one of the keys it was found by (guards against a concurrent key change). */
export function stillHolds(record: StoredRecord, keys: readonly KeyValue[]): boolean {
  return keys.some((k) => keyText(record.attributes[k.attribute]) === k.value);
}

/** 404: no profile has that key (the API's reads answer it too). */
export function profileNotFound(table: DataTable, key: ProfileKey): HeraldError {
  const shown =
    key.kind === "profileId" ? String(key.profileId) : `${key.key.attribute}=${key.key.value}`;
  return new HeraldError("HERALD_PROFILE_NOT_FOUND", { key: shown, table: table.name });
}

/** Finds and locks a profile by id or unique value; a RetryWrite when its key moved meanwhile. */
async function lockProfile(
  tx: Queryable,
  table: DataTable,
  key: ProfileKey,
): Promise<StoredRecord | undefined> {
  if (key.kind === "profileId") return findRecordById(tx, table.id, key.profileId, true);
  const record = await findRecordByKey(tx, table.id, key.key, true);
  if (record && !stillHolds(record, [key.key])) throw new RetryWrite("key moved");
  return record;
}

/** PUT …/profile/{profileKey} and the subscription / segmentation calls: updates an existing profile (404 if none). */
export async function updateProfile(
  capture: CaptureContext,
  table: DataTable,
  key: ProfileKey,
  write: ProfileWrite,
  origin: Origin,
): Promise<ProfileWriteResult> {
  return captureTransaction(capture, table, async (tx) => {
    const record = await lockProfile(tx, table, key);
    if (!record) throw profileNotFound(table, key);
    return applyToProfile(tx, table, record, write, origin, capture.logSignals);
  });
}

/**
 * DELETE …/profile/{profileKey}: removes the profile and its keys; one DELETE event (404 if none),
 * then the events of what custom tables' foreign keys referring to it do (RESTRICT refuses: 409).
 */
export async function deleteProfile(
  capture: CaptureContext,
  table: DataTable,
  key: ProfileKey,
  origin: Origin,
): Promise<{ profileId: number }> {
  return captureTransaction(capture, table, async (tx) => {
    const record = await lockProfile(tx, table, key);
    if (!record) throw profileNotFound(table, key);
    const effects = await applyOnDelete(tx, table, record, origin);
    await deleteRecord(tx, record.recordId);
    const ctx = context(table, record, record.version + 1, origin);
    await appendChangeEvents(
      tx,
      [dataEvent(ctx, "DELETE", heldAttributes(table, record.attributes)), ...effects],
      capture.logSignals,
    );
    return { profileId: record.recordId };
  });
}
