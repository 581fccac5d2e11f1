/**
 * Every error the routes throw, and every request no route takes, answers in SPEC §2's shape
 * (error-handler.ts): the catalogue's error for what a handler threw, 404 for an unknown path, 405
 * for a known path asked with another method. The router's and Node's own refusals are server
 * options (app.ts), as Fastify takes them when the instance is made.
 */
import type { FastifyInstance } from "fastify";
import { handleError, KnownRoutes, notFoundHandler } from "../error-handler.js";

/** Register before any route: the routes are learnt as they are added. */
export function registerErrorResponses(app: FastifyInstance): void {
  // Every route's method and path, so that a known path with the wrong method answers 405.
  const knownRoutes = new KnownRoutes();
  app.addHook("onRoute", (route) => knownRoutes.add(route.method, route.url));
  app.setErrorHandler(handleError);
  app.setNotFoundHandler(notFoundHandler(knownRoutes));
}
