/**
 * The API's routes: every module of routes/index.ts, in its order, each registered as a plugin of
 * its own, so that a parser or hook a module adds (empty write bodies, multipart files) stays with
 * its routes. The app-wide hooks and handlers are registered before them and apply to all.
 */
import type { AppDeps, HeraldApp } from "../app-deps.js";
import { ROUTE_MODULES } from "../routes/index.js";

export async function registerRouteModules(app: HeraldApp, deps: AppDeps): Promise<void> {
  for (const routes of ROUTE_MODULES) {
    await app.register(async (scoped) => routes(scoped as HeraldApp, deps));
  }
}
