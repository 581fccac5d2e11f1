/**
 * The ETL definition of SPEC §7.1, read leniently as Actito's own files are written: aliases are
 * accepted (`INSERT_ONLY` for `CREATE_ONLY`, `SEMI_COLON_SEPARATED_VALUES` for a `;` CSV…), unknown
 * keys are kept out and reported as warnings, and every real problem is collected with the path of
 * the offending key (400 HERALD_INVALID_ETL_DEFINITION). Pure: binding it to a table is
 * import-mapping.ts; reading files is jobs/import-file-reader.ts.
 */
import type { TableKind } from "./data-table.js";
import type { ErrorDetail } from "./errors.js";
import { HeraldError } from "./errors.js";
import { findUnstorableText, UNSTORABLE_TEXT_MESSAGE } from "./safe-text.js";
import type { Transformation } from "./import-transformations.js";
import { parseTransformations } from "./import-transformations.js";
import { parseSchedule } from "./schedule.js";

export const IMPORT_MODES = ["CREATE_ONLY", "UPDATE_ONLY", "CREATE_UPDATE"] as const;
export type ImportMode = (typeof IMPORT_MODES)[number];
const MODE_ALIASES: Record<string, ImportMode> = {
  CREATE_ONLY: "CREATE_ONLY",
  INSERT_ONLY: "CREATE_ONLY",
  UPDATE_ONLY: "UPDATE_ONLY",
  CREATE_UPDATE: "CREATE_UPDATE",
  INSERT_OR_UPDATE: "CREATE_UPDATE",
  CREATE_OR_UPDATE: "CREATE_UPDATE",
  UPSERT: "CREATE_UPDATE",
};

export const FILE_FORMATS = ["CSV", "NDJSON"] as const;
export type FileFormat = (typeof FILE_FORMATS)[number];
export const FILE_ENCODINGS = ["UTF-8", "ISO-8859-1", "WINDOWS-1252"] as const;
export type FileEncoding = (typeof FILE_ENCODINGS)[number];
const ENCODING_ALIASES: Record<string, FileEncoding> = {
  "UTF-8": "UTF-8",
  UTF8: "UTF-8",
  "ISO-8859-1": "ISO-8859-1",
  ISO_8859_1: "ISO-8859-1",
  "ISO8859-1": "ISO-8859-1",
  LATIN1: "ISO-8859-1",
  "LATIN-1": "ISO-8859-1",
  "WINDOWS-1252": "WINDOWS-1252",
  WINDOWS_1252: "WINDOWS-1252",
  CP1252: "WINDOWS-1252",
};
export const FILE_COMPRESSIONS = ["NONE", "ZIP", "GZIP"] as const;
export type FileCompression = (typeof FILE_COMPRESSIONS)[number];
/** Actito's v4 `format` names, and the separator each means. */
const LEGACY_FORMATS: Record<string, string> = {
  COMMA_SEPARATED_VALUES: ",",
  SEMI_COLON_SEPARATED_VALUES: ";",
  TAB_SEPARATED_VALUES: "\t",
};

export interface FileSettings {
  format: FileFormat;
  separator: string;
  quote: string;
  escape: string;
  encoding: FileEncoding;
  compression: FileCompression;
  fileNamePattern?: string;
}

/** One column of the file and where its value goes. */
export type MappingEntry =
  | { column: string; attribute: string }
  | { column: string; subscription: string }
  | { column: string; segmentation: string };

export interface EtlDefinition {
  name?: string;
  target: { tableType?: TableKind; table: string };
  mode: ImportMode;
  keyAttribute?: string;
  file: FileSettings;
  /** Absent: the header names are attribute names. */
  mapping?: MappingEntry[];
  transformations: Transformation[];
  /** Absent: no limit. */
  maxRejectedRows?: number;
  /** SPEC §7.1 `source`: the file reference the ETL reads (its id once stored). */
  source?: EtlSource;
  /** SPEC §7.1 `launch`; absent: MANUAL. */
  launch?: EtlLaunch;
}

export interface EtlSource {
  fileReference: string;
}

