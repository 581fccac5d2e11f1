/**
 * A list of change-log events as the console shows it (a table's recent events, the change-log
 * browser): position, time, type, subject, changed fields, and the event's JSON payload (exactly
 * what the pull API answers) behind a `<details>`. Every value goes through `html`, so markup in a
 * record value is shown as text.
 */
import type { DataObject } from "../../domain/event-payload.js";
import { sourceKey } from "../../storage/console-table-reads.js";
import type { Column } from "../console-page.js";
import { dataTable, entityHref } from "../console-page.js";
import type { SafeHtml } from "../html.js";
import { html, when } from "../html.js";

/** What an event is about, read from its `_links.self.href` (docs/change-log.md lists the forms). */
export interface EventSubject {
  source: string;
  /** The table, ETL, export… id. */
  sourceId: string | undefined;
  /** The record's key (profileId, business key) or the execution's id. */
  key: string | undefined;
}

const SUBJECT_FORMS: { source: string; pattern: RegExp; id?: number; key?: number }[] = [
  { source: "PROFILE_TABLE", pattern: /\/table\/([^/]+)\/profile\/([^/?]+)$/, id: 1, key: 2 },
  { source: "CUSTOM_TABLE", pattern: /\/customTable\/([^/]+)\/record\/([^/?]+)$/, id: 1, key: 2 },
  { source: "ETL", pattern: /\/etl-executions\/([^/?]+)$/, key: 1 },
  { source: "EXPORT", pattern: /\/exports\/([^/]+)\/executions\/([^/?]+)$/, id: 1, key: 2 },
  {
    source: "FILE_SYNCHRONIZATION",
    pattern: /\/file-references\/([^/]+)\/synchronizations\/([^/?]+)$/,
    id: 1,
    key: 2,
  },
  { source: "CUSTOM_ACTION", pattern: /\/custom-actions\/([^/?]+)$/, id: 1 },
];

function decoded(part: string | undefined): string | undefined {
  if (part === undefined) return undefined;
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

export function subjectOf(event: DataObject): EventSubject | undefined {
  const href = event._links?.self?.href;
  if (typeof href !== "string") return undefined;
  for (const form of SUBJECT_FORMS) {
    const match = form.pattern.exec(href);
    if (!match) continue;
    return {
      source: form.source,
      sourceId: decoded(form.id === undefined ? undefined : match[form.id]),
      key: decoded(form.key === undefined ? undefined : match[form.key]),
    };
  }
  return undefined;
}

/** A table of the entity as the event list names it. */
export interface KnownTable {
  kind: "profile" | "custom";
  id: string;
  name: string;
}

/** Sources that are not tables, in words. */
const SOURCE_WORDS: Record<string, string> = {
  PROFILE_TABLE: "Profile table",
  CUSTOM_TABLE: "Custom table",
  ETL: "Import (ETL)",
  EXPORT: "Export",
  FILE_SYNCHRONIZATION: "File synchronisation",
  CUSTOM_ACTION: "Custom action",
};

export function sourceWords(source: string): string {
  return SOURCE_WORDS[source] ?? source;
}

export interface EventListOptions {
  entity: string;
  /**
   * Adds a column naming each event's table or job, the tables (keyed by sourceKey) linked to
   * their pages.
   */
  tables?: Map<string, KnownTable>;
  empty: string;
}

export function eventList(events: DataObject[], options: EventListOptions): SafeHtml {
  const columns: Column<DataObject>[] = [
    { label: "Position", numeric: true, cell: (e) => e._event.position },
    { label: "Time", cell: (e) => html`<span class="nowrap">${when(e._event.occurredAt)}</span>` },
    { label: "Event", cell: (e) => html`<span class="badge muted">${e._event.type}</span>` },
  ];
  const tables = options.tables;
  if (tables) columns.push({ label: "Source", cell: (e) => sourceCell(e, options.entity, tables) });
  columns.push(
    { label: "Key", cell: (e) => html`<code>${subjectOf(e)?.key ?? "—"}</code>` },
    {
      label: "Changed fields",
      cell: (e) => (e._event.changedFields.length > 0 ? e._event.changedFields.join(", ") : "—"),
    },
    {
      label: "Payload",
      cell: (e) =>
        html`<details class="event-payload">
          <summary>JSON<span class="visually-hidden"> of event ${e._event.position}</span></summary>
          <pre>${JSON.stringify(e, null, 2)}</pre>
        </details>`,
    },
  );
  return html`<div class="event-list">
    ${dataTable(columns, events, { empty: options.empty })}
  </div>`;
}

function sourceCell(event: DataObject, entity: string, tables: Map<string, KnownTable>): SafeHtml {
  const subject = subjectOf(event);
  if (!subject) return html`—`;
  const table =
    subject.sourceId === undefined
      ? undefined
      : tables.get(sourceKey(subject.source, subject.sourceId));
  if (table)
    return html`<a href="${entityHref(entity, "tables", table.kind, table.id)}">${table.name}</a>`;
  return html`${sourceWords(subject.source)}${subject.sourceId ? html` <code>${subject.sourceId}</code>` : ""}`;
}
