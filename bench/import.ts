/**
 * `npm run bench -- import`: a one-shot import (SPEC §7.1) of a generated profiles CSV (10 columns,
 * two unique attributes, 1,000,000 rows) with one BULK (500) subscription on the table's CREATE
 * events, against the ceiling taken in the same run: `COPY … FROM STDIN` of the same file into a
 * plain table with the same columns and a unique index on the key.
 *
 * Herald on PostgreSQL runs as users deploy it on several processes: `--role api,sequencer` (takes
 * the upload) and `--role worker` (runs the import and the delivery), each a `herald start` of its
 * own, so the worker's RSS (sampled every 200 ms, with the kernel's high-water mark) and each
 * process's CPU are its own. The receiver is the delivery bench's (receiver-process.ts), in a
 * process of its own, counting events and checking every 50th push's signature.
 *
 * Printed against targets: rows/s from the start of the upload to the execution's `finishedAt`
 * beside the ceiling (≥ 0.3; the goal beyond is 0.5), the time until the receiver holds every
 * CREATE event over the import time (≤ 1.5), and the worker's peak RSS (< 300 MB). The same figures
 * on the embedded database (one `herald start` with every role; its ceiling a PGlite `COPY`).
 * While a run goes, a progress line every 5 s; after it, where the time went: each process's CPU,
 * the PostgreSQL backends' CPU, and what the backends were doing (pg_stat_activity samples).
 *
 * HERALD_BENCH_IMPORT_ROWS (default 1,000,000) and HERALD_BENCH_IMPORT_EMBEDDED_ROWS (default
 * the smaller of that and 200,000: PGlite takes a single core) change the file;
 * HERALD_BENCH_IMPORT=postgres,embedded picks runs. Other `HERALD_…` variables reach Herald.
 */
