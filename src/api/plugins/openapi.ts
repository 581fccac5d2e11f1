/**
 * The OpenAPI document at /openapi.json (made from the routes' TypeBox schemas, as they register:
 * register this before them) and its browser at /docs. `npm run openapi` writes the same document to
 * docs/openapi.json.
 */
import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import type { FastifyInstance } from "fastify";
import { HERALD_VERSION } from "../../version.js";

export async function registerOpenApi(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: "3.1.0",
      info: {
        title: "Herald API",
        version: HERALD_VERSION,
        description:
          "Self-hostable webhook engine for marketing data, following the shape of Actito's Integration Framework. " +
          "Every /v4 and /v5 path also answers under Actito's service prefixes (/webhooks, /profiles, /custom-data, …).",
      },
      components: {
        securitySchemes: {
          bearer: { type: "http", scheme: "bearer", description: "Token from GET /auth/token" },
          basic: {
            type: "http",
            scheme: "basic",
            description: "Legacy v4: <licence>/<key name>:<api key>",
          },
        },
      },
      security: [{ bearer: [] }, { basic: [] }],
    },
  });
  await app.register(swaggerUi, { routePrefix: "/docs", uiConfig: { docExpansion: "list" } });
}
