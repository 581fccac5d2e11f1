/**
 * The database port. Everything above `storage/` talks to PostgreSQL through these few methods;
 * the two adapters (pg pool, PGlite) are the only code that knows which database is underneath.
 *
 * Both adapters return the same JavaScript values: int8 and int4 as `number` (Herald's ids and log
 * positions stay far below 2^53; a larger value throws rather than silently rounding), numeric as
 * `string`, timestamptz as `Date`, json/jsonb parsed.
 */
export interface QueryResult<T> {
  rows: T[];
  rowCount: number;
}

export interface Queryable {
  /**
   * `statementName`: on PostgreSQL, prepare the statement once per connection under this name and
   * reuse its plan (for hot statements whose planning costs more than running them). One name must
   * always go with the same SQL text. PGlite ignores it.
   */
  query<T = Record<string, unknown>>(
    sql: string,
    params?: readonly unknown[],
    statementName?: string,
  ): Promise<QueryResult<T>>;
  /** Runs a script of several statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
  /**
   * PostgreSQL transactions only (PGlite has no COPY stream): runs `sql`, a `COPY … TO STDOUT`, and
   * yields its bytes (UTF-8) as the server sends them, pulled by the caller (the connection is not
   * read while the caller works on a chunk, so memory does not grow with the output). The COPY
   * holds the transaction's connection until it ends: nothing else can run on it meanwhile. A caller
   * that stops before the end ruins the transaction (it rolls back, its connection is discarded).
   */
  copyOut?(sql: string): CopyOut;
}

/** A COPY's bytes; `rowCount` holds the rows the server wrote once the iteration has ended. */
export interface CopyOut extends AsyncIterable<Buffer> {
  readonly rowCount: number;
}

export type Unlisten = () => Promise<void>;

/** A session-level advisory lock held on a dedicated connection until released or the connection dies. */
export interface AdvisoryLock {
  release(): Promise<void>;
  /** Settles when the lock is lost (connection closed or failed), never when released on purpose. */
  readonly lost: Promise<Error>;
}

/**
 * What a backend can do, in the terms the code above it needs: it asks these, never which database
 * is underneath (`kind` is for messages and per-backend tuning tables only).
 */
export interface DatabaseCapabilities {
  /**
   * Operations of different callers run side by side (a pool of sessions). False when every
   * operation of the process takes its turn on one session (the embedded database): work that
   * overlaps only queues, and each look for work takes a turn that API requests also need.
   */
  readonly concurrentSessions: boolean;
  /**
   * A NOTIFY committed by this process reaches this process's listeners at once, without a round
   * trip through a server (the embedded database delivers it in process).
   */
  readonly notifiesInProcess: boolean;
  /**
   * Other processes may use the database at the same time, and so die while holding leases or
   * locks in it (a server). False for the embedded database, which one process holds.
   */
  readonly sharedByProcesses: boolean;
}

export interface Database extends Queryable {
  readonly kind: "pglite" | "postgres";
  readonly capabilities: DatabaseCapabilities;
  /** Runs `fn` in one READ COMMITTED transaction; commits when it resolves, rolls back when it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /** Subscribes to NOTIFY on `channel`. */
  listen(channel: string, onNotify: (payload: string) => void): Promise<Unlisten>;
  /** Tries to take a session advisory lock; `null` when another session holds it. */
  tryAdvisoryLock(key: number): Promise<AdvisoryLock | null>;
  /**
   * How long (ms) the oldest operation waiting for the database has waited; 0 when none waits.
   * Only an adapter that serves every operation of the process from one queue has it (the embedded
   * database); the API then lets in a bounded number of requests at a time and answers 503 beyond
   * (src/api/database-admission.ts).
   */
  queueDelayMs?(): number;
  close(): Promise<void>;
}

/** Advisory lock keys, in one place so no two features share a key by accident. */
export const ADVISORY_LOCKS = {
  migrations: 72_630_001,
  sequencerLeader: 72_630_002,
  sequencerStamp: 72_630_003,
  bootstrap: 72_630_004,
  housekeeping: 72_630_005,
  /** With the entity id as second key: one change of an entity's table definitions at a time. */
  tableDefinitions: 72_630_006,
  /**
   * With hashtext(table id) as second key, taken in SQL (migration 013): record writes hold it
   * shared, a change of the table's definition exclusive.
   */
  tableWrites: 72_630_007,
  /**
   * The high 32 bits of the bigint keys of delivery workers' liveness locks (migration 018): key =
   * workerLiveness × 2^32 + a number from the sequence delivery_worker_liveness_keys. The keys above
   * are all below 2^32 and the two-key locks are a separate key space, so none can collide.
   */
  workerLiveness: 72_630,
} as const;

export function toSafeInteger(raw: string): number {
  const value = Number(raw);
  if (!Number.isSafeInteger(value))
    throw new RangeError(`64-bit value ${raw} exceeds the safe integer range`);
  return value;
}
