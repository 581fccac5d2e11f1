/**
 * The DELETE event of a record removed by a table deletion: exactly the event a one-by-one delete of
 * that record gives (SPEC §5: its keys and its state before the delete, version + 1, and for a
 * custom table the declared events whose DELETE rules fire), with the deletion's origin. Foreign
 * keys add nothing here: no other table refers to a table being deleted (the request is refused
 * while one does), and references between its own records need no cascade, every record going.
 */
import { dataEvent, heldAttributes } from "../capture/change-event-builders.js";
import { customDeleteEvent } from "../capture/foreign-key-enforcement.js";
import type { NewChangeEvent, Origin } from "../domain/change-event.js";
import type { DataTable } from "../domain/data-table.js";
import type { StoredRecord } from "../storage/record-repository.js";

export function tableDeletionEvent(
  table: DataTable,
  record: StoredRecord,
  origin: Origin,
): NewChangeEvent {
  if (table.kind === "CUSTOM_TABLE") return customDeleteEvent(table, record, origin);
  // As capture/profile-writer.ts deleteProfile writes it.
  const context = { table, record, version: record.version + 1, origin };
  return dataEvent(context, "DELETE", heldAttributes(table, record.attributes));
}
