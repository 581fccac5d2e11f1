/**
 * One line per change event, as `herald listen` and `herald tail` print it:
 *
 *     1042  2026-11-30T12:00:00.000Z  UPDATE    Customers  profileId=7 emailAddress=ann@example.com
 *
 * (log position, time, event type, table or trigger source, the record's key). Read from the event
 * objects Herald pushes and lists (docs/change-log.md "The shape of an event"): the current shape
 * (flat attributes, `_links.self.href`, `_event`) and payload version 1 (`tableType`, `tableId`,
 * `data`), leniently: a field missing from an object shows as `?`, never as an error.
 */
import type { Palette } from "./cli-support.js";
import type { TableDirectory, TableInfo } from "./table-directory.js";

export interface EventSummary {
  position: number | undefined;
  occurredAt: string | undefined;
  type: string;
  /** `PROFILE_TABLE`, `CUSTOM_TABLE`, `ETL`, … (undefined when the object does not say). */
  source: string | undefined;
  /** The table's id, or the trigger source element's. */
  elementId: string | undefined;
  /** The record's key as its link names it: a profileId, a business key, an execution id. */
  linkKey: string | undefined;
  /** The attributes of the object (version 1: of its `data`). */
  attributes: Record<string, unknown>;
}

/** `_links.self.href` patterns of SPEC §5 subjects: source, element id, key (in that group order). */
const SUBJECTS: { source: string; pattern: RegExp }[] = [
  { source: "PROFILE_TABLE", pattern: /\/table\/([^/]+)\/profile\/([^/]+)$/ },
  { source: "CUSTOM_TABLE", pattern: /\/customTable\/([^/]+)\/record\/([^/]+)$/ },
  { source: "EXPORT", pattern: /\/exports\/([^/]+)\/executions\/([^/]+)$/ },
  { source: "ETL", pattern: /()\/etl-executions\/([^/]+)$/ },
  {
    source: "FILE_SYNCHRONIZATION",
    pattern: /\/file-references\/([^/]+)\/synchronizations\/([^/]+)$/,
  },
  { source: "CUSTOM_ACTION", pattern: /\/custom-actions\/([^/]+)()$/ },
];

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function text(value: unknown): string | undefined {
  return typeof value === "string" || typeof value === "number" ? String(value) : undefined;
}

function decode(segment: string | undefined): string | undefined {
  if (!segment) return undefined;
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/** What one event object says about itself. */
export function summarizeEvent(object: unknown): EventSummary {
  const o = isObject(object) ? object : {};
  const block = isObject(o._event) ? o._event : {};
  const links = isObject(o._links) ? o._links : {};
  const self = isObject(links.self) ? links.self : {};
  const href = typeof self.href === "string" ? self.href : "";
  const position = typeof block.position === "number" ? block.position : undefined;
  const occurredAt = text(block.occurredAt);
  // Payload version 1 names its table itself, with the record's attributes under `data`.
  if (typeof o.tableType === "string" && isObject(o.data)) {
    return {
      position,
      occurredAt,
      type: text(o.eventType) ?? text(block.type) ?? "?",
      source: o.tableType,
      elementId: text(o.tableId),
      linkKey: text(o.data.businessKey),
      attributes: o.data,
    };
  }
  const subject = SUBJECTS.map((s) => ({ source: s.source, match: s.pattern.exec(href) })).find(
    (s) => s.match,
  );
  const trigger = subject?.source === "ETL" ? text(o["etl.id"]) : undefined;
  return {
    position,
    occurredAt,
    type: text(block.type) ?? "?",
    source: subject?.source,
    elementId: trigger ?? decode(subject?.match?.[1]) ?? undefined,
    linkKey: decode(subject?.match?.[2]) || undefined,
    attributes: o,
  };
}

/** `profileId=7 emailAddress=ann@example.com`: the table's key attributes the object carries. */
export function recordKey(summary: EventSummary, table: TableInfo | undefined): string {
  const parts: string[] = [];
  for (const name of table?.keyAttributes ?? []) {
    const value = summary.attributes[name];
    if (value !== undefined && value !== null) parts.push(`${name}=${renderKey(value)}`);
  }
  if (parts.length > 0) return parts.join(" ");
  return summary.linkKey ?? "?";
}

function renderKey(value: unknown): string {
  return Array.isArray(value) ? value.map(String).join(",") : String(value);
}

/** The table's name, or the trigger source and its element (`ETL 3`, `EXPORT (any)`). */
export async function subjectLabel(
  summary: EventSummary,
  tables: TableDirectory,
): Promise<{ label: string; table: TableInfo | undefined }> {
  if (summary.source === "PROFILE_TABLE" || summary.source === "CUSTOM_TABLE") {
    const table = summary.elementId ? await tables.byId(summary.elementId) : undefined;
    return { label: table?.name ?? `table ${summary.elementId ?? "?"}`, table };
  }
  if (summary.source)
    return { label: `${summary.source} ${summary.elementId ?? ""}`.trim(), table: undefined };
  return { label: "?", table: undefined };
}

const TYPE_WIDTH = "UPDATED_SUBSCRIPTION".length;

/** One aligned line: position, time, type (coloured by kind of change), table, key. */
export function formatEventLine(
  summary: EventSummary,
  label: string,
  key: string,
  colours: Palette,
): string {
  const paint =
    summary.type === "CREATE"
      ? colours.green
      : summary.type === "DELETE"
        ? colours.red
        : summary.type === "UPDATE"
          ? colours.yellow
          : colours.cyan;
  return [
    String(summary.position ?? "?").padStart(8),
    colours.dim(summary.occurredAt ?? "?".padEnd(24)),
    paint(summary.type.padEnd(TYPE_WIDTH)),
    colours.bold(label.padEnd(16)),
    key,
  ].join("  ");
}

/** Summary, label and key of one event object, as a printed line. */
export async function eventLine(
  object: unknown,
  tables: TableDirectory,
  colours: Palette,
): Promise<string> {
  const summary = summarizeEvent(object);
  const { label, table } = await subjectLabel(summary, tables);
  return formatEventLine(summary, label, recordKey(summary, table), colours);
}
