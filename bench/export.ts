/**
 * `npm run bench -- export`: a FULL CSV export (SPEC §7.3) of 1,000,000 profiles on PostgreSQL,
 * against the ceiling taken in the same run on the same database: `COPY (SELECT …) TO STDOUT` of
 * the same ten columns of the same records, in the same order, as CSV with the same separator
 * (read by pg-copy-streams and thrown away).
 *
 * This export takes the COPY path (export-run.ts): PostgreSQL writes the lines in the snapshot, the
 * worker compresses nothing here and stores the bytes on another connection, so the ratio measures
 * what Herald adds to the COPY: the file's storing and the job around it.
 *
 * Herald runs as users deploy it: `--role api,sequencer` (defines the export, takes the request)
 * and `--role worker` (runs the execution), each a `herald start` of its own, so the worker's RSS
 * (sampled every 200 ms, with the kernel's high-water mark) and CPU are the export's.
 *
 * The profiles are written by SQL, the fastest honest way: one INSERT … SELECT of the records with
 * the attribute values the API stores (the import bench's ten columns: strings, integers, numbers,
 * booleans, dates, one city holding the separator and one a quote, one row in twenty without a
 * city) and one of their unique keys (customerId, emailAddress). No change events are written: a
 * FULL export reads the records only. A million profiles through the API take minutes.
 *
 * Printed against targets: rows/s from the start of the execution to its end (its own startedAt →
 * finishedAt) beside the ceiling (≥ 0.5), and the worker's peak RSS (< 300 MB); then where the time
 * went: the worker's CPU, the PostgreSQL backends' CPU, and what the backends were doing.
 * HERALD_BENCH_EXPORT_ROWS (default 1,000,000) changes the table's size.
 */
import { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
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
import type { HeraldProcess } from "./import-support.js";
import {
  BackendWatch,
  PROFILE_ATTRIBUTES,
  PROFILE_COLUMNS,
  sampleRss,
  startHeraldProcess,
} from "./import-support.js";

const ENTITY = "bench";
const ADMIN_KEY = "hk_bench_export_admin_key_0123456789abcdef";
const MB = 1024 * 1024;
const TARGET_RATIO = 0.5;
const TARGET_RSS = 300 * MB;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The records the API would store for the import bench's file, generated in SQL. */
const SEED_SQL = `
  INSERT INTO records (table_id, attributes)
  SELECT $1, jsonb_strip_nulls(jsonb_build_object(
           'customerId', 'CU-' || lpad(to_hex((i * 2654435761) % 4294967296), 8, '0'),
           'emailAddress', 'customer.' || i || '@example.com',
           'firstName', (ARRAY['Ann','Bram','Chloé','Dirk','Emma','Farid','Greet','Hugo','Inès'])[1 + i % 9],
           'lastName', (ARRAY['Peeters','Janssens','Maes','De Smet','Dubois','O''Brien','Van Damme'])[1 + (i / 9) % 7],
           'city', CASE WHEN i % 20 = 0 THEN NULL
                        ELSE (ARRAY['Brussels','Antwerp','Ghent','Liège','Namur','Mons; Hainaut','Knokke "Zoute"'])[1 + (i * 7 / 3) % 7] END,
           'country', (ARRAY['BE','NL','FR','DE','LU','GB'])[1 + (i * 5) % 6],
           'points', (i * 7919) % 100000,
           'score', (((i * 104729) % 100000) / 100.0)::float8,
           'vip', i % 10 = 0,
           'birthDate', to_char(date '1940-01-01' + ((i * 37) % 23000)::integer, 'YYYY-MM-DD')))
    FROM generate_series(1::bigint, $2::bigint) AS i`;

const KEYS_SQL = `
  INSERT INTO record_keys (table_id, attribute, value, record_id)
  SELECT table_id, k.attribute, attributes ->> k.attribute, record_id
    FROM records, (VALUES ('customerId'), ('emailAddress')) AS k(attribute)
   WHERE table_id = $1`;

function ceilingSql(tableId: string): string {
  const columns = PROFILE_COLUMNS.map((c) => `attributes ->> '${c}' AS "${c}"`).join(", ");
  return `COPY (SELECT ${columns} FROM records WHERE table_id = '${tableId}' ORDER BY record_id)
          TO STDOUT (FORMAT csv, DELIMITER ';', HEADER true)`;
}

/** The ceiling: the COPY above, its bytes counted and dropped. Best of two (the first warms). */
async function ceiling(url: string, tableId: string): Promise<{ ms: number; bytes: number }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    let best = { ms: Infinity, bytes: 0 };
    for (let round = 0; round < 2; round++) {
      let bytes = 0;
      const started = performance.now();
      await pipeline(
        client.query(copyStreams.to(ceilingSql(tableId))),
        new Writable({
          write(chunk: Buffer, _encoding, done) {
            bytes += chunk.length;
            done();
          },
        }),
      );
      const ms = performance.now() - started;
      if (ms < best.ms) best = { ms, bytes };
    }
    return best;
  } finally {
    await client.end();
  }
}

