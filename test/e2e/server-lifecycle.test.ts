/**
 * Herald as a user runs it (README): `node bin/herald.mjs start` as a subprocess, real HTTP on
 * loopback, SIGTERM, and a restart on the same data. Once on the embedded database and once on
 * PostgreSQL (skipped, with a message, when no server answers).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { StartedHerald } from "../helpers/cli-herald.js";
import { outerEnv, spawnHeraldStart, START_TIMEOUT_MS } from "../helpers/cli-herald.js";
import type { TestDatabase } from "../helpers/test-database.js";
import {
  createTestDatabase,
  postgresUnavailable,
  TEST_SECRET_KEY,
} from "../helpers/test-database.js";

const STOP_TIMEOUT_MS = 30_000;

function stopServer(running: StartedHerald): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      running.child.kill("SIGKILL");
      reject(
        new Error(
          `Herald did not stop within ${STOP_TIMEOUT_MS} ms after SIGTERM:\n${running.stdout()}\n${running.stderr()}`,
        ),
      );
    }, STOP_TIMEOUT_MS);
    running.child.once("exit", (code) => {
      clearTimeout(timer);
      resolve(code);
    });
    running.child.kill("SIGTERM");
  });
}

function adminKeyPrinted(stdout: string): string | undefined {
  return /^\s+(hk_[A-Za-z0-9_-]{20,})\s*$/m.exec(stdout)?.[1];
}

async function call(
  url: string,
  init: { method?: string; token?: string; authorization?: string; body?: unknown } = {},
): Promise<{ status: number; json: () => unknown; text: string; headers: Headers }> {
  const headers: Record<string, string> = {};
  if (init.token) headers.authorization = `Bearer ${init.token}`;
  if (init.authorization) headers.authorization = init.authorization;
  if (init.body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(url, {
    method: init.method ?? "GET",
    headers,
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
  });
  const text = await res.text();
  return { status: res.status, text, headers: res.headers, json: () => JSON.parse(text) };
}

async function tokenFor(url: string, key: string): Promise<string> {
  const res = await call(`${url}/auth/token`, { authorization: key });
  assert.equal(res.status, 200, res.text);
  return (res.json() as { accessToken: string }).accessToken;
}

const CUSTOMERS = {
  name: "Customers",
  attributes: [
    { name: "emailAddress", type: "EMAIL_ADDRESS", unique: true, mandatory: true },
    { name: "firstName", type: "FIRSTNAME" },
  ],
};

const legs: { name: string; skip: string | false }[] = [
  { name: "embedded database", skip: false },
  {
    name: "PostgreSQL",
    skip: await postgresUnavailable().then((reason) =>
      reason ? `PostgreSQL leg skipped: ${reason}` : false,
    ),
  },
];
for (const leg of legs)
  if (leg.skip) console.log(`# SKIPPING server lifecycle on ${leg.name}: ${leg.skip}`);

for (const leg of legs) {
  describe(`server lifecycle on the ${leg.name}`, { skip: leg.skip }, () => {
    let dataDir: string;
    let database: TestDatabase | undefined;
    let env: Record<string, string>;
    let running: StartedHerald | undefined;
    before(async () => {
      dataDir = mkdtempSync(join(tmpdir(), "herald-e2e-"));
      env = { HERALD_DATA_DIR: dataDir, HERALD_DEFAULT_ENTITY: "main" };
      if (leg.name === "PostgreSQL") {
        database = await createTestDatabase("postgres", { maxConnections: 1 });
        env.DATABASE_URL = database.url!;
        env.HERALD_SECRET_KEY = TEST_SECRET_KEY;
      }
    });
    after(async () => {
      if (running && running.child.exitCode === null) running.child.kill("SIGKILL");
      await database?.drop();
      rmSync(dataDir, { recursive: true, force: true });
    });

    test("start, use over HTTP, SIGTERM, restart with the data intact", async () => {
      running = await spawnHeraldStart(env);
      const first = running;
      const adminKey = adminKeyPrinted(first.stdout());
      assert.ok(adminKey, `the first start prints the admin key:\n${first.stdout()}`);
      const { url } = first;
      assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);

      assert.equal((await call(`${url}/healthz`)).status, 200);
      assert.equal((await call(`${url}/readyz`)).status, 200);
      const token = await tokenFor(url, adminKey);
      assert.equal((await call(`${url}/v4/entity`)).status, 401, "no token, no data");

      const entity = await call(`${url}/v4/entity`, {
        method: "POST",
        token,
        body: { name: "e2e-shop" },
      });
      assert.equal(entity.status, 201, entity.text);
      const key = await call(`${url}/v4/api-keys`, {
        method: "POST",
        token,
        body: { name: "shop-backend", entities: ["e2e-shop"] },
      });
      assert.equal(key.status, 201, key.text);
      const shopKey = (key.json() as { key: string }).key;
      const shopToken = await tokenFor(url, shopKey);
      const reach = await call(`${url}/v4/entity`, { token: shopToken });
      assert.deepEqual(
        (reach.json() as { entities: { name: string }[] }).entities.map((e) => e.name),
        ["e2e-shop"],
      );

      // The data model: a profile table and one profile, read back after the restart.
      const document = (await call(`${url}/openapi.json`)).json() as { paths: object };
      assert.ok("/v5/entities/{entity}/profile-tables" in document.paths, "data-model routes");
      const table = await call(`${url}/v5/entities/e2e-shop/profile-tables`, {
        method: "POST",
        token: shopToken,
        body: CUSTOMERS,
      });
      assert.equal(table.status, 201, table.text);
      const tableId = (table.json() as { id: string }).id;
      const profile = await call(`${url}/v4/entity/e2e-shop/table/${tableId}/profile`, {
        method: "POST",
        token: shopToken,
        body: {
          attributes: [
            { name: "emailAddress", value: "ada@example.com" },
            { name: "firstName", value: "Ada" },
          ],
        },
      });
      assert.ok([200, 201].includes(profile.status), profile.text);
      const profileId = (profile.json() as { profileId: number }).profileId;
      const profileUrl = `/v4/entity/e2e-shop/table/${tableId}/profile/${profileId}`;
      assert.equal((await call(`${url}${profileUrl}`, { token: shopToken })).status, 200);

      const metrics = await call(`${url}/metrics`);
      assert.equal(metrics.status, 200);
      assert.match(metrics.text, /herald_http_requests_total\{method="POST",route="\/v4\/entity"/);

      assert.equal(await stopServer(first), 0, `exit code after SIGTERM\n${first.stderr()}`);
      assert.match(first.stdout(), /"msg":"stopped"/);
      assert.ok(!first.stdout().includes(token), "tokens never reach the log");
      if (!env.DATABASE_URL) {
        assert.ok(!existsSync(join(dataDir, "herald.pid")), "the data directory lock is released");
      }

      running = await spawnHeraldStart(env);
      const second = running;
      assert.equal(adminKeyPrinted(second.stdout()), undefined, "no new admin key on restart");
      const again = second.url;
      const names = (
        (await call(`${again}/v4/entity`, { token: await tokenFor(again, adminKey) })).json() as {
          entities: { name: string }[];
        }
      ).entities.map((e) => e.name);
      assert.deepEqual(names, ["main", "e2e-shop"]);
      const shopTokenAgain = await tokenFor(again, shopKey);
      const profileAgain = await call(`${again}${profileUrl}`, { token: shopTokenAgain });
      assert.equal(profileAgain.status, 200, profileAgain.text);
      assert.ok(profileAgain.text.includes("ada@example.com"), profileAgain.text);
      assert.equal(await stopServer(second), 0);
    });
  });
}

describe("a new user's first starts", () => {
  test("a start that fails on a busy port uses up no admin key; later starts say one exists", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "herald-e2e-first-"));
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const busyPort = String((blocker.address() as AddressInfo).port);
    try {
      const env = { HERALD_DATA_DIR: dataDir };
      const failed = spawn(process.execPath, ["bin/herald.mjs", "start"], {
        env: { ...outerEnv(), ...env, HERALD_PORT: busyPort, HERALD_HOST: "127.0.0.1" },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let out = "";
      let err = "";
      failed.stdout!.on("data", (chunk: Buffer) => (out += chunk.toString()));
      failed.stderr!.on("data", (chunk: Buffer) => (err += chunk.toString()));
      const code = await new Promise<number | null>((resolve) => failed.once("exit", resolve));
      assert.notEqual(code, 0, "a busy port stops the start");
      assert.match(err, new RegExp(`port ${busyPort} on 127\\.0\\.0\\.1 is already in use`), err);
      assert.equal(adminKeyPrinted(out), undefined, `no key printed by a failed start:\n${out}`);

      // The bare flag works, and says loudly what it allows.
      const first = await spawnHeraldStart(env, ["--allow-insecure-targets"]);
      const adminKey = adminKeyPrinted(first.stdout());
      assert.ok(adminKey, `the first start that comes up prints the key:\n${first.stdout()}`);
      assert.match(first.stdout(), /"level":40,[^\n]*HERALD_ALLOW_INSECURE_TARGETS is on/);
      assert.equal(
        (await call(`${first.url}/auth/token`, { authorization: adminKey })).status,
        200,
      );
      assert.equal(await stopServer(first), 0);

      const second = await spawnHeraldStart(env);
      assert.equal(adminKeyPrinted(second.stdout()), undefined);
      assert.match(second.stdout(), /an admin API key exists[^\n]*HERALD_ADMIN_API_KEY/);
      assert.doesNotMatch(second.stdout(), /HERALD_ALLOW_INSECURE_TARGETS is on/);
      assert.equal(await stopServer(second), 0);
    } finally {
      blocker.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe("signals during start-up", () => {
  test("SIGTERM while Herald is still starting stops it cleanly once it is up", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "herald-e2e-early-"));
    const child = spawn(process.execPath, ["bin/herald.mjs", "start"], {
      env: { ...outerEnv(), HERALD_DATA_DIR: dataDir, HERALD_PORT: "0", HERALD_HOST: "127.0.0.1" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    const timer = setTimeout(() => child.kill("SIGKILL"), START_TIMEOUT_MS);
    try {
      // The first log line comes from inside the start (after migrating): signals are handled by then.
      await new Promise<void>((resolve) => {
        child.stdout.on("data", (chunk: Buffer) => {
          out += chunk.toString();
          if (out.includes('"msg":"database migrated"')) resolve();
        });
        void exited.then(() => resolve());
      });
      child.kill("SIGTERM");
      assert.equal(await exited, 0, out);
      assert.match(out, /"msg":"stopped"/);
      assert.ok(!existsSync(join(dataDir, "herald.pid")), "the data directory lock is released");
    } finally {
      clearTimeout(timer);
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe("start-up errors", () => {
  test("a bad setting stops the start with exit code 2 and says what to change", async () => {
    const child = spawn(process.execPath, ["bin/herald.mjs", "start", "--port", "eighty"], {
      env: { ...process.env, HERALD_LOG_LEVEL: "info" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let err = "";
    child.stderr.on("data", (chunk: Buffer) => (err += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    assert.equal(code, 2);
    assert.match(
      err,
      /configuration error: --port must be a whole number from 0 to 65535; got 'eighty'/,
    );
  });
});
