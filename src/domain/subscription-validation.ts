/**
 * Rules for a webhook subscription sent by a client (SPEC §4), in two steps:
 *
 * - `requestProblems`: what can be judged from the request alone (400): known fields, `on`,
 *   `eventType` and `pushMode` values, ranges, the target URL, headers, the secret, the form of
 *   `conditions`, `expiresAt` being a time still to come, and `onElementId` being present for
 *   table sources;
 * - `elementProblems`: what needs the table the subscription listens to (422): `eventType` fits `on`,
 *   `onFields` and condition attributes are attributes of the table, a custom-table UPDATE needs a
 *   declared UPDATE event, filters and payload version 1 are refused on sources that have no table.
 *
 * Between the two, the API resolves the element (404 when a table, ETL or other trigger source does
 * not exist); after them it checks the target's address (422, see delivery/address-guard.ts).
 * `toSubscriptionSettings` then fills the defaults and drops reserved headers.
 */
import { checkScalar } from "./attribute-values.js";
import type { ErrorDetail } from "./errors.js";
import type { EventSource, EventType } from "./change-event.js";
import { EVENT_SOURCES, EVENT_TYPES, EVENT_TYPES_BY_SOURCE } from "./change-event.js";
import type { MatchingConditions } from "./conditions.js";
import { validateConditions } from "./conditions.js";
import type { DataTable } from "./data-table.js";
import { attributeNames, hasDeclaredUpdateEvent, TABLE_KINDS } from "./data-table.js";
import type {
  PayloadVersion,
  PushMode,
  Subscription,
  SubscriptionSettings,
} from "./subscription.js";
import { PAYLOAD_VERSIONS, PUSH_MODES, SUBSCRIPTION_DEFAULTS } from "./subscription.js";
import { webhookSecretProblem } from "./webhook-secret.js";

/** A subscription as a client sends it, after the JSON types are checked (values not yet). */
export interface SubscriptionRequest {
  on?: string;
  onElementId?: string | number | null;
  eventType?: string;
  onFields?: string[];
  targetUrl?: string;
  headers?: Record<string, string>;
  isActive?: boolean;
  pushMode?: string;
  maxBlockSize?: number;
  lingerMs?: number;
  maxWaitMs?: number;
  maxConcurrency?: number;
  includePrevious?: boolean;
  conditions?: MatchingConditions | null;
  secret?: string | null;
  payloadVersion?: number;
  /** [ext] ISO 8601 time after which housekeeping deletes the subscription; null = never. */
  expiresAt?: string | null;
}

/** Inclusive ranges of the numeric settings. */
export const SUBSCRIPTION_LIMITS = {
  maxBlockSize: { min: 1, max: 1000 },
  lingerMs: { min: 0, max: 60_000 },
  maxWaitMs: { min: 0, max: 600_000 },
  maxConcurrency: { min: 1, max: 64 },
} as const;

export const MAX_ON_FIELDS = 200;
export const MAX_HEADERS = 32;
export const MAX_HEADER_VALUE_LENGTH = 4096;
export const MAX_TARGET_URL_LENGTH = 2048;

/**
 * Headers Herald sets itself (or that belong to the connection) and so never takes from a
 * subscription. They are dropped without an error, as Actito drops `Content-Type` (SPEC §4).
 */
export const RESERVED_HEADERS: readonly string[] = [
  "content-type",
  "content-length",
  "content-encoding",
  "transfer-encoding",
  "host",
  "user-agent",
  "connection",
  "keep-alive",
  "upgrade",
  "te",
  "trailer",
  "expect",
  "webhook-id",
  "webhook-timestamp",
  "webhook-signature",
];

/** Fields of the request body. */
export const SUBSCRIPTION_FIELDS: readonly string[] = [
  "on",
  "onElementId",
  "eventType",
  "onFields",
  "targetUrl",
  "headers",
  "isActive",
  "pushMode",
  "maxBlockSize",
  "lingerMs",
  "maxWaitMs",
  "maxConcurrency",
  "includePrevious",
  "conditions",
  "secret",
  "payloadVersion",
  "expiresAt",
];

/** Fields Herald returns but never takes: ignored in a body, so a GET → edit → PUT round trip works. */
export const READ_ONLY_FIELDS: readonly string[] = [
  "id",
  "status",
  "createdAt",
  "updatedAt",
  "_links",
];

/** On the legacy table paths the path names the table, so the body cannot. */
export const LEGACY_PATH_FIELDS: readonly string[] = ["on", "onElementId"];

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// Visible ASCII, space, tab and obs-text; no CR, LF or other control characters.
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

