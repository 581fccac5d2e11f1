/**
 * The JSON shapes of the webhook subscription API (SPEC §4): TypeBox schemas (which also produce the
 * OpenAPI document) and the rendering of a stored subscription.
 */
import { PageParameter } from "./paging.js";
import type { Static } from "typebox";
import { Type } from "typebox";
import { EVENT_SOURCES, EVENT_TYPES } from "../../domain/change-event.js";
import {
  PAYLOAD_VERSIONS,
  PUSH_MODES,
  SUBSCRIPTION_STATES,
  subscriptionStatus,
} from "../../domain/subscription.js";
import { SUBSCRIPTION_LIMITS } from "../../domain/subscription-validation.js";
import type { SubscriptionWithCursor } from "../../storage/subscription-repository.js";

const Scalar = Type.Union([Type.String(), Type.Number(), Type.Boolean(), Type.Null()]);
const ConditionSchema = Type.Object({
  attribute: Type.String(),
  operator: Type.String({
    description: "=, !=, <, <=, >, >=, IN, IS_NULL, IS_NOT_NULL, CHANGED",
  }),
  value: Type.Optional(Type.Union([Scalar, Type.Array(Scalar)])),
});
const ConditionsSchema = Type.Object({
  stateBeforeOperation: Type.Optional(Type.Array(ConditionSchema)),
  stateAfterOperation: Type.Optional(Type.Array(ConditionSchema)),
});
const Headers = Type.Record(Type.String(), Type.String(), {
  description:
    "Extra request headers. Reserved ones (Content-Type, Content-Length, Host, User-Agent, webhook-*, …) are dropped.",
});

const range = (key: keyof typeof SUBSCRIPTION_LIMITS, description: string) =>
  Type.Optional(
    Type.Integer({
      description,
      minimum: SUBSCRIPTION_LIMITS[key].min,
      maximum: SUBSCRIPTION_LIMITS[key].max,
    }),
  );

/** Fields every create path takes; types only, values are checked by the domain rules. */
const commonFields = {
  eventType: Type.String({ description: EVENT_TYPES.join(", ") }),
  onFields: Type.Optional(Type.Array(Type.String())),
  targetUrl: Type.String({ description: "https:// URL of the receiving endpoint" }),
  headers: Type.Optional(Headers),
  isActive: Type.Optional(Type.Boolean({ description: "Default true" })),
  pushMode: Type.Optional(Type.String({ description: "ONE_BY_ONE (default) or BULK" })),
  maxBlockSize: range("maxBlockSize", "BULK: most events per POST (default 100)"),
  lingerMs: range("lingerMs", "[ext] BULK: send a partial block after this quiet time"),
  maxWaitMs: range(
    "maxWaitMs",
    "[ext] BULK: send a partial block once its oldest event waited this long",
  ),
  maxConcurrency: range("maxConcurrency", "[ext] requests in flight for this subscription"),
  includePrevious: Type.Optional(
    Type.Boolean({ description: "[ext] UPDATE payloads carry previous values" }),
  ),
  conditions: Type.Optional(Type.Union([Type.Null(), ConditionsSchema])),
  secret: Type.Optional(
    Type.Union([
      Type.String({ description: "[ext] whsec_<base64>; generated when absent" }),
      Type.Null(),
    ]),
  ),
  payloadVersion: Type.Optional(
    Type.Integer({
      description:
        "[ext] 2 (default): the current payload. 1: the older Actito format of table events ({tableType, tableId, eventType, data: {id, businessKey, …}}); table sources only",
    }),
  ),
  expiresAt: Type.Optional(
    Type.Union([
      Type.String({
        description:
          "[ext] ISO 8601 time, in the future, after which housekeeping deletes the subscription (a temporary one); null or absent = never",
      }),
      Type.Null(),
    ]),
  ),
};

export const SubscriptionBody = Type.Object({
  on: Type.String({ description: EVENT_SOURCES.join(", ") }),
  onElementId: Type.Optional(
    Type.Union([Type.String(), Type.Integer(), Type.Null()], {
      description:
        "Table id or name (required for tables); for trigger sources omit it to listen to all",
    }),
  ),
  ...commonFields,
});

export const LegacyBody = Type.Object(commonFields);

/** PATCH: any of the create fields; those left out keep their stored values. */
export const PatchBody = Type.Partial(SubscriptionBody);

