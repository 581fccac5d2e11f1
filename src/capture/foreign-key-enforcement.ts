/**
 * Enforces custom tables' foreign keys (domain/foreign-keys.ts) inside the writing transaction:
 *
 * - a write that gives a reference locks the referenced record (FOR KEY SHARE) before it touches
 *   its own record; no such record is a 422 and the write changes nothing;
 * - a delete, after locking its record, finds the records that refer to it and applies each
 *   foreign key's `onDelete`: RESTRICT refuses the delete (409), CASCADE deletes them (and what
 *   refers to them, in turn), SET_NULL empties the referring attribute. Every record touched gets
 *   its change event, in the same transaction, after the deleted record's own.
 *
 * A foreign key may name a unique attribute other than the identity (`byUniqueValue`): the
 * referenced record is then found by that value, and a write that changes or clears such a value
 * while records still refer to it is refused (409, assertUniqueValuesUnreferenced).
 *
 * Lock order is referenced record first, then referring records, on both sides, so a writer and a
 * deleter of the same pair wait for each other instead of deadlocking (a deadlock between unrelated
 * orders is retried by withWriteRetry).
 */
import type { AttributeMap, NewChangeEvent, Origin } from "../domain/change-event.js";
import type { DataTable } from "../domain/data-table.js";
import { firedDeclaredEvents } from "../domain/declared-events.js";
import { HeraldError } from "../domain/errors.js";
import type { ForeignKey } from "../domain/data-table.js";
import { foreignKeysOf, identityOf } from "../domain/foreign-keys.js";
import { applyAttributes } from "../domain/record-change.js";
import { checkValue } from "../domain/attribute-values.js";
import { keyText } from "../domain/record-keys.js";
import { findTableById } from "../storage/data-table-repository.js";
import type { Queryable } from "../storage/database.js";
import {
  lockReferencedRecord,
  lockReferringRecords,
  tablesReferring,
} from "../storage/foreign-key-repository.js";
import type { StoredRecord } from "../storage/record-repository.js";
import { deleteRecord, updateRecord } from "../storage/record-repository.js";
import { anyRecordHolding, lockRecordByUniqueValue } from "../storage/unique-value-references.js";
import { dataEvent, heldAttributes } from "./change-event-builders.js";
import { enterTableWriteGate } from "./write-retry.js";

/** True when writes to `table` must check references (and so take the transactional path). */
export function hasForeignKeys(table: DataTable): boolean {
  return foreignKeysOf(table).length > 0;
}

/**
 * Locks every record that `values` (provided or created attributes, stored form) refer to through
 * the table's foreign keys. Throws 422 HERALD_REFERENCED_RECORD_NOT_FOUND naming `path.attribute`
 * when one does not exist. Empty values refer to nothing.
 */
export async function lockReferences(
  tx: Queryable,
  table: DataTable,
  values: AttributeMap,
  path: string,
): Promise<void> {
  for (const fk of foreignKeysOf(table)) {
    const identity = keyText(values[fk.attribute] ?? undefined);
    if (identity === undefined) continue;
    const found = fk.byUniqueValue
      ? await lockRecordByUniqueValue(tx, fk.referencedTable.id, fk.referencedAttribute, identity)
      : await lockReferencedRecord(tx, fk.referencedTable, identity);
    if (found) continue;
    const target = await findTableById(tx, fk.referencedTable.id);
    const name = target?.name ?? fk.referencedTable.id;
    // A typed profile attribute stores its values normalised (an e-mail address in lower case): a
    // reference must be written in that form, which references are compared in.
    const referenced = target?.attributes.find((a) => a.name === fk.referencedAttribute);
    const check = referenced && fk.byUniqueValue ? checkValue(referenced, identity) : undefined;
    const stored = check?.kind === "valid" ? keyText(check.value ?? undefined) : undefined;
    const hint =
      stored !== undefined && stored !== identity ? ` (write it as stored: '${stored}')` : "";
    throw new HeraldError(
      "HERALD_REFERENCED_RECORD_NOT_FOUND",
      { value: identity, attribute: fk.attribute, table: name },
      [
        {
          path: `${path}.${fk.attribute}`,
          message: `no record of '${name}' has ${fk.referencedAttribute || "the identity"} '${identity}'${hint}`,
        },
      ],
    );
  }
}

