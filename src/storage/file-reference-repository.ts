/**
 * SQL of file references (SPEC §7.2, migration 024). The source is stored without its credentials
 * (`source` jsonb); the credentials (an SFTP password or private key, an HTTPS source's headers)
 * are sealed with the SecretBox into `credentials`, and opened only where a transfer needs them
 * (`loadFileReferenceSource`) or to say which are set.
 */
import type { EtlDefinition } from "../domain/etl-definition.js";
import type { FileReferenceDefinition } from "../domain/file-reference-definition.js";
import type { FileSource, SourceCredentials } from "../domain/file-source.js";
import { splitCredentials, withCredentials } from "../domain/file-source.js";
import type { Schedule } from "../domain/schedule.js";
import type { SecretBox } from "../domain/secret-box.js";
import type { Queryable } from "./database.js";

export interface StoredFileReference {
  id: string;
  entityId: number;
  name: string;
  /** Without credentials. */
  source: FileSource;
  /** Sealed JSON of the credentials, or null. */
  sealedCredentials: string | null;
  schedule: Schedule | null;
  timeZone: string;
  createdAt: Date;
  updatedAt: Date;
}

interface ReferenceRow {
  id: number;
  entity_id: number;
  name: string;
  source: FileSource;
  credentials: string | null;
  schedule: Schedule | null;
  time_zone: string;
  created_at: Date;
  updated_at: Date;
}

const REFERENCE_COLUMNS =
  "id, entity_id, name, source, credentials, schedule, time_zone, created_at, updated_at";

