/**
 * How a data object writes attribute values and names (SPEC §5): `renderValue` for a stored value,
 * `valueJson` for the JSON text of that rendering, and the same text made straight from the JSON
 * text the log reader got from PostgreSQL (`recordAttributesFromJson`), without parsing it into
 * objects first. The BULK path writes hundreds of thousands of data objects a second; building each
 * event's `keys` and `state` objects only to write them out again was most of its payload cost.
 *
 * The text functions give exactly the text the object path gives over JSON.parse of the same text
 * (property-tested against it), or undefined when the text holds something only the object path
 * handles: a nested value among the keys, a name with an escape in it, or a name JavaScript orders
 * first.
 */

/** A rendered value: text, a multi-value as a list of texts, or null. */
export type RenderedValue = string | string[] | null;

/** Renders one stored value as Actito does: text, list of texts, or null. */
export function renderValue(value: unknown): RenderedValue {
  if (value === null || value === undefined) return null;
  if (Array.isArray(value)) return value.map((item) => renderScalar(item) ?? "");
  return renderScalar(value);
}

function renderScalar(value: unknown): string | null {
  switch (typeof value) {
    case "string":
      return value;
    case "number":
    case "boolean":
    case "bigint":
      return String(value);
    case "undefined":
      return null;
    default:
      if (value === null) return null;
      // Objects have no attribute type; render them as JSON rather than "[object Object]".
      try {
        return JSON.stringify(value) ?? null;
      } catch {
        return null;
      }
  }
}

/** Names beginning with `_` (and the empty name) never come from data (SPEC §5). */
export function isDataName(name: string): boolean {
  return name.length > 0 && !name.startsWith("_");
}

/**
 * A name JavaScript orders before the others in an object (an array index, or something close to
 * one): the text of an object holding it is not the order the names were added in, so the fast paths
 * leave such events to the object path.
 */
export function mayBeIndex(name: string): boolean {
  const first = name.charCodeAt(0);
  return first >= 48 && first <= 57;
}

/** `JSON.stringify(renderValue(value))`, without the intermediate value for the common cases. */
export function valueJson(value: unknown): string {
  switch (typeof value) {
    case "string":
      return JSON.stringify(value);
    case "number":
    case "bigint":
      // The text of a number never holds a character JSON escapes.
      return `"${String(value)}"`;
    case "boolean":
      return value ? '"true"' : '"false"';
    case "undefined":
      return "null";
    default:
      return value === null ? "null" : JSON.stringify(renderValue(value));
  }
}

/**
 * `JSON.stringify(text) + suffix` of texts that repeat from event to event (attribute names, event
 * types), remembered in `cache` (its owner's). Bounded like the log reader's caches: emptied when
 * one grows past NAME_CACHE_LIMIT texts.
 */
const NAME_CACHE_LIMIT = 10_000;
export function remembered(cache: Map<string, string>, text: string, suffix: string): string {
  let json = cache.get(text);
  if (json === undefined) {
    if (cache.size >= NAME_CACHE_LIMIT) cache.clear();
    json = JSON.stringify(text) + suffix;
    cache.set(text, json);
  }
  return json;
}

// Straight from JSON text ---------------------------------------------------------------------

const QUOTE = 34;
const BACKSLASH = 92;
const COMMA = 44;
const CLOSE_BRACE = 125;

