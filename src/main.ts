/**
 * Wires a Herald process together: configuration, database, migrations, first-start bootstrap, and
 * the roles this process runs (api, sequencer, worker). The only place besides `cli/` that picks
 * concrete adapters.
 */
import type { Logger } from "pino";
import type { HeraldApp } from "./api/app.js";
import { bootstrap, createAdminKeyIfNone } from "./api/bootstrap.js";
import type { HeraldConfig } from "./config/config.js";
import { ConfigError } from "./config/config.js";
import type { SecretBox } from "./domain/secret-box.js";
import { createLogger } from "./logger.js";
import type { Database } from "./storage/database.js";
import { JobSignals } from "./storage/job-signals.js";
import { LogSignals } from "./storage/log-signals.js";
import { migrate } from "./storage/migrate.js";
import type { DatabaseWait } from "./storage/open-database.js";
import { openDatabase, whenAvailable } from "./storage/open-database.js";
import { prepareSealedValues, WrongSecretKey } from "./storage/sealed-values.js";
import { configuredKeys, openSecretBox, SecretKeySetupError } from "./storage/secret-key-file.js";
import { HERALD_VERSION } from "./version.js";
import type { BackgroundService } from "./background-service.js";
import { startSequencer } from "./sequencer/sequencer.js";
import type { DeliveryWorker } from "./delivery/delivery-worker.js";
import { startDeliveryWorker } from "./delivery/delivery-worker.js";
import { startHousekeeping } from "./jobs/housekeeping.js";
import { startImportWorker } from "./jobs/import-worker.js";
import { startScheduler } from "./jobs/scheduler.js";
import { etlScheduleHandler, fileSyncScheduleHandler } from "./jobs/etl-launch.js";
import { startFileSyncWorker } from "./jobs/file-sync-worker.js";
import { exportScheduleHandler, startExportWorker } from "./jobs/export-worker.js";
import { startScenarioRunWorker } from "./jobs/scenarios/run-worker.js";
import { scenarioScheduleHandler } from "./jobs/scenarios/start-schedule.js";
import { startScenarioStarter } from "./jobs/scenarios/start-worker.js";
import { startTableDeletionWorker } from "./jobs/table-deletion-worker.js";

export interface RunningHerald {
  config: HeraldConfig;
  db: Database;
  logger: Logger;
  app: HeraldApp | undefined;
  /** The URL the API listens on, when this process runs the api role. */
  url: string | undefined;
  stop(): Promise<void>;
}

