import type { Database } from "./database.js";
import { findUnavailable, isDatabaseUnavailable } from "./database-unavailable.js";
import { PgliteDatabase } from "./pglite-database.js";
import type { AvailabilityChange } from "./postgres-database.js";
import { PostgresDatabase } from "./postgres-database.js";

/**
 * The start waits for PostgreSQL while it is unavailable (refused, reset, timed out, a host name
 * that does not resolve yet, a server starting up or out of connection slots): a database started
 * beside Herald (Compose, Kubernetes) is often not up yet. It does not wait when the server answers
 * and refuses (authentication failed, no such database, a TLS setting it rejects): that is a setting
 * to fix, and waiting would hide it. Attempts are spaced out from 250 ms to at most 2 s.
 */
const DATABASE_WAIT = { firstMs: 250, maxMs: 2_000, reportEveryMs: 30_000 } as const;

/** What the start tells the operator while it waits for the database. */
export interface DatabaseWait {
  /** What is wrong, in words: "the database at db:5432 is not available: connection refused (ECONNREFUSED)". */
  message: string;
  retryInMs: number;
  /** Since the first failed attempt. */
  waitedMs: number;
}

export interface DatabaseSettings {
  databaseUrl: string | undefined;
  dataDir: string;
  maxConnections?: number;
  /**
   * Called while the start waits for PostgreSQL: at the first failed attempt, when the reason
   * changes, and every 30 s.
   */
  onWait?: (wait: DatabaseWait) => void;
  /** Stops the waiting (a SIGTERM during the start): openDatabase then throws. */
  signal?: AbortSignal;
  /** PostgreSQL: the database became unavailable, or available again, after the start. */
  onAvailabilityChange?: (change: AvailabilityChange) => void;
}

/** Opens PostgreSQL when a URL is given (waiting for it, see DATABASE_WAIT), else the embedded database in `dataDir`. */
export async function openDatabase(settings: DatabaseSettings): Promise<Database> {
  if (settings.databaseUrl) {
    let started = false;
    const db = new PostgresDatabase({
      connectionString: settings.databaseUrl,
      maxConnections: settings.maxConnections,
      // The wait at the start says why on its own.
      onAvailabilityChange: (change) => {
        if (started) settings.onAvailabilityChange?.(change);
      },
    });
    try {
      await whenAvailable(() => db.query("SELECT 1"), settings);
      started = true;
    } catch (error) {
      await db.close().catch(() => {});
      if (isDatabaseUnavailable(error) || settings.signal?.aborted) throw error;
      throw new Error(
        `cannot use the database${db.where ? ` at ${db.where}` : ""}: ${(error as Error).message}${sqlStateOf(error)}. Check DATABASE_URL (user, password, database name, sslmode); Herald does not wait for this kind of error`,
        { cause: error },
      );
    }
    return db;
  }
  return PgliteDatabase.open(settings.dataDir);
}

/**
 * Runs `step` (idempotent: a query, the migrations, the first-start bootstrap) until it is not
 * stopped by the database being unavailable; any other error is thrown at once.
 */
export async function whenAvailable<T>(
  step: () => Promise<T>,
  options: Pick<DatabaseSettings, "onWait" | "signal"> = {},
): Promise<T> {
  let startedAt: number | undefined;
  let lastReason: string | undefined;
  let lastReportAt = 0;
  for (let attempt = 0; ; attempt++) {
    try {
      return await step();
    } catch (error) {
      const unavailable = findUnavailable(error);
      if (!unavailable) throw error;
      const now = Date.now();
      startedAt ??= now;
      const retryInMs = Math.min(DATABASE_WAIT.maxMs, DATABASE_WAIT.firstMs * 2 ** attempt);
      if (unavailable.reason !== lastReason || now - lastReportAt >= DATABASE_WAIT.reportEveryMs) {
        lastReason = unavailable.reason;
        lastReportAt = now;
        options.onWait?.({ message: unavailable.message, retryInMs, waitedMs: now - startedAt });
      }
      await pause(retryInMs, options.signal, unavailable);
    }
  }
}

function pause(ms: number, signal: AbortSignal | undefined, why: Error): Promise<void> {
  return new Promise((resolve, reject) => {
    const stopped = () =>
      new Error(`stopped while waiting for the database (${why.message})`, { cause: why });
    if (signal?.aborted) return reject(stopped());
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", stop);
      resolve();
    }, ms);
    const stop = () => {
      clearTimeout(timer);
      reject(stopped());
    };
    signal?.addEventListener("abort", stop, { once: true });
  });
}

function sqlStateOf(error: unknown): string {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) ? ` (SQLSTATE ${code})` : "";
}
