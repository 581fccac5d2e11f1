/**
 * Worker thread: a sequencer with its own event loop and connection pool, as a separate
 * `--role sequencer` process would run, so its lag is not the API's event-loop queueing.
 * Messages: posts "started"; on "stop", stops and posts "stopped".
 */
import { parentPort, workerData } from "node:worker_threads";
import { createLogger } from "../src/logger.js";
import { startSequencer } from "../src/sequencer/sequencer.js";
import { LogSignals } from "../src/storage/log-signals.js";
import { PostgresDatabase } from "../src/storage/postgres-database.js";

const { url } = workerData as { url: string };
const db = new PostgresDatabase({ connectionString: url, maxConnections: 2 });
// Its own process's signals: the writers of the API thread reach it by NOTIFY only.
const sequencer = await startSequencer({
  db,
  logSignals: new LogSignals(),
  logger: createLogger("silent"),
});
parentPort?.on("message", (message: string) => {
  if (message !== "stop") return;
  void (async () => {
    await sequencer.stop();
    await db.close();
    parentPort?.postMessage("stopped");
    parentPort?.close();
  })();
});
parentPort?.postMessage("started");
