/** `?search=attribute=value` of the profile lists (SPEC §3, v4 and v5): what it asks for. */
import { checkValue } from "../../domain/attribute-values.js";
import type { DataTable } from "../../domain/data-table.js";
import { HeraldError } from "../../domain/errors.js";
import type { ProfileKey } from "../../domain/record-keys.js";
import { parseProfileKey } from "../../domain/record-keys.js";
import type { Queryable } from "../../storage/database.js";
import type { StoredRecord } from "../../storage/record-repository.js";
import { readProfile } from "../record-reads.js";

export type ProfileSearch =
  | { kind: "profileId"; key: ProfileKey }
  /** Profiles whose attribute holds the value (stored form; a multi-valued one: a one-item list). */
  | { kind: "match"; match: { attribute: string; value: unknown } };

/** Parses `attribute=value` (400 HERALD_INVALID_QUERY when it names no attribute or a bad value). */
export function parseProfileSearch(table: DataTable, search: string): ProfileSearch {
  const eq = search.indexOf("=");
  const name = eq > 0 ? search.slice(0, eq) : "";
  const invalidSearch = (reason: string) =>
    new HeraldError("HERALD_INVALID_QUERY", { parameter: "search", reason }, [
      { path: "querystring.search", message: reason },
    ]);
  if (name === "profileId") return { kind: "profileId", key: parseProfileKey(table, search) };
  const attribute = table.attributes.find((a) => a.name === name);
  if (!attribute) throw invalidSearch("must be attribute=value with an attribute of the table");
  const checked = checkValue(attribute, search.slice(eq + 1));
  if (checked.kind === "invalid" || checked.value === null)
    throw invalidSearch(checked.kind === "invalid" ? checked.message : "needs a value");
  // A multi-valued attribute checks as a one-item list: containment finds lists holding it.
  return { kind: "match", match: { attribute: attribute.name, value: checked.value } };
}

/** The profile `search=profileId=n` finds, or none (a missing profile is an empty list, not 404). */
export async function profileSearchedById(
  db: Queryable,
  table: DataTable,
  key: ProfileKey,
): Promise<StoredRecord | undefined> {
  try {
    return await readProfile(db, table, key);
  } catch (error) {
    if (error instanceof HeraldError && error.code === "HERALD_PROFILE_NOT_FOUND") return undefined;
    throw error;
  }
}
