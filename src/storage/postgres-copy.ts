/**
 * The PostgreSQL adapter's COPY stream (`Queryable.copyOut`): a `COPY … TO STDOUT` on a
 * transaction's connection, its bytes pulled by the caller. pg-copy-streams reads the socket only
 * when asked, so the server waits while the caller works and memory does not grow with the output.
 */
import type pg from "pg";
import copyStreams from "pg-copy-streams";
import type { CopyOut } from "./database.js";

export interface CopySettings {
  /** The time limit for each wait for the next bytes (never for the caller's own time). */
  limitMs: number;
  /** The adapter's error mapping (DatabaseUnavailable for a database that went away). */
  mapError(error: unknown): unknown;
  /** Closes the connection's socket at once (the limit ran out, or the COPY was stopped). */
  abandon(): void;
  /**
   * Told when the iteration does not reach the end (the caller stopped, an error, the limit): the
   * connection is mid-COPY, so its socket is closed, the transaction must not commit and the
   * connection is discarded rather than handed back to the pool.
   */
  ruined(error: Error): void;
}

export function copyOut(client: pg.PoolClient, sql: string, settings: CopySettings): CopyOut {
  const { limitMs } = settings;
  /** A statement with the driver's own time limit (read by pg, missing from its types). */
  const timed = (text: string) => ({ text, query_timeout: limitMs }) as pg.QueryConfig;
  const out = { rowCount: 0, [Symbol.asyncIterator]: () => chunks() };
  async function* chunks(): AsyncGenerator<Buffer> {
    try {
      // node-pg decodes UTF-8 whatever the database's encoding: the COPY's bytes must be too.
      await client.query(timed("SET LOCAL client_encoding = 'UTF8'"));
    } catch (error) {
      throw settings.mapError(error);
    }
    const stream = client.query(copyStreams.to(sql));
    // Its errors reach the reader below; once it is abandoned, a late one must not go unheard.
    stream.on("error", () => {});
    const reader = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    let ended = false;
    try {
      for (;;) {
        const next = await withinLimit(reader.next(), limitMs, settings.abandon);
        if (next.done) break;
        yield next.value;
      }
      // The row count comes with the COPY's CommandComplete, which may follow its last bytes: a
      // statement after it on the same connection is answered only once that was read.
      await client.query(timed("SELECT 1"));
      out.rowCount = stream.rowCount;
      ended = true;
    } catch (error) {
      throw settings.mapError(error);
    } finally {
      if (!ended) {
        // The server goes on sending until the session ends: closing the socket ends it at once
        // (rolling the transaction back), where a ROLLBACK would wait behind the unread rows until
        // the query limit ran out (exports-copy.test.ts).
        settings.ruined(new Error("a COPY was stopped before its end"));
        stream.destroy();
        settings.abandon();
      }
    }
  }
  return out;
}

/**
 * `step`, or the driver's own "Query read timeout" (a time limit to the adapter's error mapping)
 * when it takes longer than `ms`, after `onTimeout`.
 */
async function withinLimit<T>(step: Promise<T>, ms: number, onTimeout: () => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout();
      reject(new Error("Query read timeout"));
    }, ms);
  });
  try {
    return await Promise.race([step, limit]);
  } finally {
    clearTimeout(timer);
  }
}
