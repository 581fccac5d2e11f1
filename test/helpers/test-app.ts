/** An API instance on a test database, with an admin token, driven through Fastify `inject`. */
import type { LightMyRequestResponse } from "fastify";
import type { HeraldApp } from "../../src/api/app.js";
import { buildApp } from "../../src/api/app.js";
import { bootstrap } from "../../src/api/bootstrap.js";
import type { HeraldConfig } from "../../src/config/config.js";
import { loadConfig } from "../../src/config/config.js";
import { createLogger } from "../../src/logger.js";
import type { Backend, TestDatabase } from "./test-database.js";
import { createTestDatabase } from "./test-database.js";

export const TEST_ADMIN_KEY = "hk_test_admin_key_0123456789abcdef";
export const TEST_ENTITY = "acme";

export interface TestApp {
  app: HeraldApp;
  database: TestDatabase;
  config: HeraldConfig;
  token: string;
  /** Sends a request with the admin token (override with `headers.authorization`). */
  request(
    method: string,
    url: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<LightMyRequestResponse>;
  close(): Promise<void>;
}

export async function createTestApp(
  backend: Backend,
  overrides: Partial<HeraldConfig> = {},
): Promise<TestApp> {
  const database = await createTestDatabase(backend);
  const config = {
    ...loadConfig({ env: {} }),
    defaultEntity: TEST_ENTITY,
    adminApiKey: TEST_ADMIN_KEY,
    allowInsecureTargets: true,
    ...overrides,
  };
  await bootstrap(database.db, {
    defaultEntity: config.defaultEntity,
    adminApiKey: config.adminApiKey,
  });
  const app = await buildApp({
    db: database.db,
    logSignals: database.logSignals,
    jobSignals: database.jobSignals,
    config,
    logger: createLogger("silent"),
    secrets: database.secrets,
  });
  await app.ready();
  const tokenResponse = await app.inject({
    method: "GET",
    url: "/auth/token",
    headers: { authorization: TEST_ADMIN_KEY },
  });
  const token = (tokenResponse.json() as { accessToken: string }).accessToken;
  return {
    app,
    database,
    config,
    token,
    request: (method, url, body, headers = {}) =>
      app.inject({
        method: method as "GET",
        url,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
          ...headers,
        },
        ...(body === undefined
          ? {}
          : { payload: typeof body === "string" ? body : JSON.stringify(body) }),
      }),
    close: async () => {
      await app.close();
      await database.drop();
    },
  };
}
