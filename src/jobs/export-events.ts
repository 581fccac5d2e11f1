/**
 * The FINISHED event of an export execution (SPEC §7.3): appended to the change log in the
 * transaction that ends the execution (source EXPORT, the export's id as element, the execution's
 * id as ordering key), so a crash can neither lose nor double it (DESIGN §6b).
 */
import type { NewChangeEvent, Origin } from "../domain/change-event.js";
import type { StoredExportExecution } from "../storage/export-repository.js";

export const EXPORTS_PREFIX = "/v5/entities";

export function exportHref(entityName: string, exportId: string): string {
  return `${EXPORTS_PREFIX}/${encodeURIComponent(entityName)}/exports/${encodeURIComponent(exportId)}`;
}

export function exportExecutionHref(
  entityName: string,
  exportId: string,
  executionId: string,
): string {
  return `${exportHref(entityName, exportId)}/executions/${encodeURIComponent(executionId)}`;
}

export function exportFileHref(entityName: string, exportId: string, executionId: string): string {
  return `${exportExecutionHref(entityName, exportId, executionId)}/file`;
}

/** FINISHED with the execution's final status, row count and bytes; flat dotted keys, text values. */
export function exportFinishedEvent(
  execution: StoredExportExecution,
  exportName: string,
  entityName: string,
): NewChangeEvent {
  const links: Record<string, { href: string }> = {
    exportExecution: { href: exportExecutionHref(entityName, execution.exportId, execution.id) },
  };
  if (execution.status === "SUCCESS")
    links.file = { href: exportFileHref(entityName, execution.exportId, execution.id) };
  return {
    entityId: execution.entityId,
    source: "EXPORT",
    sourceId: execution.exportId,
    eventType: "FINISHED",
    recordKey: execution.id,
    keys: {},
    state: {
      "export.id": execution.exportId,
      "export.name": exportName,
      "export.executionId": execution.id,
      "export.executionStatus": execution.status,
      "export.rowCount": String(execution.rowCount ?? 0),
      "export.bytes": String(execution.bytes ?? 0),
    },
    fields: [],
    previous: {},
    extra: { _links: links },
    version: null,
    declaredEvents: [],
    origin: execution.origin as Origin,
  };
}
