/**
 * The HTTP API: one Fastify instance, TypeBox schemas (which also produce /openapi.json), one error
 * handler, authentication on every route not marked public, and the route modules of `routes/`.
 * buildApp lists what the app is made of, in the order it must be registered: the app-wide parts
 * (plugins/) are functions called on the app itself, so that their hooks and handlers apply to every
 * route; the route modules and the console are plugins of their own (plugins/route-modules.ts).
 */
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import type { FastifyBaseLogger } from "fastify";
import Fastify, { LogController } from "fastify";
import { ProfileUpserts } from "../capture/profile-upsert.js";
import { TableCache } from "./table-cache.js";
import type { HeraldConfig } from "../config/config.js";
import { MAX_UNIQUE_VALUE_BYTES } from "../domain/attribute-values.js";
import { generateSecretKey, parseSecretKey, SecretBox } from "../domain/secret-box.js";
import type { Database } from "../storage/database.js";
import { JobSignals } from "../storage/job-signals.js";
import { LogSignals } from "../storage/log-signals.js";
import type { AppDeps, AppHooks, HeraldApp } from "./app-deps.js";
import { Authenticator, EntityCache } from "./auth.js";
import { registerDatabaseAdmission } from "./database-admission.js";
import { handleClientError, handleFrameworkError } from "./error-handler.js";
import { registerAuthentication } from "./plugins/authentication.js";
import { registerConsole } from "./plugins/console.js";
import { registerErrorResponses } from "./plugins/error-responses.js";
import { registerJsonBodies } from "./plugins/json-bodies.js";
import { registerOpenApi } from "./plugins/openapi.js";
import { registerRequestMetrics } from "./plugins/request-metrics.js";
import { registerRouteModules } from "./plugins/route-modules.js";
import { registerShutdownRefusal } from "./plugins/shutdown-refusal.js";
import { registerStorableText } from "./plugins/storable-text.js";
import { forgetTablesOnChange } from "./plugins/table-changes.js";
import { requestLogger } from "./request-logger.js";
import { typeBoxValidatorCompiler } from "./schema-validator.js";
import { stripServicePrefix } from "./service-prefixes.js";

/** What buildApp returns; callers of the API import it from here, its parts from app-deps.ts. */
export type { HeraldApp } from "./app-deps.js";

export interface AppOptions {
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
}

export async function buildApp(options: AppOptions): Promise<HeraldApp> {
  const app = createServer(options);
  const deps = appDeps(options);
  registerJsonBodies(app);
  registerErrorResponses(app);
  registerShutdownRefusal(app);
  registerAuthentication(app, deps);
  // On the embedded database, a bounded wait at the door instead of an unbounded one inside.
  registerDatabaseAdmission(app, options.db);
  registerStorableText(app);
  registerRequestMetrics(app);
  await registerOpenApi(app);
  await registerRouteModules(app, deps);
  await registerConsole(app, deps);
  forgetTablesOnChange(app, deps);
  return app;
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

/** The Fastify instance, with what Fastify takes only when it is made. */
function createServer({ config, logger }: AppOptions): HeraldApp {
  const app = Fastify({
    loggerInstance: logger,
    bodyLimit: config.bodyLimitBytes,
    rewriteUrl: (req) => stripServicePrefix(req.url ?? "/"),
    // Per-request info logs cost too much at webhook rates; plugins/request-metrics.ts logs what matters.
    logController: new LogController({ disableRequestLogging: true }),
    childLoggerFactory: requestLogger,
    // While closing, the shutdown refusal answers 503 in the catalogue's shape instead.
    return503OnClosing: false,
    routerOptions: { maxParamLength: MAX_PATH_PARAM_LENGTH },
    // The router's own refusals (a path that does not percent-decode, a parameter past the limit
    // above) and requests Node cannot parse answer in SPEC §2's shape like every other error.
    frameworkErrors: handleFrameworkError,
    clientErrorHandler: handleClientError,
  }).withTypeProvider<TypeBoxTypeProvider>();
  app.setValidatorCompiler(typeBoxValidatorCompiler);
  return app as HeraldApp;
}

/** What every route module is handed: the options' own objects, or this app's where none is given. */
function appDeps(options: AppOptions): AppDeps {
  const { db } = options;
  const logSignals = options.logSignals ?? new LogSignals();
  return {
    db,
    logSignals,
    jobSignals: options.jobSignals ?? new JobSignals(),
    config: options.config,
    logger: options.logger,
    authenticator: new Authenticator(db),
    tableCache: new TableCache(db),
    entityCache: new EntityCache(db),
    profileUpserts: new ProfileUpserts({ db, logSignals }),
    hooks: { subscriptionsChanged: () => {}, ...options.hooks },
    secrets: options.secrets ?? new SecretBox(parseSecretKey(generateSecretKey())),
  };
}
