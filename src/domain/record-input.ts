/**
 * The write bodies of SPEC §3 checked against a table: `attributes` / `properties` lists of
 * `{name, value}`, profile `subscriptions` and `segmentations`. Every problem is collected with the
 * path of the offending field; the first one decides the error code (SPEC §2).
 */
import { checkValue } from "./attribute-values.js";
import type { AttributeMap } from "./change-event.js";
import type { DataTable } from "./data-table.js";
import { PROFILE_TECHNICAL_ATTRIBUTES } from "./data-table.js";
import type { ErrorCode, ErrorDetail } from "./errors.js";
import { HeraldError } from "./errors.js";
import type { SegmentChange, SubscriptionChange } from "./record-change.js";

export interface NamedValue {
  name: string;
  value?: unknown;
}

export interface SegmentationInput {
  belongs?: boolean;
  segmentation?: { category: string; name?: string };
  category?: string;
  name?: string;
}

interface Problem {
  code: ErrorCode;
  params: Record<string, string>;
  detail: ErrorDetail;
}

function fail(problems: Problem[]): never {
  const first = problems[0]!;
  throw new HeraldError(
    first.code,
    first.params,
    problems.map((p) => p.detail),
  );
}

const TECHNICAL = new Set<string>(PROFILE_TECHNICAL_ATTRIBUTES);

/**
 * Validates a list of `{name, value}` into stored values (null = clear the value). `listName` is
 * the body key (`attributes`, `properties`) used in error paths.
 */
export function parseAttributeList(
  table: DataTable,
  items: readonly NamedValue[],
  listName: string,
): AttributeMap {
  const byName = new Map(table.attributes.map((a) => [a.name, a]));
  const problems: Problem[] = [];
  const out: AttributeMap = {};
  items.forEach((item, i) => {
    const at = `${listName}[${i}]`;
    if (table.kind === "PROFILE_TABLE" && TECHNICAL.has(item.name)) {
      problems.push({
        code: "HERALD_TECHNICAL_ATTRIBUTE",
        params: { attribute: item.name },
        detail: { path: `${at}.name`, message: `'${item.name}' is maintained by Herald` },
      });
      return;
    }
    const attribute = byName.get(item.name);
    if (!attribute) {
      problems.push({
        code: "HERALD_UNKNOWN_ATTRIBUTE",
        params: { attribute: item.name, table: table.name },
        detail: { path: `${at}.name`, message: `'${item.name}' is not an attribute of the table` },
      });
      return;
    }
    if (item.name in out) {
      problems.push({
        code: "HERALD_VALIDATION",
        params: { reason: `${at}.name '${item.name}' is given twice` },
        detail: { path: `${at}.name`, message: `'${item.name}' is given twice` },
      });
      return;
    }
    const checked = checkValue(attribute, item.value);
    if (checked.kind === "invalid") {
      problems.push({
        code: "HERALD_INVALID_VALUE",
        params: { attribute: item.name, reason: checked.message },
        detail: { path: `${at}.value`, message: `${item.name} ${checked.message}` },
      });
      return;
    }
    out[item.name] = checked.value;
  });
  if (problems.length > 0) fail(problems);
  return out;
}

/**
 * Mandatory attributes must have a value in the record after the write. `provided` names the
 * attributes the write touched: on an update only those can have lost their value.
 */
export function checkMandatory(
  table: DataTable,
  after: AttributeMap,
  listName: string,
  provided?: AttributeMap,
): void {
  const problems: Problem[] = [];
  for (const attribute of table.attributes) {
    if (!attribute.mandatory) continue;
    if (provided && !(attribute.name in provided)) continue;
    const value = after[attribute.name];
    if (value === null || value === undefined || (Array.isArray(value) && value.length === 0)) {
      problems.push({
        code: "HERALD_MISSING_MANDATORY",
        params: { attribute: attribute.name },
        detail: { path: listName, message: `mandatory attribute '${attribute.name}' has no value` },
      });
    }
  }
  if (problems.length > 0) fail(problems);
}

export function parseSubscriptionList(
  table: DataTable,
  items: readonly { name: string; subscribe?: boolean }[],
): SubscriptionChange[] {
  const known = new Set(table.subscriptions.map((s) => s.name));
  const problems: Problem[] = [];
  const out: SubscriptionChange[] = [];
  items.forEach((item, i) => {
    if (!known.has(item.name)) {
      problems.push({
        code: "HERALD_VALIDATION",
        params: {
          reason: `subscriptions[${i}].name '${item.name}' is not a subscription of the table`,
        },
        detail: {
          path: `subscriptions[${i}].name`,
          message: `'${item.name}' is not a subscription of the table`,
        },
      });
      return;
    }
    out.push({ subscriptionName: item.name, subscribe: item.subscribe ?? true });
  });
  if (problems.length > 0) fail(problems);
  return out;
}

/**
 * Accepts both shapes of SPEC §3: `{belongs, segmentation: {category, name}}` and
 * `{category, name, belongs?}`. `category` is the segmentation; `name` the segment (a SIMPLE
 * segmentation's one segment has the segmentation's name, so `name` may be left out).
 */
export function parseSegmentationList(
  table: DataTable,
  items: readonly SegmentationInput[],
): SegmentChange[] {
  const byName = new Map(table.segmentations.map((s) => [s.name, s]));
  const problems: Problem[] = [];
  const out: SegmentChange[] = [];
  items.forEach((item, i) => {
    const at = `segmentations[${i}]`;
    const category = item.segmentation?.category ?? item.category;
    const name = item.segmentation?.name ?? item.name;
    const segmentation = category === undefined ? undefined : byName.get(category);
    if (!segmentation) {
      problems.push({
        code: "HERALD_VALIDATION",
        params: { reason: `${at} '${category ?? ""}' is not a segmentation of the table` },
        detail: {
          path: item.segmentation ? `${at}.segmentation.category` : `${at}.category`,
          message: `'${category ?? ""}' is not a segmentation of the table`,
        },
      });
      return;
    }
    const segment = segmentation.type === "SIMPLE" ? segmentation.name : name;
    const validSegment =
      segmentation.type === "SIMPLE"
        ? name === undefined || name === segmentation.name
        : name !== undefined && (segmentation.segments ?? []).includes(name);
    if (!validSegment || segment === undefined) {
      problems.push({
        code: "HERALD_VALIDATION",
        params: { reason: `${at} names no segment of '${segmentation.name}'` },
        detail: {
          path: item.segmentation ? `${at}.segmentation.name` : `${at}.name`,
          message: `'${name ?? ""}' is not a segment of '${segmentation.name}'`,
        },
      });
      return;
    }
    out.push({ segmentation: segmentation.name, segment, belongs: item.belongs ?? true });
  });
  if (problems.length > 0) fail(problems);
  return out;
}
