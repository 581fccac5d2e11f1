/** Adapter: a real PostgreSQL server through a `pg` connection pool. */
import pg from "pg";
import type {
  AdvisoryLock,
  Database,
  DatabaseCapabilities,
  Queryable,
  QueryResult,
  Unlisten,
} from "./database.js";
import { toSafeInteger } from "./database.js";
import {
  DatabaseUnavailable,
  findUnavailable,
  isDatabaseUnavailable,
  isTimeout,
  unavailabilityReason,
} from "./database-unavailable.js";
import type { TimedQuery } from "./dedicated-connection.js";
import { abandon, DedicatedConnection } from "./dedicated-connection.js";
import { copyOut } from "./postgres-copy.js";
import { PostgresListener } from "./postgres-listener.js";

const INT8 = 20;
const INT8_ARRAY = 1016;
const NUMERIC = 1700;

function typeParser(oid: number, format?: string): (value: string) => unknown {
  if (oid === INT8) return toSafeInteger;
  if (oid === INT8_ARRAY) {
    const parseArray = pg.types.getTypeParser(INT8_ARRAY as unknown as 20, "text") as (
      v: string,
    ) => (string | null)[];
    return (value: string) =>
      parseArray(value).map((item) => (item === null ? null : toSafeInteger(item)));
  }
  if (oid === NUMERIC) return (v: string) => v;
  return pg.types.getTypeParser(oid, format as "text");
}

/**
 * Time limits that keep a database that went away from holding anyone forever (DatabaseUnavailable
 * past them):
 * - `connectMs`: to open a connection, and to wait for a free one when the pool is busy;
 * - `queryMs`: for the answer to any one statement, on the driver's own clock. It also holds when
 *   the network swallows packets and the server never hears of the statement (a black hole), which
 *   the server's statement_timeout cannot catch. Migrations (`exec`) have no limit: an index built
 *   on a large table may take longer;
 * - `pingMs`: how often the long-lived connections (LISTEN, advisory locks) check that they still
 *   reach the server, and how long the check may take;
 * - `keepAliveMs`: idle time before TCP keepalive probes start on every connection;
 * - `probeEveryMs`: once a limit has run out, how often a query may go on to find out whether the
 *   database answers again (the others fail at once meanwhile).
 */
export const POSTGRES_TIME_LIMITS = {
  connectMs: 5_000,
  queryMs: 15_000,
  pingMs: 5_000,
  keepAliveMs: 10_000,
  probeEveryMs: 1_000,
} as const;

type TimeLimits = Record<keyof typeof POSTGRES_TIME_LIMITS, number>;

export interface PostgresOptions {
  connectionString: string;
  maxConnections?: number;
  applicationName?: string;
  /** Tests: shorter limits than POSTGRES_TIME_LIMITS. */
  timeLimits?: Partial<TimeLimits>;
  /**
   * Told once when queries start failing because the database is unavailable (`error` says why),
   * and once when one succeeds again (`outageMs` after the first failure): the process's own
   * account of an outage, for the log.
   */
  onAvailabilityChange?: (change: AvailabilityChange) => void;
}

export type AvailabilityChange =
  { available: false; error: DatabaseUnavailable } | { available: true; outageMs: number };

/** A server: a pool of sessions, NOTIFY through the server, any number of processes. */
export const POSTGRES_CAPABILITIES: DatabaseCapabilities = {
  concurrentSessions: true,
  notifiesInProcess: false,
  sharedByProcesses: true,
};

export class PostgresDatabase implements Database {
  readonly kind = "postgres" as const;
  readonly capabilities = POSTGRES_CAPABILITIES;
  readonly pool: pg.Pool;
  /** host:port/database, for messages (never the password). */
  readonly where: string | undefined;
  private readonly options: PostgresOptions;
  private readonly limits: TimeLimits;
  private readonly listener: PostgresListener;
  private closed = false;
  /**
   * Set when a time limit ran out (the database does not answer: a black hole, a frozen server),
   * cleared by the first answer. Meanwhile one query or transaction per `probeEveryMs` goes on to
   * find out whether the database is back, and the others fail at once instead of each waiting
   * out the limit (an API request may wait in the write queue behind others). Not one at a time:
   * a probe stuck on a connection that the network left hanging must not hold everyone back for
   * its whole limit once the database is back.
   */
  private silentSince: number | undefined;
  private lastProbeAt = 0;
  /** Since when queries fail because the database is unavailable (for onAvailabilityChange). */
  private downSince: number | undefined;

