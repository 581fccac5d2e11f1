/**
 * Checks a posted profile-table or custom-table definition (SPEC §3) and turns it into a
 * `DataTable` (without id and entity). Malformed input (a wrong type, an unknown enum value, a bad
 * name) is a 400 HERALD_INVALID_TABLE_DEFINITION; a well-formed definition that refers to something
 * that does not exist (an `onAnyAttribute` name, a primary key that is not an attribute, a
 * duplicate name) is a 422 HERALD_TABLE_DEFINITION_INCONSISTENT. Every problem names its path.
 *
 * Definitions are read leniently, as Actito's JSON definition files are written: its keys
 * (`entityName`, `compositeKey`, `bigTable`, `displayOptions`, `valueAttribute`) are checked for
 * their type and kept; a key Herald does not know is ignored with a warning (readTableDefinition
 * returns them; the API answers them in `details`). A custom table without `primaryKeyAttribute`
 * is keyed on `id` (GENERATED_KEY_ATTRIBUTE), added as a STRING attribute when not declared.
 */
import { PROFILE_ATTRIBUTE_TYPES } from "./attribute-values.js";
import type {
  AttributeDefinition,
  DataTable,
  Segmentation,
  TableKind,
  ValueRestriction,
  ValueType,
} from "./data-table.js";
import {
  GENERATED_KEY_ATTRIBUTE,
  PROFILE_TECHNICAL_ATTRIBUTES,
  VALUE_TYPES,
} from "./data-table.js";
import { eventsAt } from "./declared-event-definition.js";
import { parseForeignKeys } from "./foreign-keys.js";
import { findUnstorableText, UNSTORABLE_TEXT_MESSAGE } from "./safe-text.js";
import type { ErrorDetail } from "./errors.js";
import type { Json } from "./definition-reader.js";
import {
  arrayAt,
  booleanAt,
  duplicates,
  isObject,
  oneOf,
  Problems,
  stringAt,
} from "./definition-reader.js";

export { TRIGGER_OPERATIONS } from "./declared-event-definition.js";
export type TableDefinition = Omit<DataTable, "id" | "entityId" | "version">;

export const CUSTOM_TABLE_TYPES = ["INTERACTIONS", "LINKED_DATA", "REPOSITORY"] as const;
export const SEGMENTATION_TYPES = ["SIMPLE", "EXCLUSIVE"] as const;

/** Attribute names: a letter, then letters, digits, `_` or `-` (never a leading `_`: SPEC §5). */
const ATTRIBUTE_NAME = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function restrictionAt(p: Problems, value: unknown, path: string): ValueRestriction | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isObject(value)) {
    p.bad(path, "must be an object");
    return undefined;
  }
  const out: ValueRestriction = {};
  for (const key of ["minLength", "maxLength"] as const) {
    const n = value[key];
    if (n === undefined || n === null) continue;
    if (typeof n !== "number" || !Number.isInteger(n) || n < 0)
      p.bad(`${path}.${key}`, "must be a whole number ≥ 0");
    else out[key] = n;
  }
  if (out.minLength !== undefined && out.maxLength !== undefined && out.minLength > out.maxLength)
    p.conflict(`${path}.minLength`, "must not exceed maxLength");
  if (value.acceptedValues !== undefined && value.acceptedValues !== null) {
    const list = value.acceptedValues;
    if (
      !Array.isArray(list) ||
      list.length === 0 ||
      list.some((v) => typeof v !== "string" && typeof v !== "number" && typeof v !== "boolean")
    )
      p.bad(`${path}.acceptedValues`, "must be a non-empty array of values");
    else out.acceptedValues = list.map(String);
  }
  p.ignoreUnknownKeys(value, ["minLength", "maxLength", "acceptedValues"], path, "a restriction");
  return Object.keys(out).length > 0 ? out : undefined;
}

const PROFILE_ATTRIBUTE_KEYS = [
  "name",
  "type",
  "valueType",
  "unique",
  "mandatory",
  "multiValued",
  "valueRestriction",
  "displayOptions",
];
const CUSTOM_ATTRIBUTE_KEYS = [...PROFILE_ATTRIBUTE_KEYS, "indexed"];