export function isTableSource(on: EventSource): on is "PROFILE_TABLE" | "CUSTOM_TABLE" {
  return (TABLE_KINDS as readonly string[]).includes(on);
}

function oneOf<T extends string>(value: string | undefined, allowed: readonly T[]): value is T {
  return value !== undefined && (allowed as readonly string[]).includes(value);
}

/** The element id as stored: trimmed text, or null for "every element". */
export function normalizeElementId(value: string | number | null | undefined): string | null {
  if (value === undefined || value === null) return null;
  const text = String(value).trim();
  return text === "" ? null : text;
}

function targetUrlProblem(raw: string, allowInsecure: boolean): string | undefined {
  if (raw.length > MAX_TARGET_URL_LENGTH)
    return `must be at most ${MAX_TARGET_URL_LENGTH} characters`;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return "must be an absolute URL such as https://example.com/hooks";
  }
  const allowed = allowInsecure ? ["https:", "http:"] : ["https:"];
  if (!allowed.includes(url.protocol)) {
    return allowInsecure
      ? "must be an http:// or https:// URL"
      : "must be an https:// URL (plain http is allowed only when the operator sets HERALD_ALLOW_INSECURE_TARGETS=true or starts Herald with --allow-insecure-targets)";
  }
  if (url.hostname === "") return "must name a host";
  if (url.username !== "" || url.password !== "")
    return "must not carry credentials; send them in `headers` instead";
  return undefined;
}

function headerProblems(headers: Record<string, string>): ErrorDetail[] {
  const problems: ErrorDetail[] = [];
  const names = Object.keys(headers);
  if (names.length > MAX_HEADERS)
    problems.push({ path: "headers", message: `must have at most ${MAX_HEADERS} headers` });
  for (const name of names) {
    const value = headers[name] ?? "";
    if (!HEADER_NAME.test(name))
      problems.push({ path: `headers.${name}`, message: "is not a valid HTTP header name" });
    else if (!HEADER_VALUE.test(value))
      problems.push({
        path: `headers.${name}`,
        message: "must not contain line breaks or control characters",
      });
    else if (value.length > MAX_HEADER_VALUE_LENGTH)
      problems.push({
        path: `headers.${name}`,
        message: `must be at most ${MAX_HEADER_VALUE_LENGTH} characters`,
      });
  }
  return problems;
}

/** The attributes a conditions object names (to check its form without judging the names). */
function conditionAttributes(conditions: MatchingConditions): string[] {
  return [
    ...(conditions.stateBeforeOperation ?? []),
    ...(conditions.stateAfterOperation ?? []),
  ].map((c) => c.attribute);
}

export interface RequestCheckOptions {
  allowInsecureTargets: boolean;
  /** The time `expiresAt` must be after (default: now). */
  now?: Date;
  /**
   * The stored `expiresAt` of the subscription being replaced: sent back unchanged, it is kept even
   * when it has passed meanwhile (a GET → edit → PUT round trip must not fail on it).
   */
  currentExpiresAt?: Date | null;
  /** Legacy table paths: `on` and `onElementId` come from the path. */
  legacyPath?: boolean;
  /** Names of the fields present in the raw body (to refuse unknown ones). */
  bodyFields?: readonly string[];
}