export const LAUNCH_TYPES = ["MANUAL", "SCHEDULED", "ON_FILE"] as const;
export type LaunchType = (typeof LAUNCH_TYPES)[number];
/** How a predefined ETL starts: by a call, at each due time of a schedule, or on each new file. */
export type EtlLaunch =
  { type: "MANUAL" } | { type: "SCHEDULED"; cron: string; timezone: string } | { type: "ON_FILE" };

export interface ParsedDefinition {
  definition: EtlDefinition;
  /** Unknown keys, ignored (SPEC §7: never a 400). */
  warnings: ErrorDetail[];
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

class Problems {
  readonly errors: ErrorDetail[] = [];
  readonly warnings: ErrorDetail[] = [];
  add(path: string, message: string): void {
    this.errors.push({ path, message });
  }
  unknownKeys(object: Json, known: readonly string[], path: string): void {
    for (const key of Object.keys(object))
      if (!known.includes(key))
        this.warnings.push({
          path: path ? `${path}.${key}` : key,
          message: "is not a key Herald knows here; ignored",
        });
  }
}

function text(p: Problems, value: unknown, path: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === "number") return String(value);
  if (typeof value !== "string" || value.trim() === "") {
    p.add(path, "must be a non-empty string");
    return undefined;
  }
  return value;
}

function oneCharacter(p: Problems, value: unknown, path: string, fallback: string): string {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== "string" || [...value].length !== 1) {
    p.add(path, "must be exactly one character");
    return fallback;
  }
  return value;
}

function choice<T extends string>(
  p: Problems,
  value: unknown,
  path: string,
  aliases: Record<string, T>,
  fallback: T,
): T {
  if (value === undefined || value === null) return fallback;
  const found = typeof value === "string" ? aliases[value.trim().toUpperCase()] : undefined;
  if (!found) {
    p.add(path, `must be one of ${[...new Set(Object.values(aliases))].join(", ")}`);
    return fallback;
  }
  return found;
}

function parseTarget(p: Problems, raw: Json): EtlDefinition["target"] {
  // Also accepted at the top level: `table`, `tableType` (as Actito's one-shot calls send them).
  const target = isObject(raw.target) ? raw.target : {};
  if (raw.target !== undefined && !isObject(raw.target)) p.add("target", "must be an object");
  if (isObject(raw.target))
    p.unknownKeys(target, ["tableType", "table", "tableId", "tableName"], "target");
  const table = text(
    p,
    target.table ?? target.tableId ?? target.tableName ?? raw.table ?? raw.tableId,
    "target.table",
  );
  if (table === undefined && p.errors.every((e) => e.path !== "target.table"))
    p.add("target.table", "names the table to import into (its id or name)");
  const rawType = target.tableType ?? raw.tableType;
  let tableType: TableKind | undefined;
  if (rawType !== undefined) {
    tableType = choice(
      p,
      rawType,
      "target.tableType",
      {
        PROFILE_TABLE: "PROFILE_TABLE",
        PROFILE: "PROFILE_TABLE",
        CUSTOM_TABLE: "CUSTOM_TABLE",
        CUSTOM: "CUSTOM_TABLE",
      } as Record<string, TableKind>,
      "PROFILE_TABLE",
    );
  }
  return { table: table ?? "", ...(tableType ? { tableType } : {}) };
}

