/**
 * Shared pieces of the benchmark scenarios: throwaway databases, an in-process Herald, a closed-loop
 * load driver, percentiles and a plain-text report. Scenarios measure Herald beside a ceiling taken
 * in the same run on the same machine, and print the ratio: absolute numbers depend on the machine,
 * ratios much less.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { request } from "undici";
import type { HeraldApp } from "../src/api/app.js";
import { buildApp } from "../src/api/app.js";
import { bootstrap } from "../src/api/bootstrap.js";
import type { HeraldConfig } from "../src/config/config.js";
import type { NewChangeEvent } from "../src/domain/change-event.js";
import { loadConfig } from "../src/config/config.js";
import { parseSecretKey, SecretBox } from "../src/domain/secret-box.js";
import { createLogger } from "../src/logger.js";
import type { Sequencer } from "../src/sequencer/sequencer.js";
import { startSequencer } from "../src/sequencer/sequencer.js";
import type { Database } from "../src/storage/database.js";
import { LogSignals } from "../src/storage/log-signals.js";
import { migrate } from "../src/storage/migrate.js";
import { PgliteDatabase } from "../src/storage/pglite-database.js";
import { PostgresDatabase } from "../src/storage/postgres-database.js";

export interface BenchOptions {
  /** Measured time per run, after the warm-up. */
  durationMs: number;
  warmupMs: number;
  /** Concurrent clients (closed loop: each sends its next request when the previous answered). */
  clients: number;
  /** Maintenance database of the PostgreSQL server used to create and drop bench databases. */
  adminUrl: string;
  /** Events of a scenario that takes a count (`--events`); undefined: the scenario's own default. */
  events?: number;
}

export const DEFAULT_BENCH_OPTIONS: BenchOptions = {
  durationMs: 10_000,
  warmupMs: 2_000,
  clients: 16,
  adminUrl: process.env.HERALD_BENCH_ADMIN_URL ?? "postgres://postgres@127.0.0.1:5432/postgres",
};

// Throwaway databases ---------------------------------------------------------------------------

export interface BenchDatabase {
  url: string;
  drop(): Promise<void>;
}

/** undefined when the server answers, else why not. */
export async function postgresUnavailable(adminUrl: string): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    return undefined;
  } catch (error) {
    return (error as Error).message;
  } finally {
    await client.end().catch(() => {});
  }
}

/** Creates `herald_bench_<random>` (migrated unless `migrated: false`); `drop()` removes it. */
export async function createBenchDatabase(
  adminUrl: string,
  options: { migrated?: boolean } = {},
): Promise<BenchDatabase> {
  const name = `herald_bench_${randomBytes(5).toString("hex")}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  if (options.migrated ?? true) {
    const db = new PostgresDatabase({ connectionString: url.toString(), maxConnections: 2 });
    try {
      await migrate(db);
    } finally {
      await db.close();
    }
  }
  return {
    url: url.toString(),
    drop: async () => {
      const cleanup = new pg.Client({ connectionString: adminUrl });
      await cleanup.connect();
      try {
        await cleanup.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await cleanup.end();
      }
    },
  };
}

/** An embedded database in a temporary directory (file-backed, as `herald start` runs it). */
export async function createEmbeddedDatabase(): Promise<{ db: Database; drop(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), "herald-bench-"));
  const db = await PgliteDatabase.open(dir);
  await migrate(db);
  return {
    db,
    drop: async () => {
      await db.close().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// Herald in-process -----------------------------------------------------------------------------

export const BENCH_ENTITY = "bench";

/** HERALD_SECRET_KEY of the benches' Herald processes, and of what a bench seals itself. */
export const BENCH_SECRET_KEY = "be0c4be0c4be0c4be0c4be0c4be0c4be0c4be0c4be0c4be0c4be0c4be0c4be0c";

export function benchSecrets(): SecretBox {
  return new SecretBox(parseSecretKey(BENCH_SECRET_KEY));
}
const BENCH_ADMIN_KEY = `hk_bench_${randomBytes(16).toString("hex")}`;

export interface BenchHerald {
  db: Database;
  /** The bench process's log signals on `db` (its app and sequencer share them). */
  logSignals: LogSignals;
  app: HeraldApp;
  /** Undefined when started with `sequencer: false` (the sequencer runs elsewhere). */
  sequencer: Sequencer | undefined;
  config: HeraldConfig;
  /** `http://127.0.0.1:<port>` */
  origin: string;
  token: string;
  /** JSON call with the bearer token; throws on a non-2xx answer. */
  call<T>(method: "GET" | "POST" | "PUT" | "DELETE", path: string, body?: unknown): Promise<T>;
  stop(): Promise<void>;
}

