/**
 * Scenario `capture`: how fast Herald turns API writes into logged events, against what the same
 * PostgreSQL server does with plain single-row INSERTs at the same concurrency (the ceiling).
 *
 *  1. ceiling: N clients through `pg`, each `INSERT INTO bench_ceiling …` (one autocommit row).
 *  2. Herald on PostgreSQL: API + sequencer in this process, N HTTP clients (undici, in a child
 *     process of their own, http-load.ts) upserting profiles (`POST …/profile?allowUpdate=true`, random keys, so creates and
 *     updates mix). Events/s counts events inserted during the window; lag is stamp − insert time
 *     (occurred_at, the INSERT's clock_timestamp()). Profile upserts are single autocommit
 *     statements, so an event's insert time is its commit time give or take that one statement:
 *     the lag measures commit → stamp (a write handed over to the transactional path, e.g. after
 *     losing a unique-key race, would also count its wait until COMMIT).
 *  3. Herald on the embedded database (PGlite): the same HTTP load.
 *  4. HTTP ceiling (bench/http-ceiling.ts): the same HTTP stack (Herald's Fastify app, token check,
 *     JSON validation) and the same load, each request upserting the profile row and its key row
 *     in one statement, with no event. Herald's ratio to it is what capture costs over a write
 *     that already pays for HTTP (target >= 0.6); the plain INSERT ceiling has no HTTP at all.
 *
 * HERALD_BENCH_CAPTURE=ceiling,http-ceiling,herald,apart,embedded picks runs (default: all), e.g.
 * `HERALD_BENCH_CAPTURE=herald` for an A/B of one change.
 *
 * Upserts are group-committed (src/capture/profile-upsert.ts): the writes that arrive together share
 * one autocommit statement, so the insert time of their events is still their commit time.
 *
 * Beside throughput, each PostgreSQL run reports the CPU time per write of this process (Herald, or
 * the ceiling's pg client) and of the bench database's backends (from /proc, server on this host).
 * A loaded 2-core machine moves writes/s a lot and CPU per write much less, so the CPU ratio
 * (ceiling CPU per write / Herald CPU per write) says what the write ratio would be with the cores
 * to themselves. The HTTP load generator runs in its own process and its CPU time is shown in a
 * column of its own, NOT counted in Herald's CPU per write (the ceiling's writers are the pg client
 * itself, which is counted; Herald's callers are not Herald). Until 2026-12-01 it ran as a thread
 * of this process and was counted; the summary also prints the CPU ratio counted that way.
 *
 * When the profile API is not available, the writes go through SQL and appendChangeEvents in-process
 * instead (said so in the output).
 */
import { cpus, loadavg } from "node:os";
import pg from "pg";
import type { NewChangeEvent } from "../src/domain/change-event.js";
import { appendChangeEvents } from "../src/storage/change-event-repository.js";
import type { Database } from "../src/storage/database.js";
import type { LogSignals } from "../src/storage/log-signals.js";
import { PostgresDatabase } from "../src/storage/postgres-database.js";
import { countUnstamped, logLagPercentiles } from "../src/storage/sequencer-repository.js";
import type { BenchHerald, BenchOptions } from "./bench-support.js";
import {
  BENCH_ENTITY,
  cpuSecondsOf,
  createBenchDatabase,
  createEmbeddedDatabase,
  fixed,
  postgresUnavailable,
  printTable,
  startBenchHerald,
} from "./bench-support.js";
import type { LoadResult } from "./closed-loop.js";
import { percentile, perSecond, runClosedLoop } from "./closed-loop.js";
import type { HttpLoadSpec } from "./http-load.js";
import { runHttpLoad } from "./http-load.js";
import { CEILING_PREFIX, registerCeilingRoute } from "./http-ceiling.js";
import { startTsWorker } from "./ts-worker.js";

/**
 * The load generator's HTTP client: `lean` (default, bench/lean-http-client.ts) or `undici`, set
 * with HERALD_BENCH_HTTP_CLIENT to compare what the generator takes from Herald's cores.
 */
const HTTP_CLIENT = httpClientChoice(process.env.HERALD_BENCH_HTTP_CLIENT);

function httpClientChoice(raw: string | undefined): "lean" | "undici" {
  if (raw === undefined || raw === "" || raw === "lean") return "lean";
  if (raw === "undici") return "undici";
  throw new Error(`HERALD_BENCH_HTTP_CLIENT must be lean or undici, not '${raw}'`);
}

