/**
 * API keys of the licence (SPEC §1), for admin keys only. A key may be limited to some entities
 * (`entities`: names) or reach every entity of the licence (`entities: null`). The raw key is in
 * the creation response only; Herald stores its hash.
 */
import { Type } from "typebox";
import { HeraldError, invalid } from "../../domain/errors.js";
import type { ApiKeyRow } from "../../storage/tenancy-repository.js";
import {
  insertApiKey,
  listApiKeys,
  listEntities,
  revokeApiKey,
} from "../../storage/tenancy-repository.js";
import { hashSecret, keyPrefix, newApiKey } from "../api-key-secrets.js";
import { authOf, requireAdmin } from "../auth.js";
import type { RouteModule } from "./route-module.js";

const ApiKeyBody = Type.Object({
  id: Type.Integer(),
  name: Type.String(),
  keyPrefix: Type.String({ description: "The first characters of the key, to recognise it" }),
  isAdmin: Type.Boolean(),
  entities: Type.Union([Type.Array(Type.String()), Type.Null()], {
    description: "Names of the entities the key may use; null = every entity of the licence",
  }),
  createdAt: Type.String({ format: "date-time" }),
});

const CreatedApiKey = Type.Intersect([
  ApiKeyBody,
  Type.Object({ key: Type.String({ description: "The raw API key: shown this once only" }) }),
]);

const CreateApiKey = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 100 }),
    entities: Type.Optional(
      Type.Union([Type.Array(Type.String(), { uniqueItems: true }), Type.Null()], {
        description: "Entity names the key may use; omitted or null = every entity",
      }),
    ),
    isAdmin: Type.Optional(
      Type.Boolean({ description: "May manage entities and API keys (default false)" }),
    ),
  },
  { additionalProperties: false },
);

const apiKeyRoutes: RouteModule = async (app, deps) => {
  /** id → name of the licence's entities, to show keys with names. */
  const entityNames = async (licenceId: number) =>
    new Map((await listEntities(deps.db, licenceId, null)).map((e) => [e.id, e.name]));

  const keyBody = (key: ApiKeyRow, names: Map<number, string>) => ({
    id: key.id,
    name: key.name,
    keyPrefix: key.keyPrefix,
    isAdmin: key.isAdmin,
    entities: key.entityIds === null ? null : key.entityIds.map((id) => names.get(id) ?? `#${id}`),
    createdAt: key.createdAt.toISOString(),
  });

  app.get(
    "/v4/api-keys",
    {
      schema: {
        tags: ["tenancy"],
        summary: "The licence's live API keys (admin keys only)",
        response: { 200: Type.Object({ apiKeys: Type.Array(ApiKeyBody) }) },
      },
    },
    async (request) => {
      const auth = authOf(request);
      requireAdmin(auth, "manage API keys");
      const [keys, names] = await Promise.all([
        listApiKeys(deps.db, auth.licenceId),
        entityNames(auth.licenceId),
      ]);
      return { apiKeys: keys.map((key) => keyBody(key, names)) };
    },
  );

  app.post(
    "/v4/api-keys",
    {
      schema: {
        tags: ["tenancy"],
        summary: "Create an API key (admin keys only); the response holds the raw key, once",
        body: CreateApiKey,
        response: { 201: CreatedApiKey },
      },
    },
    async (request, reply) => {
      const auth = authOf(request);
      requireAdmin(auth, "manage API keys");
      const { name, entities = null, isAdmin = false } = request.body;
      if (isAdmin && entities !== null) {
        throw invalid("body.entities", "must be null for an admin key (admins reach every entity)");
      }
      const names = await entityNames(auth.licenceId);
      let entityIds: number[] | null = null;
      if (entities !== null) {
        const idOf = new Map([...names].map(([id, entityName]) => [entityName, id]));
        const unknown = entities
          .map((entityName, index) => ({ entityName, index }))
          .filter(({ entityName }) => !idOf.has(entityName))
          .map(({ entityName, index }) => ({
            path: `body.entities.${index}`,
            message: `entity '${entityName}' does not exist`,
          }));
        if (unknown.length > 0) {
          throw new HeraldError(
            "HERALD_VALIDATION",
            { reason: `${unknown[0]!.path} ${unknown[0]!.message}` },
            unknown,
          );
        }
        entityIds = entities.map((entityName) => idOf.get(entityName)!);
      }
      const raw = newApiKey();
      const key = await insertApiKey(deps.db, {
        licenceId: auth.licenceId,
        name,
        keyHash: hashSecret(raw),
        keyPrefix: keyPrefix(raw),
        isAdmin,
        entityIds,
      });
      if (!key) throw new HeraldError("HERALD_NAME_TAKEN", { kind: "API key", name });
      request.log.info({ apiKeyId: key.id, by: auth.apiKeyId }, "API key created");
      return reply
        .code(201)
        .header("location", `/v4/api-keys/${key.id}`)
        .send({ ...keyBody(key, names), key: raw });
    },
  );

  app.delete(
    "/v4/api-keys/:id",
    {
      schema: {
        tags: ["tenancy"],
        summary: "Revoke an API key and its tokens (admin keys only)",
        params: Type.Object({ id: Type.Integer({ minimum: 1 }) }),
        response: { 204: Type.Null() },
      },
    },
    async (request, reply) => {
      const auth = authOf(request);
      requireAdmin(auth, "manage API keys");
      const { id } = request.params;
      if (id === auth.apiKeyId) {
        throw new HeraldError("HERALD_CONFLICT", {
          reason: "An API key cannot revoke itself; revoke it with another admin key",
        });
      }
      if (!(await revokeApiKey(deps.db, auth.licenceId, id))) {
        throw new HeraldError("HERALD_API_KEY_NOT_FOUND", { id });
      }
      // Tokens of the key stop working at once in this process, and within the token cache's
      // few seconds in other API processes.
      deps.authenticator.forget();
      request.log.info({ apiKeyId: id, by: auth.apiKeyId }, "API key revoked");
      return reply.code(204).send(null);
    },
  );
};
export default apiKeyRoutes;
