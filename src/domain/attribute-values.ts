/**
 * Attribute values (SPEC §3): what a client may write into an attribute, how it is stored, and how a
 * stored value is rendered (as a string, the way Actito renders values).
 *
 * Stored forms (the JSONB document of a record): STRING → string; INTEGER, LONG, NUMBER → number;
 * BOOLEAN → boolean; DATE → "YYYY-MM-DD"; TIMESTAMP → ISO 8601 UTC "YYYY-MM-DDTHH:mm:ss.sssZ";
 * multi-valued → an array of those. An absent value and null are the same thing: "no value".
 */
import type { AttributeValue } from "./change-event.js";
import type { AttributeDefinition, ValueType } from "./data-table.js";
import { isStorableText, UNSTORABLE_TEXT_MESSAGE } from "./safe-text.js";

export type ValueCheck =
  { kind: "valid"; value: AttributeValue } | { kind: "invalid"; message: string };

type Scalar = string | number | boolean;

const INT32_MIN = -2_147_483_648;
const INT32_MAX = 2_147_483_647;

/**
 * Profile attribute types (SPEC §3) with the value type they imply and any extra rule. `CUSTOM`
 * takes its value type from the definition; every other type fixes it.
 */
export const PROFILE_ATTRIBUTE_TYPES = {
  CUSTOM: { valueType: undefined },
  LASTNAME: { valueType: "STRING" },
  FIRSTNAME: { valueType: "STRING" },
  BIRTHDATE: { valueType: "DATE" },
  SEX: { valueType: "STRING" },
  MOTHER_LANGUAGE: { valueType: "STRING" },
  EMAIL_ADDRESS: { valueType: "STRING" },
  PHONE_NUMBER: { valueType: "STRING" },
  ADDRESS_STREET: { valueType: "STRING" },
  ADDRESS_NUMBER: { valueType: "STRING" },
  ADDRESS_BOX: { valueType: "STRING" },
  ADDRESS_POSTAL_CODE: { valueType: "STRING" },
  ADDRESS_LOCALITY: { valueType: "STRING" },
  ADDRESS_COUNTRY: { valueType: "STRING" },
  CUSTOMER_ID: { valueType: "STRING" },
} as const satisfies Record<string, { valueType: ValueType | undefined }>;
export type ProfileAttributeType = keyof typeof PROFILE_ATTRIBUTE_TYPES;
export const PROFILE_ATTRIBUTE_TYPE_NAMES = Object.keys(
  PROFILE_ATTRIBUTE_TYPES,
) as ProfileAttributeType[];

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const DATE_DMY = /^(\d{2})\/(\d{2})\/(\d{4})$/;
/** Date, then a time with optional seconds/fraction, then an optional zone; a space may separate them. */
const TIMESTAMP =
  /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)(Z|[+-]\d{2}:?\d{2})?$/;

function validDate(year: number, month: number, day: number): boolean {
  if (month < 1 || month > 12 || day < 1 || year < 1 || year > 9999) return false;
  // Date.UTC maps years 0–99 to 1900–1999; setUTCFullYear does not.
  const d = new Date(0);
  d.setUTCFullYear(year, month - 1, day);
  return d.getUTCFullYear() === year && d.getUTCMonth() === month - 1 && d.getUTCDate() === day;
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, "0");
}

function checkDate(raw: Scalar): ValueCheck {
  if (typeof raw !== "string") return { kind: "invalid", message: "must be a date YYYY-MM-DD" };
  const text = raw.trim();
  const iso = DATE.exec(text);
  const dmy = iso ? null : DATE_DMY.exec(text);
  const [year, month, day] = iso
    ? [Number(iso[1]), Number(iso[2]), Number(iso[3])]
    : dmy
      ? [Number(dmy[3]), Number(dmy[2]), Number(dmy[1])]
      : [NaN, NaN, NaN];
  if (!validDate(year, month, day))
    return { kind: "invalid", message: "must be a date YYYY-MM-DD (or dd/MM/yyyy)" };
  return { kind: "valid", value: `${pad(year, 4)}-${pad(month, 2)}-${pad(day, 2)}` };
}

