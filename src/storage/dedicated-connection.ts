/**
 * A connection of the PostgreSQL adapter's own, beside its pool, for what must stay on one session
 * (LISTEN, a session advisory lock). Statements sent to it run one after the other, each once the
 * ones sent before have been answered (the driver's own queue for that is deprecated), and a ping
 * checks that it still answers. The adapter owns one per such connection.
 */
import type pg from "pg";

/** A query's config with the driver's per-query time limit (read by pg, missing from its types). */
export type TimedQuery = pg.QueryConfig & { query_timeout?: number };

/** How long a client may take to say goodbye before its socket is closed under it. */
const CLOSE_GRACE_MS = 1_000;

export class DedicatedConnection {
  /** The last statement sent (the next waits for it), and how many are not answered yet. */
  private tail: Promise<unknown> = Promise.resolve();
  private pending = 0;

  constructor(readonly client: pg.Client) {}

  /** Runs `query` once the statements sent before it have been answered. */
  query<R extends pg.QueryResultRow>(query: TimedQuery): Promise<pg.QueryResult<R>> {
    this.pending++;
    const run = this.tail.then(() => this.client.query<R>(query));
    this.tail = run.then(
      () => this.pending--,
      () => this.pending--,
    );
    return run;
  }

  /** Checks that the connection still answers within `ms`; skipped while it is busy. */
  ping(ms: number): Promise<unknown> | undefined {
    if (this.pending > 0) return undefined;
    return this.query({ text: "SELECT 1", query_timeout: ms });
  }

  /** Ends the connection politely, or closes its socket after CLOSE_GRACE_MS. */
  async close(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, CLOSE_GRACE_MS);
      timer.unref();
    });
    await Promise.race([this.client.end().catch(() => {}), grace]);
    clearTimeout(timer);
    abandon(this.client);
  }

  /** Closes the socket at once (a connection that no longer answers cannot say goodbye). */
  abandon(): void {
    abandon(this.client);
  }
}

/** Closes a client's socket at once (a connection that no longer answers cannot say goodbye). */
export function abandon(client: pg.ClientBase): void {
  (
    client as unknown as { connection?: { stream?: { destroy(): void } } }
  ).connection?.stream?.destroy();
}
