/**
 * Renders every error as the JSON body of SPEC §2. Nothing internal leaks into a 500: the body
 * names the request id, the log has the stack. Fastify's own errors (body parsing, validation) are
 * mapped onto the catalogue here; an unknown path is 404 and a known path with another method 405.
 * A database that went away is 503 with `Retry-After`, never a 500.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { STATUS_CODES } from "node:http";
import type { Socket } from "node:net";
import type { ErrorDetail } from "../domain/errors.js";
import { HeraldError } from "../domain/errors.js";
import { findUnavailable } from "../storage/database-unavailable.js";
import { findUnstorableText, UNSTORABLE_TEXT_MESSAGE } from "../domain/safe-text.js";

interface ValidationIssue {
  instancePath?: string;
  message?: string;
}

/** Fastify's own error codes, mapped onto the catalogue. */
function fromFastify(error: FastifyError, request: FastifyRequest): HeraldError | undefined {
  switch (error.code) {
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return new HeraldError("HERALD_UNSUPPORTED_MEDIA_TYPE", {
        contentType: request.headers["content-type"] ?? "",
      });
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return new HeraldError("HERALD_BODY_TOO_LARGE", {
        limit: request.routeOptions.bodyLimit ?? 0,
      });
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return new HeraldError("HERALD_MALFORMED_JSON", { reason: "the body is empty" });
    case "FST_ERR_CTP_INVALID_JSON_BODY":
      return new HeraldError("HERALD_MALFORMED_JSON", { reason: "it does not parse" });
    case "FST_ERR_CTP_INVALID_CONTENT_LENGTH":
      return new HeraldError("HERALD_MALFORMED_JSON", {
        reason: "its size does not match Content-Length",
      });
    case "FST_ERR_VALIDATION":
      return fromValidation(error);
  }
  if (error instanceof SyntaxError)
    return new HeraldError("HERALD_MALFORMED_JSON", { reason: "it does not parse" });
  return undefined;
}

/** A schema violation: 400 with one detail per violated rule, each naming the field's path. */
function fromValidation(error: FastifyError): HeraldError {
  const { validation = [], validationContext = "body" } = error as FastifyError & {
    validation?: ValidationIssue[];
    validationContext?: string;
  };
  const details: ErrorDetail[] = validation.map((issue) => ({
    path: `${validationContext}${(issue.instancePath ?? "").replace(/\//g, ".")}`,
    message: issue.message ?? "is invalid",
  }));
  const first = details[0];
  return new HeraldError(
    "HERALD_VALIDATION",
    { reason: first ? `${first.path} ${first.message}` : "the request does not match its schema" },
    details,
  );
}

/** Seconds a client is asked to wait when the database is unavailable (it reconnects by itself). */
export const DATABASE_RETRY_AFTER_S = 2;

/** 503 with `Retry-After`: the database is unavailable for now (`reason` in words). */
function databaseUnavailable(reason: string): HeraldError {
  const retryAfter = DATABASE_RETRY_AFTER_S;
  return new HeraldError("HERALD_DATABASE_UNAVAILABLE", { reason, retryAfter }, [], {
    "retry-after": String(retryAfter),
  });
}

export function handleError(
  error: FastifyError,
  request: FastifyRequest,
  reply: FastifyReply,
): FastifyReply {
  const herald = toHeraldError(error, request);
  return reply
    .code(herald.status)
    .headers(herald.headers)
    .type("application/json")
    .send(herald.toBody());
}

/**
 * Any error thrown while serving a request, as the catalogue's error that answers it (logged
 * when it is Herald's fault). The console renders the same error as a page.
 */
export function toHeraldError(error: FastifyError, request: FastifyRequest): HeraldError {
  let herald = error instanceof HeraldError ? error : fromFastify(error, request);
  const unavailable = herald ? undefined : findUnavailable(error);
  if (unavailable) {
    // Not the request's fault nor a bug: the database went away (the log line of each failed
    // request, from the onResponse hook, says 503; the cause is at debug).
    request.log.debug({ err: error }, "database unavailable");
    herald = databaseUnavailable(unavailable.reason);
  }
  if (!herald) {
    const status = typeof error.statusCode === "number" ? error.statusCode : 500;
    if (status >= 400 && status < 500) {
      // A client error from Fastify or a plugin that the catalogue does not map: its message is
      // Fastify's own wording about the request, never an internal detail.
      request.log.debug({ err: error }, "unmapped client error");
      herald = new HeraldError("HERALD_VALIDATION", { reason: error.message });
    } else {
      request.log.error({ err: error }, "unhandled error while serving the request");
      herald = new HeraldError("HERALD_INTERNAL", { requestId: String(request.id) });
    }
  }
  return herald;
}

/**
 * The method and path pattern of every route, so that the not-found handler can tell an unknown
 * path (404) from a known path asked with another method (405 with `Allow`).
 */
export class KnownRoutes {
  private readonly routes: { method: string; pattern: RegExp }[] = [];