function checkTimestamp(raw: Scalar): ValueCheck {
  let millis: number;
  if (typeof raw === "number" && Number.isSafeInteger(raw)) millis = raw;
  else if (typeof raw === "string" && TIMESTAMP.test(raw.trim())) {
    const m = TIMESTAMP.exec(raw.trim())!;
    const [y, mo, d] = m[1]!.split("-").map(Number) as [number, number, number];
    if (!validDate(y, mo, d)) return { kind: "invalid", message: "is not a valid date" };
    millis = Date.parse(`${m[1]}T${m[2]}${m[3] ?? "Z"}`);
  } else if (typeof raw === "string" && /^\d{4}-\d{2}-\d{2}$/.test(raw.trim())) {
    const date = checkDate(raw);
    if (date.kind === "invalid") return date;
    millis = Date.parse(`${raw.trim()}T00:00:00Z`);
  } else millis = NaN;
  if (!Number.isFinite(millis) || millis < -62135596800000 || millis > 253402300799999)
    return {
      kind: "invalid",
      message: "must be an ISO 8601 timestamp (YYYY-MM-DDTHH:mm:ss[.sss][Z|±hh:mm])",
    };
  return { kind: "valid", value: new Date(millis).toISOString() };
}

function checkInteger(raw: Scalar, min: number, max: number, label: string): ValueCheck {
  const n =
    typeof raw === "number"
      ? raw
      : typeof raw === "string" && /^[-+]?\d+$/.test(raw.trim())
        ? Number(raw.trim())
        : NaN;
  if (!Number.isInteger(n) || n < min || n > max)
    return { kind: "invalid", message: `must be ${label} between ${min} and ${max}` };
  return { kind: "valid", value: n === 0 ? 0 : n };
}

/** One scalar against a value type; returns the stored form. */
export function checkScalar(valueType: ValueType, raw: Scalar): ValueCheck {
  switch (valueType) {
    case "STRING":
      return { kind: "valid", value: typeof raw === "string" ? raw : String(raw) };
    case "INTEGER":
      return checkInteger(raw, INT32_MIN, INT32_MAX, "an integer");
    case "LONG":
      return checkInteger(raw, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, "a whole number");
    case "NUMBER": {
      const n =
        typeof raw === "number"
          ? raw
          : typeof raw === "string" && /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(raw.trim())
            ? Number(raw.trim())
            : NaN;
      if (!Number.isFinite(n)) return { kind: "invalid", message: "must be a finite number" };
      return { kind: "valid", value: n === 0 ? 0 : n };
    }
    case "BOOLEAN": {
      if (typeof raw === "boolean") return { kind: "valid", value: raw };
      const text = String(raw).trim().toLowerCase();
      if (text === "true") return { kind: "valid", value: true };
      if (text === "false") return { kind: "valid", value: false };
      return { kind: "invalid", message: "must be true or false" };
    }
    case "DATE":
      return checkDate(raw);
    case "TIMESTAMP":
      return checkTimestamp(raw);
  }
}

/** Extra rules and normalisation of the typed profile attributes, applied to the stored string. */
function checkProfileType(type: string | undefined, value: string): ValueCheck {
  switch (type) {
    case "EMAIL_ADDRESS": {
      const email = value.trim().toLowerCase();
      return EMAIL.test(email) && email.length <= 254
        ? { kind: "valid", value: email }
        : { kind: "invalid", message: "must be an e-mail address" };
    }
    case "PHONE_NUMBER": {
      const compact = value.trim().replace(/[\s().-]/g, "");
      const normalised = compact.startsWith("00") ? `+${compact.slice(2)}` : compact;
      return /^\+?\d{6,15}$/.test(normalised)
        ? { kind: "valid", value: normalised }
        : { kind: "invalid", message: "must be a phone number (6 to 15 digits, optional +)" };
    }
    case "SEX": {
      const sex = value.trim().toUpperCase();
      return sex === "M" || sex === "F"
        ? { kind: "valid", value: sex }
        : { kind: "invalid", message: "must be M or F" };
    }
    case "MOTHER_LANGUAGE":
    case "ADDRESS_COUNTRY": {
      const code = value.trim().toUpperCase();
      return /^[A-Z]{2}$/.test(code)
        ? { kind: "valid", value: code }
        : { kind: "invalid", message: "must be a two-letter ISO code" };
    }
    default:
      return { kind: "valid", value };
  }
}

