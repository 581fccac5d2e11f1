/**
 * The JSON body parser: Fastify's own (which refuses `__proto__` and `constructor` keys), except
 * that an empty body is no body for the methods `acceptsEmpty` names instead of 400 "the body is
 * empty". Installed on the app (bodiless methods) and again by route modules that take empty write
 * bodies (Fastify scopes a parser to the plugin that adds it).
 */
import type { FastifyInstance } from "fastify";

export function installJsonParser(
  app: FastifyInstance,
  acceptsEmpty: (method: string) => boolean,
): void {
  const parseJson = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (request, body, done) => {
    if (body === "" && acceptsEmpty(request.method)) return done(null, undefined);
    parseJson(request, body as string, done);
  });
}
