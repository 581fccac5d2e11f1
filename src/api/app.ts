/**
 * The HTTP API: one Fastify instance, TypeBox schemas (which also produce /openapi.json), one error
 * handler, authentication on every route not marked public, and the route modules of `routes/`.
 */
import { generateSecretKey, parseSecretKey, SecretBox } from "../domain/secret-box.js";
import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import type { FastifyBaseLogger, FastifyInstance, FastifySchemaCompiler } from "fastify";
import Fastify, { LogController } from "fastify";
import type { Bindings, ChildLoggerOptions } from "pino";
import type { TSchema } from "typebox";
import { Compile } from "typebox/compile";
import { Value } from "typebox/value";
import type { HeraldConfig } from "../config/config.js";
import { ProfileUpserts } from "../capture/profile-upsert.js";
import { TableCache } from "../capture/table-cache.js";
import { TABLES_CHANNEL } from "../storage/data-table-repository.js";
import type { Database, Unlisten } from "../storage/database.js";
import { JobSignals } from "../storage/job-signals.js";
import { LogSignals } from "../storage/log-signals.js";
import { HeraldError } from "../domain/errors.js";
import { MAX_UNIQUE_VALUE_BYTES } from "../domain/attribute-values.js";
import { httpRequestDuration, httpRequests } from "../metrics.js";
import type { AppDeps, AppHooks, HeraldApp } from "./app-deps.js";
import { Authenticator, EntityCache } from "./auth.js";
import { registerDatabaseAdmission } from "./database-admission.js";
import {
  assertStorableText,
  handleClientError,
  handleError,
  handleFrameworkError,
  KnownRoutes,
  notFoundHandler,
} from "./error-handler.js";
import { installJsonParser } from "./json-body.js";
import { RateLimiter } from "./rate-limiter.js";
import { ROUTE_MODULES } from "./routes/index.js";
import { stripServicePrefix } from "./service-prefixes.js";
import { HERALD_VERSION } from "../version.js";
import { consolePlugin } from "../console/console-plugin.js";

/** What buildApp returns; callers of the API import it from here, its parts from app-deps.ts. */
export type { HeraldApp } from "./app-deps.js";

declare module "fastify" {
  interface FastifyContextConfig {
    /** Route answers without authentication. */
    public?: boolean;
    /**
     * The route's own validation refuses text PostgreSQL cannot store in its body, with a more
     * precise code (a value: HERALD_INVALID_VALUE; a table definition: its own code); the check of
     * every request then looks at its path and query string only.
     */
    textCheckedByRoute?: boolean;
  }
  interface FastifyRequest {
    /** Frees the request's rate-limit slot (set when rate limits are on). */
    releaseRateLimit: (() => void) | undefined;
  }
}

/**
 * TypeBox validation (as @fastify/type-provider-typebox's compiler: bodies are checked as sent;
 * params, query strings and headers are converted, "5" to 5 and "true" to true, then checked),
 * except that converting does not walk the schema with Value.Convert on every request (it copies
 * the value and cost ~5 µs for a profile call's params, ~2 µs for `?allowUpdate=true`). For an
 * object schema of plain string, boolean, integer and number properties (no unions), a value that
 * already checks is taken as it is, and "true" / "false" and decimal numbers are converted in
 * place. A number is written in decimal digits only: Value.Convert would also take "1.5" as the
 * integer 1, "0x10" as 16 and "1e2" as 100, which silently answers another question than the one
 * asked, so those are a 400 here. Anything else (another boolean spelling, a union, a nested
 * schema) goes through Value.Convert as before.
 */
const typeBoxValidatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const typeCheck = Compile(schema);
  const convert = httpPart !== "body";
  const quick = convert ? quickConverter(schema) : undefined;
  return (value: unknown) => {
    const converted = quick?.(value);
    if (converted !== undefined) {
      // The converter is sure: a value that fails now fails however it is spelled.
      if (typeCheck.Check(converted)) return { value: converted };
      return { error: typeCheck.Errors(converted) };
    }
    const slow = convert ? Value.Convert(schema, value) : value;
    if (typeCheck.Check(slow)) return { value: slow };
    return { error: typeCheck.Errors(slow) };
  };
};

const DECIMAL_INTEGER = /^-?[0-9]{1,15}$/;
const DECIMAL_NUMBER = /^-?[0-9]{1,15}(?:\.[0-9]{1,15})?$/;

/**
 * The fast conversion of `typeBoxValidatorCompiler` for a flat object schema of scalar properties;
 * undefined for any other schema. The converter answers undefined when it cannot be sure. A string
 * given for an integer or number property that is not written in decimal is left as it is, so
 * that the check fails on it.
 */
