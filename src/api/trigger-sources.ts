/**
 * The elements a trigger-source subscription may name (SPEC §4: "an unknown ETL, export, custom
 * action or file reference id is 404"), one entry per source kind. A kind whose elements Herald
 * does not have yet has no `find`: every id is unknown, and the 404 says that the kind is not
 * available yet and how to subscribe to all of them instead. When such a source lands, its entry
 * gains a `find` (and its own not-found error if it has one), and nothing else changes.
 */
import type { EventSource } from "../domain/change-event.js";
import { HeraldError } from "../domain/errors.js";
import type { Queryable } from "../storage/database.js";
import { findEtl } from "../storage/etl-repository.js";
import { findExport } from "../storage/export-repository.js";
import { findFileReference } from "../storage/file-reference-repository.js";
import type { Entity } from "../storage/tenancy-repository.js";

export type TriggerSource = Exclude<EventSource, "PROFILE_TABLE" | "CUSTOM_TABLE">;

interface TriggerSourceKind {
  /** What one element is called in messages ("export"), and many ("exports"). */
  noun: string;
  plural: string;
  /** The stored id of the element named `idOrName`, undefined when the entity has none. */
  find?: (db: Queryable, entityId: number, idOrName: string) => Promise<string | undefined>;
  /** The 404 of an unknown element; the generic one when absent. */
  notFound?: (idOrName: string, entity: Entity) => HeraldError;
}

const TRIGGER_SOURCE_KINDS: Record<TriggerSource, TriggerSourceKind> = {
  ETL: {
    noun: "ETL",
    plural: "ETLs",
    // An ETL may be named by its id or its name; the subscription stores the id.
    find: async (db, entityId, idOrName) => (await findEtl(db, entityId, idOrName))?.id,
    notFound: (id, entity) =>
      new HeraldError("HERALD_ETL_NOT_FOUND", { id, entity: entity.name }, [
        { path: "onElementId", message: `no ETL '${id}' in entity '${entity.name}'` },
      ]),
  },
  EXPORT: {
    noun: "export",
    plural: "exports",
    // Named by its id or its name; the subscription stores the id.
    find: async (db, entityId, idOrName) => (await findExport(db, entityId, idOrName))?.id,
    notFound: (id, entity) =>
      new HeraldError("HERALD_EXPORT_NOT_FOUND", { id, entity: entity.name }, [
        { path: "onElementId", message: `no export '${id}' in entity '${entity.name}'` },
      ]),
  },
  CUSTOM_ACTION: { noun: "custom action", plural: "custom actions" },
  FILE_SYNCHRONIZATION: {
    noun: "file reference",
    plural: "file references",
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
  const found = kind.find ? await kind.find(db, entity.id, idOrName) : undefined;
  if (found !== undefined) return found;
  if (kind.notFound) throw kind.notFound(idOrName, entity);
  const reason = kind.find
    ? `check the id (or leave onElementId out to receive the events of every ${kind.noun})`
    : `this Herald has no ${kind.plural} yet, so no id can match one; leave onElementId out to receive the events of every ${kind.noun} of the entity once there are some`;
  throw new HeraldError(
    "HERALD_TRIGGER_SOURCE_NOT_FOUND",
    { kind: on, id: idOrName, entity: entity.name, reason },
    [{ path: "onElementId", message: `no ${kind.noun} '${idOrName}' in entity '${entity.name}'` }],
  );
}
