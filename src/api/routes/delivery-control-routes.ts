/**
 * Delivery control (SPEC §4 [ext]): what happened to a subscription's pushes (`…/attempts`, the
 * daily error log `…/{yyyy-MM-dd}`), and what an operator can do about it (`…/rotate-secret`,
 * `…/test`, `…/replay`, `…/replays`). The API never pushes events itself: a replay is a durable
 * request that the delivery worker holding the subscription's lease executes. `…/test` is the one
 * outbound call the API makes, on an operator's explicit request, through the delivery sender.
 *
 * Route precedence: `…/{id}/attempts`, `…/{id}/secret` and `…/{id}/replays` are static segments,
 * which Fastify matches before the `…/{id}/{date}` parameter.
 */
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { FastifyRequest } from "fastify";
import type { AttemptResult } from "../../domain/delivery-outcome.js";
import { classifyResult } from "../../domain/delivery-outcome.js";
import { ERROR_CLASSES } from "../../domain/retry-policy.js";
import { sampleEvent, testPushBody } from "../../domain/sample-event.js";
import { HeraldError, invalid } from "../../domain/errors.js";
import { generateWebhookSecret } from "../../domain/webhook-secret.js";
import { webhookSignatureHeaders } from "../../domain/webhook-signature.js";
import { createHttpSender } from "../../delivery/http-sender.js";
import type { HttpSender } from "../../delivery/http-sender.js";
import type { AttemptOutcomeName } from "../../storage/attempt-repository.js";
import { ATTEMPT_OUTCOMES, listSubscriptionAttempts } from "../../storage/attempt-repository.js";
import { findTable } from "../../storage/data-table-repository.js";
import {
  cancelReplay,
  firstPositionAtOrAfter,
  insertReplay,
  listReplays,
  MAX_OPEN_REPLAYS,
  readLogBounds,
} from "../../storage/replay-repository.js";
import type { SubscriptionWithCursor } from "../../storage/subscription-repository.js";
import {
  findSubscription,
  ROTATION_GRACE_SECONDS,
  rotateSubscriptionSecret,
} from "../../storage/subscription-repository.js";
import type { Entity } from "../../storage/tenancy-repository.js";
import type { AppDeps } from "../app-deps.js";
import { authOf, resolveEntity } from "../auth.js";
import {
  AttemptsQuery,
  AttemptsResponse,
  attemptJson,
  CONTROL_TAGS,
  DailyLogResponse,
  DateParams,
  failureJson,
  PageQuery,
  ReplayBody,
  replayJson,
  ReplayListResponse,
  ReplayParams,
  ReplayResponse,
  RotateBody,
  RotateResponse,
  TestResponse,
} from "./delivery-control-schemas.js";
import type { RouteModule } from "./route-module.js";
import { SubscriptionParams } from "./subscription-schemas.js";

const BASE = "/v4/entity/:entity/webhookSubscription/:id";
/** POST-only actions under `…/{id}/`: a GET on them is 405, not an invalid date. */
const POST_ACTIONS = new Set(["test", "replay", "rotate-secret"]);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const DAY = /^(\d{4})-(\d{2})-(\d{2})$/;
const DAY_MS = 24 * 60 * 60_000;

function notFound(raw: string, entity: Entity): HeraldError {
  return new HeraldError("HERALD_SUBSCRIPTION_NOT_FOUND", { id: raw, entity: entity.name });
}

async function existing(
  { db, secrets }: Pick<AppDeps, "db" | "secrets">,
  entity: Entity,
  raw: string,
): Promise<SubscriptionWithCursor> {
  const id = /^\d{1,15}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(id) || id <= 0) throw notFound(raw, entity);
  const found = await findSubscription(db, secrets, entity.id, id);
  if (!found) throw notFound(raw, entity);
  return found;
}

/** An ISO 8601 time of a query or body field; 400 naming the field otherwise. */
function parseTime(raw: string, name: string, where: "query" | "body"): Date {
  const time = /^\d{4}-\d{2}-\d{2}/.test(raw) ? Date.parse(raw) : NaN;
  if (Number.isNaN(time)) {
    const reason = "must be an ISO 8601 time such as 2026-11-30T08:00:00Z";
    if (where === "query")
      throw new HeraldError("HERALD_INVALID_QUERY", { parameter: name, reason });
    throw invalid(name, reason);
  }
  return new Date(time);
}