import { createReadStream, mkdtempSync, openAsBlob, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { PGlite } from "@electric-sql/pglite";
import pg from "pg";
import copyStreams from "pg-copy-streams";
import type { BenchOptions } from "./bench-support.js";
import {
  apiClient,
  BENCH_SECRET_KEY,
  cpuSecondsOf,
  createBenchDatabase,
  fixed,
  postgresUnavailable,
  printTable,
} from "./bench-support.js";
import type { HeraldProcess, RssSampler } from "./import-support.js";
import { startReceiverProcess } from "./receiver-launch.js";
import {
  BackendWatch,
  CEILING_COPY_SQL,
  CEILING_TABLE_SQL,
  PROFILE_ATTRIBUTES,
  sampleRss,
  startHeraldProcess,
  uploadImport,
  writeProfilesCsv,
} from "./import-support.js";

const ENTITY = "bench";
const ADMIN_KEY = "hk_bench_import_admin_key_0123456789abcdef";
const SECRET = `whsec_${Buffer.alloc(32, 9).toString("base64")}`;
const FINAL = ["SUCCESS", "WITH_ERROR", "ERROR", "CANCELLED"];
/** Give up on an import whose rowsRead has not moved for this long (and on a delivery likewise). */
const STALL_MS = 180_000;
const MB = 1024 * 1024;

interface Execution {
  id: string;
  status: string;
  createdAt?: string;
  startedAt?: string | null;
  finishedAt?: string | null;
  progress?: { bytesRead?: number; bytesTotal?: number; rowsRead?: number };
  counts?: {
    read?: number;
    created?: number;
    updated?: number;
    unchanged?: number;
    rejected?: number;
  };
  rejectedRows?: unknown[];
  error?: unknown;
}

interface Ceiling {
  rowsPerSecond: number;
  ms: number;
  /** CPU seconds of the database (the COPY backend, or PGlite in this process). */
  databaseSeconds: number;
}

interface ImportRun {
  rows: number;
  execution: Execution;
  uploadMs: number;
  importMs: number;
  /** Undefined when the receiver never got every CREATE event. */
  deliveredMs: number | undefined;
  received: number;
  /** The worker's peak RSS (with the kernel's high-water mark) and the peak of the samples alone. */
  workerRss: { peak: number; sampled: number };
  /** The worker's RSS once it was ready, before the upload. */
  workerStartRss: number;
  /** CREATE events the receiver held when the execution finished. */
  receivedAtFinish: number;
  apiRss: { peak: number; sampled: number } | undefined;
  /** CPU seconds from the start of the upload to FINISHED, by process. */
  cpu: Record<string, number>;
}

const loadAverage = () => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const perSecond = (rows: number, ms: number) => (rows / ms) * 1000;

// Ceilings ----------------------------------------------------------------------------------------

async function postgresCeiling(adminUrl: string, file: string, rows: number): Promise<Ceiling> {
  const database = await createBenchDatabase(adminUrl, { migrated: false });
  const client = new pg.Client({ connectionString: database.url });
  await client.connect();
  try {
    await client.query(CEILING_TABLE_SQL);
    const { rows: me } = await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
    const backend = me[0]!.pid;
    const cpuBefore = cpuSecondsOf(backend);
    const started = performance.now();
    const copy = client.query(
      copyStreams.from(`${CEILING_COPY_SQL} FROM STDIN (FORMAT csv, HEADER true)`),
    );
    await pipeline(createReadStream(file, { highWaterMark: 1 << 20 }), copy);
    const ms = performance.now() - started;
    if (copy.rowCount !== rows) throw new Error(`COPY loaded ${copy.rowCount} rows of ${rows}`);
    return {
      ms,
      rowsPerSecond: perSecond(rows, ms),
      databaseSeconds: cpuSecondsOf(backend) - cpuBefore,
    };
  } finally {
    await client.end();
    await database.drop();
  }
}

/** The embedded ceiling: PGlite (file-backed, as Herald runs it) COPYing the file in this process. */
async function embeddedCeiling(file: string, rows: number): Promise<Ceiling> {
  const dir = mkdtempSync(join(tmpdir(), "herald-bench-copy-"));
  const db = await PGlite.create(dir);
  try {
    await db.exec(CEILING_TABLE_SQL);
    const usage = process.cpuUsage();
    const started = performance.now();
    await db.query(`${CEILING_COPY_SQL} FROM '/dev/blob' (FORMAT csv, HEADER true)`, [], {
      blob: await openAsBlob(file),
    });
    const ms = performance.now() - started;
    const used = process.cpuUsage(usage);
    const { rows: counted } = await db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM bench_import_ceiling",
    );
    if (counted[0]?.n !== rows)
      throw new Error(`PGlite COPY loaded ${counted[0]?.n} rows of ${rows}`);
    return {
      ms,
      rowsPerSecond: perSecond(rows, ms),
      databaseSeconds: (used.user + used.system) / 1e6,
    };
  } finally {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

// Herald ---------------------------------------------------------------------------------------------

interface Deployment {
  label: string;
  /** The process that answers the API. */
  api: HeraldProcess;
  origin: string;
  /** Starts the process(es) running the worker role (once the subscription exists). */
  startWorker(): HeraldProcess;
  watch: BackendWatch | undefined;
  stop(): Promise<void>;
}

const COMMON_ENV = {
  HERALD_ADMIN_API_KEY: ADMIN_KEY,
  HERALD_DEFAULT_ENTITY: ENTITY,
  HERALD_ALLOW_INSECURE_TARGETS: "true",
  HERALD_HOST: "127.0.0.1",
  HERALD_PORT: "0",
  // info: the bench waits for "Herald API listening" and "driving subscription" in the log.
  HERALD_LOG_LEVEL: "info",
};

async function listeningOrigin(api: HeraldProcess): Promise<string> {
  const line = await api.logged((l) => l.msg === "Herald API listening", 120_000);
  return String(line.url);
}

async function postgresDeployment(adminUrl: string): Promise<Deployment> {
  const database = await createBenchDatabase(adminUrl);
  const env = { ...COMMON_ENV, DATABASE_URL: database.url, HERALD_SECRET_KEY: BENCH_SECRET_KEY };
  const api = startHeraldProcess("api", { ...env, HERALD_ROLES: "api,sequencer" });
  const workers: HeraldProcess[] = [];
  try {
    const origin = await listeningOrigin(api);
    const watch = await BackendWatch.open(database.url);
    if (!(await watch.autovacuum()))
      console.log(
        "  ! autovacuum is off on this server: nothing analyses the tables while the import fills " +
          "them, so the planner keeps the estimates of an empty table (production servers run it)",
      );
    return {
      label: "PostgreSQL",
      api,
      origin,
      watch,
      startWorker: () => {
        const worker = startHeraldProcess("worker", {
          ...env,
          HERALD_ROLES: "worker",
          HERALD_WORKER_ID: "bench-import-worker",
        });
        workers.push(worker);
        return worker;
      },
      stop: async () => {
        for (const worker of workers) await worker.stop();
        await api.stop();
        await watch.close();
        await database.drop();
      },
    };
  } catch (error) {
    await api.stop();
    await database.drop();
    throw error;
  }
}

async function embeddedDeployment(): Promise<Deployment> {
  const dir = mkdtempSync(join(tmpdir(), "herald-bench-import-"));
  const herald = startHeraldProcess("herald", {
    ...COMMON_ENV,
    DATABASE_URL: "",
    HERALD_DATA_DIR: dir,
  });
  const stop = async () => {
    await herald.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    return {
      label: "embedded",
      api: herald,
      origin: await listeningOrigin(herald),
      watch: undefined,
      startWorker: () => herald,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

async function importRun(deployment: Deployment, file: string, rows: number): Promise<ImportRun> {
  const { call, token } = await apiClient(deployment.origin, ADMIN_KEY);
  const tableName = `BenchImport_${Date.now().toString(36)}`;
  const table = await call<{ id: string }>("POST", `/v5/entities/${ENTITY}/profile-tables`, {
    name: tableName,
    attributes: PROFILE_ATTRIBUTES,
  });
  const receiver = await startReceiverProcess(SECRET);
  let worker: HeraldProcess | undefined;
  let rss: RssSampler | undefined;
  let apiRss: RssSampler | undefined;
  try {
    const subscription = await call<{ id: number }>(
      "POST",
      `/v4/entity/${ENTITY}/webhookSubscription`,
      {
        on: "PROFILE_TABLE",
        onElementId: table.id,
        eventType: "CREATE",
        targetUrl: receiver.url,
        pushMode: "BULK",
        maxBlockSize: 500,
        secret: SECRET,
      },
    );
    worker = deployment.startWorker();
    // Ready when it drives the subscription: the worker role is up (and its import side with it).
    await worker.logged(
      (l) =>
        l.msg === "driving subscription" && String(l.subscriptionId) === String(subscription.id),
      120_000,
    );
    const workerPid = worker.pid;
    rss = sampleRss(workerPid);
    apiRss = worker === deployment.api ? undefined : sampleRss(deployment.api.pid);
    const workerStartRss = rss.current();
    // Embedded, the one process runs every role: its CPU is Herald's, not a worker's.
    const workerName = apiRss ? "worker" : "herald";
    const pids: Record<string, number> = {
      [workerName]: workerPid,
      receiver: receiver.pid,
    };
    if (apiRss) pids["api,sequencer"] = deployment.api.pid;
    const cpuBase = Object.fromEntries(
      Object.entries(pids).map(([name, pid]) => [name, cpuSecondsOf(pid)]),
    );
    // A baseline sample: the worker's connections opened since the watch began count from here.
    await deployment.watch?.sample(true);
    const databaseBase = deployment.watch?.seconds() ?? 0;

    console.log(
      `  ${deployment.label}: uploading ${rows.toLocaleString("en-US")} rows (load average ${loadAverage()})`,
    );
    const startedWall = Date.now();
    const started = performance.now();
    const base = `/mass-imports/v5/entities/${ENTITY}/etl-executions`;
    const upload = await uploadImport(
      `${deployment.origin}${base}`,
      token,
      {
        target: { tableType: "PROFILE_TABLE", table: tableName },
        mode: "CREATE_UPDATE",
        keyAttribute: "customerId",
        file: { format: "CSV", separator: "," },
      },
      file,
    );
    const uploadMs = performance.now() - started;
    if (upload.status !== 202)
      throw new Error(`the upload answered ${upload.status}: ${upload.body.slice(0, 500)}`);
    const { executionId } = JSON.parse(upload.body) as { executionId: string };

    let execution: Execution | undefined;
    let finishedMs: number | undefined;
    let deliveredMs: number | undefined;
    let received = 0;
    let receivedAtFinish = 0;
    let cpuAtFinish: Record<string, number> = {};
    let lastMove = performance.now();
    let lastRows = -1;
    let lastDelivery = 0;
    let nextReport = performance.now() + 5_000;
    let nextWatch = 0;
    for (;;) {
      await sleep(200);
      const now = performance.now();
      if (finishedMs === undefined) {
        execution = await call<Execution>("GET", `${base}/${encodeURIComponent(executionId)}`);
        const rowsRead = execution.progress?.rowsRead ?? 0;
        if (rowsRead !== lastRows) [lastRows, lastMove] = [rowsRead, now];
        if (FINAL.includes(execution.status)) {
          finishedMs = execution.finishedAt
            ? Date.parse(execution.finishedAt) - startedWall
            : now - started;
          receivedAtFinish = received;
          cpuAtFinish = Object.fromEntries(
            Object.entries(pids).map(([name, pid]) => [name, cpuSecondsOf(pid) - cpuBase[name]!]),
          );
          await deployment.watch?.sample();
          if (deployment.watch) {
            cpuAtFinish.PostgreSQL = deployment.watch.seconds() - databaseBase;
            deployment.watch.tally = false;
          }
          lastDelivery = now;
        } else if (now - lastMove > STALL_MS)
          throw new Error(
            `the import made no progress for ${STALL_MS / 1000} s: ${JSON.stringify(execution)}`,
          );
      }
      if (deployment.watch && now >= nextWatch) {
        nextWatch = now + 500;
        await deployment.watch.sample();
      }
      const counted = (await receiver.counts()).events;
      if (counted !== received) [received, lastDelivery] = [counted, now];
      const expected = execution?.counts?.created ?? rows;
      if (finishedMs !== undefined && received >= expected) {
        deliveredMs = now - started;
        break;
      }
      if (now >= nextReport) {
        nextReport = now + 5_000;
        console.log(
          `    ${fixed((now - started) / 1000, 0).padStart(4)} s  ${(execution?.status ?? "uploading").padEnd(9)} rows read ${fixed(execution?.progress?.rowsRead ?? 0).padStart(9)}  created ${fixed(execution?.counts?.created ?? 0).padStart(9)}  delivered ${fixed(received).padStart(9)}  ${workerName} RSS ${fixed(rss.current() / MB)} MB`,
        );
      }
      // Delivery that stopped moving: report what arrived rather than wait forever.
      if (finishedMs !== undefined && now - lastDelivery > STALL_MS / 3) break;
    }
    const report = await receiver.counts();
    if (report.rejected > 0)
      console.log(
        `  ! the receiver rejected ${report.rejected} of the ${report.checked} pushes it checked`,
      );
    return {
      rows,
      execution: execution!,
      uploadMs,
      importMs: finishedMs!,
      deliveredMs,
      received,
      workerRss: rss.stop(),
      workerStartRss,
      receivedAtFinish,
      apiRss: apiRss?.stop(),
      cpu: cpuAtFinish,
    };
  } catch (error) {
    // What Herald said last, to see why: the worker runs the import, the api took the upload.
    for (const herald of new Set([worker, deployment.api]))
      for (const line of herald?.recent().slice(-20) ?? [])
        console.error(`  [log] ${JSON.stringify(line)}`);
    throw error;
  } finally {
    rss?.stop();
    apiRss?.stop();
    await receiver.close();
  }
}

function describe(
  label: string,
  run: ImportRun,
  ceiling: Ceiling[],
  watch: BackendWatch | undefined,
): void {
  const e = run.execution;
  const at = (iso: string | null | undefined) => (iso ? Date.parse(iso) : Number.NaN);
  const waitedMs = at(e.startedAt) - at(e.createdAt);
  const runningMs = at(e.finishedAt) - at(e.startedAt);
  console.log(
    `  ${label}: ${e.status} in ${fixed(run.importMs)} ms: upload ${fixed(run.uploadMs)} ms, ` +
      `created → started ${fixed(waitedMs)} ms, running ${fixed(runningMs)} ms ` +
      `(${fixed(perSecond(e.counts?.read ?? 0, runningMs))} rows/s); counts ${JSON.stringify(e.counts)}`,
  );
  if (e.error) console.log(`  ! error: ${JSON.stringify(e.error)}`);
  if ((e.counts?.rejected ?? 0) > 0)
    console.log(`  ! first rejected rows: ${JSON.stringify(e.rejectedRows?.slice(0, 3))}`);
  console.log(
    `  delivery: ${fixed(run.received)} CREATE events received` +
      (run.deliveredMs === undefined
        ? " (NOT all of them)"
        : ` ${fixed(run.deliveredMs)} ms after the upload started`) +
      `; ${fixed(run.receivedAtFinish)} of them by FINISHED`,
  );
  const cpu = Object.entries(run.cpu)
    .map(
      ([name, seconds]) =>
        `${name} ${fixed(seconds, 1)} s (${fixed((seconds / run.rows) * 1e6, 1)} µs/row)`,
    )
    .join(", ");
  const ceilingCpu = ceiling
    .map((c) => `${fixed((c.databaseSeconds / run.rows) * 1e6, 1)} µs/row`)
    .join(" / ");
  console.log(
    `  CPU from upload to FINISHED (${fixed(run.importMs / 1000, 1)} s wall): ${cpu}; the ceiling's database: ${ceilingCpu}`,
  );
  console.log(
    `  RSS: ${run.apiRss ? "worker" : "the one process"} ${fixed(run.workerStartRss / MB)} MB when ready, peak ${fixed(run.workerRss.peak / MB)} MB ` +
      `(VmHWM; the 200 ms samples peaked at ${fixed(run.workerRss.sampled / MB)} MB)` +
      (run.apiRss === undefined
        ? ""
        : `; the api,sequencer process peak ${fixed(run.apiRss.peak / MB)} MB`),
  );
  if (watch && watch.samples > 0) {
    console.log(
      `  PostgreSQL backends during the import (${watch.samples} samples, active ones by statement):`,
    );
    const top = [...watch.activity].sort((a, b) => b[1] - a[1]).slice(0, 8);
    for (const [what, count] of top)
      console.log(`    ${fixed((count / watch.samples) * 100).padStart(4)}%  ${what}`);
  }
}

export async function run(options: BenchOptions): Promise<void> {
  const rows = Number(process.env.HERALD_BENCH_IMPORT_ROWS ?? 1_000_000);
  const embeddedRows = Number(
    process.env.HERALD_BENCH_IMPORT_EMBEDDED_ROWS ?? Math.min(rows, 200_000),
  );
  if (!Number.isInteger(rows) || rows < 1 || !Number.isInteger(embeddedRows) || embeddedRows < 1)
    throw new Error(
      "HERALD_BENCH_IMPORT_ROWS and HERALD_BENCH_IMPORT_EMBEDDED_ROWS must be whole numbers ≥ 1",
    );
  const parts = new Set(
    (process.env.HERALD_BENCH_IMPORT ?? "postgres,embedded").split(",").map((p) => p.trim()),
  );
  console.log(`import: ${new Date().toISOString()}, load average ${loadAverage()}`);
  const dir = mkdtempSync(join(tmpdir(), "herald-bench-csv-"));
  const results: { pg?: Measured; embedded?: Measured } = {};
  try {
    const file = join(dir, "profiles.csv");
    const generating = performance.now();
    const bytes = await writeProfilesCsv(file, rows);
    console.log(
      `  ${fixed(rows)} rows, ${fixed(bytes / MB, 1)} MB written in ${fixed(performance.now() - generating)} ms`,
    );
    const unavailable = await postgresUnavailable(options.adminUrl);
    if (parts.has("postgres") && unavailable)
      console.log(`  PostgreSQL run skipped: ${unavailable}`);
    if (parts.has("postgres") && !unavailable) {
      // The ceiling before and after Herald: a change in the machine's load shows between them.
      const before = await postgresCeiling(options.adminUrl, file, rows);
      console.log(`  ceiling: COPY ${fixed(before.rowsPerSecond)} rows/s (${fixed(before.ms)} ms)`);
      const deployment = await postgresDeployment(options.adminUrl);
      let run: ImportRun;
      try {
        run = await importRun(deployment, file, rows);
      } finally {
        await deployment.stop();
      }
      const after = await postgresCeiling(options.adminUrl, file, rows);
      console.log(
        `  ceiling again: COPY ${fixed(after.rowsPerSecond)} rows/s (${fixed(after.ms)} ms)`,
      );
      describe("Herald on PostgreSQL", run, [before, after], deployment.watch);
      results.pg = { run, ceilings: [before, after] };
    }
    if (parts.has("embedded")) {
      let embeddedFile = file;
      if (embeddedRows !== rows) {
        embeddedFile = join(dir, "profiles-embedded.csv");
        await writeProfilesCsv(embeddedFile, embeddedRows);
      }
      const ceiling = await embeddedCeiling(embeddedFile, embeddedRows);
      console.log(
        `  embedded ceiling: PGlite COPY ${fixed(ceiling.rowsPerSecond)} rows/s (${fixed(ceiling.ms)} ms)`,
      );
      const deployment = await embeddedDeployment();
      let run: ImportRun;
      try {
        run = await importRun(deployment, embeddedFile, embeddedRows);
      } finally {
        await deployment.stop();
      }
      describe("Herald embedded", run, [ceiling], undefined);
      results.embedded = { run, ceilings: [ceiling] };
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  printSummary(results.pg, results.embedded);
  console.log(`load average at the end ${loadAverage()}`);
}

interface Measured {
  run: ImportRun;
  ceilings: Ceiling[];
}

const heraldRate = ({ run }: Measured) => perSecond(run.rows, run.importMs);
const meanCeiling = ({ ceilings }: Measured) =>
  ceilings.reduce((sum, c) => sum + c.rowsPerSecond, 0) / ceilings.length;
/** A rate of an import that did not succeed is no figure to hold against a target. */
const succeeded = ({ run }: Measured) => run.execution.status === "SUCCESS";

/** The summary's rows: what is shown, and the issue's target where there is one. */
const MEASURES: {
  label: string;
  show(m: Measured): string;
  target?: { text: string; met(m: Measured): boolean };
}[] = [
  { label: "rows imported", show: (m) => fixed(m.run.rows) },
  {
    label: "COPY ceiling rows/s (PostgreSQL: before / after)",
    show: (m) => m.ceilings.map((c) => fixed(c.rowsPerSecond)).join(" / "),
  },
  {
    label: "Herald rows/s, upload start → FINISHED",
    show: (m) => `${fixed(heraldRate(m))}${succeeded(m) ? "" : ` (${m.run.execution.status})`}`,
  },
  {
    label: "ratio to the ceiling (mean)",
    show: (m) => fixed(heraldRate(m) / meanCeiling(m), 2),
    target: {
      text: ">= 0.30 (goal 0.50)",
      met: (m) => succeeded(m) && heraldRate(m) / meanCeiling(m) >= 0.3,
    },
  },
  {
    label: "every CREATE event received: time / import time",
    show: ({ run }) =>
      run.deliveredMs === undefined
        ? `not all (${fixed(run.received)})`
        : fixed(run.deliveredMs / run.importMs, 2),
    target: {
      text: "<= 1.5",
      met: ({ run }) => run.deliveredMs !== undefined && run.deliveredMs / run.importMs <= 1.5,
    },
  },
  {
    label: "worker peak RSS, MB (embedded: its one process)",
    show: ({ run }) => fixed(run.workerRss.peak / MB),
    target: { text: "< 300", met: ({ run }) => run.workerRss.peak < 300 * MB },
  },
];

/** The targets are the issue's, for PostgreSQL; the embedded figures are shown beside them. */
function printSummary(pg: Measured | undefined, embedded: Measured | undefined): void {
  const verdict = (measure: (typeof MEASURES)[number]) =>
    !pg || !measure.target ? "" : measure.target.met(pg) ? "met" : "NOT met";
  console.log("");
  printTable([
    ["measure", "PostgreSQL", "target", "verdict", "embedded"],
    ...MEASURES.map((measure) => [
      measure.label,
      pg ? measure.show(pg) : "-",
      measure.target?.text ?? "",
      verdict(measure),
      embedded ? measure.show(embedded) : "-",
    ]),
  ]);
}