export async function startHerald(
  config: HeraldConfig,
  logger = createLogger(config.logLevel),
): Promise<RunningHerald> {
  // A missing or malformed HERALD_SECRET_KEY is refused before anything is opened.
  asConfigError(() => configuredKeys(config));
  const db = await openReadyDatabase(config, logger);
  let secrets: SecretBox;
  try {
    secrets = await prepareSecrets(db, config, logger);
  } catch (error) {
    await db.close().catch(() => {});
    throw error;
  }
  if (config.allowInsecureTargets)
    logger.warn(
      "HERALD_ALLOW_INSECURE_TARGETS is on: webhooks may be sent over plain http and to loopback, private and link-local addresses. Use it for local development and tests only.",
    );

  // The in-process shortcuts between this process's writers, sequencer and workers, for this
  // database: every role below gets the same ones.
  const logSignals = new LogSignals();
  const jobSignals = new JobSignals();
  const services: BackgroundService[] = [];
  let app: HeraldApp | undefined;
  let url: string | undefined;
  if (config.roles.includes("sequencer"))
    services.push(
      await startSequencer({ db, logSignals, logger: logger.child({ component: "sequencer" }) }),
    );
  let worker: DeliveryWorker | undefined;
  if (config.roles.includes("worker")) {
    worker = await startDeliveryWorker({
      db,
      logSignals,
      logger: logger.child({ component: "delivery" }),
      config,
      secrets,
    });
    services.push(worker);
    // Imports (SPEC §7.1) are jobs: every worker claims executions under a lease.
    services.push(await startImportWorker({ db, logSignals, jobSignals, logger, config }));
    // A deleted table's records go in batches with their DELETE events (SPEC §3), as a job too.
    services.push(await startTableDeletionWorker({ db, logSignals, jobSignals, logger, config }));
    // Schedules (SPEC §7): every worker looks for due ones; each due time starts one run across
    // processes. Each kind's handler creates its run's job row: file synchronisations, ETLs and
    // exports add theirs here (FILE_SYNCHRONIZATION, ETL, EXPORT), and a scenario's DATE start the
    // day's runs (SCENARIO); a kind without one waits.
    services.push(
      await startScheduler({
        db,
        jobSignals,
        logger,
        handlers: {
          FILE_SYNCHRONIZATION: fileSyncScheduleHandler,
          ETL: etlScheduleHandler,
          EXPORT: exportScheduleHandler,
          SCENARIO: scenarioScheduleHandler({ logger: logger.child({ component: "scenarios" }) }),
        },
      }),
    );
    // File synchronisations (SPEC §7.2) are jobs too; a new file starts the ON_FILE ETLs.
    services.push(
      await startFileSyncWorker({ db, logSignals, jobSignals, logger, config, secrets }),
    );
    // Exports (SPEC §7.3): executions are jobs; a destination reference receives a copy.
    services.push(await startExportWorker({ db, logSignals, jobSignals, logger, config, secrets }));
    // Scenarios (SPEC §7.4): every worker moves the runs that are due, and starts the runs of the
    // ACTIVE scenarios it holds the lease of from the change log. The starter comes after the run
    // worker so that it stops first: no run starts while the run worker hands its batch back.
    services.push(await startScenarioRunWorker({ db, logSignals, jobSignals, logger, config }));
    services.push(await startScenarioStarter({ db, logSignals, jobSignals, logger, config }));
    // Pruning is idempotent and each run takes an advisory lock, so every worker may host it.
    services.push(
      await startHousekeeping({
        db,
        logger,
        config,
        intervalMs: config.housekeepingIntervalMs,
        subscriptionsChanged: () => worker?.wake(),
      }),
    );
  }
  if (config.roles.includes("api")) {
    // Loaded only with the api role: a worker-only process stays smaller without the HTTP stack
    // (docs/performance-notes.md, "Memory").
    const { buildApp } = await import("./api/app.js");
    app = await buildApp({
      db,
      logSignals,
      jobSignals,
      config,
      logger,
      hooks: { subscriptionsChanged: () => worker?.wake() },
      secrets,
    });
    url = await listen(app, config);
  }
  // The admin key is made only now that the process is up: a start that failed (a busy port, say)
  // has not used up a key that was never shown.
  await announceAdminKey(db, logger, url);
  if (app) {
    logger.info(
      { url, version: HERALD_VERSION, database: db.kind, roles: config.roles },
      "Herald API listening",
    );
  }

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      logger.info("stopping: no new work is taken");
      await app?.close();
      for (const service of services.reverse()) await service.stop();
      await db.close();
      logger.info("stopped");
    })();
    return stopping;
  };
  return { config, db, logger, app, url, stop };
}

/**
 * Opens, migrates and bootstraps the database. PostgreSQL may not be up yet: each step waits for it
 * and says why in the log, until it answers or a SIGTERM or SIGINT stops the start (the command
 * line's own handlers stop Herald once it is up; until then nothing else would).
 */
async function openReadyDatabase(config: HeraldConfig, logger: Logger): Promise<Database> {
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once("SIGTERM", onSignal);
  process.once("SIGINT", onSignal);
  const waiting = {
    signal: stop.signal,
    onWait: (wait: DatabaseWait) =>
      logger.warn(
        `${wait.message}; retrying in ${wait.retryInMs / 1000} s${wait.waitedMs > 0 ? ` (waiting for ${Math.round(wait.waitedMs / 1000)} s)` : ""}`,
      ),
  };
  try {
    const db = await openDatabase({
      databaseUrl: config.databaseUrl,
      dataDir: config.dataDir,
      ...waiting,
      onAvailabilityChange: (change) => {
        if (!change.available)
          logger.warn(
            `${change.error.message}; Herald keeps running and reconnects by itself (API requests answer 503 meanwhile)`,
          );
        else logger.info(`the database is back after ${(change.outageMs / 1000).toFixed(1)} s`);
      },
    });
    const applied = await whenAvailable(() => migrate(db), waiting);
    if (applied.length > 0) logger.info({ migrations: applied }, "database migrated");
    await whenAvailable(
      () => bootstrap(db, { defaultEntity: config.defaultEntity, adminApiKey: config.adminApiKey }),
      waiting,
    );
    return db;
  } finally {
    process.removeListener("SIGTERM", onSignal);
    process.removeListener("SIGINT", onSignal);
  }
}