/** Distinct profiles the load picks from: large enough that most writes create, some update. */
const KEY_SPACE = 50_000;

interface CpuSeconds {
  /** This process: Herald, or the ceiling's pg client. */
  bench: number;
  /** The HTTP load generator's process (Herald runs over HTTP only). */
  generator?: number;
  /** The PostgreSQL backends serving the bench database. */
  database: number;
}

/**
 * Measures CPU time from `start()` (call it when the measured window opens) to `stop()`.
 * `backends` lists the pids of the bench database's server processes.
 */
function cpuMeter(backends: () => Promise<number[]>) {
  let before: Map<number, number> | undefined;
  let usage: NodeJS.CpuUsage | undefined;
  return {
    start: async () => {
      usage = process.cpuUsage();
      before = new Map((await backends()).map((pid) => [pid, cpuSecondsOf(pid)]));
    },
    stop: async (): Promise<CpuSeconds | undefined> => {
      if (!usage || !before) return undefined;
      const used = process.cpuUsage(usage);
      let database = 0;
      for (const pid of await backends()) database += cpuSecondsOf(pid) - (before.get(pid) ?? 0);
      return { bench: (used.user + used.system) / 1e6, database };
    },
  };
}

const BACKENDS_SQL = "SELECT pid FROM pg_stat_activity WHERE datname = current_database()";

interface RunFigures {
  label: string;
  load: LoadResult;
  cpu?: CpuSeconds;
  events?: number;
  lagP50Ms?: number;
  lagP99Ms?: number;
  via: "http" | "sql" | "pg" | "http-ceiling";
}

function writesPerSecond(run: RunFigures): number {
  return perSecond(run.load.completed, run.load.measureEnd - run.load.measureStart);
}

async function measureCeiling(options: BenchOptions, when: string): Promise<RunFigures> {
  const database = await createBenchDatabase(options.adminUrl, { migrated: false });
  const pool = new pg.Pool({ connectionString: database.url, max: options.clients });
  // Dropping the database at the end terminates any connection still open; that is no failure.
  pool.on("error", () => {});
  try {
    // The ceiling's own table: what the server does with the simplest durable write.
    await pool.query(
      `CREATE TABLE bench_ceiling (
         id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
         email text NOT NULL,
         first_name text,
         created_at timestamptz NOT NULL DEFAULT now())`,
    );
    const meter = cpuMeter(async () =>
      (await pool.query<{ pid: number }>(BACKENDS_SQL)).rows.map((row) => row.pid),
    );
    const load = await runClosedLoop(
      options,
      async () => {
        const key = Math.floor(Math.random() * KEY_SPACE);
        await pool.query("INSERT INTO bench_ceiling (email, first_name) VALUES ($1, $2)", [
          `user${key}@bench.test`,
          Math.random().toString(36).slice(2, 10),
        ]);
        return true;
      },
      () => void meter.start(),
    );
    const cpu = await meter.stop();
    return {
      label: `PostgreSQL ceiling: plain INSERT (${when})`,
      load,
      via: "pg",
      ...(cpu ? { cpu } : {}),
    };
  } finally {
    await pool.end();
    await database.drop();
  }
}

/** The HTTP ceiling on a fresh database: Herald's app with the bench route, no sequencer. */
async function measureHttpCeiling(options: BenchOptions, when: string): Promise<RunFigures> {
  const database = await createBenchDatabase(options.adminUrl);
  const db = new PostgresDatabase({
    connectionString: database.url,
    maxConnections: options.clients + 4,
    applicationName: "herald-bench-ceiling",
  });
  const herald = await startBenchHerald(
    db,
    {},
    { sequencer: false, extraRoutes: (app) => registerCeilingRoute(app, db) },
  );
  try {
    const tableId = await createProfileTable(herald);
    if (tableId === undefined) throw new Error("the HTTP ceiling needs the profile table API");
    const meter = cpuMeter(async () =>
      (await db.query<{ pid: number }>(BACKENDS_SQL)).rows.map((row) => row.pid),
    );
    const load = await runHttpLoad(
      {
        ...profileLoad(herald, tableId, options),
        path: `${CEILING_PREFIX}/v4/entity/${BENCH_ENTITY}/table/${encodeURIComponent(tableId)}/profile`,
      },
      () => void meter.start(),
    );
    const measured = await meter.stop();
    return {
      label: `HTTP ceiling: one upsert statement per request, no events (${when})`,
      load,
      via: "http-ceiling",
      ...(measured ? { cpu: { ...measured, generator: load.generatorCpuSeconds } } : {}),
    };
  } finally {
    await herald.stop();
    await db.close();
    await database.drop();
  }
}

