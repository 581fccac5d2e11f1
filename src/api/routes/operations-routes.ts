/** Process health, readiness, metrics and the OpenAPI document (SPEC §8). All public. */
import { Type } from "typebox";
import { HeraldError } from "../../domain/errors.js";
import { renderMetrics } from "../../metrics.js";
import { findUnavailable } from "../../storage/database-unavailable.js";
import { listMigrations, migrationsApplied } from "../../storage/migrate.js";
import { DATABASE_RETRY_AFTER_S } from "../error-handler.js";
import { HERALD_VERSION } from "../../version.js";
import type { RouteModule } from "./route-module.js";

/** A database that does not answer within this time counts as unreachable. */
const READINESS_TIMEOUT_MS = 2_000;

/** What /readyz found: ready, or why not. */
type Readiness = { ready: true } | { ready: false; reason: string };

const operationsRoutes: RouteModule = async (app, deps) => {
  // The migrations this build knows, read once: probes hit /readyz every few seconds.
  const migrations = listMigrations();
  async function readiness(): Promise<Readiness> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<Readiness>((resolve) => {
      timer = setTimeout(
        () => resolve({ ready: false, reason: "the database does not answer" }),
        READINESS_TIMEOUT_MS,
      );
    });
    const check = (async (): Promise<Readiness> => {
      try {
        await deps.db.query("SELECT 1");
      } catch (error) {
        const unavailable = findUnavailable(error);
        return {
          ready: false,
          reason: `the database is unreachable${unavailable ? ` (${unavailable.reason})` : ""}`,
        };
      }
      return (await migrationsApplied(deps.db, migrations))
        ? { ready: true }
        : { ready: false, reason: "database migrations are pending" };
    })();
    try {
      return await Promise.race([check, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  app.get(
    "/healthz",
    {
      config: { public: true },
      schema: {
        tags: ["operations"],
        summary: "The process is up (says nothing about the database; see /readyz)",
        security: [],
        response: { 200: Type.Object({ status: Type.Literal("ok"), version: Type.String() }) },
      },
    },
    async () => ({ status: "ok" as const, version: HERALD_VERSION }),
  );

  app.get(
    "/readyz",
    {
      config: { public: true },
      schema: {
        tags: ["operations"],
        summary: "The database is reachable and migrated (503 otherwise)",
        security: [],
        response: { 200: Type.Object({ status: Type.Literal("ready") }) },
      },
    },
    async (request) => {
      const result = await readiness();
      if (!result.ready) {
        request.log.warn({ reason: result.reason }, "not ready");
        throw new HeraldError("HERALD_UNAVAILABLE", { reason: result.reason }, [], {
          "retry-after": String(DATABASE_RETRY_AFTER_S),
        });
      }
      return { status: "ready" as const };
    },
  );

  app.get(
    "/metrics",
    {
      config: { public: true },
      schema: {
        tags: ["operations"],
        summary: "Prometheus metrics (text exposition format)",
        security: [],
        produces: ["text/plain"],
      },
    },
    async (_request, reply) => {
      const { contentType, body } = await renderMetrics();
      return reply.type(contentType).send(body);
    },
  );

  app.get("/openapi.json", { config: { public: true }, schema: { hide: true } }, async () =>
    app.swagger(),
  );
};
export default operationsRoutes;
