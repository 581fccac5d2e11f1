/**
 * The API's reads of one record (GET of a profile or of a custom-table record, and what a profile
 * call reads before it writes): no transaction and no lock, nothing captured. A record that is not
 * there is the 404 its writes answer (capture's profileNotFound, recordNotFound).
 */
import { normaliseBusinessKey, recordNotFound } from "../capture/custom-record-writer.js";
import { profileNotFound } from "../capture/profile-writer.js";
import type { DataTable } from "../domain/data-table.js";
import type { ProfileKey } from "../domain/record-keys.js";
import type { Queryable } from "../storage/database.js";
import type { StoredRecord } from "../storage/record-repository.js";
import {
  findRecordByBusinessKey,
  findRecordById,
  findRecordByKey,
} from "../storage/record-repository.js";

/** The profile with that id or unique value, or 404. */
export async function readProfile(
  db: Queryable,
  table: DataTable,
  key: ProfileKey,
): Promise<StoredRecord> {
  const record =
    key.kind === "profileId"
      ? await findRecordById(db, table.id, key.profileId)
      : await findRecordByKey(db, table.id, key.key);
  if (!record) throw profileNotFound(table, key);
  return record;
}

/** The custom-table record with that business key (normalised as a written key), or 404. */
export async function readCustomRecord(
  db: Queryable,
  table: DataTable,
  businessKey: string,
): Promise<StoredRecord> {
  const key = normaliseBusinessKey(table, businessKey);
  const record = await findRecordByBusinessKey(db, table.id, key, false);
  if (!record) throw recordNotFound(table, businessKey);
  return record;
}