/** The HTTP load of the profile upserts: Herald's path, or the HTTP ceiling's with its prefix. */
function profileLoad(herald: BenchHerald, tableId: string, options: BenchOptions): HttpLoadSpec {
  return {
    origin: herald.origin,
    token: herald.token,
    method: "POST",
    path: `/v4/entity/${BENCH_ENTITY}/table/${encodeURIComponent(tableId)}/profile?allowUpdate=true`,
    bodyTemplate: JSON.stringify({
      attributes: [
        { name: "emailAddress", value: `user{key}@t${tableId}.bench.test` },
        { name: "firstName", value: "{rand}" },
      ],
    }),
    keySpace: KEY_SPACE,
    clients: options.clients,
    client: HTTP_CLIENT,
    warmupMs: options.warmupMs,
    durationMs: options.durationMs,
  };
}

/** Creates the bench profile table through the API; undefined when the profile API is absent. */
async function createProfileTable(herald: BenchHerald): Promise<string | undefined> {
  try {
    const table = await herald.call<{ id: string | number }>(
      "POST",
      `/v5/entities/${BENCH_ENTITY}/profile-tables`,
      {
        name: `BenchCustomers_${Date.now().toString(36)}`,
        attributes: [
          { name: "emailAddress", type: "EMAIL_ADDRESS", unique: true, mandatory: true },
          { name: "firstName", type: "FIRSTNAME" },
        ],
      },
    );
    return String(table.id);
  } catch (error) {
    if (/answered 404/.test((error as Error).message)) return undefined;
    throw error;
  }
}

/** Fallback writer without the profile API: one record row plus its event per transaction. */
async function sqlWriteLoad(
  db: Database,
  logSignals: LogSignals,
  options: BenchOptions,
): Promise<LoadResult> {
  const entity = await db.query<{ id: number }>("SELECT id FROM entities WHERE name = $1", [
    BENCH_ENTITY,
  ]);
  const entityId = entity.rows[0]!.id;
  await db.query(
    `INSERT INTO data_tables (id, entity_id, kind, name, definition)
     VALUES ('bench', $1, 'PROFILE_TABLE', 'BenchCustomers', '{}') ON CONFLICT DO NOTHING`,
    [entityId],
  );
  return runClosedLoop(options, async () => {
    const email = `user${Math.floor(Math.random() * KEY_SPACE)}@bench.test`;
    const firstName = Math.random().toString(36).slice(2, 10);
    await db.transaction(async (tx) => {
      // Upsert by business key: writes (and locks) the record row before appending its event.
      const { rows } = await tx.query<{ record_id: number; version: number }>(
        `INSERT INTO records (table_id, business_key, attributes)
         VALUES ('bench', $1, jsonb_build_object('emailAddress', $1::text, 'firstName', $2::text))
         ON CONFLICT (table_id, business_key) WHERE business_key IS NOT NULL
         DO UPDATE SET attributes = EXCLUDED.attributes, version = records.version + 1
         RETURNING record_id, version`,
        [email, firstName],
      );
      const row = rows[0]!;
      const event: NewChangeEvent = {
        entityId,
        source: "PROFILE_TABLE",
        sourceId: "bench",
        eventType: row.version === 1 ? "CREATE" : "UPDATE",
        recordKey: String(row.record_id),
        keys: { profileId: row.record_id, emailAddress: email },
        state: { profileId: row.record_id, emailAddress: email, firstName },
        fields: row.version === 1 ? ["emailAddress", "firstName"] : ["firstName"],
        previous: {},
        extra: {},
        version: row.version,
        declaredEvents: [],
        origin: { kind: "SYSTEM" },
      };
      await appendChangeEvents(tx, [event], logSignals);
    });
    return true;
  });
}

