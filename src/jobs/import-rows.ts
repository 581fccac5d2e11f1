/**
 * From a file's cells to a write (SPEC §7.1): the definition bound to its table (`bindImport`: the
 * mapping, the key, the mode, checked before anything runs), the header checked against it
 * (`planColumns`), then each row transformed and validated exactly as the API validates the same
 * write (`mapRow`: the same parsers, so the same codes and messages), or rejected with the column at
 * fault.
 */
import type { ProfileWrite } from "../capture/profile-writer.js";
import { parseProfileInput } from "../capture/profile-writer.js";
import { parseRecordInput, primaryKeyOf } from "../capture/custom-record-writer.js";
import type { AttributeMap } from "../domain/change-event.js";
import type { DataTable } from "../domain/data-table.js";
import { PROFILE_TECHNICAL_ATTRIBUTES } from "../domain/data-table.js";
import type { ErrorDetail } from "../domain/errors.js";
import { HeraldError } from "../domain/errors.js";
import type { EtlDefinition, ImportMode } from "../domain/etl-definition.js";
import type { ColumnTransforms } from "../domain/import-transformations.js";
import {
  compileTransformations,
  transformCell,
  TransformationFailed,
} from "../domain/import-transformations.js";
import { keyText } from "../domain/record-keys.js";
import { ABSENT } from "./import-file-reader.js";
import type { NamedValue, SegmentationInput } from "../domain/record-input.js";

/** Where a column's value goes. */
export type ColumnTarget =
  | { kind: "attribute"; name: string }
  | { kind: "subscription"; name: string }
  | { kind: "segmentation"; name: string; simple: boolean };

/** A definition checked against its table. */
export interface BoundImport {
  table: DataTable;
  mode: ImportMode;
  /** The attribute rows are matched on; undefined: every row creates (CREATE_ONLY only). */
  keyAttribute: string | undefined;
  /** Column → target; undefined when the header names the attributes. */
  mapping: Map<string, ColumnTarget> | undefined;
  transforms: ColumnTransforms;
}

function definitionError(details: ErrorDetail[]): HeraldError {
  const first = details[0]!;
  return new HeraldError(
    "HERALD_INVALID_ETL_DEFINITION",
    { reason: `${first.path} ${first.message}` },
    details,
  );
}

/** Checks the mapping, key and mode against the table (400 naming the offending key). */
export function bindImport(definition: EtlDefinition, table: DataTable): BoundImport {
  const problems: ErrorDetail[] = [];
  const add = (path: string, message: string) => problems.push({ path, message });
  const attributes = new Map(table.attributes.map((a) => [a.name, a]));
  const isProfile = table.kind === "PROFILE_TABLE";
  const technical = new Set<string>(PROFILE_TECHNICAL_ATTRIBUTES);

  let mapping: Map<string, ColumnTarget> | undefined;
  if (definition.mapping) {
    mapping = new Map();
    definition.mapping.forEach((entry, i) => {
      const at = `mapping[${i}]`;
      if ("attribute" in entry) {
        if (isProfile && technical.has(entry.attribute))
          add(`${at}.attribute`, `'${entry.attribute}' is maintained by Herald`);
        else if (!attributes.has(entry.attribute))
          add(
            `${at}.attribute`,
            `'${entry.attribute}' is not an attribute of table '${table.name}'`,
          );
        else mapping!.set(entry.column, { kind: "attribute", name: entry.attribute });
      } else if ("subscription" in entry) {
        if (!isProfile) add(`${at}.subscription`, "custom tables have no subscriptions");
        else if (!table.subscriptions.some((s) => s.name === entry.subscription))
          add(
            `${at}.subscription`,
            `'${entry.subscription}' is not a subscription of table '${table.name}'`,
          );
        else mapping!.set(entry.column, { kind: "subscription", name: entry.subscription });
      } else {
        const segmentation = table.segmentations.find((s) => s.name === entry.segmentation);
        if (!isProfile) add(`${at}.segmentation`, "custom tables have no segmentations");
        else if (!segmentation)
          add(
            `${at}.segmentation`,
            `'${entry.segmentation}' is not a segmentation of table '${table.name}'`,
          );
        else
          mapping!.set(entry.column, {
            kind: "segmentation",
            name: segmentation.name,
            simple: segmentation.type === "SIMPLE",
          });
      }
    });
  }

  // The key: profiles match on a unique attribute, custom tables on their primary key.
  let keyAttribute: string | undefined;
  const unique = table.attributes.filter((a) => a.unique).map((a) => a.name);
  if (isProfile) {
    keyAttribute = definition.keyAttribute ?? unique[0];
    if (definition.keyAttribute !== undefined && !unique.includes(definition.keyAttribute))
      add(
        "keyAttribute",
        `'${definition.keyAttribute}' is not a unique attribute of table '${table.name}'${unique.length ? ` (unique: ${unique.join(", ")})` : ""}`,
      );
    if (keyAttribute === undefined && definition.mode !== "CREATE_ONLY")
      add(
        "mode",
        `${definition.mode} needs a unique attribute to find profiles by, and table '${table.name}' has none; use CREATE_ONLY`,
      );
  } else {
    keyAttribute = primaryKeyOf(table);
    if (definition.keyAttribute !== undefined && definition.keyAttribute !== keyAttribute)
      add(
        "keyAttribute",
        `records of custom table '${table.name}' are matched on its primary key '${keyAttribute}'`,
      );
  }
  if (
    keyAttribute !== undefined &&
    mapping &&
    ![...mapping.values()].some((t) => t.kind === "attribute" && t.name === keyAttribute) &&
    definition.mode !== "CREATE_ONLY"
  )
    add("mapping", `maps no column to the key attribute '${keyAttribute}'`);
  if (problems.length > 0) throw definitionError(problems);
  return {
    table,
    mode: definition.mode,
    keyAttribute,
    mapping,
    transforms: compileTransformations(definition.transformations),
  };
}