export const SubscriptionResponse = Type.Object({
  id: Type.Integer(),
  on: Type.Enum([...EVENT_SOURCES]),
  onElementId: Type.Union([Type.String(), Type.Null()]),
  eventType: Type.Enum([...EVENT_TYPES]),
  onFields: Type.Array(Type.String()),
  targetUrl: Type.String(),
  headers: Headers,
  isActive: Type.Boolean(),
  pushMode: Type.Enum([...PUSH_MODES]),
  maxBlockSize: Type.Integer(),
  lingerMs: Type.Integer(),
  maxWaitMs: Type.Integer(),
  maxConcurrency: Type.Integer(),
  includePrevious: Type.Boolean(),
  conditions: Type.Union([Type.Null(), ConditionsSchema]),
  payloadVersion: Type.Enum([...PAYLOAD_VERSIONS]),
  expiresAt: Type.Union([Type.String({ format: "date-time" }), Type.Null()], {
    description: "[ext] When housekeeping deletes the subscription; null = never",
  }),
  secret: Type.Optional(Type.String({ description: "Only in the answer to a create" })),
  status: Type.Object({
    state: Type.Enum([...SUBSCRIPTION_STATES]),
    reason: Type.Union([Type.String(), Type.Null()]),
    lag: Type.Integer({ description: "Log positions the subscription has not yet passed" }),
    parkedRecords: Type.Integer({
      description:
        "Records whose events wait behind one that keeps failing (retried on the schedule)",
    }),
  }),
  createdAt: Type.String(),
  updatedAt: Type.String(),
  _links: Type.Object({ self: Type.Object({ href: Type.String() }) }),
});

export const EntityParams = Type.Object({ entity: Type.String() });
export const SubscriptionParams = Type.Object({ entity: Type.String(), id: Type.String() });
export const TableParams = Type.Object({ entity: Type.String(), table: Type.String() });

export const ListQuery = Type.Object({
  tableType: Type.Optional(Type.String({ description: `Filters on: ${EVENT_SOURCES.join(", ")}` })),
  tableId: Type.Optional(
    Type.String({ description: "Filters onElementId (a table's id or name)" }),
  ),
  eventType: Type.Optional(Type.String()),
  isActif: Type.Optional(Type.Boolean({ description: "Actito's spelling of isActive" })),
  isActive: Type.Optional(Type.Boolean()),
  page: PageParameter,
  pageSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
});

export const ListResponse = Type.Object({
  webhookSubscriptions: Type.Array(SubscriptionResponse),
  page: Type.Integer(),
  pageSize: Type.Integer(),
  totalElements: Type.Integer(),
});

export const SecretResponse = Type.Object({
  secret: Type.String(),
  previousSecret: Type.Optional(Type.String()),
  previousSecretExpiresAt: Type.Optional(Type.String()),
});

export const TAGS = ["webhook subscriptions"];

export function subscriptionHref(entityName: string, id: number): string {
  return `/webhooks/v4/entity/${encodeURIComponent(entityName)}/webhookSubscription/${id}`;
}

export type SubscriptionJson = Static<typeof SubscriptionResponse>;

/** A subscription as the API shows it; the secret only where the caller asked for it (create). */
export function toJson(s: SubscriptionWithCursor, withSecret: boolean): SubscriptionJson {
  return {
    id: s.id,
    on: s.on,
    onElementId: s.onElementId,
    eventType: s.eventType,
    onFields: s.onFields,
    targetUrl: s.targetUrl,
    headers: s.headers,
    isActive: s.isActive,
    pushMode: s.pushMode,
    maxBlockSize: s.maxBlockSize,
    lingerMs: s.lingerMs,
    maxWaitMs: s.maxWaitMs,
    maxConcurrency: s.maxConcurrency,
    includePrevious: s.includePrevious,
    conditions: s.conditions as SubscriptionJson["conditions"],
    payloadVersion: s.payloadVersion,
    expiresAt: s.expiresAt?.toISOString() ?? null,
    ...(withSecret ? { secret: s.secret } : {}),
    status: subscriptionStatus(s, s.watermark, s.logHead, s.parkedRecords),
    createdAt: s.createdAt.toISOString(),
    updatedAt: s.updatedAt.toISOString(),
    _links: { self: { href: subscriptionHref(s.entityName, s.id) } },
  };
}