/** Problems that make the request invalid on its own (400); empty when there are none. */
export function requestProblems(
  request: SubscriptionRequest,
  options: RequestCheckOptions,
): ErrorDetail[] {
  const problems: ErrorDetail[] = [];
  const add = (path: string, message: string) => problems.push({ path, message });

  for (const field of options.bodyFields ?? []) {
    if (options.legacyPath && LEGACY_PATH_FIELDS.includes(field))
      add(field, "is given by the path on this endpoint (…/table/{table}/…); leave it out");
    else if (!SUBSCRIPTION_FIELDS.includes(field) && !READ_ONLY_FIELDS.includes(field))
      add(field, "is not a field of a webhook subscription");
  }

  if (!oneOf(request.on, EVENT_SOURCES)) add("on", `must be one of ${EVENT_SOURCES.join(", ")}`);
  else if (isTableSource(request.on) && normalizeElementId(request.onElementId) === null)
    add("onElementId", `is required when on is ${request.on} (the table's id or name)`);

  if (!oneOf(request.eventType, EVENT_TYPES))
    add("eventType", `must be one of ${EVENT_TYPES.join(", ")}`);

  if (request.targetUrl === undefined) add("targetUrl", "is required");
  else {
    const problem = targetUrlProblem(request.targetUrl.trim(), options.allowInsecureTargets);
    if (problem) add("targetUrl", problem);
  }

  if (request.pushMode !== undefined && !oneOf(request.pushMode, PUSH_MODES))
    add("pushMode", `must be one of ${PUSH_MODES.join(", ")}`);

  if (
    request.payloadVersion !== undefined &&
    !(PAYLOAD_VERSIONS as readonly number[]).includes(request.payloadVersion)
  )
    add(
      "payloadVersion",
      "must be 2 (the current payload, the default) or 1 (the older Actito format with tableType, tableId and data.id)",
    );

  for (const key of Object.keys(SUBSCRIPTION_LIMITS) as (keyof typeof SUBSCRIPTION_LIMITS)[]) {
    const value = request[key];
    const { min, max } = SUBSCRIPTION_LIMITS[key];
    if (value !== undefined && (!Number.isInteger(value) || value < min || value > max))
      add(key, `must be a whole number from ${min} to ${max}`);
  }

  const onFields = request.onFields ?? [];
  if (onFields.length > MAX_ON_FIELDS)
    add("onFields", `must list at most ${MAX_ON_FIELDS} attributes`);
  onFields.forEach((field, i) => {
    if (field.trim() === "") add(`onFields[${i}]`, "must not be empty");
  });

  if (request.headers) problems.push(...headerProblems(request.headers));

  if (request.secret !== undefined && request.secret !== null) {
    const problem = webhookSecretProblem(request.secret);
    if (problem) add("secret", problem);
  }

  if (request.conditions) {
    const c = request.conditions;
    problems.push(...validateConditions(c, conditionAttributes(c), "conditions"));
  }

  if (request.expiresAt !== undefined && request.expiresAt !== null) {
    const problem = expiresAtProblem(request.expiresAt, options);
    if (problem) add("expiresAt", problem);
  }
  return problems;
}

/** The time an `expiresAt` text names (ISO 8601; without a zone, UTC), or undefined. */
export function parseExpiresAt(raw: string): Date | undefined {
  const checked = checkScalar("TIMESTAMP", raw);
  return checked.kind === "valid" ? new Date(checked.value as string) : undefined;
}

function expiresAtProblem(raw: string, options: RequestCheckOptions): string | undefined {
  const at = parseExpiresAt(raw);
  if (!at)
    return "must be an ISO 8601 time such as 2026-11-30T08:00:00Z (or null for a subscription that never expires)";
  if (options.currentExpiresAt && at.getTime() === options.currentExpiresAt.getTime())
    return undefined;
  const now = options.now ?? new Date();
  if (at.getTime() <= now.getTime())
    return `must be in the future; ${at.toISOString()} has passed (it is ${now.toISOString()}). Send null, or leave it out, for a subscription that never expires`;
  return undefined;
}

/** The event types an element of `on` emits, for messages. */
function typesOf(on: EventSource): string {
  return EVENT_TYPES_BY_SOURCE[on].join(", ");
}

/**
 * Problems with what the subscription listens to (422), once `requestProblems` found none. `table`
 * is the resolved table for table sources and undefined for trigger sources (whose element the
 * route has resolved or refused with 404 already).
 */
export function elementProblems(
  request: SubscriptionRequest & { on: EventSource; eventType: EventType },
  table: DataTable | undefined,
): ErrorDetail[] {
  const problems: ErrorDetail[] = [];
  const add = (path: string, message: string) => problems.push({ path, message });
  const { on, eventType } = request;

  if (!EVENT_TYPES_BY_SOURCE[on].includes(eventType))
    add("eventType", `'${eventType}' does not fit on ${on}; use one of ${typesOf(on)}`);

  const onFields = request.onFields ?? [];
  const hasConditions = conditionAttributes(request.conditions ?? {}).length > 0;
  if (!table) {
    if (onFields.length > 0)
      add("onFields", `applies to table sources only, not to ${on} (leave it out)`);
    if (hasConditions)
      add("conditions", `applies to table sources only, not to ${on} (leave it out)`);
    if (request.payloadVersion === 1)
      add(
        "payloadVersion",
        `1 is the older format of table events (tableType, tableId, data.id); ${on} events exist only in the current format (leave it out, or send 2)`,
      );
    return problems;
  }

  const known = new Set(attributeNames(table));
  onFields.forEach((field, i) => {
    if (!known.has(field))
      add(`onFields[${i}]`, `'${field}' is not an attribute of table '${table.name}'`);
  });
  if (request.conditions) {
    problems.push(
      ...validateConditions(request.conditions, [...known], "conditions").map((p) => ({
        path: p.path,
        message: p.message.replace("of the table", `of table '${table.name}'`),
      })),
    );
  }
  if (on === "CUSTOM_TABLE" && eventType === "UPDATE" && !hasDeclaredUpdateEvent(table)) {
    add(
      "eventType",
      `custom table '${table.name}' declares no UPDATE event in eventsToTrigger, so it emits no UPDATE events`,
    );
  }
  return problems;
}