/** API + sequencer on `db` (already migrated), listening on a loopback port chosen by the OS. */
export async function startBenchHerald(
  db: Database,
  overrides: Partial<HeraldConfig> = {},
  options: {
    sequencer?: boolean;
    /** Adds routes to Herald's app before it listens (the capture bench's HTTP ceiling). */
    extraRoutes?: (app: HeraldApp) => void;
  } = {},
): Promise<BenchHerald> {
  const config: HeraldConfig = {
    ...loadConfig({ env: {} }),
    defaultEntity: BENCH_ENTITY,
    adminApiKey: BENCH_ADMIN_KEY,
    allowInsecureTargets: true,
    logLevel: "silent",
    ...overrides,
  };
  const logger = createLogger("silent");
  await bootstrap(db, { defaultEntity: BENCH_ENTITY, adminApiKey: BENCH_ADMIN_KEY });
  const logSignals = new LogSignals();
  const sequencer =
    (options.sequencer ?? true) ? await startSequencer({ db, logSignals, logger }) : undefined;
  const app = await buildApp({ db, logSignals, config, logger, secrets: benchSecrets() });
  options.extraRoutes?.(app);
  const origin = await app.listen({ port: 0, host: "127.0.0.1" });
  const { call, token } = await apiClient(origin, BENCH_ADMIN_KEY);
  return {
    db,
    logSignals,
    app,
    sequencer,
    config,
    origin,
    token,
    call,
    stop: async () => {
      await app.close();
      await sequencer?.stop();
    },
  };
}

export function fixed(value: number, digits = 0): string {
  return value.toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

/** Prints rows as aligned columns (first column left-aligned, the rest right-aligned). */
export function printTable(rows: string[][]): void {
  const widths = rows[0]!.map((_, col) => Math.max(...rows.map((row) => (row[col] ?? "").length)));
  for (const row of rows) {
    console.log(
      row
        .map((cell, col) => (col === 0 ? cell.padEnd(widths[col]!) : cell.padStart(widths[col]!)))
        .join("   "),
    );
  }
}

/** CPU seconds (user + system) a process has used, from /proc; 0 when it cannot be read. */
export function cpuSecondsOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may hold spaces): utime is field 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100; // clock ticks, USER_HZ = 100
  } catch {
    return 0;
  }
}

/** The profile UPDATE event the delivery benchmarks write (the delivery backlog SQL mirrors it). */
export function profileEvent(entity: number, record: number, version: number): NewChangeEvent {
  const email = `customer${record}@example.com`;
  return {
    entityId: entity,
    source: "PROFILE_TABLE",
    sourceId: "1",
    eventType: "UPDATE",
    recordKey: String(record),
    keys: { profileId: record, emailAddress: email },
    state: {
      profileId: record,
      emailAddress: email,
      firstName: "Ann",
      counter: version,
      tier: "GOLD",
    },
    fields: ["counter"],
    previous: { counter: version - 1 },
    extra: {},
    version,
    declaredEvents: [],
    origin: { kind: "SYSTEM" },
  };
}

/** Node's flags for a Herald process, as bin/herald.mjs's first line and `npm start` give them. */
export const HERALD_NODE_FLAGS = ["--max-semi-space-size=4"] as const;

/** GET /auth/token with the admin key, then JSON calls with the bearer token. */
export async function apiClient(origin: string, adminKey: string) {
  const tokenResponse = await request(`${origin}/auth/token`, {
    headers: { authorization: adminKey },
  });
  if (tokenResponse.statusCode !== 200)
    throw new Error(`GET /auth/token answered ${tokenResponse.statusCode}`);
  const { accessToken } = (await tokenResponse.body.json()) as { accessToken: string };
  return {
    token: accessToken,
    call: async <T>(method: string, path: string, body?: unknown): Promise<T> => {
      const response = await request(`${origin}${path}`, {
        method: method as "GET",
        headers: {
          authorization: `Bearer ${accessToken}`,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await response.body.text();
      if (response.statusCode >= 300)
        throw new Error(`${method} ${path} answered ${response.statusCode}: ${text.slice(0, 500)}`);
      return (text ? JSON.parse(text) : undefined) as T;
    },
  };
}
