/** Renders every error as the JSON body of SPEC §2. Nothing internal leaks into a 500. */
import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import type { ErrorDetail } from "../domain/errors.js";
import { HeraldError } from "../domain/errors.js";

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
    case "FST_ERR_CTP_INVALID_CONTENT_LENGTH":
      return new HeraldError("HERALD_MALFORMED_JSON", { reason: error.message });
    case "FST_ERR_VALIDATION": {
      const validation =
        (
          error as FastifyError & {
            validation?: { instancePath?: string; message?: string }[];
            validationContext?: string;
          }
        ).validation ?? [];
      const context = (error as { validationContext?: string }).validationContext ?? "body";
      const details: ErrorDetail[] = validation.map((v) => ({
        path: `${context}${(v.instancePath ?? "").replace(/\//g, ".")}`,
        message: v.message ?? "is invalid",
      }));
      const first = details[0];
      return new HeraldError(
        "HERALD_VALIDATION",
        { reason: first ? `${first.path} ${first.message}` : error.message },
        details,
      );
    }
  }
  if (error instanceof SyntaxError)
    return new HeraldError("HERALD_MALFORMED_JSON", { reason: error.message });
  if (typeof error.statusCode === "number" && error.statusCode === 405) {
    return new HeraldError("HERALD_METHOD_NOT_ALLOWED", {
      method: request.method,
      url: request.url,
    });
  }
  return undefined;
}

export function handleError(
  error: FastifyError,
  request: FastifyRequest,
  reply: FastifyReply,
): FastifyReply {
  let herald = error instanceof HeraldError ? error : fromFastify(error, request);
  if (!herald) {
    const status = typeof error.statusCode === "number" ? error.statusCode : 500;
    if (status >= 400 && status < 500) {
      herald = new HeraldError("HERALD_VALIDATION", { reason: error.message });
    } else {
      request.log.error({ err: error }, "unhandled error while serving the request");
      herald = new HeraldError("HERALD_INTERNAL", { requestId: String(request.id) });
    }
  }
  return reply
    .code(herald.status)
    .headers(herald.headers)
    .type("application/json")
    .send(herald.toBody());
}

export function handleNotFound(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const error = new HeraldError("HERALD_NOT_FOUND", {
    method: request.method,
    url: request.url.split("?")[0] ?? "",
  });
  return reply.code(404).send(error.toBody());
}