/** Waits (bounded) until the sequencer has stamped everything. */
async function drain(db: Database): Promise<void> {
  const deadline = Date.now() + 60_000;
  while ((await countUnstamped(db)) > 0) {
    if (Date.now() > deadline) throw new Error("the sequencer did not drain the inbox in 60 s");
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A sequencer in its own worker thread and pool, like a separate `--role sequencer` process. */
async function startSequencerWorker(url: string): Promise<{ stop(): Promise<void> }> {
  const worker = startTsWorker("./sequencer-worker.ts", { url });
  await new Promise<void>((resolve, reject) => {
    worker.once("message", () => resolve());
    worker.once("error", reject);
  });
  return {
    stop: async () => {
      const stopped = new Promise((resolve) => worker.once("message", resolve));
      worker.postMessage("stop");
      await stopped;
      await worker.terminate();
    },
  };
}

async function measureHerald(
  label: string,
  db: Database,
  options: BenchOptions,
  /** PostgreSQL URL: run the sequencer in its own thread instead of the API's event loop. */
  separateSequencerUrl?: string,
): Promise<RunFigures> {
  const herald = await startBenchHerald(db, {}, { sequencer: !separateSequencerUrl });
  const separate = separateSequencerUrl
    ? await startSequencerWorker(separateSequencerUrl)
    : undefined;
  try {
    const tableId = await createProfileTable(herald);
    const meter = cpuMeter(async () =>
      db.kind === "postgres"
        ? (await db.query<{ pid: number }>(BACKENDS_SQL)).rows.map((row) => row.pid)
        : [],
    );
    let load: LoadResult;
    let generator: number | undefined;
    let via: RunFigures["via"];
    if (tableId === undefined) {
      via = "sql";
      load = await sqlWriteLoad(db, herald.logSignals, options);
    } else {
      via = "http";
      const http = await runHttpLoad(
        profileLoad(herald, tableId, options),
        () => void meter.start(),
      );
      load = http;
      generator = http.generatorCpuSeconds;
    }
    const measured = await meter.stop();
    const cpu = measured && generator !== undefined ? { ...measured, generator } : measured;
    await drain(db);
    const lag = await logLagPercentiles(db, new Date(load.measureStart), new Date(load.measureEnd));
    return {
      label: via === "http" ? label : `${label} (SQL writes, no HTTP)`,
      load,
      events: lag.events,
      lagP50Ms: lag.p50Ms,
      lagP99Ms: lag.p99Ms,
      via,
      ...(cpu && db.kind === "postgres" ? { cpu } : {}),
    };
  } finally {
    await herald.stop();
    await separate?.stop();
  }
}

export async function run(options: BenchOptions): Promise<void> {
  console.log(
    `capture: ${options.clients} clients, ${options.warmupMs / 1000} s warm-up, ${options.durationMs / 1000} s measured per run`,
  );
  console.log(
    `machine: ${cpus().length} CPUs, load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(" / ")} (figures from a busy machine are low; compare the ratio)`,
  );
  const runs: RunFigures[] = [];
  const known = ["ceiling", "http-ceiling", "herald", "apart", "embedded"];
  const wanted = new Set(
    (process.env.HERALD_BENCH_CAPTURE ?? known.join(","))
      .split(",")
      .map((p) => p.trim())
      .filter(Boolean),
  );
  for (const name of wanted)
    if (!known.includes(name))
      throw new Error(`unknown capture bench run '${name}'; known: ${known.join(", ")}`);
  const unavailable = await postgresUnavailable(options.adminUrl);
  if (unavailable) {
    console.log(`PostgreSQL runs skipped: ${unavailable}`);
  } else {
    // The ceiling runs before and after Herald, so a change in the machine's load shows.
    if (wanted.has("ceiling")) {
      console.log("… ceiling: plain INSERTs through pg");
      runs.push(await measureCeiling(options, "before"));
    }
    if (wanted.has("http-ceiling")) {
      console.log("… HTTP ceiling: Herald's HTTP stack, one upsert statement, no events");
      runs.push(await measureHttpCeiling(options, "before"));
    }
    console.log("… Herald on PostgreSQL");
    const database = await createBenchDatabase(options.adminUrl);
    const db = new PostgresDatabase({
      connectionString: database.url,
      maxConnections: options.clients + 4,
      applicationName: "herald-bench",
    });
    try {
      if (wanted.has("herald"))
        runs.push(await measureHerald("Herald on PostgreSQL: HTTP upserts", db, options));
      if (wanted.has("apart")) {
        console.log(
          "… the same, with the sequencer in its own thread (as a separate process would)",
        );
        runs.push(
          await measureHerald("Herald on PostgreSQL, sequencer apart", db, options, database.url),
        );
      }
    } finally {
      await db.close();
      await database.drop();
    }
    if (wanted.has("http-ceiling")) {
      console.log("… HTTP ceiling again");
      runs.push(await measureHttpCeiling(options, "after"));
    }
    if (wanted.has("ceiling")) {
      console.log("… ceiling again");
      runs.push(await measureCeiling(options, "after"));
    }
  }
  if (wanted.has("embedded")) {
    console.log("… Herald on the embedded database (PGlite)");
    const embedded = await createEmbeddedDatabase();
    try {
      runs.push(
        await measureHerald("Herald embedded (PGlite): HTTP upserts", embedded.db, options),
      );
    } finally {
      await embedded.drop();
    }
  }

  console.log("");
  printTable([
    [
      "run",
      "writes/s",
      "events/s",
      "req p50 ms",
      "req p99 ms",
      "lag p50 ms",
      "lag p99 ms",
      "CPU ms/write: process",
      "PostgreSQL",
      "HTTP load gen (not counted)",
    ],
    ...runs.map((r) => {
      const seconds = (r.load.measureEnd - r.load.measureStart) / 1000;
      const perWrite = (cpuSeconds: number | undefined) =>
        cpuSeconds === undefined || r.load.completed === 0
          ? "-"
          : fixed((cpuSeconds * 1000) / r.load.completed, 3);
      return [
        r.label,
        fixed(writesPerSecond(r)),
        r.events === undefined ? "-" : fixed(r.events / seconds),
        fixed(percentile(r.load.latencies, 50), 2),
        fixed(percentile(r.load.latencies, 99), 2),
        r.lagP50Ms === undefined ? "-" : fixed(r.lagP50Ms, 2),
        r.lagP99Ms === undefined ? "-" : fixed(r.lagP99Ms, 2),
        perWrite(r.cpu?.bench),
        perWrite(r.cpu?.database),
        perWrite(r.cpu?.generator),
      ];
    }),
  ]);
  for (const r of runs) {
    if (r.load.failed > 0 || r.load.firstError)
      console.log(`! ${r.label}: ${r.load.failed} failed; first error: ${r.load.firstError}`);
  }
  console.log(
    "lag = stamp time − the event's insert time; upserts commit in the statement that inserts the event, so this is commit → stamp.",
  );
  const ceilings = runs.filter((r) => r.via === "pg");
  const httpCeilings = runs.filter((r) => r.via === "http-ceiling");
  const onPostgres = runs.filter(
    (r) => (r.via === "http" || r.via === "sql") && r.label.includes("PostgreSQL"),
  );
  if (httpCeilings.length > 0 && onPostgres.length > 0) {
    const ceiling =
      httpCeilings.reduce((sum, r) => sum + writesPerSecond(r), 0) / httpCeilings.length;
    console.log("");
    for (const run of onPostgres) {
      const ratio = writesPerSecond(run) / ceiling;
      console.log(
        `${run.label}: ratio to the HTTP ceiling (mean of its runs) ${fixed(ratio, 2)} (target >= 0.6: ${ratio >= 0.6 ? "met" : "NOT met"})`,
      );
    }
  }
  if (ceilings.length > 0 && onPostgres.length > 0) {
    const ceiling = ceilings.reduce((sum, r) => sum + writesPerSecond(r), 0) / ceilings.length;
    const cpuPerWrite = (r: RunFigures, withGenerator = false) =>
      r.cpu && r.load.completed > 0
        ? (r.cpu.bench + r.cpu.database + (withGenerator ? (r.cpu.generator ?? 0) : 0)) /
          r.load.completed
        : 0;
    const measured = ceilings.filter((r) => cpuPerWrite(r) > 0);
    const ceilingCpu =
      measured.reduce((sum, r) => sum + cpuPerWrite(r), 0) / Math.max(1, measured.length);
    console.log("");
    for (const run of onPostgres) {
      const ratio = writesPerSecond(run) / ceiling;
      const lag = run.lagP99Ms ?? 0;
      const cpuRatioOf = (withGenerator: boolean) => {
        const herald = cpuPerWrite(run, withGenerator);
        return herald > 0 && ceilingCpu > 0 ? fixed(ceilingCpu / herald, 2) : "-";
      };
      console.log(
        `${run.label}: ratio to the ceiling (mean of its runs) ${fixed(ratio, 2)} (target >= 0.5: ${ratio >= 0.5 ? "met" : "NOT met"}); ` +
          `sequencer lag p99 ${fixed(lag, 2)} ms (target < 50 ms: ${lag < 50 ? "met" : "NOT met"}); ` +
          `CPU ratio ${cpuRatioOf(false)} (${cpuRatioOf(true)} counting the HTTP load generator's CPU as Herald's)`,
      );
    }
  }
}
