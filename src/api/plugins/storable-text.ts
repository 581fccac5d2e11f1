/**
 * Text PostgreSQL cannot store (a NUL, an unpaired surrogate) is refused before any handler runs,
 * on every route (error-handler.ts, assertStorableText), so that no route can forget it.
 */
import type { FastifyInstance } from "fastify";
import { assertStorableText } from "../error-handler.js";

declare module "fastify" {
  interface FastifyContextConfig {
    /**
     * The route's own validation refuses text PostgreSQL cannot store in its body, with a more
     * precise code (a value: HERALD_INVALID_VALUE; a table definition: its own code); the check of
     * every request then looks at its path and query string only.
     */
    textCheckedByRoute?: boolean;
  }
}

export function registerStorableText(app: FastifyInstance): void {
  app.addHook("preValidation", async (request) => assertStorableText(request));
}
