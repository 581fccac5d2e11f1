/**
 * Every answered request is counted and timed in the metrics (by method, route pattern and status),
 * and logged when it failed. Requests that went well log nothing at the default level: per-request
 * info logs cost too much at webhook rates (the server is made with request logging off).
 */
import type { FastifyInstance } from "fastify";
import { httpRequestDuration, httpRequests } from "../../metrics.js";

export function registerRequestMetrics(app: FastifyInstance): void {
  app.addHook("onResponse", async (request, reply) => {
    const route = request.routeOptions.url ?? "unmatched";
    httpRequests.inc({ method: request.method, route, status: reply.statusCode });
    httpRequestDuration.observe({ method: request.method, route }, reply.elapsedTime / 1000);
    // A 503 (database away or busy, shutting down) is expected and logged once where it starts;
    // one warning per refused request would bury that line under hundreds.
    if (reply.statusCode >= 500 && reply.statusCode !== 503)
      request.log.warn({ url: request.url, status: reply.statusCode }, "request failed");
    else if (reply.statusCode === 503)
      request.log.debug({ url: request.url, status: reply.statusCode }, "request refused (503)");
    else if (request.log.level === "debug" || request.log.level === "trace") {
      request.log.debug(
        {
          method: request.method,
          url: request.url,
          status: reply.statusCode,
          ms: reply.elapsedTime,
        },
        "request",
      );
    }
  });
}