function toReference(row: ReferenceRow): StoredFileReference {
  return {
    id: String(row.id),
    entityId: row.entity_id,
    name: row.name,
    source: row.source,
    sealedCredentials: row.credentials,
    schedule: row.schedule,
    timeZone: row.time_zone,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

/** The stored credentials, opened (SecretKeyMismatch when no key of the box opens them). */
export function openCredentials(
  secrets: SecretBox,
  reference: Pick<StoredFileReference, "sealedCredentials">,
): SourceCredentials | undefined {
  if (reference.sealedCredentials === null) return undefined;
  return JSON.parse(secrets.open(reference.sealedCredentials)) as SourceCredentials;
}

/** The row's values for a definition: the source without credentials, the sealed credentials. */
function rowValues(secrets: SecretBox, definition: FileReferenceDefinition) {
  const { source, credentials } = splitCredentials(definition.source);
  return [
    definition.name,
    JSON.stringify(source),
    credentials === undefined ? null : secrets.seal(JSON.stringify(credentials)),
    definition.schedule === null ? null : JSON.stringify(definition.schedule),
    definition.timeZone,
  ];
}

/** Inserts a reference; undefined when the entity already has one of that name. */
export async function insertFileReference(
  db: Queryable,
  secrets: SecretBox,
  entityId: number,
  definition: FileReferenceDefinition,
): Promise<StoredFileReference | undefined> {
  const { rows } = await db.query<ReferenceRow>(
    `INSERT INTO file_references (entity_id, name, source, credentials, schedule, time_zone)
     VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (entity_id, name) DO NOTHING RETURNING ${REFERENCE_COLUMNS}`,
    [entityId, ...rowValues(secrets, definition)],
  );
  return rows[0] ? toReference(rows[0]) : undefined;
}

/** A reference by id (digits) or name; `forUpdate` locks its row (a sync finishing, a delete). */
export async function findFileReference(
  db: Queryable,
  entityId: number,
  idOrName: string,
  forUpdate = false,
): Promise<StoredFileReference | undefined> {
  const id = /^\d{1,15}$/.test(idOrName) ? Number(idOrName) : null;
  const { rows } = await db.query<ReferenceRow>(
    `SELECT ${REFERENCE_COLUMNS} FROM file_references
      WHERE entity_id = $1 AND (id = $2 OR name = $3)
      ORDER BY (id = $2) DESC NULLS LAST LIMIT 1${forUpdate ? " FOR UPDATE" : ""}`,
    [entityId, id, idOrName],
  );
  return rows[0] ? toReference(rows[0]) : undefined;
}

export async function listFileReferences(
  db: Queryable,
  entityId: number,
  page: { offset: number; limit: number },
): Promise<{ references: StoredFileReference[]; total: number }> {
  const { rows } = await db.query<ReferenceRow>(
    `SELECT ${REFERENCE_COLUMNS} FROM file_references WHERE entity_id = $1
      ORDER BY id LIMIT $2 OFFSET $3`,
    [entityId, page.limit, page.offset],
  );
  const { rows: count } = await db.query<{ n: number }>(
    "SELECT count(*)::integer AS n FROM file_references WHERE entity_id = $1",
    [entityId],
  );
  return { references: rows.map(toReference), total: count[0]?.n ?? 0 };
}

/** Replaces a reference; undefined when it is gone, "name-taken" on a clash. */
export async function updateFileReference(
  db: Queryable,
  secrets: SecretBox,
  entityId: number,
  id: string,
  definition: FileReferenceDefinition,
): Promise<StoredFileReference | undefined | "name-taken"> {
  const { rows } = await db.query<ReferenceRow>(
    `WITH clash AS (SELECT 1 FROM file_references WHERE entity_id = $1 AND name = $3 AND id <> $2)
     UPDATE file_references
        SET name = $3, source = $4, credentials = $5, schedule = $6, time_zone = $7, updated_at = now()
      WHERE entity_id = $1 AND id = $2 AND NOT EXISTS (SELECT 1 FROM clash)
     RETURNING ${REFERENCE_COLUMNS}`,
    [entityId, Number(id), ...rowValues(secrets, definition)],
  );
  if (rows[0]) return toReference(rows[0]);
  return (await findFileReference(db, entityId, id)) ? "name-taken" : undefined;
}

/** Deletes a reference and (cascade) its synchronisations; false when it was gone. */
export async function deleteFileReference(
  db: Queryable,
  entityId: number,
  id: string,
): Promise<boolean> {
  const { rowCount } = await db.query(
    "DELETE FROM file_references WHERE entity_id = $1 AND id = $2",
    [entityId, Number(id)],
  );
  return rowCount > 0;
}

/** What reads or writes through a reference: ETLs (`source.fileReference`), exports (`destination`). */
export interface ReferenceUser {
  kind: "ETL" | "export";
  id: string;
  name: string;
}

/** The ETLs of the entity whose `source.fileReference` is this reference. */
export async function etlsReadingReference(
  db: Queryable,
  entityId: number,
  referenceId: string,
): Promise<{ id: string; name: string; definition: EtlDefinition }[]> {
  const { rows } = await db.query<{ id: number; name: string; definition: EtlDefinition }>(
    `SELECT id, name, definition FROM etls
      WHERE entity_id = $1 AND definition -> 'source' ->> 'fileReference' = $2
      ORDER BY id`,
    [entityId, referenceId],
  );
  return rows.map((row) => ({ id: String(row.id), name: row.name, definition: row.definition }));
}

/** The ETLs and exports that use the reference (a delete is refused while there are any). */
export async function fileReferenceUsers(
  db: Queryable,
  entityId: number,
  referenceId: string,
): Promise<ReferenceUser[]> {
  const etls = await etlsReadingReference(db, entityId, referenceId);
  const { rows: exports } = await db.query<{ id: number; name: string }>(
    `SELECT id, name FROM exports
      WHERE entity_id = $1 AND definition -> 'destination' ->> 'fileReference' = $2
      ORDER BY id`,
    [entityId, referenceId],
  );
  return [
    ...etls.map((etl) => ({ kind: "ETL" as const, id: etl.id, name: etl.name })),
    ...exports.map((e) => ({ kind: "export" as const, id: String(e.id), name: e.name })),
  ];
}

/** The reference's source with its credentials opened, or undefined when the entity has no such reference. */
export async function loadFileReferenceSource(
  db: Queryable,
  secrets: SecretBox,
  entityId: number,
  id: string,
): Promise<{ id: string; name: string; source: FileSource; timeZone: string } | undefined> {
  const reference = await findFileReference(db, entityId, id);
  if (!reference) return undefined;
  return {
    id: reference.id,
    name: reference.name,
    source: withCredentials(reference.source, openCredentials(secrets, reference)),
    timeZone: reference.timeZone,
  };
}