  constructor(options: PostgresOptions) {
    this.options = options;
    this.limits = { ...POSTGRES_TIME_LIMITS, ...options.timeLimits };
    this.where = describeTarget(options.connectionString);
    this.pool = new pg.Pool({
      ...this.clientSettings(options.applicationName ?? "herald"),
      max: options.maxConnections ?? 20,
      types: { getTypeParser: typeParser as typeof pg.types.getTypeParser },
    });
    // An idle client whose connection drops (server restart, network) is removed by the pool; log
    // nothing here, the next query reports the problem to its caller.
    this.pool.on("error", () => {});
    this.listener = new PostgresListener({
      newClient: () => new pg.Client(this.clientSettings("herald-listen")),
      timed: (sql) => this.timed(sql),
      pingMs: this.limits.pingMs,
    });
  }

  private clientSettings(applicationName: string): pg.ClientConfig {
    return {
      connectionString: this.options.connectionString,
      application_name: applicationName,
      connectionTimeoutMillis: this.limits.connectMs,
      keepAlive: true,
      keepAliveInitialDelayMillis: this.limits.keepAliveMs,
    };
  }

  /** `error` as a DatabaseUnavailable when it says the database went away, else unchanged. */
  private unavailable(error: unknown, during?: string): unknown {
    if (error instanceof DatabaseUnavailable) return error;
    const reason = unavailabilityReason(error);
    if (!reason) return error;
    return new DatabaseUnavailable(during ? `${reason} ${during}` : reason, this.where, error);
  }

  async query<T>(
    sql: string,
    params?: readonly unknown[],
    statementName?: string,
  ): Promise<QueryResult<T>> {
    return this.watched(async () => {
      try {
        const result = await this.pool.query(this.timed(sql, params, statementName));
        return { rows: result.rows as T[], rowCount: result.rowCount ?? 0 };
      } catch (error) {
        throw this.unavailable(error);
      }
    });
  }

  /**
   * Runs one query or transaction, noting whether the database answered (see silentSince). While
   * it does not, fails at once unless it is the first for `probeEveryMs`.
   */
  private async watched<T>(operation: () => Promise<T>): Promise<T> {
    if (this.silentSince !== undefined) {
      const now = Date.now();
      if (now - this.lastProbeAt < this.limits.probeEveryMs)
        throw new DatabaseUnavailable(
          `no answer for ${Math.round((now - this.silentSince) / 1000)} s`,
          this.where,
          undefined,
        );
      this.lastProbeAt = now;
    }
    try {
      const value = await operation();
      this.answered();
      return value;
    } catch (error) {
      const unavailable = findUnavailable(error);
      if (!unavailable) {
        // An error the server sent (a constraint, a bad statement) is an answer too.
        this.answered();
      } else {
        if (isTimeout(error)) this.silentSince ??= Date.now();
        if (this.downSince === undefined && !this.closed) {
          this.downSince = Date.now();
          this.options.onAvailabilityChange?.({ available: false, error: unavailable });
        }
      }
      throw error;
    }
  }

  async exec(sql: string): Promise<void> {
    try {
      await this.pool.query(sql);
    } catch (error) {
      throw this.unavailable(error);
    }
  }

  private timed(sql: string, params?: readonly unknown[], statementName?: string): TimedQuery {
    return {
      text: sql,
      values: params as unknown[],
      ...(statementName ? { name: statementName } : {}),
      query_timeout: this.limits.queryMs,
    };
  }

