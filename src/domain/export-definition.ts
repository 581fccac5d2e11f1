/**
 * An export's definition (SPEC §7.3): what a request may hold, checked and normalised, and the
 * checks against the table it reads. Pure: the routes look the table up and hand it in.
 */
import type { Condition } from "./conditions.js";
import { CONDITION_OPERATORS, validateConditions } from "./conditions.js";
import type { AttributeValue } from "./change-event.js";
import type { DataTable, TableKind } from "./data-table.js";
import { attributeNames, GENERATED_KEY_ATTRIBUTE, TABLE_KINDS } from "./data-table.js";
import type { ErrorDetail } from "./errors.js";
import { HeraldError } from "./errors.js";

export const EXPORT_MODES = ["FULL", "INCREMENTAL"] as const;
export type ExportMode = (typeof EXPORT_MODES)[number];
export const EXPORT_FORMATS = ["CSV", "NDJSON"] as const;
export type ExportFormatType = (typeof EXPORT_FORMATS)[number];
export const EXPORT_COMPRESSIONS = ["NONE", "GZIP", "ZIP"] as const;
export type ExportCompression = (typeof EXPORT_COMPRESSIONS)[number];
/** The column of an INCREMENTAL export that says what happened to the row. */
export const OPERATION_COLUMN = "_operation";
export const EXPORT_OPERATIONS = ["CREATE", "UPDATE", "DELETE"] as const;
export type ExportOperation = (typeof EXPORT_OPERATIONS)[number];

export interface ExportFilter {
  /** AND-ed, checked on the record's state (as a subscription's stateAfterOperation). */
  conditions: Condition[];
  /** Profiles in this segment (a SIMPLE segmentation's one segment has its name). */
  segmentation: { name: string; segment: string | null } | null;
  /** Profiles subscribed to this subscription. */
  subscription: string | null;
}

export interface ExportFormat {
  type: ExportFormatType;
  /** CSV only: one character, `;` by default. */
  separator: string;
  compression: ExportCompression;
}

export interface ExportDefinition {
  name: string;
  source: { tableType: TableKind; table: string };
  /** Attribute names, in column order; null: every attribute of the table. */
  fields: string[] | null;
  filter: ExportFilter;
  mode: ExportMode;
  format: ExportFormat;
  /** `{cron, timezone}` as part B's parseSchedule checked it; null: run on demand only. */
  schedule: Record<string, unknown> | null;
  destination: { fileReference: string } | null;
}

type Add = (path: string, message: string) => void;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function oneOf<T extends string>(
  raw: unknown,
  allowed: readonly T[],
  fallback: T,
  path: string,
  add: Add,
): T {
  if (raw === undefined || raw === null) return fallback;
  const text = typeof raw === "string" ? raw.toUpperCase() : raw;
  if (typeof text === "string" && (allowed as readonly string[]).includes(text)) return text as T;
  add(path, `must be one of ${allowed.join(", ")}`);
  return fallback;
}

function parseConditions(raw: unknown, add: Add): Condition[] {
  if (raw === undefined || raw === null) return [];
  // Also accepted: the matchingConditions object; its stateAfterOperation list is what applies.
  const list = isObject(raw) ? raw.stateAfterOperation : raw;
  if (!Array.isArray(list)) {
    add("filter.conditions", "must be a list of {attribute, operator, value}");
    return [];
  }
  const conditions: Condition[] = [];
  list.forEach((item, i) => {
    const at = `filter.conditions[${i}]`;
    if (!isObject(item) || typeof item.attribute !== "string") {
      add(at, "must be an object {attribute, operator, value}");
      return;
    }
    const operator = typeof item.operator === "string" ? item.operator.toUpperCase() : "";
    if (!(CONDITION_OPERATORS as readonly string[]).includes(operator) || operator === "CHANGED") {
      add(
        `${at}.operator`,
        `must be one of ${CONDITION_OPERATORS.filter((o) => o !== "CHANGED").join(", ")}`,
      );
      return;
    }
    const condition: Condition = {
      attribute: item.attribute,
      operator: operator as Condition["operator"],
    };
    if (item.value !== undefined) condition.value = item.value as AttributeValue;
    conditions.push(condition);
  });
  return conditions;
}

function parseFilter(raw: unknown, add: Add): ExportFilter {
  const filter: ExportFilter = { conditions: [], segmentation: null, subscription: null };
  if (raw === undefined || raw === null) return filter;
  if (!isObject(raw)) {
    add("filter", "must be an object {conditions, segmentation, subscription}");
    return filter;
  }
  filter.conditions = parseConditions(raw.conditions, add);
  const seg = raw.segmentation;
  if (seg !== undefined && seg !== null) {
    if (typeof seg === "string") filter.segmentation = { name: seg, segment: null };
    else if (isObject(seg) && typeof seg.name === "string") {
      const segment = seg.segment ?? seg.category;
      if (segment !== undefined && segment !== null && typeof segment !== "string")
        add("filter.segmentation.segment", "must be a string");
      filter.segmentation = {
        name: seg.name,
        segment: typeof segment === "string" ? segment : null,
      };
    } else add("filter.segmentation", "must be {name, segment}");
  }
  const sub = raw.subscription;
  if (sub !== undefined && sub !== null) {
    if (typeof sub === "string" && sub !== "") filter.subscription = sub;
    else if (isObject(sub) && typeof sub.name === "string") filter.subscription = sub.name;
    else add("filter.subscription", "must be the name of one of the table's subscriptions");
  }
  return filter;
}

