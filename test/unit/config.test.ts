import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { ConfigError, loadConfig, SETTINGS } from "../../src/config/config.js";

const dir = mkdtempSync(join(tmpdir(), "herald-config-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function configFile(content: unknown): string {
  const path = join(dir, `config-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(path, typeof content === "string" ? content : JSON.stringify(content));
  return path;
}

function rejects(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof ConfigError, `a ConfigError, got ${String(error)}`);
    assert.match(error.message, message);
    return true;
  });
}

describe("configuration", () => {
  test("defaults when nothing is set", () => {
    const config = loadConfig({ env: {} });
    for (const setting of Object.values(SETTINGS)) {
      assert.deepEqual(config[setting.key], setting.default, setting.key);
    }
    assert.equal(config.port, 8080);
    assert.equal(config.databaseUrl, undefined);
    assert.deepEqual(config.roles, ["api", "sequencer", "worker"]);
    assert.equal(config.rateLimitPerMinute, 0, "rate limits are off by default");
  });

  test("precedence: flags beat environment beat the config file beat defaults", () => {
    const file = configFile({
      port: 1111,
      host: "10.0.0.1",
      logLevel: "warn",
      dataDir: "/from/file",
    });
    const env = { HERALD_PORT: "2222", HERALD_HOST: "10.0.0.2" };
    const config = loadConfig({ env, configFile: file, flags: { port: "3333" } });
    assert.equal(config.port, 3333, "flag");
    assert.equal(config.host, "10.0.0.2", "environment");
    assert.equal(config.logLevel, "warn", "file");
    assert.equal(config.dataDir, "/from/file", "file");
    assert.equal(config.retentionDays, 7, "default");
  });

  test("HERALD_CONFIG_FILE names the file when no --config is given", () => {
    const file = configFile({ defaultEntity: "from-file", roles: ["api", "worker"] });
    const config = loadConfig({ env: { HERALD_CONFIG_FILE: file } });
    assert.equal(config.defaultEntity, "from-file");
    assert.deepEqual(config.roles, ["api", "worker"]);
  });

  test("every setting is read from its environment variable", () => {
    const env = {
      DATABASE_URL: "postgres://u@db:5432/herald",
      HERALD_DATA_DIR: "/data",
      HERALD_PORT: "9000",
      HERALD_HOST: "127.0.0.1",
      HERALD_ROLES: "worker, api,worker",
      HERALD_DEFAULT_ENTITY: "shop",
      HERALD_ADMIN_API_KEY: "k".repeat(24),
      HERALD_ALLOW_INSECURE_TARGETS: "yes",
      HERALD_LOG_LEVEL: "debug",
      HERALD_BODY_LIMIT_BYTES: "2048",
      HERALD_DELIVERY_TIMEOUT_MS: "500",
      HERALD_OPERATIONS_WEBHOOK_URL: "https://ops.example/hook",
      HERALD_RETENTION_DAYS: "30",
      HERALD_WORKER_ID: "w1",
      HERALD_RATE_LIMIT_PER_MINUTE: "600",
      HERALD_RATE_LIMIT_CONCURRENT: "20",
      HERALD_MAX_FILE_BYTES: "4096",
      HERALD_MAX_EXPANDED_BYTES: "8192",
      HERALD_FILE_RETENTION_DAYS: "3",
      HERALD_IMPORT_CONCURRENCY: "4",
      HERALD_FILE_DROP_DIR: "/srv/drop",
      HERALD_FILE_FETCH_TIMEOUT_MS: "30000",
      HERALD_FILE_SYNC_CONCURRENCY: "3",
      HERALD_EXPORT_CONCURRENCY: "5",
      HERALD_SECRET_KEY: "k1",
      HERALD_SECRET_KEY_PREVIOUS: "k0",
      HERALD_HOUSEKEEPING_INTERVAL_MS: "5000",
    };
    assert.deepEqual(
      Object.keys(env).sort(),
      Object.values(SETTINGS)
        .map((s) => s.env)
        .sort(),
      "this test covers every setting",
    );
    assert.deepEqual(loadConfig({ env }), {
      databaseUrl: "postgres://u@db:5432/herald",
      dataDir: "/data",
      port: 9000,
      host: "127.0.0.1",
      roles: ["worker", "api"],
      defaultEntity: "shop",
      adminApiKey: "k".repeat(24),
      allowInsecureTargets: true,
      logLevel: "debug",
      bodyLimitBytes: 2048,
      deliveryTimeoutMs: 500,
      operationsWebhookUrl: "https://ops.example/hook",
      retentionDays: 30,
      housekeepingIntervalMs: 5000,
      workerId: "w1",
      rateLimitPerMinute: 600,
      rateLimitConcurrent: 20,
      maxFileBytes: 4096,
      maxExpandedBytes: 8192,
      fileRetentionDays: 3,
      importConcurrency: 4,
      fileDropDir: "/srv/drop",
      fileFetchTimeoutMs: 30_000,
      fileSyncConcurrency: 3,
      exportConcurrency: 5,
      secretKey: "k1",
      secretKeyPrevious: "k0",
    });
  });

  test("bad values are refused with a message that names the setting and what to change", () => {
    rejects(
      () => loadConfig({ env: { HERALD_PORT: "80a" } }),
      /HERALD_PORT must be a whole number from 0 to 65535; got '80a'/,
    );
    rejects(() => loadConfig({ env: { HERALD_PORT: "" } }), /HERALD_PORT must be a whole number/);
    rejects(() => loadConfig({ env: { HERALD_PORT: "70000" } }), /from 0 to 65535/);
    rejects(
      () => loadConfig({ env: { HERALD_ROLES: "api,web" } }),
      /HERALD_ROLES lists unknown role 'web'; use a comma-separated mix of api, sequencer, worker/,
    );
    rejects(
      () => loadConfig({ env: { HERALD_ROLES: " , " } }),
      /HERALD_ROLES must name at least one/,
    );
    rejects(
      () => loadConfig({ env: { HERALD_LOG_LEVEL: "loud" } }),
      /HERALD_LOG_LEVEL must be one of fatal, error/,
    );
    rejects(
      () => loadConfig({ env: { HERALD_ALLOW_INSECURE_TARGETS: "maybe" } }),
      /HERALD_ALLOW_INSECURE_TARGETS must be true or false; got 'maybe'/,
    );
    rejects(() => loadConfig({ env: { HERALD_ADMIN_API_KEY: "short" } }), /at least 24 characters/);
    rejects(
      () => loadConfig({ env: { DATABASE_URL: "mysql://x" } }),
      /DATABASE_URL must be a postgres:\/\/ or postgresql:\/\/ connection string/,
    );
    rejects(
      () => loadConfig({ env: { HERALD_DEFAULT_ENTITY: "a b" } }),
      /HERALD_DEFAULT_ENTITY must be 1 to 64 letters/,
    );
    rejects(() => loadConfig({ env: { HERALD_HOST: " " } }), /HERALD_HOST must not be empty/);
    rejects(
      () => loadConfig({ env: { HERALD_RATE_LIMIT_CONCURRENT: "-1" } }),
      /HERALD_RATE_LIMIT_CONCURRENT must be a whole number from 0/,
    );
    rejects(
      () => loadConfig({ env: {}, flags: { roles: "nope" } }),
      /--role lists unknown role 'nope'/,
    );
    rejects(
      () => loadConfig({ env: {}, flags: { bodyLimitBytes: "1" } }),
      /--body-limit-bytes must be a whole number from 1024/,
    );
  });

  test("an empty optional setting means unset", () => {
    const config = loadConfig({ env: { DATABASE_URL: "", HERALD_WORKER_ID: "" } });
    assert.equal(config.databaseUrl, undefined);
    assert.equal(config.workerId, undefined);
  });

  test("config file problems say which file and what is wrong", () => {
    rejects(
      () => loadConfig({ env: {}, configFile: join(dir, "missing.json") }),
      /Cannot read the config file .*missing\.json/,
    );
    rejects(
      () => loadConfig({ env: {}, configFile: configFile("{ not json") }),
      /The config file .* is invalid/,
    );
    rejects(() => loadConfig({ env: {}, configFile: configFile([1, 2]) }), /not a JSON object/);
    rejects(
      () => loadConfig({ env: {}, configFile: configFile({ prot: 1 }) }),
      /unknown setting 'prot'; known: databaseUrl/,
    );
    rejects(
      () => loadConfig({ env: {}, configFile: configFile({ port: "x" }) }),
      /'port' in the config file must be a whole number/,
    );
  });
});

describe("README", () => {
  const readme = readFileSync("README.md", "utf8");

  test("the configuration table documents every setting, with its default", () => {
    for (const setting of Object.values(SETTINGS)) {
      const row = readme.split("\n").find((line) => line.startsWith(`| \`${setting.env}\``));
      assert.ok(row, `README.md has no configuration row for ${setting.env}`);
    }
    assert.ok(readme.includes("HERALD_CONFIG_FILE"), "README.md documents HERALD_CONFIG_FILE");
  });

  test("every document the README links to exists", () => {
    const links = [...readme.matchAll(/\]\(((?:docs\/)?[\w./-]+\.(?:md|json))(?:#[\w-]+)?\)/g)].map(
      (m) => m[1]!,
    );
    assert.ok(links.length > 5);
    const missing = links.filter((link) => !existsSync(link));
    assert.deepEqual(missing, [], "README.md links to documents that do not exist");
  });

  test("the quick start is the two commands", () => {
    assert.match(readme, /npm ci && npm start/);
    assert.match(readme, /npm test/);
  });
});
