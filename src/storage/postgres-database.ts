/** Adapter: a real PostgreSQL server through a `pg` connection pool. */
import pg from "pg";
import type { AdvisoryLock, Database, Queryable, QueryResult, Unlisten } from "./database.js";
import { toSafeInteger } from "./database.js";

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

export interface PostgresOptions {
  connectionString: string;
  maxConnections?: number;
  applicationName?: string;
}

export class PostgresDatabase implements Database {
  readonly kind = "postgres" as const;
  readonly pool: pg.Pool;
  private readonly options: PostgresOptions;
  private listenClient: pg.Client | undefined;
  private listenClientReady: Promise<pg.Client> | undefined;
  private readonly listeners = new Map<string, Set<(payload: string) => void>>();
  private closed = false;

  constructor(options: PostgresOptions) {
    this.options = options;
    this.pool = new pg.Pool({
      connectionString: options.connectionString,
      max: options.maxConnections ?? 20,
      application_name: options.applicationName ?? "herald",
      types: { getTypeParser: typeParser as typeof pg.types.getTypeParser },
    });
    // An idle client that errors (server restart) is removed by the pool; log nothing here, the
    // next query reports the problem to its caller.
    this.pool.on("error", () => {});
  }

  async query<T>(
    sql: string,
    params?: readonly unknown[],
    statementName?: string,
  ): Promise<QueryResult<T>> {
    const result = await this.pool.query({
      text: sql,
      values: params as unknown[],
      ...(statementName ? { name: statementName } : {}),
    });
    return { rows: result.rows as T[], rowCount: result.rowCount ?? 0 };
  }

  async exec(sql: string): Promise<void> {
    await this.pool.query(sql);
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    let broken: Error | undefined;
    try {
      await client.query("BEGIN");
      const tx: Queryable = {
        query: async <R>(sql: string, params?: readonly unknown[], statementName?: string) => {
          const result = await client.query({
            text: sql,
            values: params as unknown[],
            ...(statementName ? { name: statementName } : {}),
          });
          return { rows: result.rows as R[], rowCount: result.rowCount ?? 0 };
        },
        exec: async (sql: string) => {
          await client.query(sql);
        },
      };
      const value = await fn(tx);
      await client.query("COMMIT");
      return value;
    } catch (error) {
      try {
        await client.query("ROLLBACK");
      } catch (rollbackError) {
        broken = rollbackError as Error;
      }
      throw error;
    } finally {
      client.release(broken);
    }
  }

  async listen(channel: string, onNotify: (payload: string) => void): Promise<Unlisten> {
    const client = await this.ensureListenClient();
    let set = this.listeners.get(channel);
    if (!set) {
      set = new Set();
      this.listeners.set(channel, set);
      await client.query(`LISTEN ${quoteIdent(channel)}`);
    }
    set.add(onNotify);
    return async () => {
      set.delete(onNotify);
    };
  }

  private ensureListenClient(): Promise<pg.Client> {
    if (!this.listenClientReady) {
      this.listenClientReady = (async () => {
        const client = new pg.Client({
          connectionString: this.options.connectionString,
          application_name: "herald-listen",
        });
        client.on("notification", (message) => {
          for (const listener of this.listeners.get(message.channel) ?? [])
            listener(message.payload ?? "");
        });
        client.on("error", () => {
          // The connection dropped: forget it, reconnect and re-LISTEN on next use or right away.
          this.listenClient = undefined;
          this.listenClientReady = undefined;
          if (!this.closed) void this.relisten();
        });
        try {
          await client.connect();
        } catch (error) {
          // Not connected: the next listen() tries again instead of failing on this for good.
          this.listenClientReady = undefined;
          throw error;
        }
        this.listenClient = client;
        return client;
      })();
    }
    return this.listenClientReady;
  }

  private async relisten(): Promise<void> {
    for (let attempt = 0; !this.closed; attempt++) {
      try {
        const client = await this.ensureListenClient();
        for (const channel of this.listeners.keys())
          await client.query(`LISTEN ${quoteIdent(channel)}`);
        // Wake everyone: notifications may have been missed while disconnected.
        for (const set of this.listeners.values()) for (const listener of set) listener("");
        return;
      } catch {
        this.listenClientReady = undefined;
        await new Promise((r) => setTimeout(r, Math.min(5000, 100 * 2 ** attempt)));
      }
    }
  }

  async tryAdvisoryLock(key: number): Promise<AdvisoryLock | null> {
    const client = new pg.Client({
      connectionString: this.options.connectionString,
      application_name: "herald-lock",
    });
    await client.connect();
    const { rows } = await client.query<{ ok: boolean }>("SELECT pg_try_advisory_lock($1) AS ok", [
      key,
    ]);
    if (!rows[0]?.ok) {
      await client.end();
      return null;
    }
    let released = false;
    let markLost!: (error: Error) => void;
    const lost = new Promise<Error>((resolve) => (markLost = resolve));
    client.on("error", (error) => {
      if (!released) markLost(error);
    });
    client.on("end", () => {
      if (!released) markLost(new Error("advisory lock connection closed"));
    });
    // A periodic ping notices a dead connection even when nobody queries on it.
    const ping = setInterval(() => {
      client.query("SELECT 1").catch((error: Error) => {
        if (!released) markLost(error);
      });
    }, 5000);
    ping.unref();
    return {
      lost,
      release: async () => {
        if (released) return;
        released = true;
        clearInterval(ping);
        try {
          await client.query("SELECT pg_advisory_unlock($1)", [key]);
        } finally {
          await client.end().catch(() => {});
        }
      },
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.listenClient?.end().catch(() => {});
    await this.pool.end();
  }
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