function checkRestriction(attribute: AttributeDefinition, value: Scalar): ValueCheck {
  const restriction = attribute.valueRestriction;
  if (restriction && typeof value === "string") {
    const length = [...value].length;
    if (restriction.minLength !== undefined && length < restriction.minLength)
      return {
        kind: "invalid",
        message: `must be at least ${restriction.minLength} characters long`,
      };
    if (restriction.maxLength !== undefined && length > restriction.maxLength)
      return {
        kind: "invalid",
        message: `must be at most ${restriction.maxLength} characters long`,
      };
  }
  if (restriction?.acceptedValues && !restriction.acceptedValues.includes(renderScalar(value)))
    return { kind: "invalid", message: `must be one of ${restriction.acceptedValues.join(", ")}` };
  return { kind: "valid", value };
}

/** Longest unique value (UTF-8 bytes): its key row must fit a btree index entry. */
export const MAX_UNIQUE_VALUE_BYTES = 1024;

function checkOne(attribute: AttributeDefinition, raw: unknown): ValueCheck {
  if (typeof raw !== "string" && typeof raw !== "number" && typeof raw !== "boolean")
    return { kind: "invalid", message: "must be a string, a number or a boolean" };
  if (typeof raw === "string" && !isStorableText(raw))
    return { kind: "invalid", message: UNSTORABLE_TEXT_MESSAGE };
  const typed = checkScalar(attribute.valueType, raw);
  if (typed.kind === "invalid") return typed;
  let value = typed.value as Scalar;
  if (typeof value === "string" && attribute.type && attribute.type !== "CUSTOM") {
    const special = checkProfileType(attribute.type, value);
    if (special.kind === "invalid") return special;
    value = special.value as Scalar;
  }
  if (attribute.unique && Buffer.byteLength(renderScalar(value), "utf8") > MAX_UNIQUE_VALUE_BYTES)
    return {
      kind: "invalid",
      message: `is too long for a unique attribute (at most ${MAX_UNIQUE_VALUE_BYTES} bytes)`,
    };
  return checkRestriction(attribute, value);
}

/** Empty input means "no value": null, undefined, "" and an empty array (as in conditions). */
function isEmptyInput(raw: unknown): boolean {
  return (
    raw === null || raw === undefined || raw === "" || (Array.isArray(raw) && raw.length === 0)
  );
}

/**
 * Validates a written value against the attribute and returns its stored form (null = no value).
 * Multi-valued attributes take an array (a single value becomes a one-element array).
 */
export function checkValue(attribute: AttributeDefinition, raw: unknown): ValueCheck {
  if (isEmptyInput(raw)) return { kind: "valid", value: null };
  if (attribute.multiValued) {
    const items = Array.isArray(raw) ? (raw as unknown[]) : [raw];
    const out: Scalar[] = [];
    for (const [i, item] of items.entries()) {
      const one = checkOne(attribute, item);
      if (one.kind === "invalid") return { kind: "invalid", message: `item ${i} ${one.message}` };
      out.push(one.value as Scalar);
    }
    return { kind: "valid", value: out };
  }
  if (Array.isArray(raw)) return { kind: "invalid", message: "takes a single value, not a list" };
  return checkOne(attribute, raw);
}

function renderScalar(value: Scalar): string {
  return typeof value === "string" ? value : String(value);
}

/**
 * Renders a stored value as Actito does: every scalar as a string (numbers in plain notation,
 * booleans "true"/"false", dates and timestamps as stored); multi-valued attributes as a list of
 * strings; no value as null.
 */
export function renderValue(value: AttributeValue | undefined): string | string[] | null {
  if (value === null || value === undefined) return null;
  if (Array.isArray(value)) return (value as Scalar[]).map(renderScalar);
  return renderScalar(value as Scalar);
}

/** A value as API answers give it (SPEC §3): typed JSON, a scalar or a list of scalars. */
export type TypedValue = string | number | boolean | (string | number | boolean)[];

/**
 * A stored value as API answers give it (SPEC §3, "Values in API answers are typed JSON"): numbers
 * as numbers, booleans as booleans, dates and timestamps as their text; undefined for no value, so
 * that answers leave the attribute out. Push payloads render with renderValue instead.
 */
export function typedValue(value: AttributeValue | undefined): TypedValue | undefined {
  if (value === null || value === undefined) return undefined;
  // Stored values are already typed (LONG is kept within ±(2^53 − 1), so every number is exact).
  return value as TypedValue;
}