interface Execution {
  id: string;
  status: string;
  startedAt: string | null;
  finishedAt: string | null;
  rowCount: number | null;
  bytes: number | null;
  error: unknown;
}

export async function run(options: BenchOptions): Promise<void> {
  const rows = Number(process.env.HERALD_BENCH_EXPORT_ROWS ?? 1_000_000);
  const why = await postgresUnavailable(options.adminUrl);
  if (why) {
    console.log(`  skipped: PostgreSQL is not reachable at ${options.adminUrl} (${why})`);
    return;
  }
  const database = await createBenchDatabase(options.adminUrl);
  const env = {
    DATABASE_URL: database.url,
    HERALD_SECRET_KEY: BENCH_SECRET_KEY,
    HERALD_ADMIN_API_KEY: ADMIN_KEY,
    HERALD_DEFAULT_ENTITY: ENTITY,
    HERALD_HOST: "127.0.0.1",
    HERALD_PORT: "0",
    HERALD_LOG_LEVEL: "info",
    // A million rows of ten columns is about 110 MB of CSV, past the 100 MiB default.
    HERALD_MAX_FILE_BYTES: String(1024 * MB),
  };
  const processes: HeraldProcess[] = [];
  const sql = new pg.Client({ connectionString: database.url });
  // A connection the server ends (an operator, a restart) fails the next query, which ends the run
  // through the `finally` below (Herald's processes stopped, the database dropped).
  sql.on("error", (error) => console.error(`  the seeding connection failed: ${error.message}`));
  await sql.connect();
  try {
    const api = startHeraldProcess("api", { ...env, HERALD_ROLES: "api,sequencer" });
    processes.push(api);
    const origin = String((await api.logged((l) => l.msg === "Herald API listening", 120_000)).url);
    const { call } = await apiClient(origin, ADMIN_KEY);
    const table = await call<{ id: string }>("POST", `/v5/entities/${ENTITY}/profile-tables`, {
      name: "Customers",
      attributes: PROFILE_ATTRIBUTES,
    });

    let started = performance.now();
    await sql.query(SEED_SQL, [table.id, rows]);
    await sql.query(KEYS_SQL, [table.id]);
    await sql.query("VACUUM ANALYZE records");
    await sql.query("VACUUM ANALYZE record_keys");
    console.log(
      `  seeded ${rows.toLocaleString("en")} profiles by SQL in ${fixed((performance.now() - started) / 1000, 1)} s`,
    );

    const exp = await call<{ id: string }>("POST", `/v5/entities/${ENTITY}/exports`, {
      name: "all-customers",
      source: { tableType: "PROFILE_TABLE", table: table.id },
      fields: [...PROFILE_COLUMNS],
      mode: "FULL",
      format: { type: "CSV", separator: ";", compression: "NONE" },
    });

    const copy = await ceiling(database.url, table.id);
    console.log(
      `  ceiling: COPY (SELECT …) TO STDOUT in ${fixed(copy.ms)} ms, ${fixed(copy.bytes / MB, 1)} MB`,
    );

    const worker = startHeraldProcess("worker", {
      ...env,
      HERALD_ROLES: "worker",
      HERALD_WORKER_ID: "bench-export-worker",
    });
    processes.push(worker);
    // A worker-only process logs no "ready" line: give it time to start and claim nothing.
    await sleep(3_000);
    const rss = sampleRss(worker.pid);
    const startRss = rss.current();
    const watch = await BackendWatch.open(database.url);
    await watch.sample(true);
    const workerCpu = cpuSecondsOf(worker.pid);

    started = performance.now();
    const { executionId } = await call<{ executionId: string }>(
      "POST",
      `/v5/entities/${ENTITY}/exports/${exp.id}/executions`,
    );
    let execution: Execution;
    for (;;) {
      execution = await call<Execution>(
        "GET",
        `/v5/entities/${ENTITY}/exports/${exp.id}/executions/${executionId}`,
      );
      if (execution.status === "SUCCESS" || execution.status === "ERROR") break;
      await watch.sample();
      await sleep(200);
    }
    const wallMs = performance.now() - started;
    const memory = rss.stop();
    const cpu = { worker: cpuSecondsOf(worker.pid) - workerCpu, postgres: watch.seconds() };
    await watch.close();
    if (execution.status !== "SUCCESS")
      throw new Error(`the export ended ${execution.status}: ${JSON.stringify(execution.error)}`);

    const runMs = Date.parse(execution.finishedAt!) - Date.parse(execution.startedAt!);
    const exportRate = (rows / runMs) * 1000;
    const ceilingRate = (rows / copy.ms) * 1000;
    const ratio = exportRate / ceilingRate;
    console.log();
    printTable([
      ["", "rows/s", "time", "bytes", "target", ""],
      [
        "COPY (SELECT …) TO STDOUT",
        fixed(ceilingRate),
        `${fixed(copy.ms / 1000, 2)} s`,
        `${fixed(copy.bytes / MB, 1)} MB`,
        "",
        "",
      ],
      [
        "Herald FULL CSV export",
        fixed(exportRate),
        `${fixed(runMs / 1000, 2)} s (${fixed(wallMs / 1000, 2)} s request to SUCCESS seen)`,
        `${fixed((execution.bytes ?? 0) / MB, 1)} MB`,
        `ratio ${fixed(ratio, 2)} ≥ ${TARGET_RATIO}`,
        ratio >= TARGET_RATIO ? "met" : "MISSED",
      ],
      [
        "worker peak RSS",
        "",
        "",
        `${fixed(memory.peak / MB)} MB (${fixed(startRss / MB)} MB at start)`,
        `< ${TARGET_RSS / MB} MB`,
        memory.peak < TARGET_RSS ? "met" : "MISSED",
      ],
    ]);
    console.log(
      `\n  where the time went (${fixed(runMs / 1000, 2)} s): worker CPU ${fixed(cpu.worker, 2)} s, PostgreSQL backends' CPU ${fixed(cpu.postgres, 2)} s`,
    );
    if (watch.samples > 0) {
      console.log(
        `  PostgreSQL backends during the export (${watch.samples} samples, active ones):`,
      );
      const top = [...watch.activity.entries()].sort((a, b) => b[1] - a[1]).slice(0, 6);
      for (const [what, count] of top)
        console.log(`    ${fixed((count / watch.samples) * 100).padStart(4)}%  ${what}`);
    }
    if (execution.rowCount !== rows)
      throw new Error(`the export wrote ${execution.rowCount} rows of ${rows}`);
  } finally {
    for (const p of processes.reverse()) await p.stop();
    await sql.end();
    await database.drop();
  }
}
