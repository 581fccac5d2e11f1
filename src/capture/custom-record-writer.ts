/**
 * Custom-table record writes (SPEC §3, DESIGN §3), each in ONE transaction: the record row first,
 * then its change event. An upsert (POST …/record) takes the single-statement path first
 * (storage/record-event-writes.ts): a create is one autocommit statement, an update of an existing
 * record two (read, version-checked write); PUT, DELETE and the hand-overs run in an explicit
 * transaction. Records are identified by their business key (the value of the table's
 * primaryKeyAttribute); a record created without it gets a generated one (a UUID) when the key is
 * a STRING attribute (SPEC §3; a table defined without a primary key is keyed on such an `id`). Every write evaluates the table's declared events (`eventsToTrigger`) on the
 * state before and after and lists those that fired in the event's `declaredEvents`. An UPDATE event
 * is appended whenever something changed, even when no declared event fired (subscriptions decide).
 */
import { randomUUID } from "node:crypto";
import type { AttributeMap, NewChangeEvent, Origin } from "../domain/change-event.js";
import type { DataTable } from "../domain/data-table.js";
import { checkValue } from "../domain/attribute-values.js";
import { firedDeclaredEvents } from "../domain/declared-events.js";
import { HeraldError } from "../domain/errors.js";
import { applyAttributes } from "../domain/record-change.js";
import { acceptsGeneratedKey, keyText, uniqueKeysOf } from "../domain/record-keys.js";
import type { NamedValue } from "../domain/record-input.js";
import { checkMandatory, parseAttributeList } from "../domain/record-input.js";
import { appendChangeEvents } from "../storage/change-event-repository.js";
import type { Queryable } from "../storage/database.js";
import type { InboxNotifyTurns } from "../storage/log-channels.js";
import type { CaptureContext } from "./capture-context.js";
import { createRecordWithEvents, updateRecordWithEvents } from "../storage/record-event-writes.js";
import type { KeyValue, RecordUpdate, StoredRecord } from "../storage/record-repository.js";
import {
  deleteRecord,
  findOrInsertRecord,
  findRecordByBusinessKey,
  updateRecord,
} from "../storage/record-repository.js";
import type { RecordSnapshot } from "./change-event-builders.js";
import { dataEvent, heldAttributes } from "./change-event-builders.js";
import type { WriteOutcome } from "./profile-writer.js";
import { uniqueKeyTaken } from "./profile-writer.js";
import {
  applyOnDelete,
  assertUniqueValuesUnreferenced,
  customDeleteEvent,
  hasForeignKeys,
  lockReferences,
} from "./foreign-key-enforcement.js";
import { captureTransaction, gatedTransaction } from "./capture-transaction.js";
import { inOneStatement, RetryWrite } from "./write-retry.js";

export interface RecordWriteResult {
  businessKey: string;
  outcome: WriteOutcome;
  version: number;
}

/** Validates `properties` against the table (400 naming the offending field). */
export function parseRecordInput(
  table: DataTable,
  properties: readonly NamedValue[],
): AttributeMap {
  return parseAttributeList(table, properties, "properties");
}

export function primaryKeyOf(table: DataTable): string {
  return table.primaryKeyAttribute ?? table.attributes[0]?.name ?? "";
}

/**
 * The values of a record to create, with a generated primary key (a UUID) when they hold none and
 * the key attribute can take one (acceptsGeneratedKey); otherwise unchanged, and the missing key
 * is reported by the write.
 */
export function withGeneratedKey(table: DataTable, provided: AttributeMap): AttributeMap {
  const pk = primaryKeyOf(table);
  if (keyText(provided[pk]) !== undefined) return provided;
  const attribute = table.attributes.find((a) => a.name === pk);
  if (!attribute || !acceptsGeneratedKey(attribute)) return provided;
  return { ...provided, [pk]: randomUUID() };
}

/**
 * A `{businessKey}` path value in stored form: it is normalised like a written primary key value
 * (an INTEGER key `007` is record `7`). A value the key attribute would refuse matches nothing.
 */
