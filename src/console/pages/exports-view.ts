/** What the Exports pages share: an export and an execution as the API answers them, in words. */
import type { ConsoleApi } from "../console-api.js";
import { entityHref } from "../console-page.js";
import type { SafeHtml } from "../html.js";
import { html } from "../html.js";
import type { ReferenceList } from "./files-view.js";
import { entityApi, referenceHref } from "./files-view.js";

/** GET …/exports/{id}, as the API answers it (export-schemas.ts). */
export interface ExportBody {
  id: string;
  name: string;
  source: { tableType: string; table: string };
  fields: string[] | null;
  mode: string;
  format: { type: string; separator: string; compression: string };
  schedule: { cron?: unknown; timezone?: unknown } | null;
  nextRunAt?: string;
  destination: { fileReference: string } | null;
  createdAt: string;
  updatedAt: string;
}

export interface ExportList {
  exports: ExportBody[];
  page: number;
  pageSize: number;
  totalElements: number;
}

/** GET …/executions/{id}, as the API answers it. */
export interface ExportExecutionBody {
  id: string;
  exportId: string;
  status: string;
  mode: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  rowCount: number | null;
  bytes: number | null;
  fileName: string | null;
  fromPosition: number | null;
  toPosition: number | null;
  destination: string | null;
  error: { code: string; message: string } | null;
  _links: { file?: { href: string } };
}

export interface ExportExecutionList {
  executions: ExportExecutionBody[];
  page: number;
  pageSize: number;
  totalElements: number;
}

export function exportHref(entity: string, id: string): string {
  return entityHref(entity, "exports", id);
}

export function tableOf(exp: ExportBody): string {
  const kind = exp.source.tableType === "PROFILE_TABLE" ? "profile table" : "custom table";
  return `${exp.source.table} (${kind})`;
}

/** `CSV, separator ";", GZIP` / `NDJSON, not compressed`. */
export function formatText(format: ExportBody["format"]): string {
  const parts = [format.type];
  if (format.type === "CSV") parts.push(`separator "${format.separator}"`);
  parts.push(format.compression === "NONE" ? "not compressed" : format.compression);
  return parts.join(", ");
}

/** Reference ids to names, through the API (one call: an entity has a handful of references). */
export async function referenceNames(
  api: ConsoleApi,
  entity: string,
): Promise<Map<string, string>> {
  const list = await api.get<ReferenceList>(entityApi(entity, "file-references"), {
    pageSize: 1000,
  });
  return new Map(list.fileReferences.map((r) => [r.id, r.name]));
}

/** The destination reference, linked to its page, or "none". */
export function destinationText(
  entity: string,
  exp: ExportBody,
  names: Map<string, string>,
): SafeHtml | string {
  if (!exp.destination) return "none (download only)";
  const id = exp.destination.fileReference;
  return html`<a href="${referenceHref(entity, id)}">${names.get(id) ?? `reference ${id}`}</a>`;
}
