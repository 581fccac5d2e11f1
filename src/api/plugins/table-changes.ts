/**
 * A table changed through another process: forget this one's cached definitions at once (its
 * writes would find out at the table write gate anyway; its reads would not, for up to 3 s). After
 * a lost LISTEN connection the adapter calls every listener once, and forgetting is always safe.
 * Not awaited: the API starts (and /readyz reports) while the database is unreachable; without the
 * notices, reads fall back on the cache's 3 s life.
 */
import type { FastifyInstance } from "fastify";
import { TABLES_CHANNEL } from "../../storage/data-table-repository.js";
import type { Unlisten } from "../../storage/database.js";
import type { AppDeps } from "../app-deps.js";

export function forgetTablesOnChange(
  app: FastifyInstance,
  { db, tableCache, logger }: Pick<AppDeps, "db" | "tableCache" | "logger">,
): void {
  let closed = false;
  let unlisten: Unlisten | undefined;
  // Through a promise: an adapter that throws at once is handled like one that rejects.
  Promise.resolve(undefined)
    .then(() => db.listen(TABLES_CHANNEL, () => tableCache.forget()))
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
