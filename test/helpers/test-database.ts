/**
 * Test databases. Every integration test file runs on both backends: PGlite (in memory, migrated
 * per file) and the real PostgreSQL server (a database cloned from a migrated template, so files
 * stay fast and isolated). Without a server, the PostgreSQL leg is skipped with a visible message.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { parseSecretKey, SecretBox } from "../../src/domain/secret-box.js";
import type { Database } from "../../src/storage/database.js";
import { JobSignals } from "../../src/storage/job-signals.js";
import { LogSignals } from "../../src/storage/log-signals.js";
import { listMigrations, migrate } from "../../src/storage/migrate.js";
import { PgliteDatabase } from "../../src/storage/pglite-database.js";
import { PostgresDatabase } from "../../src/storage/postgres-database.js";

export type Backend = "pglite" | "postgres";

/**
 * The HERALD_SECRET_KEY of tests: every test database's box seals with it, and a Herald process a
 * test starts on a test database gets it, so that both read what the other sealed.
 */
export const TEST_SECRET_KEY = "5e1f0c0ffee0ddba11d00dfeedfacecafebabe0123456789abcdef0011223344";

/** The server's maintenance database; override with HERALD_TEST_DATABASE_URL. */
export const ADMIN_URL =
  process.env.HERALD_TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

let availability: Promise<string | undefined> | undefined;

/** undefined when PostgreSQL is reachable, else the reason it is not. */
export function postgresUnavailable(): Promise<string | undefined> {
  availability ??= (async () => {
    const client = new pg.Client({ connectionString: ADMIN_URL, connectionTimeoutMillis: 2000 });
    try {
      await client.connect();
      await client.query("SELECT 1");
      return undefined;
    } catch (error) {
      return `PostgreSQL at ${ADMIN_URL.replace(/:[^:@/]*@/, ":***@")} is not reachable (${(error as Error).message})`;
    } finally {
      await client.end().catch(() => {});
    }
  })();
  return availability;
}

/** Backends to run, each with a skip reason when it cannot run. */
export async function testBackends(): Promise<{ backend: Backend; skip: string | false }[]> {
  const reason = await postgresUnavailable();
  if (reason && !loggedSkip) {
    loggedSkip = true;
    console.log(`# SKIPPING the PostgreSQL leg: ${reason}. PGlite still runs.`);
  }
  return [
    { backend: "pglite", skip: false },
    { backend: "postgres", skip: reason ? `PostgreSQL leg skipped: ${reason}` : false },
  ];
}
let loggedSkip = false;

function urlFor(database: string): string {
  const url = new URL(ADMIN_URL);
  url.pathname = `/${database}`;
  return url.toString();
}

function templateName(): string {
  const hash = createHash("sha256");
  for (const m of listMigrations()) hash.update(m.name).update(m.sql);
  return `herald_tpl_${hash.digest("hex").slice(0, 12)}`;
}

async function ensureTemplate(admin: pg.Client): Promise<string> {
  const name = templateName();
  // Test files run in parallel processes: one builds the template, the others wait for it.
  await admin.query("SELECT pg_advisory_lock(72630999)");
  try {
    const { rowCount } = await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]);
    if (!rowCount) {
      const building = `${name}_build`;
      await admin.query(`DROP DATABASE IF EXISTS ${building}`);
      await admin.query(`CREATE DATABASE ${building}`);
      const db = new PostgresDatabase({ connectionString: urlFor(building), maxConnections: 2 });
      try {
        await migrate(db);
      } finally {
        await db.close();
      }
      await admin.query(`ALTER DATABASE ${building} RENAME TO ${name}`);
    }
  } finally {
    await admin.query("SELECT pg_advisory_unlock(72630999)");
  }
  return name;
}

/**
 * A migrated PGlite database. The first test process to need one migrates it and leaves a tarball
 * of it in the temp directory (named by the migrations' hash); later ones load that, which is
 * several times faster than starting empty and migrating.
 */
async function openMigratedPglite(): Promise<PgliteDatabase> {
  const dir = join(tmpdir(), "herald-test-templates");
  const file = join(dir, `${templateName()}.tar`);
  let template: Blob | undefined;
  try {
    template = new Blob([readFileSync(file)]);
  } catch {
    template = undefined;
  }
  if (template) {
    const db = await PgliteDatabase.open(undefined, template);
    await migrate(db); // no-op unless the template is stale
    return db;
  }
  const db = await PgliteDatabase.open();
  await migrate(db);
  const dump = Buffer.from(await (await db.dumpTemplate()).arrayBuffer());
  mkdirSync(dir, { recursive: true });
  const partial = `${file}.${process.pid}`;
  writeFileSync(partial, dump);
  renameSync(partial, file);
  return db;
}

/** A box with TEST_SECRET_KEY. */
export function testSecrets(): SecretBox {
  return new SecretBox(parseSecretKey(TEST_SECRET_KEY));
}

export interface TestDatabase {
  backend: Backend;
  db: Database;
  /** Seals and opens secrets at rest with TEST_SECRET_KEY (give it to workers and apps). */
  secrets: SecretBox;
  /**
   * The log signals of a Herald process on `db` (give the same ones to the app, sequencer and
   * workers a test starts on it, as main.ts does; a pool from `connect` is another process).
   */
  logSignals: LogSignals;
  /** Its job signals, likewise (the app, the scheduler and the job workers of that process). */
  jobSignals: JobSignals;
  /** PostgreSQL only: the URL of this test's own database (for subprocesses). */
  url: string | undefined;
  /** Opens another connection pool on the same database (PostgreSQL only). */
  connect(maxConnections?: number): Promise<Database>;
  drop(): Promise<void>;
}

export async function createTestDatabase(
  backend: Backend,
  options: { maxConnections?: number } = {},
): Promise<TestDatabase> {
  if (backend === "pglite") {
    const db = await openMigratedPglite();
    return {
      backend,
      db,
      secrets: testSecrets(),
      logSignals: new LogSignals(),
      jobSignals: new JobSignals(),
      url: undefined,
      connect: async () => {
        throw new Error("PGlite is a single in-process database");
      },
      drop: () => db.close(),
    };
  }
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  const name = `herald_t_${randomBytes(6).toString("hex")}`;
  try {
    const template = await ensureTemplate(admin);
    await admin.query(`CREATE DATABASE ${name} TEMPLATE ${template}`);
  } finally {
    await admin.end();
  }
  const url = urlFor(name);
  const pools: Database[] = [];
  const connect = async (maxConnections = 10) => {
    const db = new PostgresDatabase({ connectionString: url, maxConnections });
    pools.push(db);
    return db;
  };
  const db = await connect(options.maxConnections ?? 20);
  return {
    backend,
    db,
    secrets: testSecrets(),
    logSignals: new LogSignals(),
    jobSignals: new JobSignals(),
    url,
    connect,
    drop: async () => {
      for (const pool of pools) await pool.close().catch(() => {});
      const cleanup = new pg.Client({ connectionString: ADMIN_URL });
      await cleanup.connect();
      try {
        await cleanup.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await cleanup.end();
      }
    },
  };
}