/** Midnight UTC of a `yyyy-MM-dd` day, or undefined when it is not a real day. */
export function parseDay(raw: string): Date | undefined {
  const m = DAY.exec(raw);
  if (!m) return undefined;
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  if (
    date.getUTCFullYear() !== year ||
    date.getUTCMonth() !== month - 1 ||
    date.getUTCDate() !== day
  )
    return undefined;
  return date;
}

function unprocessable(path: string, message: string): HeraldError {
  return new HeraldError("HERALD_UNPROCESSABLE", { reason: `${path}: ${message}` }, [
    { path, message },
  ]);
}

const deliveryControlRoutes: RouteModule = async (app, deps) => {
  const entityOf = (request: FastifyRequest, name: string) =>
    resolveEntity(deps.entityCache, authOf(request), name);

  // One sender for test pushes, opened on first use: the same guarded client as delivery's.
  let sender: HttpSender | undefined;
  const testSender = () =>
    (sender ??= createHttpSender({
      timeoutMs: deps.config.deliveryTimeoutMs,
      allowInsecureTargets: deps.config.allowInsecureTargets,
      workerId: `api:${hostname()}:${process.pid}`,
    }));
  app.addHook("onClose", async () => {
    await sender?.close();
  });

  app.get(
    `${BASE}/attempts`,
    {
      schema: {
        tags: CONTROL_TAGS,
        summary: "[ext] Push attempts of a subscription, newest first, with filters and paging",
        params: SubscriptionParams,
        querystring: AttemptsQuery,
        response: { 200: AttemptsResponse },
      },
    },
    async (request) => {
      const entity = await entityOf(request, request.params.entity);
      const subscription = await existing(deps, entity, request.params.id);
      const q = request.query;
      if (q.outcome !== undefined && !(ATTEMPT_OUTCOMES as readonly string[]).includes(q.outcome))
        throw new HeraldError("HERALD_INVALID_QUERY", {
          parameter: "outcome",
          reason: `must be one of ${ATTEMPT_OUTCOMES.join(", ")}`,
        });
      if (
        q.errorClass !== undefined &&
        !(ERROR_CLASSES as readonly string[]).includes(q.errorClass)
      )
        throw new HeraldError("HERALD_INVALID_QUERY", {
          parameter: "errorClass",
          reason: `must be one of ${ERROR_CLASSES.join(", ")}`,
        });
      if (q.pushId !== undefined && !UUID.test(q.pushId))
        throw new HeraldError("HERALD_INVALID_QUERY", {
          parameter: "pushId",
          reason: "must be a push id (a UUID)",
        });
      const from = q.from === undefined ? undefined : parseTime(q.from, "from", "query");
      const to = q.to === undefined ? undefined : parseTime(q.to, "to", "query");
      const page = q.page ?? 0;
      const pageSize = q.pageSize ?? 100;
      const { items, total, capped } = await listSubscriptionAttempts(
        deps.db,
        subscription.id,
        {
          ...(from ? { from } : {}),
          ...(to ? { to } : {}),
          ...(q.outcome !== undefined ? { outcome: q.outcome as AttemptOutcomeName } : {}),
          ...(q.errorClass !== undefined ? { errorClass: q.errorClass } : {}),
          ...(q.pushId !== undefined ? { pushId: q.pushId.toLowerCase() } : {}),
        },
        { page, pageSize },
      );
      return {
        attempts: items.map(attemptJson),
        page,
        pageSize,
        totalElements: total,
        totalElementsCapped: capped,
      };
    },
  );

  app.get(
    `${BASE}/:date`,
    {
      schema: {
        tags: CONTROL_TAGS,
        summary: "The failed push attempts of one UTC day (the daily error log), oldest first",
        params: DateParams,
        querystring: PageQuery,
        response: { 200: DailyLogResponse },
      },
    },
    async (request) => {
      const { date: raw } = request.params;
      if (POST_ACTIONS.has(raw))
        throw new HeraldError(
          "HERALD_METHOD_NOT_ALLOWED",
          { method: request.method, url: request.url },
          [],
          { allow: "POST" },
        );
      const entity = await entityOf(request, request.params.entity);
      const subscription = await existing(deps, entity, request.params.id);
      const day = parseDay(raw);
      if (!day) throw invalid("date", `'${raw}' is not a day in the form yyyy-MM-dd (UTC)`);
      const page = request.query.page ?? 0;
      const pageSize = request.query.pageSize ?? 100;
      const { items, total, capped } = await listSubscriptionAttempts(
        deps.db,
        subscription.id,
        { from: day, to: new Date(day.getTime() + DAY_MS), failedOnly: true },
        { page, pageSize },
        "oldest",
      );
      return {
        date: raw,
        failures: items.map(failureJson),
        page,
        pageSize,
        totalElements: total,
        totalElementsCapped: capped,
      };
    },
  );

  app.post(
    `${BASE}/rotate-secret`,
    {
      schema: {
        tags: CONTROL_TAGS,
        summary:
          "[ext] New signing secret; the old one keeps signing (second signature) for the grace period",
        params: SubscriptionParams,
        body: RotateBody,
        response: { 200: RotateResponse },
      },
      // No body at all means the defaults (validation runs after this hook).
      preValidation: async (request) => {
        request.body ??= {};
      },
    },
    async (request) => {
      const entity = await entityOf(request, request.params.entity);
      const current = await existing(deps, entity, request.params.id);
      const grace = request.body.gracePeriodSeconds ?? ROTATION_GRACE_SECONDS.default;
      if (grace < ROTATION_GRACE_SECONDS.min || grace > ROTATION_GRACE_SECONDS.max)
        throw invalid(
          "gracePeriodSeconds",
          `must be between ${ROTATION_GRACE_SECONDS.min} and ${ROTATION_GRACE_SECONDS.max} (7 days)`,
        );
      const rotated = await rotateSubscriptionSecret(
        deps.db,
        deps.secrets,
        entity.id,
        current.id,
        generateWebhookSecret(),
        grace,
      );
      if (!rotated) throw notFound(request.params.id, entity);
      deps.hooks.subscriptionsChanged();
      request.log.info(
        { subscriptionId: rotated.id, entity: entity.name, gracePeriodSeconds: grace },
        "webhook secret rotated",
      );
      return {
        secret: rotated.secret,
        previousSecretExpiresAt: rotated.previousSecretExpiresAt!.toISOString(),
        gracePeriodSeconds: grace,
      };
    },
  );

  app.post(
    `${BASE}/test`,
    {
      schema: {
        tags: CONTROL_TAGS,
        summary:
          "[ext] Sends one signed sample push to the target now and reports what the endpoint answered",
        params: SubscriptionParams,
        response: { 200: TestResponse },
      },
    },
    async (request) => {
      const entity = await entityOf(request, request.params.entity);
      const subscription = await existing(deps, entity, request.params.id);
      const table =
        subscription.on === "PROFILE_TABLE" || subscription.on === "CUSTOM_TABLE"
          ? await findTable(deps.db, entity.id, subscription.on, subscription.onElementId ?? "")
          : undefined;
      const now = new Date();
      const pushId = randomUUID();
      const body = testPushBody(subscription, sampleEvent(subscription, table, now), pushId);
      const result: AttemptResult = await testSender().send({
        url: subscription.targetUrl,
        body,
        headers: subscription.headers,
        signatureHeaders: webhookSignatureHeaders(subscription, pushId, body, now),
      });
      const errorClass = classifyResult(result);
      request.log.info(
        { subscriptionId: subscription.id, pushId, errorClass, durationMs: result.durationMs },
        "test push sent",
      );
      return {
        pushId,
        delivered: errorClass === null,
        statusCode: result.kind === "response" ? result.status : null,
        errorClass,
        errorMessage: result.kind === "error" ? result.message : null,
        durationMs: result.durationMs,
        responseExcerpt: result.kind === "response" && result.excerpt ? result.excerpt : null,
      };
    },
  );

  app.post(
    `${BASE}/replay`,
    {
      schema: {
        tags: CONTROL_TAGS,
        summary:
          "[ext] Re-send the subscription's matching events from a log position or a time (202: queued for delivery)",
        params: SubscriptionParams,
        body: ReplayBody,
        response: { 202: ReplayResponse },
      },
    },
    async (request, reply) => {
      const entity = await entityOf(request, request.params.entity);
      const subscription = await existing(deps, entity, request.params.id);
      const body = request.body;
      if ((body.fromPosition === undefined) === (body.fromTime === undefined))
        throw invalid("fromPosition", "send exactly one of fromPosition and fromTime");
      if (body.fromPosition !== undefined && body.fromPosition < 1)
        throw invalid("fromPosition", "must be 1 or more (log positions start at 1)");
      if (body.toPosition !== undefined && body.toPosition < 1)
        throw invalid("toPosition", "must be 1 or more");
      const fromTime =
        body.fromTime === undefined ? null : parseTime(body.fromTime, "fromTime", "body");
      const bounds = await readLogBounds(deps.db);
      const to = body.toPosition ?? bounds.head;
      if (to > bounds.head)
        throw unprocessable("toPosition", `is beyond the log head (${bounds.head})`);
      let from: number;
      if (fromTime) {
        const pruned = bounds.oldest === undefined ? bounds.head > 0 : bounds.oldest.position > 1;
        if (pruned && (bounds.oldest === undefined || fromTime < bounds.oldest.occurredAt))
          throw unprocessable(
            "fromTime",
            `the log before ${bounds.oldest?.occurredAt.toISOString() ?? "now"} was pruned (retention ${deps.config.retentionDays} days); replay from a later time`,
          );
        const found = await firstPositionAtOrAfter(deps.db, entity.id, fromTime);
        if (found === undefined)
          throw unprocessable("fromTime", "no event of this entity occurred at or after it");
        from = found;
      } else {
        from = body.fromPosition!;
        const oldest = bounds.oldest?.position ?? bounds.head + 1;
        if (from < oldest && from <= bounds.head)
          throw unprocessable(
            "fromPosition",
            `positions below ${oldest} were pruned (retention ${deps.config.retentionDays} days); replay from ${oldest} or later`,
          );
      }
      if (from > to)
        throw unprocessable(
          body.fromTime !== undefined ? "fromTime" : "fromPosition",
          `nothing to replay: the range starts at position ${from}, after its end ${to}`,
        );
      const replay = await insertReplay(deps.db, {
        subscriptionId: subscription.id,
        fromPosition: from,
        toPosition: to,
        fromTime,
      });
      if (!replay)
        throw new HeraldError("HERALD_CONFLICT", {
          reason: `subscription ${subscription.id} already has ${MAX_OPEN_REPLAYS} open replays; wait for them or cancel one (DELETE …/replays/{replayId})`,
        });
      deps.hooks.subscriptionsChanged();
      request.log.info(
        { subscriptionId: subscription.id, replayId: replay.id, from, to },
        "replay requested",
      );
      return reply.code(202).send(replayJson(replay));
    },
  );

  app.get(
    `${BASE}/replays`,
    {
      schema: {
        tags: CONTROL_TAGS,
        summary: "[ext] The subscription's replay requests, newest first (the last 50)",
        params: SubscriptionParams,
        response: { 200: ReplayListResponse },
      },
    },
    async (request) => {
      const entity = await entityOf(request, request.params.entity);
      const subscription = await existing(deps, entity, request.params.id);
      return { replays: (await listReplays(deps.db, subscription.id)).map(replayJson) };
    },
  );

  app.delete(
    `${BASE}/replays/:replayId`,
    {
      schema: {
        tags: CONTROL_TAGS,
        summary: "[ext] Cancel an open replay (events already re-sent stay sent)",
        params: ReplayParams,
        response: { 200: ReplayResponse },
      },
    },
    async (request) => {
      const entity = await entityOf(request, request.params.entity);
      const subscription = await existing(deps, entity, request.params.id);
      const raw = request.params.replayId;
      const replayId = /^\d{1,15}$/.test(raw) ? Number(raw) : 0;
      const replay =
        replayId > 0 ? await cancelReplay(deps.db, subscription.id, replayId) : undefined;
      if (!replay)
        throw new HeraldError("HERALD_REPLAY_NOT_FOUND", { replayId: raw, id: subscription.id });
      deps.hooks.subscriptionsChanged();
      return replayJson(replay);
    },
  );
};
export default deliveryControlRoutes;
