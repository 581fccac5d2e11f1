/**
 * LISTEN for the PostgreSQL adapter (postgres-database.ts owns one).
 *
 * LISTEN runs on one dedicated connection. When it drops (or stops answering its ping) it is
 * replaced and every channel is listened to again; since notifications sent meanwhile are lost,
 * every listener is then called once with an empty payload, to look for itself. A listen() made
 * while the database is unreachable succeeds: its LISTEN is made, and its listener called, as
 * soon as the database is back.
 */
import type pg from "pg";
import type { Unlisten } from "./database.js";
import { unavailabilityReason } from "./database-unavailable.js";
import type { TimedQuery } from "./dedicated-connection.js";
import { DedicatedConnection } from "./dedicated-connection.js";

export interface ListenerSettings {
  /** A new, unconnected client for the LISTEN connection. */
  newClient(): pg.Client;
  /** A statement with the adapter's time limit. */
  timed(sql: string): TimedQuery;
  /** How often the connection checks that it still reaches the server, and how long it may take. */
  pingMs: number;
}

export class PostgresListener {
  private listenClient: DedicatedConnection | undefined;
  private listenClientReady: Promise<DedicatedConnection> | undefined;
  private listenPing: NodeJS.Timeout | undefined;
  private relistening: Promise<void> | undefined;
  private relistenAgain = false;
  private readonly listeners = new Map<string, Set<(payload: string) => void>>();
  private closed = false;

  constructor(private readonly settings: ListenerSettings) {}

  /** Listens on `channel`; returns the way to stop listening. */
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
      const connection = await this.ensureListenClient();
      await connection.query(this.settings.timed(`LISTEN ${quoteIdent(channel)}`));
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

  private ensureListenClient(): Promise<DedicatedConnection> {
    if (!this.listenClientReady) {
      const ready = (async () => {
        const client = this.settings.newClient();
        const connection = new DedicatedConnection(client);
        client.on("notification", (message) => {
          for (const listener of this.listeners.get(message.channel) ?? [])
            listener(message.payload ?? "");
        });
        // Attached before connecting: a connection that dies at any point is replaced, never an
        // unhandled `error`.
        client.on("error", () => {
          if (this.listenClient !== connection) return;
          this.dropListenClient(connection);
          if (!this.closed) this.relisten();
        });
        try {
          await client.connect();
        } catch (error) {
          void connection.close();
          throw error;
        }
        if (this.closed) {
          void connection.close();
          throw new Error("the database was closed");
        }
        this.listenClient = connection;
        this.listenPing = setInterval(() => {
          connection.ping(this.settings.pingMs)?.catch(() => {
            // No answer in time: the connection is as good as gone (its `error` replaces it).
            connection.abandon();
          });
        }, this.settings.pingMs);
        this.listenPing.unref();
        return connection;
      })();
      ready.catch(() => {
        if (this.listenClientReady === ready) this.listenClientReady = undefined;
      });
      this.listenClientReady = ready;
    }
    return this.listenClientReady;
  }

  /** Forgets the LISTEN connection (the next use makes a new one). */
  private dropListenClient(connection: DedicatedConnection | undefined): void {
    if (connection && this.listenClient !== connection) return;
    clearInterval(this.listenPing);
    this.listenPing = undefined;
    this.listenClient = undefined;
    this.listenClientReady = undefined;
    if (connection) void connection.close();
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
            const connection = await this.ensureListenClient();
            for (const channel of this.listeners.keys())
              await connection.query(this.settings.timed(`LISTEN ${quoteIdent(channel)}`));
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

  /** Stops for good: the connection is closed and never renewed. */
  close(): void {
    this.closed = true;
    this.dropListenClient(this.listenClient);
  }
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