/** Runs `fn`; a problem with the secret key becomes a ConfigError (the command line exits 2). */
function asConfigError<T>(fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    throw secretKeyError(error);
  }
}

function secretKeyError(error: unknown): unknown {
  return error instanceof SecretKeySetupError || error instanceof WrongSecretKey
    ? new ConfigError(error.message, { cause: error })
    : error;
}

/**
 * The process's SecretBox (HERALD_SECRET_KEY, or the embedded database's key file), checked against
 * the database, with every value not sealed with it rewritten (src/storage/sealed-values.ts), all
 * before any role starts. A missing or wrong key is a ConfigError.
 */
async function prepareSecrets(db: Database, config: HeraldConfig, logger: Logger) {
  const waiting = {
    onWait: (wait: DatabaseWait) =>
      logger.warn(`${wait.message}; retrying in ${wait.retryInMs / 1000} s`),
  };
  try {
    const opened = await whenAvailable(() => openSecretBox(db, config), waiting);
    if (opened.generatedFile)
      logger.info(
        { file: opened.generatedFile },
        `generated the key that encrypts webhook signing secrets and file source credentials in the database: ${opened.generatedFile}. Back it up with the data directory; without it those secrets cannot be read`,
      );
    if (opened.warning) logger.warn(opened.warning);
    const secrets = opened.secrets;
    const report = await whenAvailable(() => prepareSealedValues(db, secrets), waiting);
    const rewritten = Object.values(report.rewritten).reduce((a, b) => a + b, 0);
    if (rewritten > 0)
      logger.info(
        { rewritten: report.rewritten, keyId: secrets.currentKeyId },
        `encrypted ${rewritten} stored secret(s) with the current HERALD_SECRET_KEY (they were in plain text or under the previous key)`,
      );
    if (report.key === "matched-previous" || secrets.previousKeyId)
      logger.info(
        { keyId: secrets.currentKeyId, previousKeyId: secrets.previousKeyId },
        "every stored secret is encrypted with the current key; HERALD_SECRET_KEY_PREVIOUS may be removed once every Herald process runs with the new HERALD_SECRET_KEY",
      );
    return secrets;
  } catch (error) {
    throw secretKeyError(error);
  }
}

/**
 * Prints a newly generated admin key once, on stdout, outside the structured log (only its hash is
 * stored, so it can never be shown again); on a later start, says that one exists and how to add one.
 */
async function announceAdminKey(db: Database, logger: Logger, url: string | undefined) {
  // Like every start step, a database blip here is waited out, not a failed start.
  const generated = await whenAvailable(() => createAdminKeyIfNone(db), {
    onWait: (wait) => logger.warn(`${wait.message}; retrying in ${wait.retryInMs / 1000} s`),
  });
  if (!generated) {
    logger.info(
      "an admin API key exists (it was printed on the first start). To add one: set HERALD_ADMIN_API_KEY (at least 24 characters) and restart, or POST /v4/api-keys with an admin token",
    );
    return;
  }
  const base = url ?? "http://<api host>:<port>";
  process.stdout.write(
    `\nHerald created the admin API key. Store it now; it is not shown again:\n\n  ${generated}\n\n` +
      `Get a token with: curl -H 'Authorization: ${generated}' ${base}/auth/token\n\n`,
  );
}

async function listen(app: HeraldApp, config: HeraldConfig): Promise<string> {
  try {
    return await app.listen({ port: config.port, host: config.host });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EADDRINUSE")
      throw new Error(
        `port ${config.port} on ${config.host} is already in use (another Herald, or another program); stop it or choose another port with HERALD_PORT or --port`,
        { cause: error },
      );
    throw error;
  }
}
