/**
 * The console at /ui (SPEC §8): its own session auth (it marks its routes public, so the API's
 * authentication passes them by), its pages calling the API's routes in process through `api`.
 * Register it after the route modules.
 */
import type { FastifyInstance } from "fastify";
import { consolePlugin } from "../../console/console-plugin.js";
import type { AppDeps } from "../app-deps.js";

export async function registerConsole(app: FastifyInstance, deps: AppDeps): Promise<void> {
  await app.register(consolePlugin, {
    prefix: "/ui",
    deps: { db: deps.db, config: deps.config, logger: deps.logger },
    authenticator: deps.authenticator,
    api: app,
  });
}