  /** The database answered: ends a silence and an outage. */
  private answered(): void {
    this.silentSince = undefined;
    if (this.downSince === undefined) return;
    const outageMs = Date.now() - this.downSince;
    this.downSince = undefined;
    this.options.onAvailabilityChange?.({ available: true, outageMs });
  }

  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.watched(() => this.inTransaction(fn));
  }

  private async inTransaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (error) {
      throw this.unavailable(error);
    }
    // A connection that dies while no statement of ours runs on it (between two statements, or
    // while `fn` works in JavaScript) makes the driver emit `error` on the client: with no listener
    // that ends the process. Noted here instead: the next statement fails (the driver refuses a
    // broken client) and the client is discarded, never handed back to the pool.
    let broken: Error | undefined;
    const onError = (error: Error) => {
      broken ??= error;
    };
    client.on("error", onError);
    let committing = false;
    try {
      await client.query(this.timed("BEGIN"));
      const tx: Queryable = {
        query: async <R>(sql: string, params?: readonly unknown[], statementName?: string) => {
          try {
            const result = await client.query(this.timed(sql, params, statementName));
            return { rows: result.rows as R[], rowCount: result.rowCount ?? 0 };
          } catch (error) {
            throw this.unavailable(error);
          }
        },
        exec: async (sql: string) => {
          try {
            await client.query(sql);
          } catch (error) {
            throw this.unavailable(error);
          }
        },
        copyOut: (sql: string) =>
          copyOut(client, sql, {
            limitMs: this.limits.queryMs,
            mapError: (error) => this.unavailable(error),
            abandon: () => abandon(client),
            ruined: (error) => {
              broken ??= error;
            },
          }),
      };
      const value = await fn(tx);
      // A COPY stopped midway left the connection mid-protocol: no COMMIT on it.
      if (broken) throw broken;
      committing = true;
      await client.query(this.timed("COMMIT"));
      return value;
    } catch (error) {
      if (broken || isDatabaseUnavailable(error) || unavailabilityReason(error)) {
        // No ROLLBACK over a connection that is gone or does not answer (it would wait the whole
        // time limit again): discarding the connection ends the session, which rolls back.
        broken ??= error as Error;
      } else {
        try {
          await client.query(this.timed("ROLLBACK"));
        } catch (rollbackError) {
          broken = rollbackError as Error;
        }
      }
      throw this.unavailable(
        error,
        committing ? "while committing (the transaction may have been saved or not)" : undefined,
      );
    } finally {
      client.removeListener("error", onError);
      client.release(broken);
    }
  }

  /** LISTEN on one dedicated connection, renewed when it drops (postgres-listener.ts). */
  listen(channel: string, onNotify: (payload: string) => void): Promise<Unlisten> {
    return this.listener.listen(channel, onNotify);
  }

  async tryAdvisoryLock(key: number): Promise<AdvisoryLock | null> {
    const client = new pg.Client(this.clientSettings("herald-lock"));
    const connection = new DedicatedConnection(client);
    let released = false;
    let markLost!: (error: Error) => void;
    const lost = new Promise<Error>((resolve) => (markLost = resolve));
    // Attached before connecting: the connection may die at any moment from here on, and that is
    // a failed attempt or a lost lock, never an unhandled `error`.
    client.on("error", (error) => {
      if (!released) markLost(error);
    });
    client.on("end", () => {
      if (!released) markLost(new Error("advisory lock connection closed"));
    });
    try {
      await client.connect();
      const { rows } = await connection.query<{ ok: boolean }>(
        this.timed("SELECT pg_try_advisory_lock($1) AS ok", [key]),
      );
      if (!rows[0]?.ok) {
        released = true;
        await connection.close();
        return null;
      }
    } catch (error) {
      released = true;
      void connection.close();
      throw this.unavailable(error);
    }
    // A periodic ping notices a dead or silent connection even when nobody queries on it.
    const pinger = setInterval(() => {
      connection.ping(this.limits.pingMs)?.catch((error: Error) => {
        if (released) return;
        markLost(error);
        connection.abandon();
      });
    }, this.limits.pingMs);
    pinger.unref();
    return {
      lost,
      release: async () => {
        if (released) return;
        released = true;
        clearInterval(pinger);
        try {
          await connection.query(this.timed("SELECT pg_advisory_unlock($1)", [key]));
        } catch (error) {
          throw this.unavailable(error);
        } finally {
          await connection.close();
        }
      },
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.listener.close();
    await this.pool.end();
  }
}

/** host:port/database of a connection string, for messages; undefined when it does not parse. */
function describeTarget(connectionString: string): string | undefined {
  try {
    const url = new URL(connectionString);
    const host = decodeURIComponent(url.hostname) || url.searchParams.get("host") || "localhost";
    return `${host}:${url.port || "5432"}${url.pathname.length > 1 ? url.pathname : ""}`;
  } catch {
    return undefined;
  }
}
