/**
 * Authentication and entity access (SPEC §1). `GET /auth/token` trades a raw API key for a 15-minute
 * bearer token; every other call presents the token (or, for legacy v4 clients, HTTP Basic with the
 * raw key). Tokens are stored hashed; a short in-process cache spares the database on hot paths.
 */
import type { FastifyRequest } from "fastify";
import { randomBytes, randomUUID, timingSafeEqual } from "node:crypto";
import { HeraldError } from "../domain/errors.js";
import type { Database } from "../storage/database.js";
import type { ApiKeyRow, Entity } from "../storage/tenancy-repository.js";
import {
  findApiKeyByHash,
  findApiKeyById,
  findEntityByName,
  findKeyByToken,
  insertAccessToken,
} from "../storage/tenancy-repository.js";
import { hashSecret, newAccessToken } from "./api-key-secrets.js";

export const TOKEN_TTL_SECONDS = 900;
/** How long a validated token is trusted without asking the database again. */
const TOKEN_CACHE_MS = 5_000;
const TOKEN_CACHE_MAX = 10_000;

export interface AuthContext {
  apiKeyId: number;
  apiKeyName: string;
  licenceId: number;
  licenceName: string;
  isAdmin: boolean;
  /** null = every entity of the licence. */
  entityIds: number[] | null;
}

declare module "fastify" {
  interface FastifyRequest {
    auth: AuthContext | undefined;
  }
}

export interface IssuedToken {
  accessToken: string;
  tokenType: "bearer";
  expiresIn: string;
  scope: string;
  jti: string;
}

function toContext(key: ApiKeyRow): AuthContext {
  return {
    apiKeyId: key.id,
    apiKeyName: key.name,
    licenceId: key.licenceId,
    licenceName: key.licenceName,
    isAdmin: key.isAdmin,
    entityIds: key.entityIds,
  };
}

export class Authenticator {
  private readonly cache = new Map<string, { context: AuthContext; validUntil: number }>();
  /** Lookups in progress, by cache key. */
  private readonly lookups = new Map<
    string,
    Promise<{ context: AuthContext; expiresAt: number } | undefined>
  >();

  /**
   * Known only to this process: the console's in-process API calls (`app.inject`) carry it with
   * the signed-in key's id, so that they pass the same validation and entity scope as any client's
   * call without the console holding the raw key. Never sent over a socket.
   */
  readonly #consoleSecret = randomBytes(32).toString("base64url");

  constructor(private readonly db: Database) {}

  /** The live key behind a raw API key, or undefined (the console's sign-in). */
  async findKey(rawKey: string): Promise<ApiKeyRow | undefined> {
    return findApiKeyByHash(this.db, hashSecret(rawKey.trim()));
  }

  /** The Authorization header of the console's in-process API calls for one signed-in key. */
  consoleAuthorization(key: { licenceId: number; apiKeyId: number }): string {
    return `HeraldConsole ${this.#consoleSecret}.${key.licenceId}.${key.apiKeyId}`;
  }

  async issueToken(rawKey: string | undefined): Promise<IssuedToken> {
    if (!rawKey)
      throw new HeraldError("HERALD_UNAUTHENTICATED", {
        reason: "send the API key in the Authorization header",
      });
    const key = await findApiKeyByHash(this.db, hashSecret(rawKey.trim()));
    if (!key) throw new HeraldError("HERALD_INVALID_API_KEY");
    const accessToken = newAccessToken();
    const jti = randomUUID();
    await insertAccessToken(this.db, {
      tokenHash: hashSecret(accessToken),
      apiKeyId: key.id,
      jti,
      ttlSeconds: TOKEN_TTL_SECONDS,
    });
    return {
      accessToken,
      tokenType: "bearer",
      expiresIn: `${TOKEN_TTL_SECONDS}s`,
      scope: "read write",
      jti,
    };
  }

  /** Resolves the Authorization header of an API call; throws 401 when it does not authenticate. */
  async authenticate(header: string | undefined): Promise<AuthContext> {
    if (!header) throw new HeraldError("HERALD_INVALID_TOKEN");
    const space = header.indexOf(" ");
    const scheme = space > 0 ? header.slice(0, space).toLowerCase() : "";
    const credentials = space > 0 ? header.slice(space + 1).trim() : "";
    if (scheme === "bearer") return this.fromToken(credentials);
    if (scheme === "basic") return this.fromBasic(credentials);
    if (scheme === "heraldconsole") return this.fromConsole(credentials);
    throw new HeraldError("HERALD_INVALID_TOKEN");
  }

  private async fromToken(token: string): Promise<AuthContext> {
    return this.cached("HERALD_INVALID_TOKEN", `bearer:${token}`, async () => {
      const key = await findKeyByToken(this.db, hashSecret(token));
      return key ? { context: toContext(key), expiresAt: key.expiresAt.getTime() } : undefined;
    });
  }