/** An opaque JSON object kept as given (`displayOptions`): absent, null or an object. */
function optionsAt(p: Problems, value: unknown, path: string): Json | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isObject(value)) p.bad(path, "must be an object");
  return isObject(value) ? value : undefined;
}

function attributeAt(
  p: Problems,
  kind: TableKind,
  raw: unknown,
  path: string,
): AttributeDefinition | undefined {
  if (!isObject(raw)) {
    p.bad(path, "must be an object");
    return undefined;
  }
  p.ignoreUnknownKeys(
    raw,
    kind === "PROFILE_TABLE" ? PROFILE_ATTRIBUTE_KEYS : CUSTOM_ATTRIBUTE_KEYS,
    path,
    "an attribute",
  );
  const name = stringAt(p, raw.name, `${path}.name`, true);
  if (name !== undefined && !ATTRIBUTE_NAME.test(name))
    p.bad(
      `${path}.name`,
      "must start with a letter and hold only letters, digits, '_' or '-' (at most 64)",
    );
  if (
    name !== undefined &&
    kind === "PROFILE_TABLE" &&
    (PROFILE_TECHNICAL_ATTRIBUTES as readonly string[]).includes(name)
  )
    p.bad(`${path}.name`, `'${name}' is a technical attribute that Herald maintains`);
  let valueType: ValueType | undefined;
  let type: string | undefined;
  if (kind === "PROFILE_TABLE") {
    type = oneOf(
      p,
      raw.type ?? "CUSTOM",
      Object.keys(PROFILE_ATTRIBUTE_TYPES),
      `${path}.type`,
      true,
    );
    const implied = type
      ? PROFILE_ATTRIBUTE_TYPES[type as keyof typeof PROFILE_ATTRIBUTE_TYPES].valueType
      : undefined;
    const given = oneOf(p, raw.valueType, VALUE_TYPES, `${path}.valueType`, type === "CUSTOM");
    if (implied && given && given !== implied)
      p.bad(`${path}.valueType`, `must be ${implied} for type ${type}`);
    valueType = implied ?? given;
  } else {
    if (raw.type !== undefined) p.bad(`${path}.type`, "is only for profile tables; use valueType");
    valueType = oneOf(p, raw.valueType, VALUE_TYPES, `${path}.valueType`, true);
  }
  const attribute: AttributeDefinition = {
    name: name ?? "",
    ...(type ? { type } : {}),
    valueType: valueType ?? "STRING",
    unique: booleanAt(p, raw.unique, `${path}.unique`),
    mandatory: booleanAt(p, raw.mandatory, `${path}.mandatory`),
    multiValued: booleanAt(p, raw.multiValued, `${path}.multiValued`),
  };
  if (kind === "CUSTOM_TABLE") attribute.indexed = booleanAt(p, raw.indexed, `${path}.indexed`);
  const restriction = restrictionAt(p, raw.valueRestriction, `${path}.valueRestriction`);
  if (restriction) attribute.valueRestriction = restriction;
  const displayOptions = optionsAt(p, raw.displayOptions, `${path}.displayOptions`);
  if (displayOptions) attribute.displayOptions = displayOptions;
  if (attribute.unique && attribute.multiValued)
    p.conflict(`${path}.unique`, "a multi-valued attribute cannot be unique");
  return attribute;
}

function segmentationsAt(p: Problems, raw: unknown): Segmentation[] {
  const out: Segmentation[] = [];
  arrayAt(p, raw, "segmentations").forEach((s, i) => {
    const at = `segmentations[${i}]`;
    if (!isObject(s)) return p.bad(at, "must be an object");
    const name = stringAt(p, s.name, `${at}.name`, true) ?? "";
    const type = oneOf(p, s.type ?? "SIMPLE", SEGMENTATION_TYPES, `${at}.type`, true) ?? "SIMPLE";
    if (type === "SIMPLE") {
      if (s.segments !== undefined && s.segments !== null)
        p.bad(`${at}.segments`, "is only for EXCLUSIVE segmentations");
      out.push({ name, type });
      return;
    }
    const segments = arrayAt(p, s.segments, `${at}.segments`);
    if (segments.length === 0)
      p.bad(`${at}.segments`, "must list the segments of an EXCLUSIVE segmentation");
    const names: string[] = [];
    segments.forEach((seg, j) => {
      const segName = stringAt(p, seg, `${at}.segments[${j}]`, true);
      if (segName !== undefined) names.push(segName);
    });
    duplicates(names).forEach((j) => p.conflict(`${at}.segments[${j}]`, "is listed twice"));
    out.push({ name, type, segments: names });
  });
  duplicates(out.map((s) => s.name)).forEach((i) =>
    p.conflict(`segmentations[${i}].name`, "is declared twice"),
  );
  return out;
}