export function normaliseBusinessKey(table: DataTable, raw: string): string {
  const attribute = table.attributes.find((a) => a.name === primaryKeyOf(table));
  if (!attribute) return raw;
  const checked = checkValue(attribute, raw);
  return (checked.kind === "valid" ? keyText(checked.value) : undefined) ?? raw;
}

/** 404: no record has that business key (the API's reads answer it too). */
export function recordNotFound(table: DataTable, businessKey: string): HeraldError {
  return new HeraldError("HERALD_RECORD_NOT_FOUND", { key: businessKey, table: table.name });
}

export function withCreationTime(table: DataTable, attributes: AttributeMap): AttributeMap {
  const name = table.creationTimeAttribute;
  if (!name || attributes[name] !== undefined) return attributes;
  const type = table.attributes.find((a) => a.name === name)?.valueType;
  const now = new Date().toISOString();
  return { ...attributes, [name]: type === "DATE" ? now.slice(0, 10) : now };
}

/** What a write does to an existing record: nothing, or this update and its UPDATE event. */
type RecordUpdatePlan =
  | { kind: "unchanged" }
  | {
      kind: "update";
      update: RecordUpdate;
      event(version: number, updatedAt: Date): NewChangeEvent;
    };

export function planRecordUpdate(
  table: DataTable,
  record: StoredRecord,
  provided: AttributeMap,
  origin: Origin,
): RecordUpdatePlan {
  const businessKey = record.businessKey ?? "";
  const pk = primaryKeyOf(table);
  if (pk in provided && keyText(provided[pk]) !== businessKey)
    throw new HeraldError("HERALD_VALIDATION", { reason: `properties.${pk} cannot change` }, [
      { path: `properties.${pk}`, message: "the business key of a record cannot change" },
    ]);
  const diff = applyAttributes(record.attributes, provided);
  checkMandatory(table, diff.after, "properties", provided);
  if (diff.changed.length === 0) return { kind: "unchanged" };
  const uniqueChanged = diff.changed.filter(
    (name) => table.attributes.find((a) => a.name === name)?.unique,
  );
  const declared = firedDeclaredEvents(table.eventsToTrigger, {
    operation: "UPDATE",
    before: record.attributes,
    after: diff.after,
    provided: Object.keys(provided),
    changed: diff.changed,
  });
  return {
    kind: "update",
    update: {
      recordId: record.recordId,
      tableId: table.id,
      attributes: diff.after,
      subscriptions: record.subscriptions,
      segments: record.segments,
      dropKeys: uniqueChanged,
      addKeys: uniqueChanged.flatMap((attribute) => {
        const value = keyText(diff.after[attribute]);
        return value === undefined ? [] : [{ attribute, value }];
      }),
    },
    event: (version, updatedAt) => {
      const after = { ...record, attributes: diff.after, updatedAt };
      const ctx = { table, record: after, version, origin };
      return dataEvent(ctx, "UPDATE", diff.changed, diff.previous, {}, declared);
    },
  };
}

async function applyToRecord(
  tx: Queryable,
  table: DataTable,
  record: StoredRecord,
  provided: AttributeMap,
  origin: Origin,
  notifyTurns: InboxNotifyTurns,
): Promise<RecordWriteResult> {
  const businessKey = record.businessKey ?? "";
  const plan = planRecordUpdate(table, record, provided, origin);
  if (plan.kind === "unchanged")
    return { businessKey, outcome: "UNCHANGED", version: record.version };
  await assertUniqueValuesUnreferenced(tx, table, record, plan.update.dropKeys);
  const written = await updateRecord(tx, plan.update);
  if (written.takenKeys[0]) throw uniqueKeyTaken(written.takenKeys[0], "properties");
  await appendChangeEvents(tx, [plan.event(written.version, written.updatedAt)], notifyTurns);
  return { businessKey, outcome: "UPDATED", version: written.version };
}

