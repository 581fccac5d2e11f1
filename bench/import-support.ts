/**
 * Pieces of the `import` bench (bench/import.ts): the profiles CSV it generates, the multipart
 * upload it streams, Herald and the receiver as processes of their own, and what watches them:
 * RSS from /proc, and the PostgreSQL backends' CPU and activity. Herald runs through its command line (`bin/herald.mjs start`), as
 * users run it: the bench depends only on the HTTP contract and the roles, not on how the import
 * worker is wired inside.
 */
import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createReadStream, createWriteStream, readFileSync, statSync } from "node:fs";
import { createInterface } from "node:readline";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { stringify } from "csv-stringify";
import pg from "pg";
import { request } from "undici";
import { cpuSecondsOf, HERALD_NODE_FLAGS } from "./bench-support.js";

const ROOT = new URL("..", import.meta.url).pathname;

// The file --------------------------------------------------------------------------------------

/** The CSV's header, in file order; the same names are the profile attributes and ceiling columns. */
export const PROFILE_COLUMNS = [
  "customerId",
  "emailAddress",
  "firstName",
  "lastName",
  "city",
  "country",
  "points",
  "score",
  "vip",
  "birthDate",
] as const;

/**
 * The profile table the file fills: two unique attributes (the import's key `customerId`, and the
 * mandatory e-mail address), and value types spread over STRING, INTEGER, NUMBER, BOOLEAN and DATE
 * so that every row goes through each kind of validation.
 */
export const PROFILE_ATTRIBUTES = [
  { name: "customerId", type: "CUSTOM", valueType: "STRING", unique: true },
  { name: "emailAddress", type: "EMAIL_ADDRESS", unique: true, mandatory: true },
  { name: "firstName", type: "FIRSTNAME" },
  { name: "lastName", type: "LASTNAME" },
  { name: "city", type: "ADDRESS_LOCALITY" },
  { name: "country", type: "ADDRESS_COUNTRY" },
  { name: "points", type: "CUSTOM", valueType: "INTEGER" },
  { name: "score", type: "CUSTOM", valueType: "NUMBER" },
  { name: "vip", type: "CUSTOM", valueType: "BOOLEAN" },
  { name: "birthDate", type: "BIRTHDATE" },
];

/** The ceiling's table: the same columns, typed, and a unique index on the key only (the issue's). */
export const CEILING_TABLE_SQL = `CREATE TABLE bench_import_ceiling (
    "customerId" text NOT NULL, "emailAddress" text NOT NULL, "firstName" text, "lastName" text,
    city text, country text, points integer, score numeric, vip boolean, "birthDate" date);
  CREATE UNIQUE INDEX bench_import_ceiling_key ON bench_import_ceiling ("customerId")`;

export const CEILING_COPY_SQL = `COPY bench_import_ceiling (${PROFILE_COLUMNS.map((c) => `"${c}"`).join(", ")})`;

const FIRST_NAMES = ["Ann", "Bram", "Chloé", "Dirk", "Emma", "Farid", "Greet", "Hugo", "Inès"];
const LAST_NAMES = ["Peeters", "Janssens", "Maes", "De Smet", "Dubois", "O'Brien", "Van Damme"];
// One city holds the separator and one a quote: the parser's quoting path is part of the work.
const CITIES = [
  "Brussels",
  "Antwerp",
  "Ghent",
  "Liège",
  "Namur",
  "Mons, Hainaut",
  'Knokke "Zoute"',
];
const COUNTRIES = ["BE", "NL", "FR", "DE", "LU", "GB"];
const DAY_MS = 86_400_000;
const BIRTH_EPOCH = Date.UTC(1940, 0, 1);

/**
 * A small deterministic generator (xorshift32): every run imports the same file, so runs compare,
 * and the values vary enough that nothing is accidentally free (no run of identical rows).
 */
function randomSource(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 4_294_967_296;
  };
}

