/**
 * A record's unique keys (the `record_keys` rows and the `keys` of its change events) and the
 * `{profileKey}` path parameter of SPEC §3: a numeric profileId or `attribute=value` of a unique
 * attribute.
 */
import { checkValue, renderValue } from "./attribute-values.js";
import type { AttributeMap, AttributeValue } from "./change-event.js";
import type { AttributeDefinition, DataTable } from "./data-table.js";
import { HeraldError } from "./errors.js";
import type { KeyValue } from "./record-change.js";

/** The string a unique value is kept as (its Actito rendering). */
export function keyText(value: AttributeValue | undefined): string | undefined {
  const rendered = renderValue(value);
  return typeof rendered === "string" ? rendered : undefined;
}

/** Every unique attribute that has a value, as key rows. */
export function uniqueKeysOf(table: DataTable, attributes: AttributeMap): KeyValue[] {
  const keys: KeyValue[] = [];
  for (const attribute of table.attributes) {
    if (!attribute.unique) continue;
    const value = keyText(attributes[attribute.name]);
    if (value !== undefined) keys.push({ attribute: attribute.name, value });
  }
  return keys;
}

/** The shape of a key Herald generates (SPEC §3): a UUID, as text. */
const GENERATED_KEY_SAMPLE = "00000000-0000-4000-8000-000000000000";

/**
 * True when Herald may generate the value of this primary key attribute for a record written
 * without it: a single-valued STRING attribute whose restrictions accept a UUID.
 */
export function acceptsGeneratedKey(attribute: AttributeDefinition): boolean {
  if (attribute.valueType !== "STRING" || attribute.multiValued) return false;
  if (attribute.valueRestriction?.acceptedValues) return false;
  return checkValue(attribute, GENERATED_KEY_SAMPLE).kind === "valid";
}

export type ProfileKey =
  { kind: "profileId"; profileId: number } | { kind: "unique"; key: KeyValue };

/** Parses `{profileKey}`; the value of `attribute=value` is normalised like a written value. */
export function parseProfileKey(table: DataTable, raw: string): ProfileKey {
  if (/^\d{1,15}$/.test(raw)) return { kind: "profileId", profileId: Number(raw) };
  const bad = () =>
    new HeraldError("HERALD_INVALID_PROFILE_KEY", { key: raw }, [
      {
        path: "profileKey",
        message: "must be a profileId or attribute=value of a unique attribute",
      },
    ]);
  const eq = raw.indexOf("=");
  if (eq <= 0) throw bad();
  const name = raw.slice(0, eq);
  const attribute = table.attributes.find((a) => a.name === name && a.unique);
  if (name === "profileId") {
    const id = raw.slice(eq + 1);
    if (/^\d{1,15}$/.test(id)) return { kind: "profileId", profileId: Number(id) };
  }
  if (!attribute) throw bad();
  const checked = checkValue(attribute, raw.slice(eq + 1));
  const value = checked.kind === "valid" ? keyText(checked.value) : undefined;
  if (value === undefined) throw bad();
  return { kind: "unique", key: { attribute: name, value } };
}
