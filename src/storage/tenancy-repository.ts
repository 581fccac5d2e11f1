/** SQL of tenancy: licences, entities, API keys and access tokens (SPEC §1). */
import type { Queryable } from "./database.js";
import { ADVISORY_LOCKS } from "./database.js";

export interface Entity {
  id: number;
  licenceId: number;
  name: string;
  createdAt: Date;
}

export interface ApiKeyRow {
  id: number;
  licenceId: number;
  licenceName: string;
  name: string;
  keyPrefix: string;
  isAdmin: boolean;
  /** null = every entity of the licence. */
  entityIds: number[] | null;
  createdAt: Date;
}

const API_KEY_SELECT = `SELECT k.id, k.licence_id AS "licenceId", l.name AS "licenceName", k.name,
       k.key_prefix AS "keyPrefix", k.is_admin AS "isAdmin", k.entity_ids AS "entityIds", k.created_at AS "createdAt"
  FROM api_keys k JOIN licences l ON l.id = k.licence_id`;

/**
 * Inside a first-start transaction (the licence, the default entity, the admin keys): waits for any
 * other process doing the same, so two processes starting at once create each thing once.
 */
export async function lockBootstrap(tx: Queryable): Promise<void> {
  await tx.query("SELECT pg_advisory_xact_lock($1)", [ADVISORY_LOCKS.bootstrap]);
}

export async function findLicenceByName(
  db: Queryable,
  name: string,
): Promise<{ id: number } | undefined> {
  const { rows } = await db.query<{ id: number }>("SELECT id FROM licences WHERE name = $1", [
    name,
  ]);
  return rows[0];
}

export async function insertLicence(db: Queryable, name: string): Promise<number> {
  const { rows } = await db.query<{ id: number }>(
    "INSERT INTO licences (name) VALUES ($1) RETURNING id",
    [name],
  );
  return rows[0]!.id;
}

export async function countLicences(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM licences");
  return rows[0]?.n ?? 0;
}

/** The first licence's id (the one a first start created); there must be one. */
export async function firstLicenceId(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ id: number }>("SELECT id FROM licences ORDER BY id LIMIT 1");
  return rows[0]!.id;
}

export async function countLiveAdminKeys(db: Queryable, licenceId: number): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM api_keys WHERE licence_id = $1 AND is_admin AND revoked_at IS NULL",
    [licenceId],
  );
  return rows[0]?.n ?? 0;
}

export async function insertEntity(
  db: Queryable,
  licenceId: number,
  name: string,
): Promise<Entity> {
  const { rows } = await db.query<Entity>(
    `INSERT INTO entities (licence_id, name) VALUES ($1, $2)
     RETURNING id, licence_id AS "licenceId", name, created_at AS "createdAt"`,
    [licenceId, name],
  );
  return rows[0]!;
}

/** Creates an entity; undefined when the licence has one of that name (names are per licence). */
export async function insertEntityIfAbsent(
  db: Queryable,
  licenceId: number,
  name: string,
): Promise<Entity | undefined> {
  const { rows } = await db.query<Entity>(
    `INSERT INTO entities (licence_id, name) VALUES ($1, $2) ON CONFLICT (licence_id, name) DO NOTHING
     RETURNING id, licence_id AS "licenceId", name, created_at AS "createdAt"`,
    [licenceId, name],
  );
  return rows[0];
}

/** The licence's entity of that name (another licence may have one of the same name). */
export async function findEntityByName(
  db: Queryable,
  licenceId: number,
  name: string,
): Promise<Entity | undefined> {
  const { rows } = await db.query<Entity>(
    `SELECT id, licence_id AS "licenceId", name, created_at AS "createdAt" FROM entities
      WHERE licence_id = $1 AND name = $2`,
    [licenceId, name],
  );
  return rows[0];
}

export async function findEntityById(db: Queryable, id: number): Promise<Entity | undefined> {
  const { rows } = await db.query<Entity>(
    `SELECT id, licence_id AS "licenceId", name, created_at AS "createdAt" FROM entities WHERE id = $1`,
    [id],
  );
  return rows[0];
}

