/**
 * The trigger events of a file synchronisation (SPEC §7.2): STARTED when it starts running,
 * FINISHED when it ends, whatever its final status. Like an import's (etl-events.ts) they go to the
 * change log (source FILE_SYNCHRONIZATION, the file reference's id as element, the
 * synchronisation's id as ordering key), appended in the transaction that changes the
 * synchronisation's state, so a crash can neither lose nor double them (DESIGN §6b).
 */
import type { NewChangeEvent, Origin } from "../domain/change-event.js";
import type { StoredSynchronization } from "../storage/file-synchronization-repository.js";

export const FILE_REFERENCES_PREFIX = "/v5/entities";

export function fileReferenceHref(entityName: string, referenceId: string): string {
  return `${FILE_REFERENCES_PREFIX}/${encodeURIComponent(entityName)}/file-references/${encodeURIComponent(referenceId)}`;
}

export function synchronizationHref(
  entityName: string,
  referenceId: string,
  synchronizationId: string,
): string {
  return `${fileReferenceHref(entityName, referenceId)}/synchronizations/${encodeURIComponent(synchronizationId)}`;
}

/** The STARTED or FINISHED event of a synchronisation, with its file as it stands (empty before). */
export function fileSyncTriggerEvent(
  synchronization: StoredSynchronization,
  entityName: string,
  eventType: "STARTED" | "FINISHED",
): NewChangeEvent {
  const s = synchronization;
  return {
    entityId: s.entityId,
    source: "FILE_SYNCHRONIZATION",
    sourceId: s.fileReferenceId,
    eventType,
    recordKey: s.id,
    keys: {},
    state: {
      "fileSynchronization.id": s.id,
      "fileSynchronization.fileReferenceId": s.fileReferenceId,
      "fileSynchronization.status": s.status,
      "fileSynchronization.fileName": s.fileName ?? "",
      "fileSynchronization.bytes": s.bytes === null ? "" : String(s.bytes),
      "fileSynchronization.sha256": s.sha256 ?? "",
    },
    fields: [],
    previous: {},
    extra: {
      _links: {
        fileSynchronization: { href: synchronizationHref(entityName, s.fileReferenceId, s.id) },
        fileReference: { href: fileReferenceHref(entityName, s.fileReferenceId) },
      },
    },
    version: null,
    declaredEvents: [],
    origin: s.origin as Origin,
  };
}
