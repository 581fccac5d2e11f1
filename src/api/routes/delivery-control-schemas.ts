/**
 * JSON shapes of the delivery control API (SPEC §4 [ext]): attempts, the daily error log, secret
 * rotation, test pushes and replays. TypeBox schemas (also the OpenAPI document) and renderers.
 */
import { PageParameter } from "./paging.js";
import { Type } from "typebox";
import { eventPublicId } from "../../domain/change-event.js";
import type { AttemptView } from "../../storage/attempt-repository.js";
import type { ReplayRequest } from "../../storage/replay-repository.js";
import { REPLAY_STATUSES } from "../../storage/replay-repository.js";

export const CONTROL_TAGS = ["webhook delivery control"];

export const DateParams = Type.Object({
  entity: Type.String(),
  id: Type.String(),
  date: Type.String({ description: "A UTC day, yyyy-MM-dd" }),
});
export const ReplayParams = Type.Object({
  entity: Type.String(),
  id: Type.String(),
  replayId: Type.String(),
});

const paging = {
  page: PageParameter,
  pageSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
};

export const AttemptsQuery = Type.Object({
  from: Type.Optional(Type.String({ description: "ISO 8601 time: attempts at or after it" })),
  to: Type.Optional(Type.String({ description: "ISO 8601 time: attempts before it" })),
  outcome: Type.Optional(Type.String({ description: "DELIVERED, RETRY, FAILED or DISABLED" })),
  errorClass: Type.Optional(
    Type.String({ description: "timeout, http_5xx, … (docs/delivery-control.md)" }),
  ),
  pushId: Type.Optional(Type.String({ description: "The push's id (its webhook-id header)" })),
  ...paging,
});
export const PageQuery = Type.Object(paging);

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) =>
  Type.Union([schema, Type.Null()]);

const AttemptJson = Type.Object({
  pushId: Type.String(),
  eventIds: Type.Array(Type.String()),
  positions: Type.Object({ first: Type.Integer(), last: Type.Integer() }),
  attempt: Type.Integer(),
  attemptedAt: Type.String(),
  durationMs: Type.Integer(),
  outcome: Type.String(),
  statusCode: Nullable(Type.Integer()),
  errorClass: Nullable(Type.String()),
  errorMessage: Nullable(Type.String()),
  responseExcerpt: Nullable(Type.String()),
  nextAttemptAt: Nullable(Type.String()),
});

export const AttemptsResponse = Type.Object({
  attempts: Type.Array(AttemptJson),
  page: Type.Integer(),
  pageSize: Type.Integer(),
  totalElements: Type.Integer({ description: "Matching attempts, counted up to 10000" }),
  totalElementsCapped: Type.Boolean({ description: "true: more than 10000 match" }),
});

const FailureJson = Type.Object({
  time: Type.String(),
  pushId: Type.String(),
  eventIds: Type.Array(Type.String()),
  positions: Type.Object({ first: Type.Integer(), last: Type.Integer() }),
  attempt: Type.Integer(),
  outcome: Type.String({ description: "RETRY (will go again), FAILED (gave up) or DISABLED" }),
  statusCode: Nullable(Type.Integer()),
  errorClass: Nullable(Type.String()),
  errorMessage: Nullable(Type.String()),
  responseExcerpt: Nullable(Type.String()),
  nextAttemptAt: Nullable(Type.String()),
});

export const DailyLogResponse = Type.Object({
  date: Type.String(),
  failures: Type.Array(FailureJson),
  page: Type.Integer(),
  pageSize: Type.Integer(),
  totalElements: Type.Integer({ description: "Matching attempts, counted up to 10000" }),
  totalElementsCapped: Type.Boolean({ description: "true: more than 10000 match" }),
});

export const RotateBody = Type.Object(
  {
    gracePeriodSeconds: Type.Optional(
      Type.Integer({ description: "How long the old secret keeps signing (default 86400)" }),
    ),
  },
  { additionalProperties: false, description: "Optional; an empty body takes the defaults" },
);
export const RotateResponse = Type.Object({
  secret: Type.String(),
  previousSecretExpiresAt: Type.String(),
  gracePeriodSeconds: Type.Integer(),
});

export const TestResponse = Type.Object({
  pushId: Type.String(),
  delivered: Type.Boolean(),
  statusCode: Nullable(Type.Integer()),
  errorClass: Nullable(Type.String()),
  errorMessage: Nullable(Type.String()),
  durationMs: Type.Integer(),
  responseExcerpt: Nullable(Type.String()),
});

export const ReplayBody = Type.Object(
  {
    fromPosition: Type.Optional(Type.Integer({ description: "First log position to re-send" })),
    fromTime: Type.Optional(
      Type.String({ description: "ISO 8601: re-send events from this time" }),
    ),
    toPosition: Type.Optional(
      Type.Integer({ description: "Last log position to re-send (default: the log head now)" }),
    ),
  },
  { additionalProperties: false },
);

const ReplayJson = Type.Object({
  id: Type.Integer(),
  subscriptionId: Type.Integer(),
  fromPosition: Type.Integer(),
  toPosition: Type.Integer(),
  fromTime: Nullable(Type.String()),
  cursor: Type.Integer({ description: "Every matching event at or below it was re-sent" }),
  status: Type.Enum([...REPLAY_STATUSES]),
  statusReason: Nullable(Type.String()),
  eventsSent: Type.Integer(),
  requestedAt: Type.String(),
  startedAt: Nullable(Type.String()),
  finishedAt: Nullable(Type.String()),
});
export const ReplayResponse = ReplayJson;
export const ReplayListResponse = Type.Object({ replays: Type.Array(ReplayJson) });

const iso = (date: Date | null) => (date === null ? null : date.toISOString());

export function attemptJson(a: AttemptView) {
  return {
    pushId: a.pushId,
    eventIds: a.eventIds.map(eventPublicId),
    positions: { first: a.firstPosition, last: a.lastPosition },
    attempt: a.attempt,
    attemptedAt: a.attemptedAt.toISOString(),
    durationMs: a.durationMs,
    outcome: a.outcome,
    statusCode: a.statusCode,
    errorClass: a.errorClass,
    errorMessage: a.errorMessage,
    responseExcerpt: a.responseExcerpt,
    nextAttemptAt: iso(a.nextAttemptAt),
  };
}

export function failureJson(a: AttemptView) {
  const { attemptedAt, ...rest } = attemptJson(a);
  return { time: attemptedAt, ...rest };
}

export function replayJson(r: ReplayRequest) {
  return {
    id: r.id,
    subscriptionId: r.subscriptionId,
    fromPosition: r.fromPosition,
    toPosition: r.toPosition,
    fromTime: iso(r.fromTime),
    cursor: r.cursor,
    status: r.status,
    statusReason: r.statusReason,
    eventsSent: r.eventsSent,
    requestedAt: r.requestedAt.toISOString(),
    startedAt: iso(r.startedAt),
    finishedAt: iso(r.finishedAt),
  };
}
