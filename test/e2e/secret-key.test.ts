/**
 * HERALD_SECRET_KEY as a user meets it, with Herald started as the README says
 * (`node bin/herald.mjs start`): on PostgreSQL the key is required (exit 2 without it), a second
 * start with another key is refused with exit code 2 and a clear message, and a rotation with
 * HERALD_SECRET_KEY_PREVIOUS moves the database to the new key; on the embedded database the key
 * is generated into the data directory (mode 0600, said in the log), reused at the next start, and
 * no file of the data directory holds a signing secret in plain text.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { bootstrap } from "../../src/api/bootstrap.js";
import { generateSecretKey, keyIdOf, parseSecretKey } from "../../src/domain/secret-box.js";
import { listeningUrl, outerEnv, START_TIMEOUT_MS, stopChild } from "../helpers/cli-herald.js";
import type { TestDatabase } from "../helpers/test-database.js";
import { createTestDatabase, postgresUnavailable } from "../helpers/test-database.js";

const ADMIN_KEY = `hk_e2e_secret_key_${randomBytes(8).toString("hex")}`;

type Start =
  | { listening: true; url: string; child: ChildProcess; output: () => string }
  | { listening: false; code: number | null; stdout: string; stderr: string };

/** `herald start` with `env`: listening (its URL), or the exit code and output of a failed start. */
function start(env: Record<string, string>): Promise<Start> {
  const child = spawn(process.execPath, ["bin/herald.mjs", "start"], {
    env: {
      ...outerEnv(),
      HERALD_PORT: "0",
      HERALD_HOST: "127.0.0.1",
      HERALD_LOG_LEVEL: "info",
      HERALD_ADMIN_API_KEY: ADMIN_KEY,
      HERALD_ALLOW_INSECURE_TARGETS: "true",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise<Start>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(
        new Error(
          `Herald neither listened nor exited in ${START_TIMEOUT_MS} ms:\n${stdout}${stderr}`,
        ),
      );
    }, START_TIMEOUT_MS);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ listening: false, code, stdout, stderr });
    });
    let listening = false;
    child.stdout!.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      if (listening) return;
      const url = listeningUrl(stdout);
      if (url === undefined) return;
      listening = true;
      clearTimeout(timer);
      child.removeAllListeners("close");
      resolve({ listening: true, url, child, output: () => stdout + stderr });
    });
  });
}

async function listening(env: Record<string, string>) {
  const started = await start(env);
  if (!started.listening)
    throw new Error(`Herald exited with ${started.code}:\n${started.stdout}${started.stderr}`);
  return started;
}

async function refused(env: Record<string, string>) {
  const started = await start(env);
  if (started.listening) {
    await stopChild(started.child);
    throw new Error(`Herald started; it should have been refused:\n${started.output()}`);
  }
  return started;
}