  private async fromConsole(credentials: string): Promise<AuthContext> {
    const [secret = "", licence = "", key = ""] = credentials.split(".");
    const expected = Buffer.from(this.#consoleSecret);
    const given = Buffer.from(secret);
    if (given.length !== expected.length || !timingSafeEqual(given, expected))
      throw new HeraldError("HERALD_INVALID_TOKEN");
    return this.cached("HERALD_INVALID_TOKEN", `console:${licence}.${key}`, async () => {
      const found = await findApiKeyById(this.db, Number(licence), Number(key));
      return found ? { context: toContext(found), expiresAt: Number.POSITIVE_INFINITY } : undefined;
    });
  }

  /** Legacy v4: `Basic base64("<licence>/<key name>:<api key>")`; the user part may be just a name. */
  private async fromBasic(credentials: string): Promise<AuthContext> {
    return this.cached("HERALD_INVALID_API_KEY", `basic:${credentials}`, async () => {
      const decoded = Buffer.from(credentials, "base64").toString("utf8");
      const colon = decoded.indexOf(":");
      if (colon < 0) return undefined;
      const user = decoded.slice(0, colon);
      const key = await findApiKeyByHash(this.db, hashSecret(decoded.slice(colon + 1)));
      if (!key) return undefined;
      const slash = user.indexOf("/");
      const licence = slash >= 0 ? user.slice(0, slash) : undefined;
      const name = slash >= 0 ? user.slice(slash + 1) : user;
      if (
        (licence !== undefined && licence !== key.licenceName) ||
        (name !== "" && name !== key.name)
      ) {
        return undefined;
      }
      return { context: toContext(key), expiresAt: Number.POSITIVE_INFINITY };
    });
  }

  /**
   * Credentials checked in the last few seconds are trusted without asking the database again
   * (the hot path of every call); a failure is never cached. The cache is keyed by the credentials
   * as sent, so a hit costs no hashing (they live in this process's memory for those few seconds,
   * as they do while their request runs). Concurrent calls with credentials not yet cached share
   * one lookup instead of each asking the database.
   */
  private async cached(
    failure: "HERALD_INVALID_TOKEN" | "HERALD_INVALID_API_KEY",
    cacheKey: string,
    lookup: () => Promise<{ context: AuthContext; expiresAt: number } | undefined>,
  ): Promise<AuthContext> {
    const hit = this.cache.get(cacheKey);
    if (hit && hit.validUntil > Date.now()) return hit.context;
    let pending = this.lookups.get(cacheKey);
    if (!pending) {
      pending = lookup().finally(() => this.lookups.delete(cacheKey));
      this.lookups.set(cacheKey, pending);
    }
    const found = await pending;
    if (!found) {
      this.cache.delete(cacheKey);
      throw new HeraldError(failure);
    }
    if (this.cache.size >= TOKEN_CACHE_MAX) this.cache.clear();
    this.cache.set(cacheKey, {
      context: found.context,
      validUntil: Math.min(Date.now() + TOKEN_CACHE_MS, found.expiresAt),
    });
    return found.context;
  }

  /** Forgets cached tokens (after a key is revoked). */
  forget(): void {
    this.cache.clear();
  }
}

/** The authenticated context of a request; throws 401 when the route ran without auth. */
export function authOf(request: FastifyRequest): AuthContext {
  if (!request.auth) throw new HeraldError("HERALD_INVALID_TOKEN");
  return request.auth;
}

const ENTITY_CACHE_MS = 30_000;
const ENTITY_CACHE_MAX = 10_000;

/**
 * Entities found by name, for one database (buildApp makes one). Entities are never renamed or
 * deleted, so a found entity stays right; only hits are kept (an entity created by another process
 * is seen at once).
 */
export class EntityCache {
  private readonly byName = new Map<string, { entity: Entity; validUntil: number }>();

  constructor(private readonly db: Database) {}

  async find(licenceId: number, name: string): Promise<Entity | undefined> {
    const now = Date.now();
    // Names are unique per licence: the cache key holds both.
    const key = `${licenceId}/${name}`;
    const cached = this.byName.get(key);
    if (cached && cached.validUntil > now) return cached.entity;
    const entity = await findEntityByName(this.db, licenceId, name);
    if (entity) {
      if (this.byName.size >= ENTITY_CACHE_MAX) this.byName.clear();
      this.byName.set(key, { entity, validUntil: now + ENTITY_CACHE_MS });
    }
    return entity;
  }
}

/**
 * Resolves `{entity}` for the caller, within the caller's licence (entity names are unique per
 * licence): another licence's entity is simply not found, so existence does not leak; an entity of
 * the caller's licence that the key is not limited to answers 403.
 */
export async function resolveEntity(
  entities: EntityCache,
  auth: AuthContext,
  name: string,
): Promise<Entity> {
  const entity = await entities.find(auth.licenceId, name);
  if (!entity) throw new HeraldError("HERALD_ENTITY_NOT_FOUND", { entity: name });
  if (auth.entityIds !== null && !auth.entityIds.includes(entity.id)) {
    throw new HeraldError("HERALD_ENTITY_FORBIDDEN", { entity: name });
  }
  return entity;
}

export function requireAdmin(auth: AuthContext, action: string): void {
  if (!auth.isAdmin) throw new HeraldError("HERALD_FORBIDDEN", { action });
}
