/** Process health, readiness and the OpenAPI document (SPEC §8). */
import { Type } from "typebox";
import { migrationsApplied } from "../../storage/migrate.js";
import type { RouteModule } from "./index.js";

const operationsRoutes: RouteModule = async (app, deps) => {
  app.get(
    "/healthz",
    {
      config: { public: true },
      schema: {
        tags: ["operations"],
        summary: "The process is up",
        security: [],
        response: { 200: Type.Object({ status: Type.String() }) },
      },
    },
    async () => ({ status: "ok" }),
  );
  app.get(
    "/readyz",
    {
      config: { public: true },
      schema: {
        tags: ["operations"],
        summary: "The database is reachable and migrated",
        security: [],
      },
    },
    async (_request, reply) => {
      const ready = await migrationsApplied(deps.db);
      return reply.code(ready ? 200 : 503).send(
        ready
          ? { status: "ready" }
          : {
              status: 503,
              code: "HERALD_UNAVAILABLE",
              message: "Herald is not ready: the database is unreachable or not migrated",
              details: [],
            },
      );
    },
  );
  app.get("/openapi.json", { config: { public: true }, schema: { hide: true } }, async () =>
    app.swagger(),
  );
};
export default operationsRoutes;