async function api<T>(url: string, method: string, path: string, body?: unknown): Promise<T> {
  const token = (
    (await (
      await fetch(`${url}/auth/token`, { headers: { authorization: ADMIN_KEY } })
    ).json()) as {
      accessToken: string;
    }
  ).accessToken;
  const response = await fetch(`${url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  assert.ok(response.ok, `${method} ${path}: ${response.status} ${text}`);
  return JSON.parse(text) as T;
}

const SUBSCRIPTIONS = "/webhooks/v4/entity/default/webhookSubscription";

/** A subscription on the default entity's trigger source ETL (no table needed) with `secret`. */
async function subscribe(url: string, secret: string): Promise<number> {
  const created = await api<{ id: number; secret: string }>(url, "POST", SUBSCRIPTIONS, {
    on: "ETL",
    eventType: "FINISHED",
    targetUrl: "http://127.0.0.1:9/hook",
    secret,
  });
  assert.equal(created.secret, secret);
  return created.id;
}

const secretOf = async (url: string, id: number) =>
  (await api<{ secret: string }>(url, "GET", `${SUBSCRIPTIONS}/${id}/secret`)).secret;

const newSecret = () => `whsec_${randomBytes(32).toString("base64")}`;
const idOf = (key: string) => keyIdOf(parseSecretKey(key));

const pgSkip = await postgresUnavailable();
if (pgSkip) console.log(`# SKIPPING the PostgreSQL part of the secret key tests: ${pgSkip}`);

describe(
  "HERALD_SECRET_KEY on PostgreSQL",
  { skip: pgSkip ? `PostgreSQL: ${pgSkip}` : false },
  () => {
    let database: TestDatabase;
    before(async () => {
      database = await createTestDatabase("postgres", { maxConnections: 2 });
    });
    after(async () => {
      await database?.drop();
    });

    test("missing: exit 2 with what to do, before anything starts", async () => {
      const run = await refused({ DATABASE_URL: database.url! });
      assert.equal(run.code, 2, run.stderr);
      assert.match(
        run.stderr,
        /herald: configuration error: HERALD_SECRET_KEY is required with DATABASE_URL.*openssl rand -hex 32/,
      );
      assert.doesNotMatch(run.stdout, /admin API key|listening/);
    });

    test("a second start with another key is refused with exit code 2; a rotation moves to the new key", async () => {
      const keyA = generateSecretKey();
      const keyB = generateSecretKey();
      const first = await listening({ DATABASE_URL: database.url!, HERALD_SECRET_KEY: keyA });
      const secret = newSecret();
      const id = await subscribe(first.url, secret);
      assert.equal(await stopChild(first.child), 0);
      assert.ok(!first.output().includes(secret), "the secret is not logged");
      assert.ok(!first.output().includes(keyA), "the key is not logged");

      const { rows } = await database.db.query<{ row: string }>(
        "SELECT row_to_json(s)::text AS row FROM webhook_subscriptions s",
      );
      assert.equal(rows.length, 1);
      assert.ok(
        !rows[0]!.row.includes(secret.slice(6)),
        "the table holds the secret in plain text",
      );
      assert.match(rows[0]!.row, new RegExp(`"secret":"hs1\\.${idOf(keyA)}\\.`));

      const wrong = await refused({ DATABASE_URL: database.url!, HERALD_SECRET_KEY: keyB });
      assert.equal(wrong.code, 2, wrong.stderr);
      assert.match(
        wrong.stderr,
        /herald: configuration error: HERALD_SECRET_KEY is not the key of this database/,
      );
      assert.ok(
        wrong.stderr.includes(idOf(keyA)) && wrong.stderr.includes(idOf(keyB)),
        wrong.stderr,
      );
      assert.match(wrong.stderr, /HERALD_SECRET_KEY_PREVIOUS/);
      assert.ok(
        !wrong.stderr.includes(keyB) && !wrong.stdout.includes(keyB),
        "the key is not shown",
      );
      assert.doesNotMatch(wrong.stdout, /listening/);

      // Rotation: the new key, with the old one for reading, for one start.
      const rotating = await listening({
        DATABASE_URL: database.url!,
        HERALD_SECRET_KEY: keyB,
        HERALD_SECRET_KEY_PREVIOUS: keyA,
      });
      assert.equal(await secretOf(rotating.url, id), secret);
      assert.match(
        rotating.output(),
        /encrypted 1 stored secret\(s\) with the current HERALD_SECRET_KEY/,
      );
      assert.equal(await stopChild(rotating.child), 0);
      const moved = await database.db.query<{ secret: string }>(
        "SELECT secret FROM webhook_subscriptions",
      );
      assert.ok(moved.rows[0]!.secret.startsWith(`hs1.${idOf(keyB)}.`));

      // From now on the new key alone; the old one is refused.
      const old = await refused({ DATABASE_URL: database.url!, HERALD_SECRET_KEY: keyA });
      assert.equal(old.code, 2, old.stderr);
      const after = await listening({ DATABASE_URL: database.url!, HERALD_SECRET_KEY: keyB });
      assert.equal(await secretOf(after.url, id), secret);
      assert.equal(await stopChild(after.child), 0);
    });
  },
);

describe(
  "upgrading a PostgreSQL database with plain-text secrets",
  { skip: pgSkip ? `PostgreSQL: ${pgSkip}` : false },
  () => {
    let database: TestDatabase;
    before(async () => {
      database = await createTestDatabase("postgres", { maxConnections: 2 });
    });
    after(async () => {
      await database?.drop();
    });

    test("the first start with a key encrypts them, and each subscription keeps its secret", async () => {
      // As an earlier version left it: subscriptions whose secrets are stored as they are.
      await bootstrap(database.db, { defaultEntity: "default", adminApiKey: ADMIN_KEY });
      const secrets = [newSecret(), newSecret(), newSecret()];
      const { rows } = await database.db.query<{ id: number }>(
        `INSERT INTO webhook_subscriptions (entity_id, source, event_type, target_url, secret, previous_secret, previous_secret_expires_at)
       SELECT e.id, 'ETL', 'FINISHED', 'http://127.0.0.1:9/hook', s.secret, $2, now() + interval '1 hour'
         FROM entities e, unnest($1::text[]) WITH ORDINALITY AS s(secret, n)
        WHERE e.name = 'default' ORDER BY s.n RETURNING id`,
        [secrets, secrets[0]],
      );
      const key = generateSecretKey();
      const started = await listening({ DATABASE_URL: database.url!, HERALD_SECRET_KEY: key });
      assert.match(
        started.output(),
        /encrypted 6 stored secret\(s\) with the current HERALD_SECRET_KEY/,
      );
      for (const [i, row] of rows.entries())
        assert.equal(await secretOf(started.url, row.id), secrets[i]);
      assert.equal(await stopChild(started.child), 0);
      const text = (
        await database.db.query<{ row: string }>(
          "SELECT row_to_json(s)::text AS row FROM webhook_subscriptions s",
        )
      ).rows
        .map((r) => r.row)
        .join("\n");
      for (const secret of secrets)
        assert.ok(!text.includes(secret.slice(6)), "a secret is still in plain text");
      assert.equal(text.match(new RegExp(`"hs1\\.${idOf(key)}\\.`, "g"))?.length, 6);
    });
  },
);

describe("HERALD_SECRET_KEY on the embedded database", () => {
  let dataDir: string;
  before(() => {
    dataDir = mkdtempSync(join(tmpdir(), "herald-e2e-secret-key-"));
  });
  after(() => rmSync(dataDir, { recursive: true, force: true }));

  /** Every file of the data directory (PostgreSQL's pages and WAL) searched for `text`. */
  function filesHolding(text: string): string[] {
    const needle = Buffer.from(text);
    const found: string[] = [];
    const walk = (dir: string) => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) walk(path);
        else if (entry.isFile() && readFileSync(path).includes(needle)) found.push(path);
      }
    };
    walk(dataDir);
    return found;
  }

  test("generated into the data directory at the first start, reused after; no secret in the files", async () => {
    const first = await listening({ HERALD_DATA_DIR: dataDir });
    const file = join(dataDir, "secret.key");
    assert.match(
      first.output(),
      new RegExp(`generated the key that encrypts webhook signing secrets[^"]*${file}`),
    );
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const key = readFileSync(file, "utf8").trim();
    assert.ok(!first.output().includes(key), "the key is not logged");
    const secrets = [newSecret(), newSecret()];
    const ids = [await subscribe(first.url, secrets[0]!), await subscribe(first.url, secrets[1]!)];
    assert.equal(await stopChild(first.child), 0);
    for (const secret of secrets)
      assert.deepEqual(
        filesHolding(secret.slice(6)),
        [],
        "a data file holds a secret in plain text",
      );

    const second = await listening({ HERALD_DATA_DIR: dataDir });
    assert.doesNotMatch(second.output(), /generated the key/);
    assert.equal(readFileSync(file, "utf8").trim(), key, "the same key file");
    assert.equal(await secretOf(second.url, ids[0]!), secrets[0]);
    assert.equal(await secretOf(second.url, ids[1]!), secrets[1]);
    assert.equal(await stopChild(second.child), 0);

    // Another key given by the setting is refused like on PostgreSQL.
    const wrong = await refused({
      HERALD_DATA_DIR: dataDir,
      HERALD_SECRET_KEY: generateSecretKey(),
    });
    assert.equal(wrong.code, 2, wrong.stderr);
    assert.match(wrong.stderr, /HERALD_SECRET_KEY is not the key of this database/);
    // The refused start left the data directory usable.
    const third = await listening({ HERALD_DATA_DIR: dataDir });
    assert.equal(await secretOf(third.url, ids[0]!), secrets[0]);
    assert.equal(await stopChild(third.child), 0);
  });
});
