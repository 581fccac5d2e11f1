/**
 * Wires a Herald process together: configuration, database, migrations, first-start bootstrap, and
 * the roles this process runs (api, sequencer, worker). The only place besides `cli/` that picks
 * concrete adapters.
 */
import type { Logger } from "pino";
import type { HeraldApp } from "./api/app.js";
import { bootstrap } from "./api/bootstrap.js";
import type { HeraldConfig } from "./config/config.js";
import { createLogger } from "./logger.js";
import type { Database } from "./storage/database.js";
import { migrate } from "./storage/migrate.js";
import { openDatabase } from "./storage/open-database.js";
import { HERALD_VERSION } from "./version.js";
import type { BackgroundService } from "./background-service.js";
import { startSequencer } from "./sequencer/sequencer-service.js";
import type { DeliveryWorker } from "./delivery/delivery-service.js";
import { startDeliveryWorker } from "./delivery/delivery-service.js";
import { startHousekeeping } from "./jobs/housekeeping.js";
import { startImportWorker } from "./jobs/import-worker.js";

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
  const db = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
  const applied = await migrate(db);
  if (applied.length > 0) logger.info({ migrations: applied }, "database migrated");

  const { generatedAdminKey } = await bootstrap(db, {
    defaultEntity: config.defaultEntity,
    adminApiKey: config.adminApiKey,
  });
  if (generatedAdminKey) {
    // Printed once, on stdout, outside the structured log, before anything else can fail: only
    // its hash is stored, so it can never be shown again.
    const base =
      config.port === 0
        ? "<the URL of the 'Herald API listening' line>"
        : `http://localhost:${config.port}`;
    process.stdout.write(
      `\nHerald created the admin API key. Store it now; it is not shown again:\n\n  ${generatedAdminKey}\n\n` +
        `Get a token with: curl -H 'Authorization: ${generatedAdminKey}' ${base}/auth/token\n\n`,
    );
  }

  const services: BackgroundService[] = [];
  let app: HeraldApp | undefined;
  let url: string | undefined;
  if (config.roles.includes("sequencer"))
    services.push(await startSequencer({ db, logger: logger.child({ component: "sequencer" }) }));
  let worker: DeliveryWorker | undefined;
  if (config.roles.includes("worker")) {
    worker = await startDeliveryWorker({
      db,
      logger: logger.child({ component: "delivery" }),
      config,
    });
    services.push(worker);
    // Imports (SPEC §7.1) are jobs: every worker claims executions under a lease.
    services.push(await startImportWorker({ db, logger, config }));
    // Pruning is idempotent and each run takes an advisory lock, so every worker may host it.
    services.push(await startHousekeeping({ db, logger, config }));
  }
  if (config.roles.includes("api")) {
    // Loaded only with the api role: a worker-only process stays ~85 MB smaller without the HTTP stack.
    const { buildApp } = await import("./api/app.js");
    app = await buildApp({
      db,
      config,
      logger,
      hooks: { subscriptionsChanged: () => worker?.wake() },
    });
    url = await app.listen({ port: config.port, host: config.host });
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