/** The DELETE event of a custom-table record, with its declared events. */
export function customDeleteEvent(
  table: DataTable,
  record: StoredRecord,
  origin: Origin,
): NewChangeEvent {
  const fields = heldAttributes(table, record.attributes);
  const declared = firedDeclaredEvents(table.eventsToTrigger, {
    operation: "DELETE",
    before: record.attributes,
    after: null,
    provided: fields,
    changed: fields,
  });
  const ctx = { table, record, version: record.version + 1, origin };
  return dataEvent(ctx, "DELETE", fields, {}, {}, declared);
}

/**
 * Applies the `onDelete` of every foreign key that refers to `table`'s `record`, which the caller
 * has locked FOR UPDATE and is about to delete. Returns the change events of the records it
 * deleted or emptied (the caller appends them after the record's own DELETE event); throws 409
 * HERALD_RECORD_REFERENCED, having changed nothing, when a RESTRICT reference holds it.
 */
export async function applyOnDelete(
  tx: Queryable,
  table: DataTable,
  record: StoredRecord,
  origin: Origin,
  visited: Set<number> = new Set(),
): Promise<NewChangeEvent[]> {
  visited.add(record.recordId);
  const referring = await tablesReferring(tx, table.entityId, table.id);
  if (referring.length === 0) return [];
  const events: NewChangeEvent[] = [];
  for (const tableId of referring) {
    const holder = await findTableById(tx, tableId);
    if (!holder) continue;
    // Its records may be deleted or emptied here: through its write gate like any write to it.
    // The definition was read a statement ago; a change since then starts the request over.
    await enterTableWriteGate(tx, [holder]);
    for (const fk of foreignKeysOf(holder)) {
      if (fk.referencedTable.id !== table.id) continue;
      const value = referencedValue(table, record, fk);
      if (value === undefined || value === null) continue;
      const records = (await lockReferringRecords(tx, holder.id, fk.attribute, value)).filter(
        (r) => !visited.has(r.recordId),
      );
      if (records.length === 0) continue;
      if (fk.onDelete === "RESTRICT")
        throw referenced(table, record, holder, fk.attribute, records);
      for (const r of records) {
        if (fk.onDelete === "CASCADE") {
          const effects = await applyOnDelete(tx, holder, r, origin, visited);
          await deleteRecord(tx, r.recordId);
          events.push(customDeleteEvent(holder, r, origin), ...effects);
        } else {
          events.push(await emptyReference(tx, holder, r, fk.attribute, origin));
        }
      }
    }
  }
  return events;
}

/** The value of `record` that `fk` refers to it by: its identity or the unique value it names. */
function referencedValue(table: DataTable, record: StoredRecord, fk: ForeignKey): unknown {
  if (fk.byUniqueValue) return record.attributes[fk.referencedAttribute];
  return table.kind === "PROFILE_TABLE"
    ? record.recordId
    : record.attributes[identityOf(table).name];
}

/** A foreign key that names a unique attribute of a table other than its identity, and its table. */
export interface ValueReference {
  holder: DataTable;
  foreignKey: ForeignKey;
}

/**
 * The foreign keys of the entity's tables that refer to `table`'s records by a unique value other
 * than their identity (`byUniqueValue`), with the table that holds each. One query when no table
 * refers to `table` at all; one more per referring table.
 */
export async function valueReferencesTo(
  tx: Queryable,
  table: DataTable,
): Promise<ValueReference[]> {
  const out: ValueReference[] = [];
  for (const tableId of await tablesReferring(tx, table.entityId, table.id)) {
    const holder = await findTableById(tx, tableId);
    if (!holder) continue;
    for (const foreignKey of foreignKeysOf(holder))
      if (foreignKey.referencedTable.id === table.id && foreignKey.byUniqueValue)
        out.push({ holder, foreignKey });
  }
  return out;
}

