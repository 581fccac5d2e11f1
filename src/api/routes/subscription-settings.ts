/**
 * A subscription request turned into the settings to store (SPEC §4), checked in four steps (see
 * `domain/subscription-validation.ts`): the request alone (400), the element it names (404), what
 * the element allows (422), and, unless the operator allows insecure targets, the target's address
 * as the delivery guard would judge it (422 HERALD_BLOCKED_TARGET; a DNS lookup for a name). The
 * create, replace and update routes all go through settingsFrom (subscription-routes.ts).
 */
import type { FastifyRequest } from "fastify";
import type { EventSource, EventType } from "../../domain/change-event.js";
import type { TableKind } from "../../domain/data-table.js";
import type { ErrorDetail } from "../../domain/errors.js";
import { HeraldError } from "../../domain/errors.js";
import type { Subscription } from "../../domain/subscription.js";
import type { SubscriptionRequest } from "../../domain/subscription-validation.js";
import {
  elementProblems,
  isTableSource,
  normalizeElementId,
  requestProblems,
  toSubscriptionSettings,
} from "../../domain/subscription-validation.js";
import { checkTargetHost, systemHostLookup } from "../../delivery/address-guard.js";
import type { Database } from "../../storage/database.js";
import { findTable } from "../../storage/data-table-repository.js";
import type { Entity } from "../../storage/tenancy-repository.js";
import type { AppDeps } from "../app-deps.js";
import { resolveTriggerElement } from "../trigger-sources.js";

function badRequest(problems: ErrorDetail[]): HeraldError {
  const first = problems[0]!;
  return new HeraldError(
    "HERALD_VALIDATION",
    { reason: `${first.path} ${first.message}` },
    problems,
  );
}

function unprocessable(problems: ErrorDetail[]): HeraldError {
  const first = problems[0]!;
  return new HeraldError(
    "HERALD_UNPROCESSABLE",
    { reason: `${first.path}: ${first.message}` },
    problems,
  );
}

async function tableOf(
  db: Database,
  entity: Entity,
  kind: TableKind,
  idOrName: string,
  path: string,
) {
  const table = await findTable(db, entity.id, kind, idOrName);
  if (!table) {
    throw new HeraldError("HERALD_TABLE_NOT_FOUND", { table: idOrName, entity: entity.name }, [
      {
        path,
        message: `no ${kind === "PROFILE_TABLE" ? "profile" : "custom"} table '${idOrName}' in entity '${entity.name}'`,
      },
    ]);
  }
  return table;
}

/**
 * Refuses (422) a target that every push would be refused, unless the operator allows insecure
 * targets. Names are resolved as the push's connection resolves them (the system resolver). A
 * name that does not resolve is accepted with a warning in the log: a record not published yet or
 * a resolver briefly down should not block the change, and pushes to it fail visibly (error class
 * `dns`) until it resolves, where the connect-time guard judges it again.
 */
async function checkTarget(deps: AppDeps, request: FastifyRequest, targetUrl: string) {
  if (deps.config.allowInsecureTargets) return;
  const verdict = await checkTargetHost(targetUrl, systemHostLookup);
  if (verdict.kind === "refused")
    throw new HeraldError("HERALD_BLOCKED_TARGET", { reason: verdict.reason }, [
      {
        path: "targetUrl",
        message: `${verdict.reason}: such targets are allowed only with HERALD_ALLOW_INSECURE_TARGETS=true or --allow-insecure-targets`,
      },
    ]);
  if (verdict.kind === "unresolved")
    request.log.warn(
      { targetHost: verdict.host, reason: verdict.reason },
      "webhook target does not resolve; accepted, but its pushes fail until it does",
    );
}

/**
 * Checks a request and turns it into settings to store. `secret` is what to keep when the request
 * brings none; `legacyTable` is the table named by a legacy path (then `on`/`onElementId` come from
 * it); `current` the subscription a PUT or PATCH replaces (an unchanged target, trigger source
 * element or `expiresAt` is not checked again, so a subscription that was accepted can always be
 * paused or edited).
 */
export async function settingsFrom(
  deps: AppDeps,
  entity: Entity,
  request: FastifyRequest,
  body: SubscriptionRequest,
  secret: string,
  legacyTable?: { kind: TableKind; idOrName: string },
  current?: Pick<Subscription, "targetUrl" | "on" | "onElementId" | "expiresAt">,
) {
  const raw = request.body as Record<string, unknown>;
  const candidate: SubscriptionRequest = legacyTable
    ? { ...body, on: legacyTable.kind, onElementId: legacyTable.idOrName }
    : body;
  const problems = requestProblems(candidate, {
    allowInsecureTargets: deps.config.allowInsecureTargets,
    legacyPath: legacyTable !== undefined,
    bodyFields: Object.keys(raw ?? {}),
    currentExpiresAt: current?.expiresAt ?? null,
  });
  if (problems.length > 0) throw badRequest(problems);
  const checked = candidate as SubscriptionRequest & {
    on: EventSource;
    eventType: EventType;
    targetUrl: string;
  };
  const elementId = normalizeElementId(checked.onElementId);
  const table = isTableSource(checked.on)
    ? await tableOf(deps.db, entity, checked.on, elementId!, legacyTable ? "table" : "onElementId")
    : undefined;
  const keptElement = checked.on === current?.on && elementId === current.onElementId;
  const element = isTableSource(checked.on)
    ? table!.id
    : keptElement
      ? elementId
      : await resolveTriggerElement(deps.db, entity, checked.on, elementId);
  const semantic = elementProblems(checked, table);
  if (semantic.length > 0) throw unprocessable(semantic);
  const settings = toSubscriptionSettings(checked, element, secret);
  if (settings.targetUrl !== current?.targetUrl)
    await checkTarget(deps, request, settings.targetUrl);
  return settings;
}