  add(method: string | string[], url: string): void {
    const pattern = new RegExp(
      `^${url
        .split("/")
        .map((segment) =>
          segment === "*"
            ? ".*"
            : segment.includes(":")
              ? "[^/]+"
              : segment.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"),
        )
        .join("/")}$`,
    );
    for (const m of Array.isArray(method) ? method : [method]) {
      this.routes.push({ method: m.toUpperCase(), pattern });
    }
  }

  /** The methods that a path answers to (empty when no route has this path). */
  methodsOf(path: string): string[] {
    const methods = new Set<string>();
    for (const route of this.routes) if (route.pattern.test(path)) methods.add(route.method);
    return [...methods].sort();
  }
}

export function notFoundHandler(routes: KnownRoutes) {
  return (request: FastifyRequest, reply: FastifyReply): FastifyReply => {
    const path = request.url.split("?")[0] ?? "";
    const allowed = routes.methodsOf(path);
    // The message shows the path as the client sent it, service prefix included (`request.url` has
    // had it removed for routing).
    const url = request.originalUrl.split("?")[0] ?? path;
    const error =
      allowed.length > 0
        ? new HeraldError("HERALD_METHOD_NOT_ALLOWED", { method: request.method, url }, [], {
            allow: allowed.join(", "),
          })
        : new HeraldError("HERALD_NOT_FOUND", { method: request.method, url });
    return reply.code(error.status).headers(error.headers).send(error.toBody());
  };
}

/**
 * The router's refusals, which Fastify answers in its own format unless told otherwise: a path
 * that does not percent-decode (`%E0%A4%A`, `%zz`) and a path parameter longer than any name or key
 * Herald stores (app.ts MAX_PATH_PARAM_LENGTH). Both are a 400 in SPEC §2's shape.
 */
export function handleFrameworkError(
  error: FastifyError,
  request: FastifyRequest,
  reply: FastifyReply,
): FastifyReply {
  const path = request.url.split("?")[0] ?? "";
  const herald =
    error.code === "FST_ERR_BAD_URL"
      ? new HeraldError("HERALD_VALIDATION", { reason: "the path is not valid percent-encoding" }, [
          { path: "url", message: `'${path.slice(0, 200)}' does not percent-decode` },
        ])
      : error.code === "FST_ERR_MAX_PARAM_LENGTH"
        ? new HeraldError(
            "HERALD_VALIDATION",
            { reason: "a path segment is longer than any name or key Herald stores" },
            [{ path: "url", message: "holds a path segment that is too long" }],
          )
        : undefined;
  if (herald) return reply.code(herald.status).type("application/json").send(herald.toBody());
  return handleError(error, request, reply);
}

/**
 * Requests that Node's HTTP parser refuses before Fastify sees them (a malformed request line or
 * header, headers past the size limit, a client too slow to send its request): the answer is
 * written on the socket in SPEC §2's shape, then the connection is closed, as Node does.
 */
export function handleClientError(error: Error & { code?: string }, socket: Socket): void {
  // A reset connection has no one to answer.
  if (error.code === "ECONNRESET" || socket.destroyed) return;
  const herald =
    error.code === "ERR_HTTP_REQUEST_TIMEOUT"
      ? new HeraldError("HERALD_REQUEST_TIMEOUT")
      : error.code === "HPE_HEADER_OVERFLOW"
        ? new HeraldError("HERALD_HEADERS_TOO_LARGE")
        : new HeraldError("HERALD_VALIDATION", {
            reason: `it is not valid HTTP/1.1 (${error.code ?? "unparsable"})`,
          });
  if (socket.writable) {
    const body = JSON.stringify(herald.toBody());
    socket.write(
      `HTTP/1.1 ${herald.status} ${STATUS_CODES[herald.status] ?? ""}\r\n` +
        `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
        `Connection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(error);
}

/**
 * Refuses a request that holds text PostgreSQL cannot store (a NUL, an unpaired surrogate) in its
 * path parameters, query string or JSON body, before any handler runs: such text would fail the
 * query it reaches (a 500) or, in a jsonb value, be refused deep in a write. Checked once for
 * every route (a preValidation hook, plugins/storable-text.ts), so no route can forget it; a route
 * marked `textCheckedByRoute` refuses such text in its body itself, with a more precise code. The
 * detail names the offending place: `params.entity`, `querystring.onElementId`, `body.targetUrl`.
 */
export function assertStorableText(request: FastifyRequest): void {
  for (const [part, value] of [
    ["params", request.params],
    ["querystring", request.query],
    ["body", request.routeOptions.config.textCheckedByRoute ? undefined : request.body],
  ] as const) {
    const path = findUnstorableText(value, part);
    if (path !== undefined)
      throw new HeraldError("HERALD_VALIDATION", { reason: `${path} ${UNSTORABLE_TEXT_MESSAGE}` }, [
        { path, message: UNSTORABLE_TEXT_MESSAGE },
      ]);
  }
}
