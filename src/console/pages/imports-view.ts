/**
 * What the Imports pages share: an execution as the API answers it, its states in words, and the
 * figures (bytes, counts, durations) written for a person.
 */
import { entityHref } from "../console-page.js";
import type { SafeHtml } from "../html.js";
import { html, pathPart } from "../html.js";
import type { ExecutionStatus } from "../../storage/etl-execution-repository.js";

/** GET …/etl-executions/{id}, as the API answers it (import-schemas.ts). */
export interface ExecutionBody {
  id: string;
  etlId: string | null;
  status: ExecutionStatus;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  file: { name: string; bytes: number; sha256: string };
  progress: { bytesRead: number; bytesTotal: number; rowsRead: number };
  counts: { read: number; created: number; updated: number; unchanged: number; rejected: number };
  error: { code: string; message: string } | null;
}

/** Each state in words, with its badge. */
const STATE_VIEW: Record<ExecutionStatus, { label: string; badge: string; final: boolean }> = {
  PENDING: { label: "Waiting for a worker", badge: "muted", final: false },
  RUNNING: { label: "Running", badge: "warn", final: false },
  SUCCESS: { label: "Succeeded", badge: "ok", final: true },
  WITH_ERROR: { label: "Finished with rejected rows", badge: "warn", final: true },
  ERROR: { label: "Failed", badge: "bad", final: true },
  CANCELLED: { label: "Cancelled", badge: "muted", final: true },
};

export function isFinal(state: ExecutionStatus): boolean {
  return STATE_VIEW[state].final;
}

export function stateLabel(state: ExecutionStatus): string {
  return STATE_VIEW[state].label;
}

export function stateBadge(state: ExecutionStatus): SafeHtml {
  const view = STATE_VIEW[state];
  return html`<span class="badge ${view.badge}" data-state="${state}">${view.label}</span>`;
}

/** The API's paths of an entity's imports. */
export function importsApi(entity: string, ...segments: string[]): string {
  return ["/v5/entities", pathPart(entity), ...segments.map(pathPart)].join("/");
}

export function executionHref(entity: string, id: string): string {
  return entityHref(entity, "imports", id);
}

const NUMBER = new Intl.NumberFormat("en-GB");

export function count(value: number): string {
  return NUMBER.format(value);
}

const UNITS = ["bytes", "KiB", "MiB", "GiB", "TiB"];

export function bytes(value: number): string {
  let size = value;
  let unit = 0;
  while (size >= 1024 && unit < UNITS.length - 1) {
    size /= 1024;
    unit++;
  }
  return unit === 0 ? `${count(value)} bytes` : `${size.toFixed(1)} ${UNITS[unit]}`;
}

/** Milliseconds between two instants (the second one now while the execution runs), or null. */
export function elapsedMs(from: string | null, to: string | null, now = Date.now()): number | null {
  if (!from) return null;
  const start = Date.parse(from);
  const end = to ? Date.parse(to) : now;
  return Number.isNaN(start) || Number.isNaN(end) ? null : Math.max(0, end - start);
}

export function duration(ms: number | null): string {
  if (ms === null) return "—";
  if (ms < 1000) return `${ms} ms`;
  const seconds = Math.round(ms / 100) / 10;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const whole = Math.round(ms / 1000);
  const hours = Math.floor(whole / 3600);
  const minutes = Math.floor((whole % 3600) / 60);
  const rest = whole % 60;
  return hours > 0 ? `${hours} h ${minutes} min ${rest} s` : `${minutes} min ${rest} s`;
}

/** "Customers (profile table)", or the table alone when its kind is unknown. */
export function tableText(table: string, kind: string | null): string {
  if (kind === "PROFILE_TABLE") return `${table} (profile table)`;
  if (kind === "CUSTOM_TABLE") return `${table} (custom table)`;
  return table;
}

const MODE_WORDS: Record<string, string> = {
  CREATE_UPDATE: "create or update",
  CREATE_ONLY: "create only",
  UPDATE_ONLY: "update only",
};

export function modeText(mode: string | undefined): string {
  return (mode && MODE_WORDS[mode]) ?? mode ?? "—";
}
