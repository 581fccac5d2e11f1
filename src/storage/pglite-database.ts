/**
 * Adapter: the embedded PostgreSQL (PGlite), one in-process session. Every query, script and
 * transaction waits its turn in one first-come-first-served queue (session-queue.ts says why the
 * queue is ours rather than PGlite's own), so a plain query waits while a transaction runs.
 * Advisory locks are held in-process: there is only one process on an embedded database.
 */
import { PGlite, types } from "@electric-sql/pglite";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type {
  AdvisoryLock,
  Database,
  DatabaseCapabilities,
  Queryable,
  QueryResult,
  Unlisten,
} from "./database.js";
import { toSafeInteger } from "./database.js";
import { prepareDataDir } from "./pglite-data-dir.js";
import { SessionQueue } from "./session-queue.js";

const PARSERS = {
  [types.INT8]: toSafeInteger,
  [types.NUMERIC]: (value: string) => value,
};

/**
 * Settings beside PGlite's own start parameters. shared_buffers: PostgreSQL's default of 128 MB is
 * allocated and zeroed inside the WebAssembly memory at start, so all of it is resident from the
 * first second, used or not; 32 MB takes about 100 MB less (docs/operations.md, "Memory"). The data
 * files stay in the operating system's page cache, so a page that falls out of this smaller pool
 * costs a read system call and a copy, not a disk read. WAL buffers follow (1/32 of it, 1 MB).
 */
const START_PARAMS = [...PGlite.defaultStartParams, "-c", "shared_buffers=32MB"];

/** One in-process session for everything, NOTIFY delivered in process, one process. */
export const PGLITE_CAPABILITIES: DatabaseCapabilities = {
  concurrentSessions: false,
  notifiesInProcess: true,
  sharedByProcesses: false,
};

export class PgliteDatabase implements Database {
  readonly kind = "pglite" as const;
  readonly capabilities = PGLITE_CAPABILITIES;
  private readonly heldLocks = new Set<number>();
  private readonly session = new SessionQueue();

  private constructor(
    readonly db: PGlite,
    private readonly lockFile: string | undefined,
  ) {}

  /**
   * `dataDir` undefined = in memory (tests). `template` = a tarball from `dumpTemplate()` to start
   * from (tests clone a migrated database instead of migrating each time).
   */
  static async open(dataDir?: string, template?: Blob): Promise<PgliteDatabase> {
    let lockFile: string | undefined;
    if (dataDir) {
      mkdirSync(dataDir, { recursive: true });
      lockFile = join(dataDir, "herald.pid");
      claimDataDir(dataDir, lockFile);
      await prepareDataDir(dataDir);
    }
    const db = await PGlite.create(dataDir ?? "memory://", {
      parsers: PARSERS,
      startParams: START_PARAMS,
      ...(template ? { loadDataDir: template } : {}),
    });
    return new PgliteDatabase(db, lockFile);
  }

  async query<T>(sql: string, params?: readonly unknown[]): Promise<QueryResult<T>> {
    const result = await this.session.run(() => this.db.query<T>(sql, params as unknown[]));
    return { rows: result.rows, rowCount: result.rows.length || (result.affectedRows ?? 0) };
  }

  async exec(sql: string): Promise<void> {
    await this.session.run(() => this.db.exec(sql));
  }

  /** How long the oldest operation waiting for the session has waited, in milliseconds. */
  queueDelayMs(): number {
    return this.session.oldestWaitMs();
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.session.run(() => this.inTransaction(fn));
  }

  private inTransaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.db.transaction(async (pgTx) => {
      const tx: Queryable = {
        query: async <R>(sql: string, params?: readonly unknown[]) => {
          const result = await pgTx.query<R>(sql, params as unknown[]);
          return { rows: result.rows, rowCount: result.rows.length || (result.affectedRows ?? 0) };
        },
        exec: async (sql: string) => {
          await pgTx.exec(sql);
        },
      };
      return fn(tx);
    });
  }

  async listen(channel: string, onNotify: (payload: string) => void): Promise<Unlisten> {
    const unlisten = await this.session.run(() => this.db.listen(channel, onNotify));
    return async () => this.session.run(() => unlisten());
  }

  async tryAdvisoryLock(key: number): Promise<AdvisoryLock | null> {
    if (this.heldLocks.has(key)) return null;
    this.heldLocks.add(key);
    return {
      lost: new Promise<Error>(() => {}),
      release: async () => {
        this.heldLocks.delete(key);
      },
    };
  }

  /** A tarball of the whole database, loadable with `open(undefined, template)`. */
  async dumpTemplate(): Promise<Blob> {
    return this.db.dumpDataDir("none");
  }

  async close(): Promise<void> {
    await this.db.close();
    if (this.lockFile) rmSync(this.lockFile, { force: true });
  }
}

/** Refuses to open a data directory that another live Herald process has open. */
function claimDataDir(dataDir: string, lockFile: string): void {
  let holder: number | undefined;
  try {
    holder = Number(readFileSync(lockFile, "utf8").trim());
  } catch {
    holder = undefined;
  }
  if (holder && holder !== process.pid && isAlive(holder)) {
    throw new Error(
      `The embedded database in ${dataDir} is already open in process ${holder}. ` +
        `Stop that process, or run several processes against a PostgreSQL server with DATABASE_URL.`,
    );
  }
  writeFileSync(lockFile, String(process.pid));
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
