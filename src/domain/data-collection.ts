/**
 * A profile's `dataCollectionInformation` (SPEC §3): when, from where and how its data was
 * collected. Stored with the profile and answered by reads, but no attribute: it is in no event, and
 * a write that changes only it emits nothing.
 */
import { invalid } from "./errors.js";
import { isStorableText, UNSTORABLE_TEXT_MESSAGE } from "./safe-text.js";

const DATA_COLLECTION_FIELDS = ["date", "source", "way"] as const;
export type DataCollection = Partial<Record<(typeof DATA_COLLECTION_FIELDS)[number], string>>;

/** Longest text kept per field: it describes a collection, it is not a document. */
const MAX_DATA_COLLECTION_CHARS = 1000;

/**
 * The information a write body gives, as stored: its three fields (others are ignored), empty
 * strings left out. Undefined when the body gives none, so the stored information stays as it is.
 */
export function parseDataCollection(
  input: Partial<Record<string, unknown>> | undefined,
  path = "dataCollectionInformation",
): DataCollection | undefined {
  if (input === undefined) return undefined;
  const out: DataCollection = {};
  for (const field of DATA_COLLECTION_FIELDS) {
    const value = input[field];
    if (value === undefined || value === null || value === "") continue;
    if (typeof value !== "string") throw invalid(`${path}.${field}`, "must be a string");
    if (!isStorableText(value)) throw invalid(`${path}.${field}`, UNSTORABLE_TEXT_MESSAGE);
    if (value.length > MAX_DATA_COLLECTION_CHARS)
      throw invalid(`${path}.${field}`, `must be at most ${MAX_DATA_COLLECTION_CHARS} characters`);
    out[field] = value;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

/** True when `next` would change what `current` holds. */
export function dataCollectionChanges(
  current: DataCollection | null,
  next: DataCollection | undefined,
): boolean {
  if (next === undefined) return false;
  return DATA_COLLECTION_FIELDS.some((field) => (current?.[field] ?? "") !== (next[field] ?? ""));
}