/**
 * POST …/customTable/{table}/record: creates the record, or updates it when its business key
 * exists (with `allowUpdate: false`, an existing business key is a 409 instead: imports in
 * INSERT_ONLY mode). Without its primary key the record is created with a generated one
 * (withGeneratedKey), or refused when the key attribute cannot take one.
 */
export async function upsertCustomRecord(
  capture: CaptureContext,
  table: DataTable,
  provided: AttributeMap,
  origin: Origin,
  options: { allowUpdate?: boolean } = {},
): Promise<RecordWriteResult> {
  return capture.logSignals.committingEvents(() =>
    upsertRecord(capture, table, provided, origin, options),
  );
}

async function upsertRecord(
  capture: CaptureContext,
  table: DataTable,
  provided: AttributeMap,
  origin: Origin,
  options: { allowUpdate?: boolean },
): Promise<RecordWriteResult> {
  const pk = primaryKeyOf(table);
  provided = withGeneratedKey(table, provided);
  const businessKey = keyText(provided[pk]);
  if (businessKey === undefined)
    throw new HeraldError("HERALD_MISSING_MANDATORY", { attribute: pk }, [
      {
        path: "properties",
        message: `the primary key attribute '${pk}' has no value (Herald generates one only for a STRING key that accepts a UUID)`,
      },
    ]);
  const created = withCreationTime(table, applyAttributes({}, provided).after);
  let mandatoryProblem: unknown;
  try {
    checkMandatory(table, created, "properties");
  } catch (error) {
    mandatoryProblem = error;
  }
  const keys = uniqueKeysOf(table, created).filter((k) => k.attribute !== pk);
  // References are checked under a lock in a transaction: no single-statement path for them.
  const references = hasForeignKeys(table);
  const fast = references
    ? undefined
    : await upsertInOneStatement(capture, table, businessKey, provided, created, keys, {
        ...options,
        origin,
        insert: mandatoryProblem === undefined,
      });
  if (fast) return fast;
  const { logSignals } = capture;
  // upsertCustomRecord wakes the sequencer, whichever path wrote.
  return gatedTransaction(capture, table, async (tx) => {
    // The created values include every provided one: the references an update gives, too.
    if (references) await lockReferences(tx, table, created, "properties");
    const result = await findOrInsertRecord(
      tx,
      { businessKey, keys: [] },
      {
        tableId: table.id,
        businessKey,
        attributes: created,
        subscriptions: {},
        segments: {},
        keys,
      },
      mandatoryProblem === undefined,
    );
    if (result.kind === "none") {
      if (mandatoryProblem) throw mandatoryProblem;
      throw new RetryWrite("business key created concurrently");
    }
    if (result.kind === "found") {
      if (options.allowUpdate === false)
        throw uniqueKeyTaken({ attribute: pk, value: businessKey }, "properties");
      return applyToRecord(tx, table, result.records[0]!, provided, origin, logSignals);
    }
    if (result.takenKeys[0]) throw uniqueKeyTaken(result.takenKeys[0], "properties");
    await appendChangeEvents(tx, [createEvent(table, result.record, created, origin)], logSignals);
    return { businessKey, outcome: "CREATED", version: 1 };
  });
}

/** The CREATE event of a custom-table record, with the declared events that fired. */
export function createEvent(
  table: DataTable,
  record: RecordSnapshot,
  created: AttributeMap,
  origin: Origin,
): NewChangeEvent {
  const fields = heldAttributes(table, created);
  const declared = firedDeclaredEvents(table.eventsToTrigger, {
    operation: "CREATE",
    before: null,
    after: created,
    provided: fields,
    changed: fields,
  });
  return dataEvent({ table, record, version: 1, origin }, "CREATE", fields, {}, {}, declared);
}

/**
 * The common upsert in ONE statement (storage/record-event-writes.ts): a new business key is
 * inserted with its key rows and CREATE event; an existing record (read without a lock) is updated
 * with a second, version-checked statement. `undefined` hands over to the transactional path: a
 * taken unique value (it answers 409 naming it), a business key being created concurrently, a
 * record that keeps moving, or a create refused for a missing mandatory value.
 */
