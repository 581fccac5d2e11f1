/**
 * Webhook subscriptions (SPEC §4): create, list, read, replace, [ext] update some fields (PATCH),
 * delete, the signing secret, and the legacy per-table create paths. What a create, PUT or PATCH
 * sends is checked and turned into settings by subscription-settings.ts. Every change wakes
 * delivery through `hooks.subscriptionsChanged()`.
 */
import type { FastifyRequest } from "fastify";
import { Type } from "typebox";
import type { EventSource, EventType } from "../../domain/change-event.js";
import { EVENT_SOURCES, EVENT_TYPES } from "../../domain/change-event.js";
import type { TableKind } from "../../domain/data-table.js";
import { HeraldError } from "../../domain/errors.js";
import type { SubscriptionRequest } from "../../domain/subscription-validation.js";
import { isTableSource, requestOf } from "../../domain/subscription-validation.js";
import { generateWebhookSecret } from "../../domain/webhook-secret.js";
import { findTable } from "../../storage/data-table-repository.js";
import type { SubscriptionWithCursor } from "../../storage/subscription-repository.js";
import {
  deleteSubscription,
  findSubscription,
  insertSubscription,
  listSubscriptions,
  replaceSubscription,
} from "../../storage/subscription-repository.js";
import type { Entity } from "../../storage/tenancy-repository.js";
import type { AppDeps } from "../app-deps.js";
import { authOf, resolveEntity } from "../auth.js";
import type { RouteModule } from "./route-module.js";
import { settingsFrom } from "./subscription-settings.js";
import {
  EntityParams,
  LegacyBody,
  ListQuery,
  ListResponse,
  PatchBody,
  SecretResponse,
  SubscriptionBody,
  SubscriptionParams,
  SubscriptionResponse,
  subscriptionHref,
  TableParams,
  TAGS,
  toJson,
} from "./subscription-schemas.js";

// --- Helpers ----------------------------------------------------------------------------------

/** `{id}` of a path; anything that is not a stored id's shape is simply not found. */
function parseId(raw: string, entity: Entity): number {
  const id = /^\d{1,15}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(id) || id <= 0)
    throw new HeraldError("HERALD_SUBSCRIPTION_NOT_FOUND", { id: raw, entity: entity.name });
  return id;
}

async function existing(
  { db, secrets }: Pick<AppDeps, "db" | "secrets">,
  entity: Entity,
  rawId: string,
): Promise<SubscriptionWithCursor> {
  const found = await findSubscription(db, secrets, entity.id, parseId(rawId, entity));
  if (!found)
    throw new HeraldError("HERALD_SUBSCRIPTION_NOT_FOUND", { id: rawId, entity: entity.name });
  return found;
}

/**
 * PUT and PATCH: the subscription's settings become `body`, checked as a change of `current` (its
 * secret kept unless the body brings one); 404 when it was deleted meanwhile.
 */
async function replaceWith(
  deps: AppDeps,
  entity: Entity,
  request: FastifyRequest,
  current: SubscriptionWithCursor,
  body: SubscriptionRequest,
) {
  const settings = await settingsFrom(
    deps,
    entity,
    request,
    body,
    current.secret,
    undefined,
    current,
  );
  const replaced = await replaceSubscription(
    deps.db,
    deps.secrets,
    entity.id,
    current.id,
    settings,
  );
  if (!replaced)
    throw new HeraldError("HERALD_SUBSCRIPTION_NOT_FOUND", {
      id: String(current.id),
      entity: entity.name,
    });
  deps.hooks.subscriptionsChanged();
  return replaced;
}

// --- Routes -----------------------------------------------------------------------------------

