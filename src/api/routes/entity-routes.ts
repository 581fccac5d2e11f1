/** Entities (SPEC §1): list the ones a key reaches, create one (admin), read one. */
import { Type } from "typebox";
import { ENTITY_NAME_PATTERN } from "../../config/config.js";
import { HeraldError } from "../../domain/errors.js";
import { insertEntityIfAbsent, listEntities } from "../../storage/tenancy-repository.js";
import type { Entity } from "../../storage/tenancy-repository.js";
import { authOf, requireAdmin, resolveEntity } from "../auth.js";
import type { RouteModule } from "./route-module.js";

const EntityBody = Type.Object({
  id: Type.Integer(),
  name: Type.String(),
  createdAt: Type.String({ format: "date-time" }),
});

const CreateEntity = Type.Object(
  {
    name: Type.String({
      pattern: ENTITY_NAME_PATTERN,
      description: "1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit",
    }),
  },
  { additionalProperties: false },
);

function entityBody(entity: Entity) {
  return { id: entity.id, name: entity.name, createdAt: entity.createdAt.toISOString() };
}

const entityRoutes: RouteModule = async (app, deps) => {
  app.get(
    "/v4/entity",
    {
      schema: {
        tags: ["tenancy"],
        summary: "The entities this API key may use",
        response: { 200: Type.Object({ entities: Type.Array(EntityBody) }) },
      },
    },
    async (request) => {
      const auth = authOf(request);
      const entities = await listEntities(deps.db, auth.licenceId, auth.entityIds);
      return { entities: entities.map(entityBody) };
    },
  );

  app.post(
    "/v4/entity",
    {
      schema: {
        tags: ["tenancy"],
        summary: "Create an entity in the key's licence (admin keys only)",
        body: CreateEntity,
        response: { 201: EntityBody },
      },
    },
    async (request, reply) => {
      const auth = authOf(request);
      requireAdmin(auth, "create entities");
      const { name } = request.body;
      const entity = await insertEntityIfAbsent(deps.db, auth.licenceId, name);
      // Names are unique per licence: another licence's entities neither block nor show here.
      if (!entity) throw new HeraldError("HERALD_NAME_TAKEN", { kind: "Entity", name });
      request.log.info({ entity: entity.name, apiKeyId: auth.apiKeyId }, "entity created");
      return reply
        .code(201)
        .header("location", `/v4/entity/${encodeURIComponent(entity.name)}`)
        .send(entityBody(entity));
    },
  );

  app.get(
    "/v4/entity/:entity",
    {
      schema: {
        tags: ["tenancy"],
        summary:
          "One entity (404 when unknown to the key's licence, 403 when the key may not use it)",
        params: Type.Object({ entity: Type.String() }),
        response: { 200: EntityBody },
      },
    },
    async (request) =>
      entityBody(await resolveEntity(deps.entityCache, authOf(request), request.params.entity)),
  );
};
export default entityRoutes;
