/**
 * The HTTP API: one Fastify instance, TypeBox schemas (which also produce /openapi.json), one error
 * handler, authentication on every route not marked public, and the route modules of `routes/`.
 */
import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import type {
  FastifyBaseLogger,
  FastifyInstance,
  FastifySchemaCompiler,
  RawServerDefault,
} from "fastify";
import Fastify, { LogController } from "fastify";
import type { TSchema } from "typebox";
import { Compile } from "typebox/compile";
import { Value } from "typebox/value";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { HeraldConfig } from "../config/config.js";
import type { Database } from "../storage/database.js";
import { HeraldError } from "../domain/errors.js";
import { httpRequestDuration, httpRequests } from "../metrics.js";
import { Authenticator } from "./auth.js";
import { handleError, KnownRoutes, notFoundHandler } from "./error-handler.js";
import { RateLimiter } from "./rate-limiter.js";
import { ROUTE_MODULES } from "./routes/index.js";
import { stripServicePrefix } from "./service-prefixes.js";
import { HERALD_VERSION } from "../version.js";

export type HeraldApp = FastifyInstance<
  RawServerDefault,
  IncomingMessage,
  ServerResponse,
  FastifyBaseLogger,
  TypeBoxTypeProvider
>;

/** Hooks the API calls to wake other parts of the process (set by main; no-ops in API-only tests). */
export interface AppHooks {
  /** A subscription was created, changed or deleted. */
  subscriptionsChanged(): void;
}

export interface AppDeps {
  db: Database;
  config: HeraldConfig;
  logger: FastifyBaseLogger;
  authenticator: Authenticator;
  hooks: AppHooks;
}

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
 * TypeBox validation (as @fastify/type-provider-typebox's compiler: bodies are checked as sent;
 * params, query strings and headers are converted, "5" to 5 and "true" to true, then checked),
 * except that a params or query object that already checks is taken as it is instead of converted
 * first: converting walks the schema and copies the value on every request (about 5 µs for a
 * profile call's params), and for a schema without unions a value that checks converts to itself.
 * Schemas with unions (anyOf, oneOf, allOf), where conversion may pick another member, are
 * always converted first, as before.
 */
const typeBoxValidatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const typeCheck = Compile(schema);
  const convert = httpPart !== "body";
  const checkFirst = convert && !/"(anyOf|oneOf|allOf)"/.test(JSON.stringify(schema));
  return (value: unknown) => {
    if (checkFirst && typeCheck.Check(value)) return { value };
    const converted = convert ? Value.Convert(schema, value) : value;
    if (typeCheck.Check(converted)) return { value: converted };
    return { error: typeCheck.Errors(converted) };
  };
};

export async function buildApp(options: {
  db: Database;
  config: HeraldConfig;
  logger: FastifyBaseLogger;
  hooks?: Partial<AppHooks>;
}): Promise<HeraldApp> {
  const app = Fastify({
    loggerInstance: options.logger,
    bodyLimit: options.config.bodyLimitBytes,
    rewriteUrl: (req) => stripServicePrefix(req.url ?? "/"),
    // Per-request info logs cost too much at webhook rates; the onResponse hook logs what matters.
    logController: new LogController({ disableRequestLogging: true }),
    // While closing, the onRequest hook below answers 503 in the catalogue's shape instead.
    return503OnClosing: false,
  }).withTypeProvider<TypeBoxTypeProvider>();
  app.setValidatorCompiler(typeBoxValidatorCompiler);
  // Bodies are JSON (a module that takes files adds its own parser): text/plain gets 415 rather
  // than reaching a handler as a string.
  app.removeContentTypeParser("text/plain");

  const deps: AppDeps = {
    db: options.db,
    config: options.config,
    logger: options.logger,
    authenticator: new Authenticator(options.db),
    hooks: { subscriptionsChanged: () => {}, ...options.hooks },
  };

  const rateLimiter = new RateLimiter({
    perMinute: options.config.rateLimitPerMinute,
    concurrent: options.config.rateLimitConcurrent,
  });
  // Every route's method and path, so that a known path with the wrong method answers 405.
  const knownRoutes = new KnownRoutes();
  app.addHook("onRoute", (route) => knownRoutes.add(route.method, route.url));

  app.decorateRequest("auth", undefined);
  app.decorateRequest("releaseRateLimit", undefined);
  app.setErrorHandler(handleError);
  app.setNotFoundHandler(notFoundHandler(knownRoutes));

  let closing = false;
  app.addHook("preClose", async () => {
    closing = true;
  });
  app.addHook("onRequest", async (request, reply) => {
    if (closing) {
      reply.header("connection", "close");
      throw new HeraldError("HERALD_UNAVAILABLE", { reason: "the server is shutting down" });
    }
    // routeOptions is a getter that builds a new object each time: read it once per hook.
    const { url, config } = request.routeOptions;
    if (config.public || url === undefined || url.startsWith("/docs")) return;
    const auth = await deps.authenticator.authenticate(request.headers.authorization);
    request.auth = auth;
    if (rateLimiter.enabled) {
      const release = rateLimiter.admit(auth.licenceId);
      // "close" fires once the response is done or the client went away; onResponse covers inject.
      reply.raw.once("close", release);
      request.releaseRateLimit = release;
    }
  });
  app.addHook("onResponse", async (request, reply) => {
    request.releaseRateLimit?.();
    const route = request.routeOptions.url ?? "unmatched";
    httpRequests.inc({ method: request.method, route, status: reply.statusCode });
    httpRequestDuration.observe({ method: request.method, route }, reply.elapsedTime / 1000);
    if (reply.statusCode >= 500)
      request.log.warn({ url: request.url, status: reply.statusCode }, "request failed");
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

  await app.register(swagger, {
    openapi: {
      openapi: "3.1.0",
      info: {
        title: "Herald API",
        version: HERALD_VERSION,
        description:
          "Self-hostable webhook engine for marketing data, following the shape of Actito's Integration Framework. " +
          "Every /v4 and /v5 path also answers under Actito's service prefixes (/webhooks, /profiles, /custom-data, …).",
      },
      components: {
        securitySchemes: {
          bearer: { type: "http", scheme: "bearer", description: "Token from GET /auth/token" },
          basic: {
            type: "http",
            scheme: "basic",
            description: "Legacy v4: <licence>/<key name>:<api key>",
          },
        },
      },
      security: [{ bearer: [] }, { basic: [] }],
    },
  });
  await app.register(swaggerUi, { routePrefix: "/docs", uiConfig: { docExpansion: "list" } });

  for (const routes of ROUTE_MODULES) {
    await app.register(async (scoped) => routes(scoped as HeraldApp, deps));
  }
  return app as HeraldApp;
}