export async function listEntities(
  db: Queryable,
  licenceId: number,
  entityIds: number[] | null,
): Promise<Entity[]> {
  const { rows } = await db.query<Entity>(
    `SELECT id, licence_id AS "licenceId", name, created_at AS "createdAt" FROM entities
      WHERE licence_id = $1 AND ($2::bigint[] IS NULL OR id = ANY($2::bigint[]))
      ORDER BY id`,
    [licenceId, entityIds],
  );
  return rows;
}

/**
 * Creates a key unless the licence has a live key of that name (undefined then). The conflict
 * target is the partial unique index of live names (migration 006).
 */
export async function insertApiKey(
  db: Queryable,
  key: {
    licenceId: number;
    name: string;
    keyHash: string;
    keyPrefix: string;
    isAdmin: boolean;
    entityIds: number[] | null;
  },
): Promise<ApiKeyRow | undefined> {
  const { rows } = await db.query<{ id: number }>(
    `INSERT INTO api_keys (licence_id, name, key_hash, key_prefix, is_admin, entity_ids)
     VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (licence_id, name) WHERE revoked_at IS NULL DO NOTHING RETURNING id`,
    [key.licenceId, key.name, key.keyHash, key.keyPrefix, key.isAdmin, key.entityIds],
  );
  return rows[0] ? findApiKeyById(db, key.licenceId, rows[0].id) : undefined;
}

export async function findApiKeyByHash(
  db: Queryable,
  keyHash: string,
): Promise<ApiKeyRow | undefined> {
  const { rows } = await db.query<ApiKeyRow>(
    `${API_KEY_SELECT} WHERE k.key_hash = $1 AND k.revoked_at IS NULL`,
    [keyHash],
  );
  return rows[0];
}

export async function findApiKeyById(
  db: Queryable,
  licenceId: number,
  id: number,
): Promise<ApiKeyRow | undefined> {
  const { rows } = await db.query<ApiKeyRow>(
    `${API_KEY_SELECT} WHERE k.licence_id = $1 AND k.id = $2 AND k.revoked_at IS NULL`,
    [licenceId, id],
  );
  return rows[0];
}

export async function listApiKeys(db: Queryable, licenceId: number): Promise<ApiKeyRow[]> {
  const { rows } = await db.query<ApiKeyRow>(
    `${API_KEY_SELECT} WHERE k.licence_id = $1 AND k.revoked_at IS NULL ORDER BY k.id`,
    [licenceId],
  );
  return rows;
}

/** Revokes a key and deletes its tokens; false when there was no such live key. */
export async function revokeApiKey(db: Queryable, licenceId: number, id: number): Promise<boolean> {
  const { rowCount } = await db.query(
    "UPDATE api_keys SET revoked_at = now() WHERE licence_id = $1 AND id = $2 AND revoked_at IS NULL",
    [licenceId, id],
  );
  if (rowCount === 0) return false;
  await db.query("DELETE FROM access_tokens WHERE api_key_id = $1", [id]);
  return true;
}

export async function insertAccessToken(
  db: Queryable,
  token: { tokenHash: string; apiKeyId: number; jti: string; ttlSeconds: number },
): Promise<Date> {
  const { rows } = await db.query<{ expiresAt: Date }>(
    `INSERT INTO access_tokens (token_hash, api_key_id, jti, expires_at)
     VALUES ($1, $2, $3, now() + make_interval(secs => $4)) RETURNING expires_at AS "expiresAt"`,
    [token.tokenHash, token.apiKeyId, token.jti, token.ttlSeconds],
  );
  return rows[0]!.expiresAt;
}

/** The live key behind an unexpired token. */
export async function findKeyByToken(
  db: Queryable,
  tokenHash: string,
): Promise<(ApiKeyRow & { expiresAt: Date }) | undefined> {
  const { rows } = await db.query<ApiKeyRow & { expiresAt: Date }>(
    `SELECT k.id, k.licence_id AS "licenceId", l.name AS "licenceName", k.name, k.key_prefix AS "keyPrefix",
            k.is_admin AS "isAdmin", k.entity_ids AS "entityIds", k.created_at AS "createdAt", t.expires_at AS "expiresAt"
       FROM access_tokens t
       JOIN api_keys k ON k.id = t.api_key_id AND k.revoked_at IS NULL
       JOIN licences l ON l.id = k.licence_id
      WHERE t.token_hash = $1 AND t.expires_at > now()`,
    [tokenHash],
  );
  return rows[0];
}