const PROFILE_KEYS = [
  "name",
  "attributes",
  "subscriptions",
  "segmentations",
  "id",
  "entityName",
  "displayOptions",
];
const CUSTOM_KEYS = [
  "name",
  "type",
  "primaryKeyAttribute",
  "creationTimeAttribute",
  "attributes",
  "foreignKeys",
  "eventsToTrigger",
  "id",
  "entityName",
  "displayOptions",
  "compositeKey",
  "bigTable",
  "valueAttribute",
];

/** The implicit primary key of a custom table defined without one. */
function generatedKeyAttribute(): AttributeDefinition {
  return {
    name: GENERATED_KEY_ATTRIBUTE,
    valueType: "STRING",
    unique: true,
    mandatory: true,
    multiValued: false,
    indexed: true,
  };
}

/** `compositeKey`: absent, null or a list of attribute names (422 for a name that is none). */
function compositeKeyAt(
  p: Problems,
  value: unknown,
  names: readonly string[],
): string[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value) || value.some((n) => typeof n !== "string" || n.trim() === "")) {
    p.bad("compositeKey", "must be a list of attribute names (or null)");
    return undefined;
  }
  value.forEach((n: string, i) => {
    if (!names.includes(n))
      p.conflict(`compositeKey[${i}]`, `'${n}' is not an attribute of the table`);
  });
  return value as string[];
}

/** Reads Actito's table-level keys that Herald keeps without acting on them. */
function actitoKeysAt(p: Problems, kind: TableKind, raw: Json, table: TableDefinition): void {
  const entityName = stringAt(p, raw.entityName, "entityName", false);
  if (entityName !== undefined) table.entityName = entityName;
  const displayOptions = optionsAt(p, raw.displayOptions, "displayOptions");
  if (displayOptions) table.displayOptions = displayOptions;
  if (kind === "PROFILE_TABLE") return;
  const names = table.attributes.map((a) => a.name);
  const compositeKey = compositeKeyAt(p, raw.compositeKey, names);
  if (compositeKey) table.compositeKey = compositeKey;
  if (raw.bigTable !== undefined && raw.bigTable !== null)
    table.bigTable = booleanAt(p, raw.bigTable, "bigTable");
  const valueAttribute = stringAt(p, raw.valueAttribute, "valueAttribute", false);
  if (valueAttribute !== undefined) {
    table.valueAttribute = valueAttribute;
    if (!names.includes(valueAttribute))
      p.conflict("valueAttribute", `'${valueAttribute}' is not an attribute of the table`);
  }
}

/** A checked definition and the warnings about what was ignored in it. */
export interface DefinitionReading {
  definition: TableDefinition;
  warnings: ErrorDetail[];
}

/** Validates a posted definition of a table of `kind`; throws a HeraldError (400 or 422). */
export function parseTableDefinition(kind: TableKind, input: unknown): TableDefinition {
  return readTableDefinition(kind, input).definition;
}

/**
 * Validates a posted definition of a table of `kind` (throws a HeraldError, 400 or 422) and lists
 * the keys it ignored.
 */