/** Each column of the file, in file order, with where it goes (undefined: not imported). */
export type ColumnPlan = { column: string; target: ColumnTarget | undefined }[];

/**
 * Checks a header (CSV's first line, NDJSON's first object's keys): without a mapping every column
 * must be an attribute; with one, every mapped column must be present.
 */
export function planColumns(bound: BoundImport, header: readonly string[]): ColumnPlan {
  const problems: ErrorDetail[] = [];
  let unknownColumn: string | undefined;
  const seen = new Set<string>();
  header.forEach((column, i) => {
    if (seen.has(column))
      problems.push({ path: `header[${i}]`, message: `column '${column}' appears twice` });
    seen.add(column);
  });
  const plan: ColumnPlan = header.map((column, i) => {
    if (bound.mapping) return { column, target: bound.mapping.get(column) };
    const attribute = bound.table.attributes.find((a) => a.name === column);
    if (!attribute) {
      unknownColumn ??= column;
      problems.push({
        path: `header[${i}]`,
        message: `column '${column}' is not an attribute of table '${bound.table.name}' (map it with 'mapping', or rename it)`,
      });
    }
    return { column, target: attribute ? { kind: "attribute", name: column } : undefined };
  });
  if (bound.mapping)
    for (const column of bound.mapping.keys())
      if (!seen.has(column))
        problems.push({
          path: "mapping",
          message: `column '${column}' is not in the file's header`,
        });
  if (
    bound.keyAttribute !== undefined &&
    bound.mode !== "CREATE_ONLY" &&
    !plan.some((c) => c.target?.kind === "attribute" && c.target.name === bound.keyAttribute)
  )
    problems.push({
      path: "header",
      message: `no column holds the key attribute '${bound.keyAttribute}'`,
    });
  if (problems.length > 0) {
    const first = problems[0]!;
    if (unknownColumn !== undefined)
      throw new HeraldError(
        "HERALD_UNKNOWN_ATTRIBUTE",
        { attribute: unknownColumn, table: bound.table.name },
        problems,
      );
    throw new HeraldError("HERALD_INVALID_FILE", { reason: first.message }, problems);
  }
  return plan;
}

/** A row ready to write: the validated write and the text of its key. */
export type MappedRow =
  | {
      kind: "profile";
      write: ProfileWrite;
      /** The key attribute's value as a key row holds it; undefined without a key. */
      key: string | undefined;
    }
  | { kind: "record"; provided: AttributeMap; key: string | undefined }
  | { kind: "rejected"; column: string | undefined; code: string; message: string };

const TRUE_TEXT = new Set(["true", "1", "yes", "y", "t"]);
const FALSE_TEXT = new Set(["false", "0", "no", "n", "f"]);

