/**
 * The trigger events of an import (SPEC §7.1): STARTED when an execution starts running, FINISHED
 * when it ends, whatever its final status. They go to the change log like data events (source ETL,
 * the ETL's id as element, the execution's id as ordering key), appended in the transaction that
 * changes the execution's state, so a crash can neither lose nor double them (DESIGN §6b).
 */
import type { NewChangeEvent, Origin } from "../domain/change-event.js";
import type { StoredExecution } from "../storage/etl-execution-repository.js";

export const MASS_IMPORTS_PREFIX = "/mass-imports/v5/entities";

export function executionHref(entityName: string, executionId: string): string {
  return `${MASS_IMPORTS_PREFIX}/${encodeURIComponent(entityName)}/etl-executions/${encodeURIComponent(executionId)}`;
}

export function etlHref(entityName: string, etlId: string): string {
  return `${MASS_IMPORTS_PREFIX}/${encodeURIComponent(entityName)}/etls/${encodeURIComponent(etlId)}`;
}

/** The STARTED or FINISHED event of an execution, with its counts as they stand. */
export function etlTriggerEvent(
  execution: StoredExecution,
  entityName: string,
  eventType: "STARTED" | "FINISHED",
): NewChangeEvent {
  const { counts } = execution;
  const state: Record<string, string> = {};
  if (execution.etlId !== null) {
    state["etl.id"] = execution.etlId;
    state["etl.name"] = execution.etlName ?? "";
  }
  Object.assign(state, {
    "etl.executionId": execution.id,
    "etl.executionStatus": execution.status,
    "etl.rowsRead": String(counts.read),
    "etl.rowsCreated": String(counts.created),
    "etl.rowsUpdated": String(counts.updated),
    "etl.rowsUnchanged": String(counts.unchanged),
    "etl.rowsRejected": String(counts.rejected),
  });
  const links: Record<string, { href: string }> = {
    etlExecution: { href: executionHref(entityName, execution.id) },
  };
  if (execution.etlId !== null) links.etl = { href: etlHref(entityName, execution.etlId) };
  return {
    entityId: execution.entityId,
    source: "ETL",
    // One-shot and v4 executions belong to no ETL: only subscriptions without onElementId get them.
    sourceId: execution.etlId ?? "",
    eventType,
    recordKey: execution.id,
    keys: {},
    state,
    fields: [],
    previous: {},
    extra: { _links: links },
    version: null,
    declaredEvents: [],
    origin: execution.origin as Origin,
  };
}