function* profileRows(rows: number): Generator<string[]> {
  const random = randomSource(20_261_201);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  yield [...PROFILE_COLUMNS];
  for (let i = 1; i <= rows; i++) {
    const first = pick(FIRST_NAMES);
    const last = pick(LAST_NAMES);
    // A multiplicative scramble (odd constant, so a bijection on 32 bits): keys are unique but do
    // not arrive in index order, which would flatter both the ceiling's and Herald's index inserts.
    const key = (Math.imul(i, 0x9e3779b1) >>> 0).toString(16).padStart(8, "0");
    const mailbox = `${first}.${last}`
      .normalize("NFD")
      .replace(/[^A-Za-z.]/g, "")
      .toLowerCase();
    yield [
      `CU-${key}`,
      `${mailbox}.${i}@example.com`,
      first,
      last,
      // One row in twenty without a city: empty values are part of real files.
      random() < 0.05 ? "" : pick(CITIES),
      pick(COUNTRIES),
      String(Math.floor(random() * 100_000)),
      (random() * 1000).toFixed(2),
      random() < 0.1 ? "true" : "false",
      new Date(BIRTH_EPOCH + Math.floor(random() * 23_000) * DAY_MS).toISOString().slice(0, 10),
    ];
  }
}

/** Writes the CSV of `rows` profiles to `path` as a stream (a million rows is about 90 MB). */
export async function writeProfilesCsv(path: string, rows: number): Promise<number> {
  await pipeline(
    Readable.from(profileRows(rows)),
    stringify({ delimiter: ",", record_delimiter: "\n" }),
    createWriteStream(path, { highWaterMark: 1 << 20 }),
  );
  return statSync(path).size;
}

// The upload ------------------------------------------------------------------------------------

/**
 * POSTs a one-shot import as multipart/form-data (SPEC §7.1): the `etlDefinition` text part first,
 * then `inputFile` streamed from disk. The body is written here rather than by a FormData helper so
 * that it is certainly streamed, with a Content-Length (a server may refuse chunked uploads).
 */