function quickConverter(schema: TSchema): ((value: unknown) => unknown) | undefined {
  const object = schema as { type?: unknown; properties?: Record<string, Record<string, unknown>> };
  if (
    object.type !== "object" ||
    !object.properties ||
    /"(anyOf|oneOf|allOf)"/.test(JSON.stringify(schema))
  )
    return undefined;
  const scalars: [string, "string" | "boolean" | "integer" | "number"][] = [];
  for (const [name, property] of Object.entries(object.properties)) {
    const type = property.type;
    if (type !== "string" && type !== "boolean" && type !== "integer" && type !== "number")
      return undefined;
    scalars.push([name, type]);
  }
  return (value) => {
    if (typeof value !== "object" || value === null) return undefined;
    let copy: Record<string, unknown> | undefined;
    for (const [name, type] of scalars) {
      const given = (value as Record<string, unknown>)[name];
      if (typeof given !== "string" || type === "string") continue;
      let converted: boolean | number | string;
      if (type === "boolean") {
        if (given !== "true" && given !== "false") return undefined;
        converted = given === "true";
      } else if ((type === "integer" ? DECIMAL_INTEGER : DECIMAL_NUMBER).test(given))
        converted = Number(given);
      else converted = given;
      copy ??= { ...value };
      copy[name] = converted;
    }
    return copy ?? value;
  };
}

/**
 * The longest path parameter the router takes, in characters after percent-decoding (Fastify's
 * default is 100, and a longer one answered 414 before any route ran). Every value that can be
 * written as a key must be usable in a path that takes a key: a unique value is at most
 * MAX_UNIQUE_VALUE_BYTES UTF-8 bytes (so at most as many characters), `attribute=value` adds a name
 * of up to 64 characters, and a parameter whose percent-encoding does not decode is measured as
 * sent (up to three characters a byte). Anything longer is no name or key Herald stores.
 */
export const MAX_PATH_PARAM_LENGTH = 3 * MAX_UNIQUE_VALUE_BYTES + 256;

/** Methods whose requests carry no body: an empty JSON body on them is no body at all. */
const BODYLESS_METHODS: ReadonlySet<string> = new Set(["GET", "HEAD", "DELETE", "OPTIONS"]);

/**
 * A request's logger (`request.log`, `reply.log`), whose pino child (with the request id) is made
 * on its first use instead of for every request: a child with redaction costs ~10 µs, and a
 * request that goes well logs nothing at the default level. Once made, it is the same child the
 * default factory would have made.
 */
