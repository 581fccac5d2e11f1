/**
 * What a scenario's UPDATE_PROFILE block writes (SPEC §7.4, docs/scenarios.md), checked against
 * the profile table as the API's own writes are: attribute values with checkValue (technical,
 * unknown and multi-valued attributes refused), subscriptions and segmentations the table
 * declares. The engine writes the stored result through the same capture path as the API.
 */
import { checkValue } from "./attribute-values.js";
import type { DataTable } from "./data-table.js";
import { PROFILE_TECHNICAL_ATTRIBUTES } from "./data-table.js";
import type { ScenarioBlock } from "./scenario.js";

type Add = (path: string, message: string) => void;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** An UPDATE_PROFILE block from its request form (`base`: its id and next). */
export function parseUpdateProfile(
  raw: Record<string, unknown>,
  base: { id: string; next: string },
  at: string,
  table: DataTable,
  add: Add,
): ScenarioBlock {
  const block = {
    ...base,
    type: "UPDATE_PROFILE" as const,
    attributes: parseAttributeWrites(raw.attributes, table, `${at}.attributes`, add),
    subscriptions: parseSubscriptionWrites(raw.subscriptions, table, `${at}.subscriptions`, add),
    segmentations: parseSegmentWrites(raw.segmentations, table, `${at}.segmentations`, add),
  };
  const given = [raw.attributes, raw.subscriptions, raw.segmentations];
  if (
    given.every(
      (g) =>
        g === undefined ||
        g === null ||
        (isObject(g) && Object.keys(g).length === 0) ||
        (Array.isArray(g) && g.length === 0),
    )
  )
    add(at, "an UPDATE_PROFILE writes something: give attributes, subscriptions or segmentations");
  return block;
}

/** `{"name": value}`, or Actito's list `[{"name", "value"}]`. */
function entriesOf(raw: unknown, path: string, add: Add): [string, unknown, string][] {
  if (raw === undefined || raw === null) return [];
  if (Array.isArray(raw)) {
    const entries: [string, unknown, string][] = [];
    raw.forEach((item: unknown, i) => {
      if (isObject(item) && typeof item.name === "string")
        entries.push([item.name, item.value, `${path}[${i}].value`]);
      else add(`${path}[${i}]`, 'must be an object {"name", "value"}');
    });
    return entries;
  }
  if (isObject(raw))
    return Object.entries(raw).map(([name, value]) => [name, value, `${path}.${name}`]);
  add(path, 'must be an object {"<name>": value}');
  return [];
}

function parseAttributeWrites(
  raw: unknown,
  table: DataTable,
  path: string,
  add: Add,
): Record<string, string | number | boolean | null> {
  const writes: Record<string, string | number | boolean | null> = {};
  for (const [name, value, at] of entriesOf(raw, path, add)) {
    const attribute = table.attributes.find((a) => a.name === name);
    if ((PROFILE_TECHNICAL_ATTRIBUTES as readonly string[]).includes(name)) {
      add(at, `'${name}' is maintained by Herald and cannot be written`);
      continue;
    }
    if (!attribute) {
      add(at, `'${name}' is not an attribute of table '${table.name}'`);
      continue;
    }
    if (attribute.multiValued) {
      add(at, `'${name}' is multi-valued; a scenario writes single-valued attributes only`);
      continue;
    }
    const check = checkValue(attribute, value);
    if (check.kind === "invalid") {
      add(at, `${check.message} (${name} is ${attribute.valueType})`);
      continue;
    }
    if (check.value === null && attribute.mandatory) {
      add(at, `'${name}' is mandatory: a scenario cannot clear it`);
      continue;
    }
    if (check.value !== null && attribute.unique) {
      add(
        at,
        `'${name}' is unique: every run would write this same value, which only one profile can hold (null clears it)`,
      );
      continue;
    }
    writes[name] = check.value as string | number | boolean | null;
  }
  return writes;
}

function parseSubscriptionWrites(
  raw: unknown,
  table: DataTable,
  path: string,
  add: Add,
): Record<string, boolean> {
  const writes: Record<string, boolean> = {};
  const known = table.subscriptions.map((s) => s.name);
  for (const [name, value, at] of entriesOf(raw, path, add)) {
    if (!known.includes(name))
      add(
        at,
        `'${name}' is not a subscription of table '${table.name}' (its subscriptions: ${known.join(", ") || "none"})`,
      );
    else if (typeof value !== "boolean")
      add(at, "must be true (subscribe the profile) or false (unsubscribe it)");
    else writes[name] = value;
  }
  return writes;
}

/**
 * Segmentations as Actito writes them: `{"Active": true}` puts the profile in a SIMPLE
 * segmentation's one segment (its own name), `{"ClientType": "Gold"}` in that segment of an
 * EXCLUSIVE one, `false` takes the profile out. Stored as the segment's name, or false.
 */
function parseSegmentWrites(
  raw: unknown,
  table: DataTable,
  path: string,
  add: Add,
): Record<string, string | false> {
  const writes: Record<string, string | false> = {};
  for (const [name, value, at] of entriesOf(raw, path, add)) {
    const segmentation = table.segmentations.find((s) => s.name === name);
    if (!segmentation) {
      const known = table.segmentations.map((s) => s.name).join(", ") || "none";
      add(
        at,
        `'${name}' is not a segmentation of table '${table.name}' (its segmentations: ${known})`,
      );
      continue;
    }
    if (value === false) {
      writes[name] = false;
      continue;
    }
    const segments =
      segmentation.type === "SIMPLE" ? [segmentation.name] : (segmentation.segments ?? []);
    const segment = value === true ? segmentation.name : value;
    if (typeof segment === "string" && segments.includes(segment)) writes[name] = segment;
    else
      add(
        at,
        segmentation.type === "SIMPLE"
          ? `must be true (into segmentation '${name}') or false (out of it)`
          : `must be one of the segments of '${name}' (${segments.join(", ")}) or false (out of it)`,
      );
  }
  return writes;
}