const subscriptionRoutes: RouteModule = async (app, deps) => {
  const entityOf = (request: FastifyRequest, name: string) =>
    resolveEntity(deps.entityCache, authOf(request), name);

  const create = async (
    request: FastifyRequest,
    entityName: string,
    body: SubscriptionRequest,
    legacyTable?: { kind: TableKind; idOrName: string },
  ) => {
    const entity = await entityOf(request, entityName);
    const settings = await settingsFrom(
      deps,
      entity,
      request,
      body,
      generateWebhookSecret(),
      legacyTable,
    );
    const created = await insertSubscription(deps.db, deps.secrets, entity.id, settings);
    deps.hooks.subscriptionsChanged();
    request.log.info(
      { subscriptionId: created.id, entity: entity.name },
      "webhook subscription created",
    );
    return created;
  };

  app.post(
    "/v4/entity/:entity/webhookSubscription",
    {
      schema: {
        tags: TAGS,
        summary: "Create a webhook subscription",
        params: EntityParams,
        body: SubscriptionBody,
        response: { 201: SubscriptionResponse },
      },
    },
    async (request, reply) => {
      const created = await create(
        request,
        request.params.entity,
        request.body as SubscriptionRequest,
      );
      return reply
        .code(201)
        .header("location", subscriptionHref(created.entityName, created.id))
        .send(toJson(created, true));
    },
  );

  for (const [segment, kind] of [
    ["table", "PROFILE_TABLE"],
    ["customTable", "CUSTOM_TABLE"],
  ] as const) {
    app.post(
      `/v4/entity/:entity/${segment}/:table/webhookSubscription`,
      {
        schema: {
          tags: TAGS,
          summary: `Create a webhook subscription on a ${kind === "PROFILE_TABLE" ? "profile" : "custom"} table (legacy path)`,
          params: TableParams,
          body: LegacyBody,
          response: { 201: SubscriptionResponse },
        },
      },
      async (request, reply) => {
        const created = await create(
          request,
          request.params.entity,
          request.body as SubscriptionRequest,
          {
            kind,
            idOrName: request.params.table,
          },
        );
        return reply
          .code(201)
          .header("location", subscriptionHref(created.entityName, created.id))
          .send(toJson(created, true));
      },
    );
  }

  app.get(
    "/v4/entity/:entity/webhookSubscription",
    {
      schema: {
        tags: TAGS,
        summary: "List an entity's webhook subscriptions (secrets are never listed)",
        params: EntityParams,
        querystring: ListQuery,
        response: { 200: ListResponse },
      },
    },
    async (request) => {
      const entity = await entityOf(request, request.params.entity);
      const q = request.query;
      const page = q.page ?? 0;
      const pageSize = q.pageSize ?? 100;
      if (q.tableType !== undefined && !(EVENT_SOURCES as readonly string[]).includes(q.tableType))
        throw new HeraldError("HERALD_INVALID_QUERY", {
          parameter: "tableType",
          reason: `must be one of ${EVENT_SOURCES.join(", ")}`,
        });
      if (q.eventType !== undefined && !(EVENT_TYPES as readonly string[]).includes(q.eventType))
        throw new HeraldError("HERALD_INVALID_QUERY", {
          parameter: "eventType",
          reason: `must be one of ${EVENT_TYPES.join(", ")}`,
        });
      if (q.isActif !== undefined && q.isActive !== undefined && q.isActif !== q.isActive)
        throw new HeraldError("HERALD_INVALID_QUERY", {
          parameter: "isActive",
          reason: "isActive and isActif disagree; send one of them",
        });
      const on = q.tableType as EventSource | undefined;
      let onElementId = q.tableId;
      // A table may be named by its name too; filter on its id, as subscriptions store ids.
      if (on !== undefined && onElementId !== undefined && isTableSource(on)) {
        onElementId = (await findTable(deps.db, entity.id, on, onElementId))?.id ?? onElementId;
      }
      const { items, total } = await listSubscriptions(
        deps.db,
        deps.secrets,
        entity.id,
        {
          ...(on !== undefined ? { on } : {}),
          ...(onElementId !== undefined ? { onElementId } : {}),
          ...(q.eventType !== undefined ? { eventType: q.eventType as EventType } : {}),
          ...((q.isActive ?? q.isActif) !== undefined
            ? { isActive: (q.isActive ?? q.isActif)! }
            : {}),
        },
        { page, pageSize },
      );
      return {
        webhookSubscriptions: items.map((s) => toJson(s, false)),
        page,
        pageSize,
        totalElements: total,
      };
    },
  );

  app.get(
    "/v4/entity/:entity/webhookSubscription/:id",
    {
      schema: {
        tags: TAGS,
        summary: "Read a webhook subscription (without its secret)",
        params: SubscriptionParams,
        response: { 200: SubscriptionResponse },
      },
    },
    async (request) => {
      const entity = await entityOf(request, request.params.entity);
      return toJson(await existing(deps, entity, request.params.id), false);
    },
  );

  app.put(
    "/v4/entity/:entity/webhookSubscription/:id",
    {
      schema: {
        tags: TAGS,
        summary:
          "Replace a webhook subscription. Its delivery position is kept; without `secret` the current secret is kept",
        params: SubscriptionParams,
        body: SubscriptionBody,
        response: { 200: SubscriptionResponse },
      },
    },
    async (request) => {
      const entity = await entityOf(request, request.params.entity);
      const current = await existing(deps, entity, request.params.id);
      const replaced = await replaceWith(
        deps,
        entity,
        request,
        current,
        request.body as SubscriptionRequest,
      );
      request.log.info(
        { subscriptionId: replaced.id, entity: entity.name },
        "webhook subscription replaced",
      );
      return toJson(replaced, false);
    },
  );

  app.patch(
    "/v4/entity/:entity/webhookSubscription/:id",
    {
      schema: {
        tags: TAGS,
        summary:
          "[ext] Change some fields of a webhook subscription; the others keep their stored values (renews an `expiresAt`, for instance)",
        params: SubscriptionParams,
        body: PatchBody,
        response: { 200: SubscriptionResponse },
      },
    },
    async (request) => {
      const entity = await entityOf(request, request.params.entity);
      const current = await existing(deps, entity, request.params.id);
      // The stored settings with the sent fields on top, checked as a PUT of the result would be.
      const merged: SubscriptionRequest = {
        ...requestOf(current),
        ...(request.body as SubscriptionRequest),
      };
      const updated = await replaceWith(deps, entity, request, current, merged);
      const fields = Object.keys(request.body);
      // A renewal of expiresAt alone is routine (`herald listen` sends one every 30 s).
      const level = fields.length === 1 && fields[0] === "expiresAt" ? "debug" : "info";
      request.log[level](
        { subscriptionId: updated.id, entity: entity.name, fields },
        "webhook subscription updated",
      );
      return toJson(updated, false);
    },
  );

  app.delete(
    "/v4/entity/:entity/webhookSubscription/:id",
    {
      schema: {
        tags: TAGS,
        summary: "Delete a webhook subscription",
        params: SubscriptionParams,
        response: { 204: Type.Null() },
      },
    },
    async (request, reply) => {
      const entity = await entityOf(request, request.params.entity);
      const deleted = await deleteSubscription(
        deps.db,
        entity.id,
        parseId(request.params.id, entity),
      );
      if (!deleted)
        throw new HeraldError("HERALD_SUBSCRIPTION_NOT_FOUND", {
          id: request.params.id,
          entity: entity.name,
        });
      deps.hooks.subscriptionsChanged();
      request.log.info(
        { subscriptionId: request.params.id, entity: entity.name },
        "webhook subscription deleted",
      );
      return reply.code(204).send(null);
    },
  );

  app.get(
    "/v4/entity/:entity/webhookSubscription/:id/secret",
    {
      schema: {
        tags: TAGS,
        summary:
          "[ext] The subscription's signing secret (and the previous one during a rotation's grace period)",
        params: SubscriptionParams,
        response: { 200: SecretResponse },
      },
    },
    async (request) => {
      const entity = await entityOf(request, request.params.entity);
      const s = await existing(deps, entity, request.params.id);
      const inGrace =
        s.previousSecret !== null &&
        s.previousSecretExpiresAt !== null &&
        s.previousSecretExpiresAt.getTime() > Date.now();
      return {
        secret: s.secret,
        ...(inGrace
          ? {
              previousSecret: s.previousSecret!,
              previousSecretExpiresAt: s.previousSecretExpiresAt!.toISOString(),
            }
          : {}),
      };
    },
  );
};
export default subscriptionRoutes;
