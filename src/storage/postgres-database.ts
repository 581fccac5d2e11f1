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
import { copyOut } from "./postgres-copy.js";

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

/** How long a client may take to say goodbye before its socket is closed under it. */
const CLOSE_GRACE_MS = 1_000;

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

/** A query's config with the driver's per-query time limit (read by pg, missing from its types). */
type TimedQuery = pg.QueryConfig & { query_timeout?: number };

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
  private listenClient: pg.Client | undefined;
  private listenClientReady: Promise<pg.Client> | undefined;
  private listenPing: NodeJS.Timeout | undefined;
  private relistening: Promise<void> | undefined;
  private relistenAgain = false;
  private readonly listeners = new Map<string, Set<(payload: string) => void>>();
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

  /**
   * LISTEN runs on one dedicated connection. When it drops (or stops answering its ping) it is
   * replaced and every channel is listened to again; since notifications sent meanwhile are lost,
   * every listener is then called once with an empty payload, to look for itself. A listen() made
   * while the database is unreachable succeeds: its LISTEN is made, and its listener called, as
   * soon as the database is back.
   */
  async listen(channel: string, onNotify: (payload: string) => void): Promise<Unlisten> {
    let set = this.listeners.get(channel);
    const added = !set;
    if (!set) {
      set = new Set();
      this.listeners.set(channel, set);
    }
    set.add(onNotify);
    const unlisten = async () => {
      set.delete(onNotify);
    };
    if (!added) return unlisten;
    try {
      const client = await this.ensureListenClient();
      await inTurn(client, this.timed(`LISTEN ${quoteIdent(channel)}`));
    } catch (error) {
      if (!unavailabilityReason(error)) {
        set.delete(onNotify);
        if (set.size === 0) this.listeners.delete(channel);
        throw error;
      }
      this.dropListenClient(this.listenClient);
      this.relisten();
    }
    return unlisten;
  }

  private ensureListenClient(): Promise<pg.Client> {
    if (!this.listenClientReady) {
      const ready = (async () => {
        const client = new pg.Client(this.clientSettings("herald-listen"));
        client.on("notification", (message) => {
          for (const listener of this.listeners.get(message.channel) ?? [])
            listener(message.payload ?? "");
        });
        // Attached before connecting: a connection that dies at any point is replaced, never an
        // unhandled `error`.
        client.on("error", () => {
          if (this.listenClient !== client) return;
          this.dropListenClient(client);
          if (!this.closed) this.relisten();
        });
        try {
          await client.connect();
        } catch (error) {
          void closeClient(client);
          throw error;
        }
        if (this.closed) {
          void closeClient(client);
          throw new Error("the database was closed");
        }
        this.listenClient = client;
        this.listenPing = setInterval(() => {
          ping(client, this.limits.pingMs)?.catch(() => {
            // No answer in time: the connection is as good as gone (its `error` replaces it).
            abandon(client);
          });
        }, this.limits.pingMs);
        this.listenPing.unref();
        return client;
      })();
      ready.catch(() => {
        if (this.listenClientReady === ready) this.listenClientReady = undefined;
      });
      this.listenClientReady = ready;
    }
    return this.listenClientReady;
  }

  /** Forgets the LISTEN connection (the next use makes a new one). */
  private dropListenClient(client: pg.Client | undefined): void {
    if (client && this.listenClient !== client) return;
    clearInterval(this.listenPing);
    this.listenPing = undefined;
    this.listenClient = undefined;
    this.listenClientReady = undefined;
    if (client) void closeClient(client);
  }

  /**
   * Reconnects the LISTEN connection, then wakes every listener. One attempt loop at a time; a drop
   * while it runs makes it go round once more.
   */
  private relisten(): void {
    if (this.relistening) {
      this.relistenAgain = true;
      return;
    }
    this.relistening = (async () => {
      do {
        this.relistenAgain = false;
        for (let attempt = 0; !this.closed; attempt++) {
          try {
            const client = await this.ensureListenClient();
            for (const channel of this.listeners.keys())
              await inTurn(client, this.timed(`LISTEN ${quoteIdent(channel)}`));
            break;
          } catch {
            this.dropListenClient(this.listenClient);
            await new Promise((r) => setTimeout(r, Math.min(1_000, 100 * 2 ** attempt)));
          }
        }
      } while (this.relistenAgain && !this.closed);
      if (this.closed) return;
      // Wake everyone: notifications may have been missed while disconnected.
      for (const set of this.listeners.values())
        for (const listener of set) {
          try {
            listener("");
          } catch {
            // A listener's own failure is its own; the others are still woken.
          }
        }
    })().finally(() => {
      this.relistening = undefined;
    });
  }

  async tryAdvisoryLock(key: number): Promise<AdvisoryLock | null> {
    const client = new pg.Client(this.clientSettings("herald-lock"));
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
      const { rows } = await inTurn<{ ok: boolean }>(
        client,
        this.timed("SELECT pg_try_advisory_lock($1) AS ok", [key]),
      );
      if (!rows[0]?.ok) {
        released = true;
        await closeClient(client);
        return null;
      }
    } catch (error) {
      released = true;
      void closeClient(client);
      throw this.unavailable(error);
    }
    // A periodic ping notices a dead or silent connection even when nobody queries on it.
    const pinger = setInterval(() => {
      ping(client, this.limits.pingMs)?.catch((error: Error) => {
        if (released) return;
        markLost(error);
        abandon(client);
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
          await inTurn(client, this.timed("SELECT pg_advisory_unlock($1)", [key]));
        } catch (error) {
          throw this.unavailable(error);
        } finally {
          await closeClient(client);
        }
      },
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.dropListenClient(this.listenClient);
    await this.pool.end();
  }
}

/** Statements sent to each dedicated connection (LISTEN, locks) and not yet answered. */
const turns = new WeakMap<pg.Client, { tail: Promise<unknown>; pending: number }>();

/**
 * Runs `query` on a dedicated connection once the statements sent to it before have been answered
 * (the driver's own queue for that is deprecated).
 */
function inTurn<R extends pg.QueryResultRow>(
  client: pg.Client,
  query: TimedQuery,
): Promise<pg.QueryResult<R>> {
  let turn = turns.get(client);
  if (!turn) turns.set(client, (turn = { tail: Promise.resolve(), pending: 0 }));
  const state = turn;
  state.pending++;
  const run = state.tail.then(() => client.query<R>(query));
  state.tail = run.then(
    () => state.pending--,
    () => state.pending--,
  );
  return run;
}

/** Checks that a dedicated connection still answers within `ms`; skipped while it is busy. */
function ping(client: pg.Client, ms: number): Promise<unknown> | undefined {
  if ((turns.get(client)?.pending ?? 0) > 0) return undefined;
  return inTurn(client, { text: "SELECT 1", query_timeout: ms });
}

/** Ends a client politely, or closes its socket when it does not finish within CLOSE_GRACE_MS. */
async function closeClient(client: pg.Client): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const grace = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, CLOSE_GRACE_MS);
    timer.unref();
  });
  await Promise.race([client.end().catch(() => {}), grace]);
  clearTimeout(timer);
  abandon(client);
}

/** Closes a client's socket at once (a connection that no longer answers cannot say goodbye). */
function abandon(client: pg.Client): void {
  (
    client as unknown as { connection?: { stream?: { destroy(): void } } }
  ).connection?.stream?.destroy();
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

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