function parseFile(p: Problems, raw: unknown): FileSettings {
  const file = isObject(raw) ? raw : {};
  if (raw !== undefined && !isObject(raw)) p.add("file", "must be an object");
  p.unknownKeys(
    file,
    [
      "format",
      "separator",
      "quote",
      "escape",
      "encoding",
      "charset",
      "compression",
      "fileNamePattern",
    ],
    "file",
  );
  let format: FileFormat = "CSV";
  let separator = ",";
  const rawFormat =
    typeof file.format === "string" ? file.format.trim().toUpperCase() : file.format;
  if (typeof rawFormat === "string" && rawFormat in LEGACY_FORMATS)
    separator = LEGACY_FORMATS[rawFormat]!;
  else
    format = choice(
      p,
      rawFormat,
      "file.format",
      {
        CSV: "CSV",
        NDJSON: "NDJSON",
        JSONL: "NDJSON",
        JSON_LINES: "NDJSON",
      } as Record<string, FileFormat>,
      "CSV",
    );
  const settings: FileSettings = {
    format,
    separator: oneCharacter(p, file.separator, "file.separator", separator),
    quote: oneCharacter(p, file.quote, "file.quote", '"'),
    escape: oneCharacter(p, file.escape, "file.escape", '"'),
    encoding: choice(p, file.encoding ?? file.charset, "file.encoding", ENCODING_ALIASES, "UTF-8"),
    compression: choice(
      p,
      file.compression,
      "file.compression",
      { NONE: "NONE", ZIP: "ZIP", GZIP: "GZIP", GZ: "GZIP" } as Record<string, FileCompression>,
      "NONE",
    ),
  };
  const pattern = text(p, file.fileNamePattern, "file.fileNamePattern");
  if (pattern !== undefined) settings.fileNamePattern = pattern;
  if (settings.separator === settings.quote) p.add("file.separator", "must differ from file.quote");
  if (/[\r\n]/.test(settings.separator)) p.add("file.separator", "cannot be a line break");
  return settings;
}

function parseMapping(p: Problems, raw: unknown): MappingEntry[] | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (!Array.isArray(raw)) {
    p.add("mapping", "must be a list of {column, attribute | subscription | segmentation}");
    return undefined;
  }
  const out: MappingEntry[] = [];
  const columns = new Set<string>();
  raw.forEach((item: unknown, i) => {
    const at = `mapping[${i}]`;
    if (!isObject(item)) {
      p.add(at, "must be an object {column, attribute | subscription | segmentation}");
      return;
    }
    p.unknownKeys(item, ["column", "attribute", "subscription", "segmentation", "property"], at);
    const column = text(p, item.column, `${at}.column`);
    if (column === undefined) {
      if (item.column === undefined) p.add(`${at}.column`, "names a column of the file");
      return;
    }
    if (columns.has(column)) p.add(`${at}.column`, `'${column}' is mapped twice`);
    columns.add(column);
    const targets = (["attribute", "property", "subscription", "segmentation"] as const).filter(
      (key) => item[key] !== undefined,
    );
    if (targets.length !== 1) {
      p.add(at, "needs exactly one of attribute, subscription or segmentation");
      return;
    }
    const key = targets[0]!;
    const name = text(p, item[key], `${at}.${key}`);
    if (name === undefined) return;
    if (key === "attribute" || key === "property") out.push({ column, attribute: name });
    else if (key === "subscription") out.push({ column, subscription: name });
    else out.push({ column, segmentation: name });
  });
  return out;
}

function parseSource(p: Problems, raw: unknown): EtlSource | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (!isObject(raw)) {
    p.add("source", 'must be an object {"fileReference": "<id or name of a file reference>"}');
    return undefined;
  }
  p.unknownKeys(raw, ["fileReference", "fileReferenceId"], "source");
  const value = raw.fileReference ?? raw.fileReferenceId;
  if (value === undefined || value === null) {
    p.add("source.fileReference", "names the file reference the ETL reads (its id or name)");
    return undefined;
  }
  const reference = text(p, value, "source.fileReference");
  return reference === undefined ? undefined : { fileReference: reference.trim() };
}

function parseLaunch(
  p: Problems,
  raw: unknown,
  source: EtlSource | undefined,
): EtlLaunch | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (!isObject(raw)) {
    p.add("launch", `must be an object {"type": ${LAUNCH_TYPES.join(" | ")}, …}`);
    return undefined;
  }
  const type = choice(
    p,
    raw.type,
    "launch.type",
    { MANUAL: "MANUAL", SCHEDULED: "SCHEDULED", ON_FILE: "ON_FILE" } as Record<string, LaunchType>,
    "MANUAL",
  );
  p.unknownKeys(
    raw,
    type === "SCHEDULED" ? ["type", "cron", "timezone", "timeZone"] : ["type"],
    "launch",
  );
  const needsReference = (what: string) => {
    if (source === undefined)
      p.add("source.fileReference", `is required with launch ${type}: ${what}`);
  };
  if (type === "SCHEDULED") {
    needsReference("each scheduled run imports the file its file reference brings at that time");
    const schedule = parseSchedule(raw, (path, message) => p.add(path, message), "launch");
    return schedule ? { type, cron: schedule.cron, timezone: schedule.timezone } : undefined;
  }
  if (type === "ON_FILE") needsReference("the ETL runs when its file reference brings a new file");
  return { type };
}