function parseFormat(raw: unknown, add: Add): ExportFormat {
  const format: ExportFormat = { type: "CSV", separator: ";", compression: "NONE" };
  if (raw === undefined || raw === null) return format;
  if (!isObject(raw)) {
    add("format", "must be an object {type, separator, compression}");
    return format;
  }
  format.type = oneOf(raw.type ?? raw.format, EXPORT_FORMATS, "CSV", "format.type", add);
  format.compression = oneOf(
    raw.compression,
    EXPORT_COMPRESSIONS,
    "NONE",
    "format.compression",
    add,
  );
  if (raw.separator !== undefined && raw.separator !== null) {
    const sep = raw.separator;
    if (typeof sep !== "string" || [...sep].length !== 1 || /["\r\n]/.test(sep))
      add("format.separator", "must be one character, not a quote or a line break");
    else format.separator = sep;
  }
  return format;
}

/**
 * Reads a request body. Problems go through `add` (each with its path); `parseSchedule` is the
 * schedule's own check (part B), handed in so that this file stays free of it.
 */
export function parseExportDefinition(
  raw: unknown,
  add: Add,
  parseSchedule: (raw: unknown, add: Add, path: string) => Record<string, unknown> | undefined,
): ExportDefinition | undefined {
  if (!isObject(raw)) {
    add("", "the body must be a JSON object");
    return undefined;
  }
  const name = typeof raw.name === "string" ? raw.name.trim() : "";
  if (name === "" || name.length > 200) add("name", "is required: a text of 1 to 200 characters");
  const source = isObject(raw.source) ? raw.source : undefined;
  const table = source?.table ?? source?.tableId ?? source?.tableName;
  if (!source || (typeof table !== "string" && typeof table !== "number"))
    add("source.table", "is required: the id or name of a profile or custom table");
  const tableType = oneOf(source?.tableType, TABLE_KINDS, "PROFILE_TABLE", "source.tableType", add);
  let fields: string[] | null = null;
  if (raw.fields !== undefined && raw.fields !== null) {
    if (
      !Array.isArray(raw.fields) ||
      raw.fields.length === 0 ||
      raw.fields.some((f) => typeof f !== "string")
    )
      add("fields", "must be a non-empty list of attribute names");
    else if (new Set(raw.fields).size !== raw.fields.length)
      add("fields", "names an attribute twice");
    else fields = raw.fields as string[];
  }
  let destination: ExportDefinition["destination"] = null;
  if (raw.destination !== undefined && raw.destination !== null) {
    const ref = isObject(raw.destination) ? raw.destination.fileReference : undefined;
    if (typeof ref === "string" || typeof ref === "number")
      destination = { fileReference: String(ref) };
    else add("destination.fileReference", "must be the id of an SFTP or DIRECTORY file reference");
  }
  let schedule: Record<string, unknown> | null = null;
  if (raw.schedule !== undefined && raw.schedule !== null)
    schedule = parseSchedule(raw.schedule, add, "schedule") ?? null;
  return {
    name,
    source: { tableType, table: String(table ?? "") },
    fields,
    filter: parseFilter(raw.filter, add),
    mode: oneOf(raw.mode, EXPORT_MODES, "FULL", "mode", add),
    format: parseFormat(raw.format, add),
    schedule,
    destination,
  };
}

/** The definition's problems as the 400 of the catalogue; nothing when there are none. */
export function invalidDefinition(problems: readonly ErrorDetail[]): HeraldError | undefined {
  if (problems.length === 0) return undefined;
  return new HeraldError(
    "HERALD_INVALID_EXPORT_DEFINITION",
    { reason: problems.map((p) => (p.path ? `${p.path} ${p.message}` : p.message)).join("; ") },
    [...problems],
  );
}

/** The attribute names a table's export may list (profiles: the technical ones first). */
export function exportableFields(table: DataTable): string[] {
  return attributeNames(table);
}

/** The fields an export writes, in column order. */
export function exportFields(definition: ExportDefinition, table: DataTable): string[] {
  return definition.fields ?? exportableFields(table);
}

/** The header row: `_operation` first for INCREMENTAL. */
export function exportColumns(definition: ExportDefinition, table: DataTable): string[] {
  const fields = exportFields(definition, table);
  return definition.mode === "INCREMENTAL" ? [OPERATION_COLUMN, ...fields] : fields;
}

/**
 * Checks the definition against the table it reads: every field and condition attribute is the
 * table's, the segmentation, segment and subscription are the table's (profile tables only).
 * Throws the catalogue error of the first problem.
 */
export function checkAgainstTable(definition: ExportDefinition, table: DataTable): void {
  const known = new Set(exportableFields(table));
  definition.fields?.forEach((field, i) => {
    if (!known.has(field))
      throw new HeraldError("HERALD_UNKNOWN_ATTRIBUTE", { attribute: field, table: table.name }, [
        {
          path: `fields[${i}]`,
          message: `'${field}' is not an attribute of table '${table.name}'`,
        },
      ]);
  });
  const identifying = identifyingFields(table);
  if (
    definition.mode === "INCREMENTAL" &&
    definition.fields &&
    !definition.fields.some((field) => identifying.includes(field))
  )
    throw invalidDefinition([
      {
        path: "fields",
        message: `must include a field that identifies a record (${identifying.join(", ")}): an INCREMENTAL export's DELETE rows hold only the record's keys`,
      },
    ])!;
  const problems = validateConditions(
    { stateAfterOperation: definition.filter.conditions },
    [...known],
    "filter.conditions",
  ).map((p) => ({ ...p, path: p.path.replace(".stateAfterOperation", "") }));
  const unknown = problems.find((p) => p.path.endsWith(".attribute"));
  if (unknown) {
    const index = Number(/\[(\d+)\]/.exec(unknown.path)?.[1] ?? 0);
    const attribute = definition.filter.conditions[index]?.attribute ?? "";
    throw new HeraldError("HERALD_UNKNOWN_ATTRIBUTE", { attribute, table: table.name }, [unknown]);
  }
  const invalid = invalidDefinition(problems);
  if (invalid) throw invalid;
  const { segmentation, subscription } = definition.filter;
  if ((segmentation || subscription) && table.kind !== "PROFILE_TABLE")
    throw invalidDefinition([
      {
        path: segmentation ? "filter.segmentation" : "filter.subscription",
        message: "applies to profile tables only",
      },
    ])!;
  if (segmentation) {
    const found = table.segmentations.find((s) => s.name === segmentation.name);
    if (!found)
      throw new HeraldError(
        "HERALD_SEGMENTATION_NOT_FOUND",
        { segmentation: segmentation.name, table: table.name },
        [{ path: "filter.segmentation.name", message: "is not a segmentation of the table" }],
      );
    if (found.type === "EXCLUSIVE" && segmentation.segment === null)
      throw invalidDefinition([
        {
          path: "filter.segmentation.segment",
          message: `is required: '${found.name}' is EXCLUSIVE (${(found.segments ?? []).join(", ")})`,
        },
      ])!;
    const segments = found.type === "SIMPLE" ? [found.name] : (found.segments ?? []);
    const segment = segmentation.segment ?? found.name;
    if (!segments.includes(segment))
      throw new HeraldError(
        "HERALD_UNKNOWN_SEGMENT",
        { segment, segmentation: found.name, table: table.name },
        [{ path: "filter.segmentation.segment", message: `one of ${segments.join(", ")}` }],
      );
  }
  if (subscription && !table.subscriptions.some((s) => s.name === subscription))
    throw new HeraldError(
      "HERALD_PROFILE_SUBSCRIPTION_NOT_FOUND",
      { subscription, table: table.name },
      [{ path: "filter.subscription", message: "is not a subscription of the table" }],
    );
}

/** The fields that identify one record: profileId (profiles), the primary key, unique attributes. */
function identifyingFields(table: DataTable): string[] {
  const keys = table.attributes.filter((a) => a.unique).map((a) => a.name);
  if (table.kind === "PROFILE_TABLE") return ["profileId", ...keys];
  const primary = table.primaryKeyAttribute ?? GENERATED_KEY_ATTRIBUTE;
  return [primary, ...keys.filter((name) => name !== primary)];
}

/** The segment a segmentation filter asks for (a SIMPLE segmentation's is its own name). */
export function wantedSegment(filter: ExportFilter): { name: string; segment: string } | null {
  if (!filter.segmentation) return null;
  return {
    name: filter.segmentation.name,
    segment: filter.segmentation.segment ?? filter.segmentation.name,
  };
}

/** The file's name: the export's name made safe, the execution id, the extension. */
export function exportFileName(
  exportName: string,
  executionId: string,
  format: ExportFormat,
): string {
  const base = exportName.replace(/[^A-Za-z0-9._-]+/g, "_").replace(/^[._]+/, "") || "export";
  const ext = format.type === "CSV" ? "csv" : "ndjson";
  const suffix =
    format.compression === "GZIP"
      ? `.${ext}.gz`
      : format.compression === "ZIP"
        ? ".zip"
        : `.${ext}`;
  return `${base}-${executionId}${suffix}`;
}
