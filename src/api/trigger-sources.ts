/**
 * The elements a trigger-source subscription may name (SPEC §4: "an unknown ETL, export, custom
 * action or file reference id is 404"), one entry per source kind: how to find one by its id or
 * its name (the subscription stores the id), and the kind's own 404 for an unknown one. Every kind
 * has elements now (custom actions were the last); HERALD_TRIGGER_SOURCE_NOT_FOUND, the 404 of a
 * kind that had none yet, is no longer answered (codes are never reused).
 */
import type { EventSource } from "../domain/change-event.js";
import { HeraldError } from "../domain/errors.js";
import { findCustomAction } from "../storage/custom-action-repository.js";
import type { Queryable } from "../storage/database.js";
import { findEtl } from "../storage/etl-repository.js";
import { findExport } from "../storage/export-repository.js";
import { findFileReference } from "../storage/file-reference-repository.js";
import type { Entity } from "../storage/tenancy-repository.js";

export type TriggerSource = Exclude<EventSource, "PROFILE_TABLE" | "CUSTOM_TABLE">;

interface TriggerSourceKind {
  /** The stored id of the element named `idOrName`, undefined when the entity has none. */
  find: (db: Queryable, entityId: number, idOrName: string) => Promise<string | undefined>;
  /** The 404 of an unknown element. */
  notFound: (idOrName: string, entity: Entity) => HeraldError;
}

const TRIGGER_SOURCE_KINDS: Record<TriggerSource, TriggerSourceKind> = {
  ETL: {
    // An ETL may be named by its id or its name; the subscription stores the id.
    find: async (db, entityId, idOrName) => (await findEtl(db, entityId, idOrName))?.id,
    notFound: (id, entity) =>
      new HeraldError("HERALD_ETL_NOT_FOUND", { id, entity: entity.name }, [
        { path: "onElementId", message: `no ETL '${id}' in entity '${entity.name}'` },
      ]),
  },
  EXPORT: {
    // Named by its id or its name; the subscription stores the id.
    find: async (db, entityId, idOrName) => (await findExport(db, entityId, idOrName))?.id,
    notFound: (id, entity) =>
      new HeraldError("HERALD_EXPORT_NOT_FOUND", { id, entity: entity.name }, [
        { path: "onElementId", message: `no export '${id}' in entity '${entity.name}'` },
      ]),
  },
  CUSTOM_ACTION: {
    // Named by its id or its name; the subscription stores the id.
    find: async (db, entityId, idOrName) => (await findCustomAction(db, entityId, idOrName))?.id,
    notFound: (id, entity) =>
      new HeraldError("HERALD_CUSTOM_ACTION_NOT_FOUND", { id, entity: entity.name }, [
        { path: "onElementId", message: `no custom action '${id}' in entity '${entity.name}'` },
      ]),
  },
  FILE_SYNCHRONIZATION: {
    // Named by its id or its name; the subscription stores the id.
    find: async (db, entityId, idOrName) => (await findFileReference(db, entityId, idOrName))?.id,
    notFound: (id, entity) =>
      new HeraldError("HERALD_FILE_REFERENCE_NOT_FOUND", { id, entity: entity.name }, [
        { path: "onElementId", message: `no file reference '${id}' in entity '${entity.name}'` },
      ]),
  },
};

/**
 * The stored element id of a trigger-source subscription: null (every element of the kind) when
 * none is named, else the named element's id; 404 when the entity has no such element.
 */
export async function resolveTriggerElement(
  db: Queryable,
  entity: Entity,
  on: TriggerSource,
  idOrName: string | null,
): Promise<string | null> {
  if (idOrName === null) return null;
  const kind = TRIGGER_SOURCE_KINDS[on];
  const found = await kind.find(db, entity.id, idOrName);
  if (found === undefined) throw kind.notFound(idOrName, entity);
  return found;
}