function rejected(column: string | undefined, code: string, message: string): MappedRow {
  return { kind: "rejected", column, code, message };
}

/** A cell as the write takes it: text is transformed; empty text is no value (null). */
function cellValue(bound: BoundImport, column: string, raw: unknown): unknown {
  if (typeof raw === "string") {
    const value = transformCell(bound.transforms, column, raw);
    return value === "" ? null : value;
  }
  if (raw === null || raw === undefined) {
    const value = transformCell(bound.transforms, column, "");
    return value === "" ? null : value;
  }
  if ((typeof raw === "number" || typeof raw === "boolean") && bound.transforms.has(column))
    return transformCell(bound.transforms, column, String(raw));
  return raw;
}

function flag(value: unknown): boolean | undefined {
  if (typeof value === "boolean") return value;
  const text = String(value).trim().toLowerCase();
  if (TRUE_TEXT.has(text)) return true;
  if (FALSE_TEXT.has(text)) return false;
  return undefined;
}

/**
 * Maps one row (`cells[i]` is the value of `plan[i]`) to a validated write, or the reason it is
 * rejected. Validation is the API's own (parseProfileInput, parseRecordInput): a row is accepted
 * exactly when the same write through the API would pass validation.
 */
export function mapRow(bound: BoundImport, plan: ColumnPlan, cells: readonly unknown[]): MappedRow {
  const attributes: NamedValue[] = [];
  const attributeColumns: string[] = [];
  const subscriptions: { name: string; subscribe: boolean }[] = [];
  const segmentations: SegmentationInput[] = [];
  const subscriptionColumns: string[] = [];
  const segmentationColumns: string[] = [];
  for (let i = 0; i < plan.length; i++) {
    const { column, target } = plan[i]!;
    if (!target || cells[i] === ABSENT) continue;
    let value: unknown;
    try {
      value = cellValue(bound, column, cells[i]);
    } catch (error) {
      if (error instanceof TransformationFailed)
        return rejected(column, "HERALD_INVALID_VALUE", `${column}: ${error.message}`);
      throw error;
    }
    if (target.kind === "attribute") {
      attributes.push({ name: target.name, value });
      attributeColumns.push(column);
      continue;
    }
    if (value === null) continue; // an empty membership cell changes nothing
    if (target.kind === "subscription") {
      const subscribe = flag(value);
      if (subscribe === undefined)
        return rejected(
          column,
          "HERALD_INVALID_VALUE",
          `${column} must be true or false (or 1/0, yes/no)`,
        );
      subscriptions.push({ name: target.name, subscribe });
      subscriptionColumns.push(column);
    } else if (target.simple) {
      const belongs = flag(value);
      if (belongs === undefined)
        return rejected(
          column,
          "HERALD_INVALID_VALUE",
          `${column} must be true or false (or 1/0, yes/no)`,
        );
      segmentations.push({ category: target.name, belongs });
      segmentationColumns.push(column);
    } else {
      segmentations.push({ category: target.name, name: String(value), belongs: true });
      segmentationColumns.push(column);
    }
  }
  try {
    if (bound.table.kind === "PROFILE_TABLE") {
      const write = parseProfileInput(bound.table, { attributes, subscriptions, segmentations });
      return { kind: "profile", write, key: keyOf(bound, write.attributes) };
    }
    const provided = parseRecordInput(bound.table, attributes);
    return { kind: "record", provided, key: keyOf(bound, provided) };
  } catch (error) {
    if (!(error instanceof HeraldError)) throw error;
    const columns = {
      attributes: attributeColumns,
      properties: attributeColumns,
      subscriptions: subscriptionColumns,
      segmentations: segmentationColumns,
    };
    return rejected(columnOf(error, columns), error.code, error.message);
  }
}

function keyOf(bound: BoundImport, values: AttributeMap): string | undefined {
  return bound.keyAttribute === undefined ? undefined : keyText(values[bound.keyAttribute]);
}

/** The column an API validation error points at (`attributes[2].value` → the third attribute column). */
function columnOf(
  error: HeraldError,
  columns: Record<string, readonly string[]>,
): string | undefined {
  const path = error.details[0]?.path ?? "";
  const match = /^(\w+)\[(\d+)\]/.exec(path);
  return match ? columns[match[1]!]?.[Number(match[2])] : undefined;
}