/**
 * The refusal of a write to `record` (locked FOR UPDATE by the caller) that changes or clears the
 * unique attributes `changed` while a foreign key that names one of them by value still finds
 * records holding the old value: 409 HERALD_REFERENCED_VALUE_IN_USE, with the attribute at fault.
 * Undefined when the write may go ahead. `references` (valueReferencesTo) may be given when the
 * caller checks many records of one table in one transaction; else they are read here.
 */
export async function referencedValueInUse(
  tx: Queryable,
  table: DataTable,
  record: StoredRecord,
  changed: readonly string[],
  references?: readonly ValueReference[],
): Promise<{ attribute: string; error: HeraldError } | undefined> {
  if (changed.length === 0) return undefined;
  for (const { holder, foreignKey: fk } of references ?? (await valueReferencesTo(tx, table))) {
    if (!changed.includes(fk.referencedAttribute)) continue;
    const old = record.attributes[fk.referencedAttribute];
    if (old === undefined || old === null) continue;
    if (!(await anyRecordHolding(tx, holder.id, fk.attribute, old))) continue;
    const value = keyText(old) ?? "";
    const error = new HeraldError(
      "HERALD_REFERENCED_VALUE_IN_USE",
      {
        referencedAttribute: fk.referencedAttribute,
        value,
        table: table.name,
        referring: holder.name,
        attribute: fk.attribute,
      },
      [
        {
          path: `${holder.name}.${fk.attribute}`,
          message: `records of '${holder.name}' refer to this record by its ${fk.referencedAttribute} '${value}': change or delete them before changing it`,
        },
      ],
    );
    return { attribute: fk.referencedAttribute, error };
  }
  return undefined;
}

/**
 * A write to `record` (locked FOR UPDATE by the caller) that changes or clears the unique
 * attributes `changed` is refused (409 HERALD_REFERENCED_VALUE_IN_USE, nothing written) while a foreign
 * key that names one of them by value still finds records holding the old value. No query when
 * `changed` is empty.
 */
export async function assertUniqueValuesUnreferenced(
  tx: Queryable,
  table: DataTable,
  record: StoredRecord,
  changed: readonly string[],
): Promise<void> {
  const refused = await referencedValueInUse(tx, table, record, changed);
  if (refused) throw refused.error;
}

/** SET_NULL: the record loses its reference, with an UPDATE event (version + 1). */
async function emptyReference(
  tx: Queryable,
  table: DataTable,
  record: StoredRecord,
  attribute: string,
  origin: Origin,
): Promise<NewChangeEvent> {
  const diff = applyAttributes(record.attributes, { [attribute]: null });
  const unique = table.attributes.find((a) => a.name === attribute)?.unique === true;
  const written = await updateRecord(tx, {
    recordId: record.recordId,
    tableId: table.id,
    attributes: diff.after,
    subscriptions: record.subscriptions,
    segments: record.segments,
    dropKeys: unique ? [attribute] : [],
    addKeys: [],
  });
  const declared = firedDeclaredEvents(table.eventsToTrigger, {
    operation: "UPDATE",
    before: record.attributes,
    after: diff.after,
    provided: [attribute],
    changed: diff.changed,
  });
  const after = { ...record, attributes: diff.after, updatedAt: written.updatedAt };
  const ctx = { table, record: after, version: written.version, origin };
  return dataEvent(ctx, "UPDATE", diff.changed, diff.previous, {}, declared);
}

function referenced(
  table: DataTable,
  record: StoredRecord,
  holder: DataTable,
  attribute: string,
  records: readonly StoredRecord[],
): HeraldError {
  const key = table.kind === "PROFILE_TABLE" ? String(record.recordId) : (record.businessKey ?? "");
  const first = records[0]?.businessKey ?? "";
  return new HeraldError(
    "HERALD_RECORD_REFERENCED",
    { key, table: table.name, count: records.length, referring: holder.name, attribute },
    [
      {
        path: `${holder.name}.${attribute}`,
        message: `record '${first}'${records.length > 1 ? ` and ${records.length - 1} more` : ""} of '${holder.name}' ${records.length > 1 ? "refer" : "refers"} to it (onDelete RESTRICT): delete or change ${records.length > 1 ? "them" : "it"} first`,
      },
    ],
  );
}