export function readTableDefinition(kind: TableKind, input: unknown): DefinitionReading {
  const p = new Problems();
  if (!isObject(input)) {
    p.bad("body", "must be a JSON object");
    p.throwIfAny();
  }
  const unstorable = findUnstorableText(input, "");
  if (unstorable !== undefined) {
    p.bad(unstorable || "body", UNSTORABLE_TEXT_MESSAGE);
    p.throwIfAny();
  }
  const raw = input as Json;
  p.ignoreUnknownKeys(
    raw,
    kind === "PROFILE_TABLE" ? PROFILE_KEYS : CUSTOM_KEYS,
    "",
    "a table definition",
  );
  const name = stringAt(p, raw.name, "name", true) ?? "";
  if (name.length > 128) p.bad("name", "must be at most 128 characters");
  if (/^\d+$/.test(name) || UUID.test(name)) p.bad("name", "must not look like a table id");
  const attributes: AttributeDefinition[] = [];
  const rawAttributes = arrayAt(p, raw.attributes, "attributes");
  if (raw.attributes === undefined) p.bad("attributes", "is required");
  rawAttributes.forEach((a, i) => {
    const attribute = attributeAt(p, kind, a, `attributes[${i}]`);
    if (attribute) attributes.push(attribute);
  });
  duplicates(attributes.map((a) => a.name)).forEach((i) =>
    p.conflict(`attributes[${i}].name`, "is declared twice"),
  );
  // A custom table without a primary key is keyed on `id`, declared or added (SPEC §3).
  const keyedOnId =
    kind === "CUSTOM_TABLE" &&
    (raw.primaryKeyAttribute === undefined || raw.primaryKeyAttribute === null);
  if (keyedOnId && !attributes.some((a) => a.name === GENERATED_KEY_ATTRIBUTE))
    attributes.unshift(generatedKeyAttribute());
  const names = attributes.map((a) => a.name);
  const table: TableDefinition = {
    kind,
    name,
    attributes,
    subscriptions: [],
    segmentations: [],
    eventsToTrigger: [],
  };

  if (kind === "PROFILE_TABLE") {
    arrayAt(p, raw.subscriptions, "subscriptions").forEach((s, i) => {
      if (!isObject(s)) return p.bad(`subscriptions[${i}]`, "must be an object");
      const subscription = stringAt(p, s.name, `subscriptions[${i}].name`, true);
      if (subscription !== undefined) table.subscriptions.push({ name: subscription });
    });
    duplicates(table.subscriptions.map((s) => s.name)).forEach((i) =>
      p.conflict(`subscriptions[${i}].name`, "is declared twice"),
    );
    table.segmentations = segmentationsAt(p, raw.segmentations);
  } else {
    table.customTableType = oneOf(p, raw.type, CUSTOM_TABLE_TYPES, "type", true);
    const primaryKey = keyedOnId
      ? GENERATED_KEY_ATTRIBUTE
      : stringAt(p, raw.primaryKeyAttribute, "primaryKeyAttribute", true);
    const pk = attributes.find((a) => a.name === primaryKey);
    if (primaryKey !== undefined) {
      table.primaryKeyAttribute = primaryKey;
      if (!pk)
        p.conflict("primaryKeyAttribute", `'${primaryKey}' is not an attribute of the table`);
      else if (pk.multiValued)
        p.conflict("primaryKeyAttribute", "cannot be a multi-valued attribute");
      else {
        // The business key identifies the record: always unique and always given.
        pk.unique = true;
        pk.mandatory = true;
      }
    }
    const creationTime = stringAt(p, raw.creationTimeAttribute, "creationTimeAttribute", false);
    if (creationTime !== undefined) {
      table.creationTimeAttribute = creationTime;
      const ct = attributes.find((a) => a.name === creationTime);
      if (!ct)
        p.conflict("creationTimeAttribute", `'${creationTime}' is not an attribute of the table`);
      else if (ct.valueType !== "TIMESTAMP" && ct.valueType !== "DATE")
        p.conflict("creationTimeAttribute", "must be a TIMESTAMP or DATE attribute");
    }
    if (raw.foreignKeys !== undefined)
      table.foreignKeys = parseForeignKeys(p, raw.foreignKeys, attributes);
    table.eventsToTrigger = eventsAt(p, raw.eventsToTrigger, names);
  }
  actitoKeysAt(p, kind, raw, table);
  p.throwIfAny();
  return { definition: table, warnings: p.warnings };
}