class RequestLogger {
  #child: FastifyBaseLogger | undefined;
  constructor(
    private readonly parent: FastifyBaseLogger,
    private readonly bindings: Bindings,
  ) {}
  private get real(): FastifyBaseLogger {
    return (this.#child ??= this.parent.child(this.bindings));
  }
  get level(): string {
    return (this.#child ?? this.parent).level;
  }
  set level(level: string) {
    this.real.level = level;
  }
  fatal(...args: unknown[]): void {
    (this.real.fatal as (...a: unknown[]) => void)(...args);
  }
  error(...args: unknown[]): void {
    (this.real.error as (...a: unknown[]) => void)(...args);
  }
  warn(...args: unknown[]): void {
    (this.real.warn as (...a: unknown[]) => void)(...args);
  }
  info(...args: unknown[]): void {
    (this.real.info as (...a: unknown[]) => void)(...args);
  }
  debug(...args: unknown[]): void {
    (this.real.debug as (...a: unknown[]) => void)(...args);
  }
  trace(...args: unknown[]): void {
    (this.real.trace as (...a: unknown[]) => void)(...args);
  }
  silent(): void {}
  child(bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.real.child(bindings, options);
  }
}

function requestLogger(
  parent: FastifyBaseLogger,
  bindings: Bindings,
  options: ChildLoggerOptions,
): FastifyBaseLogger {
  // A route with its own log level or serializers gets its child at once, as by default.
  if (Object.keys(options).length > 0) return parent.child(bindings, options);
  return new RequestLogger(parent, bindings) as unknown as FastifyBaseLogger;
}

export async function buildApp(options: {
  db: Database;
  config: HeraldConfig;
  logger: FastifyBaseLogger;
  hooks?: Partial<AppHooks>;
  /**
   * The process's secret box (main.ts builds it from HERALD_SECRET_KEY). Absent: a box with a
   * random key of this app's own, for tests and tools whose sealed values need not outlive it.
   */
  secrets?: SecretBox;
  /**
   * The process's log signals (main.ts makes them beside the database and hands them to the
   * sequencer and workers too). Absent: signals of this app's own, for an API with no sequencer
   * beside it in the process (tests and tools).
   */
  logSignals?: LogSignals;
  /** The process's job signals, likewise; absent: this app's own (no worker beside it). */
  jobSignals?: JobSignals;
}): Promise<HeraldApp> {
  const app = Fastify({
    loggerInstance: options.logger,
    bodyLimit: options.config.bodyLimitBytes,
    rewriteUrl: (req) => stripServicePrefix(req.url ?? "/"),
    // Per-request info logs cost too much at webhook rates; the onResponse hook logs what matters.
    logController: new LogController({ disableRequestLogging: true }),
    childLoggerFactory: requestLogger,
    // While closing, the onRequest hook below answers 503 in the catalogue's shape instead.
    return503OnClosing: false,
    routerOptions: { maxParamLength: MAX_PATH_PARAM_LENGTH },
    // The router's own refusals (a path that does not percent-decode, a parameter past the limit
    // above) and requests Node cannot parse answer in SPEC §2's shape like every other error.
    frameworkErrors: handleFrameworkError,
    clientErrorHandler: handleClientError,
  }).withTypeProvider<TypeBoxTypeProvider>();
  app.setValidatorCompiler(typeBoxValidatorCompiler);
  // Bodies are JSON (a module that takes files adds its own parser): text/plain gets 415 rather
  // than reaching a handler as a string.
  app.removeContentTypeParser("text/plain");
  // Many HTTP clients send `Content-Type: application/json` on every call, DELETE and GET included,
  // with no body. Those methods take no body, so an empty one is no body rather than 400 "the
  // body is empty"; every other body goes through Fastify's own JSON parser (which refuses
  // __proto__ and constructor keys).
  installJsonParser(app, (method) => BODYLESS_METHODS.has(method));

  const logSignals = options.logSignals ?? new LogSignals();
  const deps: AppDeps = {
    db: options.db,
    logSignals,
    jobSignals: options.jobSignals ?? new JobSignals(),
    config: options.config,
    logger: options.logger,
    authenticator: new Authenticator(options.db),
    tableCache: new TableCache(options.db),
    entityCache: new EntityCache(options.db),
    profileUpserts: new ProfileUpserts({ db: options.db, logSignals }),
    hooks: { subscriptionsChanged: () => {}, ...options.hooks },
    secrets: options.secrets ?? new SecretBox(parseSecretKey(generateSecretKey())),
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
  // On the embedded database, a bounded wait at the door instead of an unbounded one inside.
  registerDatabaseAdmission(app, options.db);
  // Text PostgreSQL cannot store is refused before any handler runs, on every route.
  app.addHook("preValidation", async (request) => assertStorableText(request));
  app.addHook("onResponse", async (request, reply) => {
    request.releaseRateLimit?.();
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
  // The console at /ui (SPEC §8): its own session auth, calling the routes above in process.
  await app.register(consolePlugin, {
    prefix: "/ui",
    deps: { db: options.db, config: options.config, logger: options.logger },
    authenticator: deps.authenticator,
    api: app,
  });
  listenForTableChanges(app, options.db, deps.tableCache, options.logger);
  return app as HeraldApp;
}

/**
 * A table changed through another process: forget this one's cached definitions at once (its
 * writes would find out at the table write gate anyway; its reads would not, for up to 3 s). After
 * a lost LISTEN connection the adapter calls every listener once, and forgetting is always safe.
 * Not awaited: the API starts (and /readyz reports) while the database is unreachable; without the
 * notices, reads fall back on the cache's 3 s life.
 */
function listenForTableChanges(
  app: FastifyInstance,
  db: Database,
  tables: TableCache,
  logger: FastifyBaseLogger,
) {
  let closed = false;
  let unlisten: Unlisten | undefined;
  // Through a promise: an adapter that throws at once is handled like one that rejects.
  Promise.resolve(undefined)
    .then(() => db.listen(TABLES_CHANNEL, () => tables.forget()))
    .then(
      (stop) => {
        if (closed) void stop();
        else unlisten = stop;
      },
      (error: unknown) =>
        logger.warn(
          { err: error },
          "cannot LISTEN for table definition changes: this process's reads may use a definition up to 3 s old (writes are unaffected)",
        ),
    );
  app.addHook("onClose", async () => {
    closed = true;
    await unlisten?.();
  });
}