/**
 * A stored subscription as the request that would set it again (its secret aside): what a PATCH
 * starts from before the fields it sends replace theirs.
 */
export function requestOf(subscription: Subscription): SubscriptionRequest {
  return {
    on: subscription.on,
    onElementId: subscription.onElementId,
    eventType: subscription.eventType,
    onFields: subscription.onFields,
    targetUrl: subscription.targetUrl,
    headers: subscription.headers,
    isActive: subscription.isActive,
    pushMode: subscription.pushMode,
    maxBlockSize: subscription.maxBlockSize,
    lingerMs: subscription.lingerMs,
    maxWaitMs: subscription.maxWaitMs,
    maxConcurrency: subscription.maxConcurrency,
    includePrevious: subscription.includePrevious,
    conditions: subscription.conditions,
    payloadVersion: subscription.payloadVersion,
    expiresAt: subscription.expiresAt?.toISOString() ?? null,
  };
}

/** Drops reserved headers (case-insensitively) and keeps the others as given. */
export function withoutReservedHeaders(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(headers).filter(([name]) => !RESERVED_HEADERS.includes(name.toLowerCase())),
  );
}

/** True when a conditions object has no condition at all (stored as null). */
function isEmptyConditions(conditions: MatchingConditions | null | undefined): boolean {
  return !conditions || conditionAttributes(conditions).length === 0;
}

/** Only the keys a condition has, and only the lists that have conditions. */
function cleanConditions(conditions: MatchingConditions): MatchingConditions {
  const clean: MatchingConditions = {};
  for (const side of ["stateBeforeOperation", "stateAfterOperation"] as const) {
    const list = conditions[side] ?? [];
    if (list.length > 0)
      clean[side] = list.map(({ attribute, operator, value }) =>
        value === undefined ? { attribute, operator } : { attribute, operator, value },
      );
  }
  return clean;
}

/**
 * The settings to store, from a request that passed both checks. `elementId` is the resolved
 * element (a table's id even when the client named it); `secret` the one to keep when the request
 * brings none (generated on create, the current one on replace).
 */
export function toSubscriptionSettings(
  request: SubscriptionRequest & { on: EventSource; eventType: EventType; targetUrl: string },
  elementId: string | null,
  secret: string,
): SubscriptionSettings {
  const onFields = [...new Set(request.onFields ?? [])];
  return {
    on: request.on,
    onElementId: elementId,
    eventType: request.eventType,
    onFields,
    targetUrl: request.targetUrl.trim(),
    headers: withoutReservedHeaders(request.headers ?? {}),
    isActive: request.isActive ?? true,
    pushMode: (request.pushMode as PushMode | undefined) ?? SUBSCRIPTION_DEFAULTS.pushMode,
    maxBlockSize: request.maxBlockSize ?? SUBSCRIPTION_DEFAULTS.maxBlockSize,
    lingerMs: request.lingerMs ?? SUBSCRIPTION_DEFAULTS.lingerMs,
    maxWaitMs: request.maxWaitMs ?? SUBSCRIPTION_DEFAULTS.maxWaitMs,
    maxConcurrency: request.maxConcurrency ?? SUBSCRIPTION_DEFAULTS.maxConcurrency,
    includePrevious: request.includePrevious ?? SUBSCRIPTION_DEFAULTS.includePrevious,
    conditions: isEmptyConditions(request.conditions) ? null : cleanConditions(request.conditions!),
    payloadVersion:
      (request.payloadVersion as PayloadVersion | undefined) ??
      SUBSCRIPTION_DEFAULTS.payloadVersion,
    secret: request.secret ?? secret,
    // Left out when there is none, as the stored column's NULL means "never".
    ...(request.expiresAt ? { expiresAt: parseExpiresAt(request.expiresAt) ?? null } : {}),
  };
}
