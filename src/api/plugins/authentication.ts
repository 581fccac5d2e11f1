/**
 * Authentication on every route not marked public (SPEC §1: a bearer token, or HTTP Basic for
 * legacy v4 clients; auth.ts), and the licence's rate limits (rate-limiter.ts) once the caller is
 * known. The docs at /docs are public too.
 */
import type { FastifyInstance } from "fastify";
import type { AppDeps } from "../app-deps.js";
import { RateLimiter } from "../rate-limiter.js";

declare module "fastify" {
  interface FastifyContextConfig {
    /** Route answers without authentication. */
    public?: boolean;
  }
  interface FastifyRequest {
    /** Frees the request's rate-limit slot (set when rate limits are on). */
    releaseRateLimit: (() => void) | undefined;
  }
}

/**
 * Register after the shutdown refusal and before the database admission: a request that is refused
 * here (401, 429) never takes a place at the door.
 */
export function registerAuthentication(
  app: FastifyInstance,
  { authenticator, config: settings }: Pick<AppDeps, "authenticator" | "config">,
): void {
  const rateLimiter = new RateLimiter({
    perMinute: settings.rateLimitPerMinute,
    concurrent: settings.rateLimitConcurrent,
  });
  app.decorateRequest("auth", undefined);
  app.decorateRequest("releaseRateLimit", undefined);
  app.addHook("onRequest", async (request, reply) => {
    // routeOptions is a getter that builds a new object each time: read it once per hook.
    const { url, config } = request.routeOptions;
    if (config.public || url === undefined || url.startsWith("/docs")) return;
    const auth = await authenticator.authenticate(request.headers.authorization);
    request.auth = auth;
    if (rateLimiter.enabled) {
      const release = rateLimiter.admit(auth.licenceId);
      // "close" fires once the response is done or the client went away; onResponse covers inject.
      reply.raw.once("close", release);
      request.releaseRateLimit = release;
    }
  });
  if (rateLimiter.enabled)
    app.addHook("onResponse", async (request) => request.releaseRateLimit?.());
}