const TOP_LEVEL_KEYS = [
  "name",
  "target",
  "table",
  "tableId",
  "tableType",
  "mode",
  "keyAttribute",
  "headerKeyColumn",
  "file",
  "format",
  "charset",
  "encoding",
  "separator",
  "mapping",
  "transformations",
  "maxRejectedRows",
  "source",
  "launch",
  "id",
  "entity",
];

/** Parses an ETL definition (the JSON of `etlDefinition`, a predefined ETL, or v4 `parameters`). */
export function parseEtlDefinition(raw: unknown): ParsedDefinition {
  const p = new Problems();
  if (!isObject(raw)) {
    throw new HeraldError("HERALD_INVALID_ETL_DEFINITION", { reason: "it must be a JSON object" }, [
      { path: "", message: "must be a JSON object" },
    ]);
  }
  const unstorable = findUnstorableText(raw, "");
  if (unstorable !== undefined) p.add(unstorable, UNSTORABLE_TEXT_MESSAGE);
  p.unknownKeys(raw, TOP_LEVEL_KEYS, "");
  const definition: EtlDefinition = {
    target: parseTarget(p, raw),
    mode: choice(p, raw.mode, "mode", MODE_ALIASES, "CREATE_UPDATE"),
    // v4 `format`, `charset` and `separator` sit beside the other parameters.
    file: parseFile(p, {
      ...(raw.format !== undefined ? { format: raw.format } : {}),
      ...(raw.charset !== undefined ? { charset: raw.charset } : {}),
      ...(raw.encoding !== undefined ? { encoding: raw.encoding } : {}),
      ...(raw.separator !== undefined ? { separator: raw.separator } : {}),
      ...(isObject(raw.file) ? raw.file : {}),
    }),
    transformations: parseTransformations(raw.transformations, (path, message) =>
      p.add(path, message),
    ),
  };
  if (raw.file !== undefined && !isObject(raw.file)) p.add("file", "must be an object");
  const name = text(p, raw.name, "name");
  if (name !== undefined) definition.name = name;
  const key = text(p, raw.keyAttribute ?? raw.headerKeyColumn, "keyAttribute");
  if (key !== undefined) definition.keyAttribute = key;
  const mapping = parseMapping(p, raw.mapping);
  if (mapping !== undefined) definition.mapping = mapping;
  if (raw.maxRejectedRows !== undefined && raw.maxRejectedRows !== null) {
    const max = raw.maxRejectedRows;
    if (typeof max !== "number" || !Number.isInteger(max) || max < 0)
      p.add("maxRejectedRows", "must be a whole number from 0 (no limit when left out)");
    else definition.maxRejectedRows = max;
  }
  const source = parseSource(p, raw.source);
  if (source !== undefined) definition.source = source;
  const launch = parseLaunch(p, raw.launch, source);
  if (launch !== undefined) definition.launch = launch;
  if (p.errors.length > 0) {
    const first = p.errors[0]!;
    throw new HeraldError(
      "HERALD_INVALID_ETL_DEFINITION",
      { reason: `${first.path} ${first.message}` },
      p.errors,
    );
  }
  return { definition, warnings: p.warnings };
}

/** Parses the JSON text of a definition part (400 HERALD_INVALID_ETL_DEFINITION when it is no JSON). */
export function parseEtlDefinitionText(text: string): ParsedDefinition {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new HeraldError(
      "HERALD_INVALID_ETL_DEFINITION",
      { reason: `it is not valid JSON (${(error as Error).message})` },
      [{ path: "", message: "is not valid JSON" }],
    );
  }
  return parseEtlDefinition(raw);
}
