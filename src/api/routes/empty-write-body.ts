/**
 * Empty write bodies (SPEC §3, "Bodies"): many clients send a write call whose body has nothing to
 * say as no body at all, an empty body with `Content-Type: application/json`, `[]` (PHP's empty
 * array) or `{}`. Where nothing is required these are one empty write: no change, no event,
 * never 400 "body must be object". Registered inside a route module, this changes only the routes
 * of that module (Fastify scopes content-type parsers and hooks to the plugin that adds them).
 */
import type { HeraldApp } from "../app-deps.js";
import { installJsonParser } from "../json-body.js";

const WRITE_METHODS: ReadonlySet<string> = new Set(["POST", "PUT", "PATCH"]);

export function acceptEmptyWriteBodies(app: HeraldApp): void {
  // The application's parser answers 400 for an empty JSON body on POST and PUT; here it is none.
  installJsonParser(app, () => true);
  app.addHook("preValidation", async (request) => {
    if (!WRITE_METHODS.has(request.method)) return;
    const body: unknown = request.body;
    if (body === undefined || body === null || (Array.isArray(body) && body.length === 0))
      request.body = {};
  });
}