export async function uploadImport(
  url: string,
  token: string,
  definition: unknown,
  file: string,
): Promise<{ status: number; body: string }> {
  const boundary = `herald-bench-${randomBytes(12).toString("hex")}`;
  const head = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="etlDefinition"\r\n\r\n` +
      `${JSON.stringify(definition)}\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="inputFile"; filename="profiles.csv"\r\n` +
      `Content-Type: text/csv\r\n\r\n`,
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  async function* body(): AsyncGenerator<Buffer> {
    yield head;
    for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 }))
      yield chunk as Buffer;
    yield tail;
  }
  const response = await request(url, {
    method: "POST",
    headers: {
      authorization: `Bearer ${token}`,
      "content-type": `multipart/form-data; boundary=${boundary}`,
      "content-length": String(head.length + statSync(file).size + tail.length),
    },
    body: Readable.from(body()),
    // The server may store a large file before it answers; the bench's own deadlines apply instead.
    headersTimeout: 0,
    bodyTimeout: 0,
  });
  return { status: response.statusCode, body: await response.body.text() };
}

// Herald as a process -----------------------------------------------------------------------------

export type LogLine = Record<string, unknown> & { level?: number; msg?: string };

export interface HeraldProcess {
  pid: number;
  /** Resolves with the first log line that `match` accepts (of the last 200, or a later one). */
  logged(match: (line: LogLine) => boolean, timeoutMs: number): Promise<LogLine>;
  /** The last log lines, to show what a process said when a run goes wrong. */
  recent(): LogLine[];
  stop(): Promise<void>;
}

/**
 * `herald start` with `env` on top of this process's environment (so `HERALD_…` settings given to
 * the bench reach Herald too). Its JSON log is read line by line: warnings and errors are shown
 * (prefixed with `label`), the rest is kept for `logged` and `recent`.
 */
export function startHeraldProcess(label: string, env: Record<string, string>): HeraldProcess {
  const child: ChildProcess = spawn(
    process.execPath,
    [...HERALD_NODE_FLAGS, "bin/herald.mjs", "start"],
    {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  const history: LogLine[] = [];
  const waiters = new Set<(line: LogLine) => void>();
  let exitCode: number | null | undefined;
  const exited = new Promise<void>((resolve) =>
    child.once("exit", (code) => {
      exitCode = code;
      resolve();
    }),
  );
  createInterface({ input: child.stdout! }).on("line", (text) => {
    let line: LogLine;
    try {
      line = JSON.parse(text) as LogLine;
    } catch {
      line = { msg: text };
    }
    history.push(line);
    if (history.length > 200) history.shift();
    if ((line.level ?? 0) >= 40 || line.level === undefined) console.error(`  [${label}] ${text}`);
    for (const waiter of waiters) waiter(line);
  });
  return {
    pid: child.pid!,
    logged: (match, timeoutMs) =>
      new Promise<LogLine>((resolve, reject) => {
        // A line already logged counts: the caller may ask only after the event it waits for.
        const past = history.find(match);
        if (past) return resolve(past);
        const done = (error?: Error, line?: LogLine) => {
          clearTimeout(timer);
          waiters.delete(waiter);
          if (error) reject(error);
          else resolve(line!);
        };
        const waiter = (line: LogLine) => {
          if (match(line)) done(undefined, line);
        };
        const timer = setTimeout(
          () => done(new Error(`${label}: the expected log line did not come in ${timeoutMs} ms`)),
          timeoutMs,
        );
        waiters.add(waiter);
        void exited.then(() => done(new Error(`${label} exited (code ${exitCode})`)));
      }),
    recent: () => [...history],
    stop: async () => {
      if (exitCode !== undefined) return;
      child.kill("SIGTERM");
      const forced = setTimeout(() => child.kill("SIGKILL"), 30_000);
      await exited;
      clearTimeout(forced);
    },
  };
}

// /proc samplers ------------------------------------------------------------------------------------

/** Resident and peak resident (VmHWM) bytes of a process; zeros once it is gone. */
export function memoryOf(pid: number): { rss: number; peak: number } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
    return { rss: kb("VmRSS") * 1024, peak: kb("VmHWM") * 1024 };
  } catch {
    return { rss: 0, peak: 0 };
  }
}

export interface RssSampler {
  current(): number;
  /**
   * `peak`: the highest RSS seen, the kernel's own high-water mark (VmHWM) included;
   * `sampled`: the highest of the samples alone (a spike shorter than a sample period escapes it).
   */
  stop(): { peak: number; sampled: number };
}

/**
 * Samples a process's RSS every `everyMs`. The kernel's VmHWM is read too, so a spike between two
 * samples still counts (it covers the process's whole life, which is what "throughout" means).
 */
export function sampleRss(pid: number, everyMs = 200): RssSampler {
  let peak = 0;
  let sampled = 0;
  let current = 0;
  const sample = () => {
    const memory = memoryOf(pid);
    if (memory.rss > 0) current = memory.rss;
    sampled = Math.max(sampled, memory.rss);
    peak = Math.max(peak, memory.rss, memory.peak);
  };
  sample();
  const timer = setInterval(sample, everyMs);
  return {
    current: () => current,
    stop: () => {
      sample();
      clearInterval(timer);
      return { peak, sampled };
    },
  };
}

// Watching PostgreSQL ------------------------------------------------------------------------------

/**
 * Samples the bench database's backends (pg_stat_activity, on a connection of its own): their CPU
 * from /proc (the server runs on this host), and what the active ones are doing, tallied by
 * statement and wait event. A backend born during the run counts all its CPU.
 */
export class BackendWatch {
  private readonly cpu = new Map<number, { base: number; last: number }>();
  readonly activity = new Map<string, number>();
  samples = 0;
  tally = true;
  private constructor(private readonly client: pg.Client) {}

  static async open(url: string): Promise<BackendWatch> {
    const client = new pg.Client({ connectionString: url, application_name: "herald-bench-watch" });
    await client.connect();
    const watch = new BackendWatch(client);
    await watch.sample(true);
    return watch;
  }

  /** `baseline`: note the backends' CPU so far without counting it, and tally nothing. */
  async sample(baseline = false): Promise<void> {
    const { rows } = await this.client.query<{
      pid: number;
      state: string | null;
      query: string;
      wait: string | null;
    }>(
      `SELECT pid, state, left(regexp_replace(query, '\\s+', ' ', 'g'), 90) AS query,
              wait_event_type || ':' || wait_event AS wait
         FROM pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid()`,
    );
    for (const row of rows) {
      const seconds = cpuSecondsOf(row.pid);
      const known = this.cpu.get(row.pid);
      if (known) known.last = seconds;
      else this.cpu.set(row.pid, { base: baseline ? seconds : 0, last: seconds });
    }
    if (!this.tally || baseline) return;
    this.samples++;
    for (const row of rows) {
      if (row.state !== "active") continue;
      const key = `${row.wait ?? "CPU"}  ${row.query}`;
      this.activity.set(key, (this.activity.get(key) ?? 0) + 1);
    }
  }

  async autovacuum(): Promise<boolean> {
    const { rows } = await this.client.query<{ on: boolean }>(
      "SELECT current_setting('autovacuum')::boolean AS on",
    );
    return rows[0]?.on ?? true;
  }

  seconds(): number {
    let total = 0;
    for (const { base, last } of this.cpu.values()) total += last - base;
    return total;
  }

  close(): Promise<void> {
    return this.client.end();
  }
}