/** A JSON number's text that Number reads as a safe integer and String writes back unchanged. */
export function plainIntegerJson(text: string): boolean {
  const start = text.charCodeAt(0) === 45 /* - */ ? 1 : 0;
  const digits = text.length - start;
  if (digits < 1 || digits > 15) return false;
  if (text.charCodeAt(start) === 48 /* 0 */) return digits === 1 && start === 0; // 0, not 0x or -0
  for (let i = start; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/**
 * valueJson(JSON.parse(text)) for the JSON text of one value as jsonb writes it, read from the text
 * where it can be: a string without a backslash is already its own JSON (jsonb escapes quotes,
 * backslashes and control characters, and JSON.stringify escapes nothing else in valid UTF-8), and a
 * plain integer's text is the number's text. `nested`: what an array or object gives (undefined:
 * the caller takes the object path).
 */
export function jsonValueJson(text: string, nested: "parse" | "refuse"): string | undefined {
  const first = text.charCodeAt(0);
  if (first === QUOTE) return text.includes("\\") ? valueJson(JSON.parse(text)) : text;
  if (first === 123 /* { */ || first === 91 /* [ */)
    return nested === "parse" ? valueJson(JSON.parse(text)) : undefined;
  if (text === "true") return '"true"';
  if (text === "false") return '"false"';
  if (text === "null") return "null";
  // A number: JSON.parse reads its text as Number does.
  return `"${plainIntegerJson(text) ? text : String(Number(text))}"`;
}

/** The index of the quote that closes the JSON string opening at `open`, or -1. */
function closingQuote(text: string, open: number): number {
  let at = text.indexOf('"', open + 1);
  // A quote inside the string follows an odd run of backslashes.
  while (at > 0 && text.charCodeAt(at - 1) === BACKSLASH) {
    let slashes = 0;
    for (let k = at - 1; k > open && text.charCodeAt(k) === BACKSLASH; k--) slashes++;
    if (slashes % 2 === 0) break;
    at = text.indexOf('"', at + 1);
  }
  return at;
}

function skipSpaces(text: string, from: number): number {
  let at = from;
  for (;;) {
    const c = text.charCodeAt(at);
    if (c !== 32 && c !== 10 && c !== 13 && c !== 9) return at;
    at++;
  }
}

/** The end of the scalar value (not a string) beginning at `from`; -1 at an array or object. */
function scalarEnd(text: string, from: number): number {
  let at = from;
  for (;;) {
    const c = text.charCodeAt(at);
    if (c === COMMA || c === CLOSE_BRACE || c === 32 || Number.isNaN(c)) return at;
    if (c === 123 || c === 91) return -1;
    at++;
  }
}

/**
 * Writes attribute members as text, with what it keeps between events: the JSON texts of the
 * attribute names it met (nameJson), the scratch space of recordAttributesFromJson, and what that
 * found besides the members (profileIdJson). One per payload writer (event-payload.ts
 * DataTextWriter), whose calls run to their end one at a time.
 */
export class AttributeTextWriter {
  /** `JSON.stringify(name) + ":"` of names met, remembered (see remembered). */
  private readonly names = new Map<string, string>();
  /** Where the key names begin and end in the keys' text; reused from call to call. */
  private readonly nameFrom: number[] = [];
  private readonly nameTo: number[] = [];
  /**
   * The JSON text of the `profileId` key's value that the last recordAttributesFromJson found (for
   * the record's href; undefined when there is none).
   */
  profileIdJson: string | undefined;

  /** `JSON.stringify(name) + ":"`, remembered. */
  nameJson(name: string): string {
    return remembered(this.names, name, ":");
  }

  /**
   * The attribute members of a record event's data object (`"name":"value",` each, a comma after
   * every one), in the order toDataObject adds them, from texts: `keysJson` is the JSON text of the
   * event's `keys` object; `values` holds the JSON texts of the values of `fields` (the changed
   * attributes, in their order), separated by U+001F, an empty one for a missing attribute. The
   * keys come first, then the changed attributes that are not keys, each name once. Notes the
   * `profileId` key's value in profileIdJson. Undefined when the object path must decide (see the
   * module comment).
   */
  recordAttributesFromJson(
    keysJson: string,
    fields: readonly string[],
    values: string,
  ): string | undefined {
    const { nameFrom, nameTo } = this;
    this.profileIdJson = undefined;
    let out = "";
    let keys = 0;
    let at = skipSpaces(keysJson, 0);
    if (keysJson.charCodeAt(at) !== 123 /* { */) return undefined;
    at = skipSpaces(keysJson, at + 1);
    let more = keysJson.charCodeAt(at) !== CLOSE_BRACE;
    while (more) {
      if (keysJson.charCodeAt(at) !== QUOTE) return undefined;
      const open = at;
      const close = closingQuote(keysJson, open);
      if (close < 0 || keysJson.lastIndexOf("\\", close) > open) return undefined;
      at = skipSpaces(keysJson, close + 1);
      if (keysJson.charCodeAt(at) !== 58 /* : */) return undefined;
      const valueFrom = skipSpaces(keysJson, at + 1);
      const valueTo =
        keysJson.charCodeAt(valueFrom) === QUOTE
          ? closingQuote(keysJson, valueFrom) + 1
          : scalarEnd(keysJson, valueFrom);
      if (valueTo <= valueFrom) return undefined;
      const first = keysJson.charCodeAt(open + 1);
      if (close > open + 1 && first !== 95 /* _ */) {
        if (first >= 48 && first <= 57) return undefined; // mayBeIndex
        const value = keysJson.slice(valueFrom, valueTo);
        const json = jsonValueJson(value, "refuse");
        if (json === undefined) return undefined;
        // The name's text, quotes included, is its JSON: it holds no escape.
        out += keysJson.slice(open, close + 1) + ":" + json + ",";
        if (close - open === 10 && keysJson.startsWith("profileId", open + 1))
          this.profileIdJson = value;
      }
      nameFrom[keys] = open + 1;
      nameTo[keys] = close;
      keys++;
      at = skipSpaces(keysJson, valueTo);
      const next = keysJson.charCodeAt(at);
      if (next === COMMA) at = skipSpaces(keysJson, at + 1);
      else if (next === CLOSE_BRACE) more = false;
      else return undefined;
    }
    let from = 0;
    fields: for (let i = 0; i < fields.length; i++) {
      const valueFrom = from;
      const end = values.indexOf("\u001f", from);
      const valueTo = end < 0 ? values.length : end;
      from = valueTo + 1;
      const name = fields[i] as string;
      if (!isDataName(name)) continue;
      for (let k = 0; k < keys; k++) {
        const start = nameFrom[k] as number;
        if ((nameTo[k] as number) - start === name.length && keysJson.startsWith(name, start))
          continue fields;
      }
      if (fields.indexOf(name) < i) continue; // a repeated name: the first one is in already
      if (mayBeIndex(name)) return undefined;
      const value =
        valueTo === valueFrom
          ? "null"
          : (jsonValueJson(values.slice(valueFrom, valueTo), "parse") as string);
      out += this.nameJson(name) + value + ",";
    }
    return out;
  }
}
