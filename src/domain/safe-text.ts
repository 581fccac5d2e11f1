/**
 * Text PostgreSQL cannot store: a NUL character (text and jsonb refuse it) or a lone UTF-16
 * surrogate (jsonb refuses its escape). Input holding either is a 400, never a database error.
 */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

export function isStorableText(text: string): boolean {
  return !text.includes("\u0000") && !LONE_SURROGATE.test(text);
}

/** Path of the first string (value or object key) in `value` that cannot be stored; undefined when all can. */
export function findUnstorableText(value: unknown, path: string, depth = 0): string | undefined {
  if (typeof value === "string") return isStorableText(value) ? undefined : path;
  if (depth > 64 || typeof value !== "object" || value === null) return undefined;
  if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) {
      const found = findUnstorableText(item, `${path}[${i}]`, depth + 1);
      if (found) return found;
    }
    return undefined;
  }
  for (const [key, item] of Object.entries(value)) {
    const at = path ? `${path}.${key}` : key;
    if (!isStorableText(key)) return at;
    const found = findUnstorableText(item, at, depth + 1);
    if (found) return found;
  }
  return undefined;
}

// eslint-disable-next-line no-control-regex -- NUL is exactly what PostgreSQL refuses
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** `text` with what PostgreSQL cannot store replaced by U+FFFD (for text kept as evidence). */
export function storableText(text: string): string {
  return isStorableText(text) ? text : text.replace(UNSTORABLE, "\ufffd");
}

export const UNSTORABLE_TEXT_MESSAGE = "holds a NUL character or an unpaired surrogate";