async function upsertInOneStatement(
  capture: CaptureContext,
  table: DataTable,
  businessKey: string,
  provided: AttributeMap,
  created: AttributeMap,
  keys: KeyValue[],
  options: { allowUpdate?: boolean; origin: Origin; insert: boolean },
): Promise<RecordWriteResult | undefined> {
  const placeholder = {
    recordId: 0,
    businessKey,
    attributes: created,
    createdAt: new Date(0),
    updatedAt: new Date(0),
  };
  const { db, logSignals } = capture;
  return inOneStatement(async () => {
    const result = await createRecordWithEvents(
      db,
      {
        record: {
          tableId: table.id,
          businessKey,
          attributes: created,
          subscriptions: {},
          segments: {},
          keys,
        },
        lookupKeys: [],
        lookupBusinessKey: businessKey,
        insert: options.insert,
        events: [createEvent(table, placeholder, created, options.origin)],
        rowValues: "CUSTOM",
        tableVersion: table.version,
      },
      logSignals,
    );
    if (result.kind === "none") return undefined;
    if (result.kind === "inserted") return { businessKey, outcome: "CREATED", version: 1 } as const;
    if (options.allowUpdate === false)
      throw uniqueKeyTaken({ attribute: primaryKeyOf(table), value: businessKey }, "properties");
    const record = result.records[0]!;
    const plan = planRecordUpdate(table, record, provided, options.origin);
    if (plan.kind === "unchanged")
      return { businessKey, outcome: "UNCHANGED", version: record.version } as const;
    // A unique value that changes may be referred to by value: checked in a transaction.
    if (plan.update.dropKeys.length > 0) return undefined;
    const written = await updateRecordWithEvents(
      db,
      {
        update: plan.update,
        expectedVersion: record.version,
        events: [plan.event(record.version + 1, record.updatedAt)],
        rowValues: "CUSTOM",
        tableVersion: table.version,
      },
      logSignals,
    );
    if (!written) throw new RetryWrite("the record changed since it was read");
    return { businessKey, outcome: "UPDATED", version: written.version } as const;
  });
}

/** PUT …/record/{businessKey}: updates an existing record (404 if none). */
export async function updateCustomRecord(
  capture: CaptureContext,
  table: DataTable,
  businessKey: string,
  provided: AttributeMap,
  origin: Origin,
): Promise<RecordWriteResult> {
  return captureTransaction(capture, table, async (tx) => {
    if (hasForeignKeys(table)) await lockReferences(tx, table, provided, "properties");
    const record = await lockRecord(tx, table, businessKey);
    return applyToRecord(tx, table, record, provided, origin, capture.logSignals);
  });
}

/**
 * DELETE …/record/{businessKey}: one DELETE event with the record as it was (404 if none), then
 * the events of what the foreign keys referring to it do (foreign-key-enforcement.ts).
 */
export async function deleteCustomRecord(
  capture: CaptureContext,
  table: DataTable,
  businessKey: string,
  origin: Origin,
): Promise<void> {
  await captureTransaction(capture, table, async (tx) => {
    const record = await lockRecord(tx, table, businessKey);
    const effects = await applyOnDelete(tx, table, record, origin);
    await deleteRecord(tx, record.recordId);
    await appendChangeEvents(
      tx,
      [customDeleteEvent(table, record, origin), ...effects],
      capture.logSignals,
    );
  });
}

/** The record with that business key, locked FOR UPDATE, or 404. */
async function lockRecord(
  tx: Queryable,
  table: DataTable,
  businessKey: string,
): Promise<StoredRecord> {
  const key = normaliseBusinessKey(table, businessKey);
  const record = await findRecordByBusinessKey(tx, table.id, key, true);
  if (!record) throw recordNotFound(table, businessKey);
  return record;
}
