/**
 * While the app closes, a request that arrives is answered 503 in the catalogue's shape, with
 * `Connection: close`, instead of Fastify's own 503 (the server is made with return503OnClosing
 * off for that).
 */
import type { FastifyInstance } from "fastify";
import { HeraldError } from "../../domain/errors.js";

/** Register before the other onRequest hooks: a request turned away does nothing else. */
export function registerShutdownRefusal(app: FastifyInstance): void {
  let closing = false;
  app.addHook("preClose", async () => {
    closing = true;
  });
  app.addHook("onRequest", async (_request, reply) => {
    if (!closing) return;
    reply.header("connection", "close");
    throw new HeraldError("HERALD_UNAVAILABLE", { reason: "the server is shutting down" });
  });
}
