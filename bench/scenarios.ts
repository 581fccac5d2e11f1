/**
 * `npm run bench -- scenarios [--events N]`: the scenario engine (SPEC §7.4, DESIGN §6b) on
 * PostgreSQL, measured beside the capture rate of the same run.
 *
 *  1. Runs per second. An ACTIVE scenario on a profile table, DATA_EVENT CREATE → WAIT PT0S →
 *     FILTER (tier = Gold, which every profile is) → CUSTOM_ACTION → EXIT; then N profiles (100,000,
 *     or `--events N`) created over HTTP as the capture bench creates them (POST
 *     …/profile?allowUpdate=true, `--clients` requests in flight, the generator in a process of its
 *     own), every key new. The capture rate is those creates per second, from the first request to
 *     the last answer; the runs' rate is N over the time from the first request to the last run
 *     FINISHED (target: at least 0.5 of the capture rate). Also the engine's own rate once started
 *     (from the first run created to the last FINISHED, and over the backlog left when the creates
 *     ended), and the latency from a profile's CREATE committed to its run FINISHED.
 *  2. Due times that fall together. A second scenario, WAIT until the profile's TIMESTAMP attribute
 *     `wakeAt` → FILTER → CUSTOM_ACTION → EXIT, and 10,000 profiles (HERALD_BENCH_SCENARIOS_WAITING)
 *     created with the same `wakeAt`, a whole second far enough ahead that every run is WAITING
 *     before it. The bench watches the runs end (their block counts, every 25 ms) and prints the time from that
 *     second to the first and to the last of them moved on (target: the last within 2 s).
 *
 * Herald runs as users deploy it: `herald start --role api,sequencer` (takes the creates) and
 * `--role worker` (starts and moves the runs), each a process of its own, so that each one's CPU is
 * its own. After each part: where the time went (each process's CPU, the PostgreSQL backends' CPU,
 * and what the active backends were doing, sampled every 250 ms). The worker may be profiled:
 * with HERALD_BENCH_SCENARIOS_CPU_PROFILE=<dir>, V8's sampling profiler runs in it over each part
 * (cpu-profile-on-signal.mjs, switched by SIGUSR2), and the bench prints where its CPU went, by
 * module and by function (self time); the profiles stay in <dir> for DevTools. A profiled run's
 * figures are lower than an unprofiled one's.
 */
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import {
  CRM_BLOCK,
  EMAIL_KEY,
  EXIT_BLOCK,
  FIRST_NAME,
  GOLD_FILTER,
  SEND_TO_CRM,
  TIER,
} from "../test/helpers/scenario-fixtures.js";
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
import { BackendWatch, startHeraldProcess } from "./import-support.js";
import type { CreateLoadResult } from "./scenario-load-worker.js";
import { runCreateLoad } from "./scenario-load-worker.js";

const ENTITY = "bench";
const ADMIN_KEY = "hk_bench_scenarios_admin_key_0123456789abcdef";
const DEFAULT_PROFILES = 100_000;
const TARGET_RATIO = 0.5;
const TARGET_WAKE_MS = 2_000;
/** Give up when no run moved for this long. */
const STALL_MS = 120_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const perSecond = (count: number, ms: number) => (ms > 0 ? (count / ms) * 1000 : 0);
const PROFILER_MODULE = fileURLToPath(new URL("./cpu-profile-on-signal.mjs", import.meta.url));
const loadAverage = () => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");

type Call = <T>(
  method: "GET" | "POST" | "PUT" | "DELETE",
  path: string,
  body?: unknown,
) => Promise<T>;

interface Processes {
  api: HeraldProcess;
  worker: HeraldProcess;
}

/** CPU seconds of each process and of the database's backends over a part of the bench. */
class CpuWindow {
  private readonly start: Record<string, number>;
  constructor(
    private readonly processes: Processes,
    private readonly watch: BackendWatch,
  ) {
    this.start = this.now();
  }
  private now(): Record<string, number> {
    return {
      api: cpuSecondsOf(this.processes.api.pid),
      worker: cpuSecondsOf(this.processes.worker.pid),
      postgres: this.watch.seconds(),
    };
  }
  /** CPU seconds since the window opened, by process. */
  used(): Record<string, number> {
    const now = this.now();
    return Object.fromEntries(Object.entries(now).map(([k, v]) => [k, v - this.start[k]!]));
  }
}

/** Samples the backends every 250 ms until stopped. */
function sampleBackends(watch: BackendWatch): { stop(): Promise<void> } {
  let running = true;
  const loop = (async () => {
    while (running) {
      await watch.sample();
      await sleep(250);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

function printActivity(watch: BackendWatch, title: string): void {
  if (watch.samples === 0) return;
  console.log(`  ${title} (${watch.samples} samples of the active backends):`);
  const top = [...watch.activity.entries()].sort((a, b) => b[1] - a[1]).slice(0, 8);
  for (const [what, count] of top)
    console.log(`    ${fixed((count / watch.samples) * 100).padStart(4)}%  ${what}`);
  watch.activity.clear();
  watch.samples = 0;
}

function printCpu(used: Record<string, number>, generator: number, seconds: number): void {
  const share = (s: number) => `${fixed(s, 1)} s (${fixed((s / seconds) * 100)}% of a core)`;
  console.log(
    `  CPU over ${fixed(seconds, 1)} s: worker ${share(used.worker!)}, api+sequencer ${share(used.api!)}, ` +
      `PostgreSQL backends ${share(used.postgres!)}, create load ${share(generator)}; load average ${loadAverage()}`,
  );
}

interface Progress {
  /** Runs started. */
  runs: number;
  /** Runs ended (FINISHED, or CANCELLED or FAILED). */
  ended: number;
  /** Runs in a WAIT (statusProgress), or still going (blockProgress). */
  waiting: number;
}

/**
 * The scenario's runs from its block counts: started (entered its first block, `wait`) and ended
 * (left in any block). A few rows, written in the batches' transactions: the bench reads them often
 * without taking the engine's CPU the way counting the runs table would.
 */
async function blockProgress(sql: pg.Client, scenarioId: string): Promise<Progress> {
  const { rows } = await sql.query<{ runs: number; ended: number }>(
    `SELECT coalesce(sum(entered) FILTER (WHERE block_id = 'wait'), 0)::integer AS runs,
            coalesce(sum(exited), 0)::integer AS ended
       FROM scenario_block_counts WHERE scenario_id = $1::bigint`,
    [scenarioId],
  );
  const { runs, ended } = rows[0]!;
  return { runs, ended, waiting: runs - ended };
}

/** The scenario's runs by status (a count over the runs table: for checks, not for tight loops). */
async function statusProgress(sql: pg.Client, scenarioId: string): Promise<Progress> {
  const { rows } = await sql.query<Progress>(
    `SELECT count(*)::integer AS runs,
            count(*) FILTER (WHERE status IN ('FINISHED', 'CANCELLED', 'FAILED'))::integer AS ended,
            count(*) FILTER (WHERE status = 'WAITING')::integer AS waiting
       FROM scenario_runs WHERE scenario_id = $1::bigint`,
    [scenarioId],
  );
  return rows[0]!;
}

/** A profile table through the API: an e-mail key, a first name, a tier, a TIMESTAMP. */
async function createTable(call: Call, name: string): Promise<string> {
  const table = await call<{ id: string | number }>(
    "POST",
    `/v5/entities/${ENTITY}/profile-tables`,
    {
      name,
      attributes: [
        EMAIL_KEY,
        FIRST_NAME,
        TIER,
        { name: "wakeAt", type: "CUSTOM", valueType: "TIMESTAMP" },
      ],
    },
  );
  return String(table.id);
}

/** Defines and activates a scenario whose runs go `wait` → FILTER tier = Gold → CUSTOM_ACTION → EXIT. */
async function activeScenario(
  call: Call,
  name: string,
  table: string,
  wait: Record<string, unknown>,
): Promise<string> {
  const scenario = await call<{ id: string }>("POST", `/v5/entities/${ENTITY}/scenarios`, {
    name,
    profileTable: table,
    reentry: "AFTER_EXIT",
    start: { type: "DATA_EVENT", eventType: "CREATE", onFields: [], conditions: {} },
    blocks: [
      { id: "wait", type: "WAIT", ...wait, next: "gold" },
      GOLD_FILTER,
      { ...CRM_BLOCK, next: "end" },
      EXIT_BLOCK,
    ],
  });
  await call("POST", `/v5/entities/${ENTITY}/scenarios/${scenario.id}/activate`);
  return scenario.id;
}

/** The create load of `total` profiles of `tableId`, `wakeAt` set when given. */
function createLoad(
  origin: string,
  token: string,
  tableId: string,
  options: BenchOptions,
  total: number,
  prefix: string,
  wakeAt?: string,
) {
  const attributes = [
    { name: "emailAddress", value: `${prefix}{n}@bench.test` },
    { name: "firstName", value: "Name{n}" },
    { name: "tier", value: "Gold" },
    ...(wakeAt ? [{ name: "wakeAt", value: wakeAt }] : []),
  ];
  return {
    origin,
    token,
    path: `/v4/entity/${ENTITY}/table/${encodeURIComponent(tableId)}/profile?allowUpdate=true`,
    bodyTemplate: JSON.stringify({ attributes }),
    total,
    firstNumber: 1,
    clients: options.clients,
  };
}

/** Reads `probe` until `done` holds; prints progress every 5 s; throws on a stall. */
async function follow(
  probe: () => Promise<Progress>,
  done: (progress: Progress) => boolean,
  describe: () => string,
  everyMs: number,
): Promise<{ at: number; progress: Progress }> {
  let lastMoved = Date.now();
  let lastPrinted = Date.now();
  let last = "";
  for (;;) {
    const progress = await probe();
    const at = Date.now();
    if (done(progress)) return { at, progress };
    const seen = JSON.stringify(progress);
    if (seen !== last) {
      last = seen;
      lastMoved = at;
    }
    if (at - lastMoved > STALL_MS)
      throw new Error(`no run moved for ${STALL_MS / 1000} s: ${seen}`);
    if (at - lastPrinted >= 5_000) {
      lastPrinted = at;
      console.log(
        `  … ${describe()}; runs started ${progress.runs.toLocaleString("en")}, ended ${progress.ended.toLocaleString("en")}`,
      );
    }
    await sleep(everyMs);
  }
}

interface ThroughputFigures {
  profiles: number;
  load: CreateLoadResult;
  lastFinishedAt: number;
  finishedAtLastCreate: number;
  firstRunAt: number;
  lastEndedAt: number;
  latency: { p50: number; p99: number };
  triggers: number;
}

/** Part 1: N creates into the WAIT PT0S → FILTER → CUSTOM_ACTION → EXIT scenario. */
async function throughput(
  sql: pg.Client,
  call: Call,
  origin: string,
  token: string,
  options: BenchOptions,
  processes: Processes,
  watch: BackendWatch,
  profiler: WorkerProfiler | undefined,
): Promise<ThroughputFigures> {
  const profiles = options.events ?? DEFAULT_PROFILES;
  const tableId = await createTable(call, "Customers");
  const scenarioId = await activeScenario(call, "flow", tableId, { duration: "PT0S" });
  console.log(
    `  part 1: ${profiles.toLocaleString("en")} profiles created by ${options.clients} clients into scenario ${scenarioId} (DATA_EVENT CREATE → WAIT PT0S → FILTER → CUSTOM_ACTION → EXIT)`,
  );
  await watch.sample(true);
  const cpu = new CpuWindow(processes, watch);
  const sampler = sampleBackends(watch);
  profiler?.start();
  let answered = 0;
  let loadDone = false;
  let finishedAtLastCreate = 0;
  const loading = runCreateLoad(
    createLoad(origin, token, tableId, options, profiles, "c"),
    (n) => (answered = n),
  ).then(async (result) => {
    finishedAtLastCreate = (await blockProgress(sql, scenarioId)).ended;
    loadDone = true;
    return result;
  });
  // Follows the runs while the creates go on, and after them until the last run ended.
  const followed = follow(
    () => blockProgress(sql, scenarioId),
    (p) => loadDone && p.ended >= profiles,
    () => (loadDone ? "creates done" : `creates ${answered.toLocaleString("en")}`),
    50,
  );
  const load = await loading;
  if (load.failed > 0)
    throw new Error(`${load.failed} creates failed; the first: ${load.firstError}`);
  const { at: lastFinishedAt } = await followed;
  await sampler.stop();
  const used = cpu.used();
  const counts = await statusProgress(sql, scenarioId);
  if (counts.runs !== profiles || counts.ended !== profiles)
    throw new Error(
      `expected ${profiles} runs ended, found ${JSON.stringify(counts)} (a run per created profile)`,
    );
  const { rows } = await sql.query<{
    first_run: Date;
    last_end: Date;
    p50: number;
    p99: number;
    triggers: number;
  }>(
    `SELECT min(r.started_at) AS first_run, max(r.ended_at) AS last_end,
            percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM r.ended_at - e.occurred_at)) * 1000 AS p50,
            percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM r.ended_at - e.occurred_at)) * 1000 AS p99,
            (SELECT count(*)::integer FROM change_events WHERE source = 'CUSTOM_ACTION'
                AND state->>'scenario.id' = $1::text) AS triggers
       FROM scenario_runs r JOIN change_events e ON e.position = (r.start->>'position')::bigint
      WHERE r.scenario_id = $1::bigint`,
    [scenarioId],
  );
  const row = rows[0]!;
  printCpu(used, load.cpuSeconds, (lastFinishedAt - load.startedAt) / 1000);
  printActivity(watch, "PostgreSQL during part 1");
  await profiler?.stop("part 1");
  await call("POST", `/v5/entities/${ENTITY}/scenarios/${scenarioId}/deactivate`, {});
  return {
    profiles,
    load,
    lastFinishedAt,
    finishedAtLastCreate,
    firstRunAt: row.first_run.getTime(),
    lastEndedAt: row.last_end.getTime(),
    latency: { p50: row.p50, p99: row.p99 },
    triggers: row.triggers,
  };
}

interface WakeFigures {
  runs: number;
  dueAt: number;
  firstMovedMs: number;
  lastMovedMs: number;
  /** The worker's own clock: when it took the first and the last batch of them. */
  firstTakenMs: number;
  lastTakenMs: number;
  lead: number;
}

/** Part 2: `count` runs WAITING until the same second; how soon after it they all move on. */
async function dueTogether(
  sql: pg.Client,
  call: Call,
  origin: string,
  token: string,
  options: BenchOptions,
  count: number,
  createsPerSecond: number,
  processes: Processes,
  watch: BackendWatch,
  profiler: WorkerProfiler | undefined,
): Promise<WakeFigures> {
  const tableId = await createTable(call, "Sleepers");
  const scenarioId = await activeScenario(call, "sleepers", tableId, {
    untilAttribute: "wakeAt",
  });
  // Far enough ahead for the creates (at twice part 1's time per create) and the runs to start.
  const lead = Math.ceil((count / Math.max(100, createsPerSecond)) * 2 + 10);
  const dueAt = Math.ceil((Date.now() + lead * 1000) / 1000) * 1000;
  const wakeAt = new Date(dueAt).toISOString();
  console.log(
    `  part 2: ${count.toLocaleString("en")} profiles created with wakeAt ${wakeAt} (${lead} s ahead) into scenario ${scenarioId} (WAIT until wakeAt → FILTER → CUSTOM_ACTION → EXIT)`,
  );
  const load = await runCreateLoad(createLoad(origin, token, tableId, options, count, "s", wakeAt));
  if (load.failed > 0)
    throw new Error(`${load.failed} creates failed; the first: ${load.firstError}`);
  const { at: allWaiting } = await follow(
    () => statusProgress(sql, scenarioId),
    (p) => p.waiting >= count,
    () => "waiting for every run to enter its WAIT",
    250,
  );
  if (allWaiting > dueAt - 500)
    throw new Error(
      `the runs were all WAITING only ${allWaiting - dueAt} ms after their due time; raise the lead`,
    );
  await sleep(Math.max(0, dueAt - 1_000 - Date.now()));
  await watch.sample(true);
  const cpu = new CpuWindow(processes, watch);
  const sampler = sampleBackends(watch);
  profiler?.start();
  let firstMoved: number | undefined;
  // Each of these runs goes from its WAIT to the EXIT in one move: ended is moved on.
  const { at: lastMoved } = await follow(
    () => blockProgress(sql, scenarioId),
    (p) => {
      if (firstMoved === undefined && p.ended > 0) firstMoved = Date.now();
      return p.ended >= count;
    },
    () => "moving the runs whose WAIT ended",
    25,
  );
  await sampler.stop();
  const used = cpu.used();
  const { rows } = await sql.query<{ first: Date; last: Date; finished: number; triggers: number }>(
    `SELECT min(updated_at) AS first, max(updated_at) AS last,
            count(*) FILTER (WHERE status = 'FINISHED')::integer AS finished,
            (SELECT count(*)::integer FROM change_events WHERE source = 'CUSTOM_ACTION'
                AND state->>'scenario.id' = $1::text) AS triggers
       FROM scenario_runs WHERE scenario_id = $1::bigint`,
    [scenarioId],
  );
  const row = rows[0]!;
  if (row.finished !== count || row.triggers !== count)
    throw new Error(
      `expected ${count} runs FINISHED with a TRIGGER each, found ${row.finished} FINISHED and ${row.triggers} TRIGGERs`,
    );
  printCpu(used, 0, (lastMoved - (dueAt - 1_000)) / 1000);
  printActivity(watch, "PostgreSQL around the due second");
  await profiler?.stop("part 2, from a second before the due second to the last run moved on");
  return {
    runs: count,
    dueAt,
    firstMovedMs: (firstMoved ?? lastMoved) - dueAt,
    lastMovedMs: lastMoved - dueAt,
    firstTakenMs: row.first.getTime() - dueAt,
    lastTakenMs: row.last.getTime() - dueAt,
    lead,
  };
}

/**
 * V8's sampling profiler in the worker over windows of the bench (cpu-profile-on-signal.mjs): each
 * SIGUSR2 starts or stops it; a stopped window is written to `dir` and summarised here.
 */
class WorkerProfiler {
  private windows = 0;
  constructor(
    private readonly pid: number,
    private readonly dir: string,
  ) {}

  start(): void {
    process.kill(this.pid, "SIGUSR2");
  }

  async stop(title: string): Promise<void> {
    process.kill(this.pid, "SIGUSR2");
    const file = join(this.dir, `profile-${++this.windows}.cpuprofile`);
    const deadline = Date.now() + 30_000;
    let profile: CpuProfile | undefined;
    while (!profile && Date.now() < deadline) {
      await sleep(100);
      try {
        if (existsSync(file)) profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
      } catch {
        // Still being written.
      }
    }
    if (!profile?.nodes) console.log(`  no CPU profile came to ${file}`);
    else printCpuProfile(profile, `the worker's CPU over ${title} (${file})`);
  }
}

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  samples: number[];
  timeDeltas: number[];
}

/** Where the sampled time went: by module (self time), then the top functions. */
function printCpuProfile(profile: CpuProfile, title: string): void {
  const byId = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const byFunction = new Map<string, number>();
  const byModule = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const frame = byId.get(id);
    if (!frame) return;
    const us = profile.timeDeltas[i] ?? 0;
    total += us;
    const where = frame.url
      .replace(/^file:\/\//, "")
      .replace(/^.*\/node_modules\/((@[^/]+\/)?[^/]+)\/.*$/, "$1")
      .replace(/^.*\/(src|bench)\//, "$1/");
    const module = where === "" ? frame.functionName : where;
    byModule.set(module, (byModule.get(module) ?? 0) + us);
    const fn = `${frame.functionName || "(anonymous)"}  ${where}${where ? `:${frame.lineNumber + 1}` : ""}`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + us);
  });
  const top = (map: Map<string, number>, n: number) =>
    [...map.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([key, us]) => `    ${fixed((us / total) * 100, 1).padStart(5)}%  ${key}`);
  console.log(`\n  ${title}, ${fixed(total / 1e6, 2)} s sampled; by module (self time):`);
  for (const line of top(byModule, 12)) console.log(line);
  console.log("  by function (self time):");
  for (const line of top(byFunction, 20)) console.log(line);
}

export async function run(options: BenchOptions): Promise<void> {
  const why = await postgresUnavailable(options.adminUrl);
  if (why) {
    console.log(`  skipped: PostgreSQL is not reachable at ${options.adminUrl} (${why})`);
    return;
  }
  const waiting = Number(process.env.HERALD_BENCH_SCENARIOS_WAITING ?? 10_000);
  const profileDir = process.env.HERALD_BENCH_SCENARIOS_CPU_PROFILE
    ? resolve(process.env.HERALD_BENCH_SCENARIOS_CPU_PROFILE)
    : undefined;
  console.log(`  machine load average ${loadAverage()} (figures from a busy machine are low)`);
  const database = await createBenchDatabase(options.adminUrl);
  const env = {
    DATABASE_URL: database.url,
    HERALD_SECRET_KEY: BENCH_SECRET_KEY,
    HERALD_ADMIN_API_KEY: ADMIN_KEY,
    HERALD_DEFAULT_ENTITY: ENTITY,
    HERALD_ALLOW_INSECURE_TARGETS: "true",
    HERALD_HOST: "127.0.0.1",
    HERALD_PORT: "0",
    // info: the bench waits for "Herald API listening" and "scenario run worker started".
    HERALD_LOG_LEVEL: "info",
  };
  const started: HeraldProcess[] = [];
  const sql = new pg.Client({ connectionString: database.url, application_name: "herald-bench" });
  sql.on("error", (error) => console.error(`  the bench's connection failed: ${error.message}`));
  await sql.connect();
  let watch: BackendWatch | undefined;
  try {
    const api = startHeraldProcess("api", { ...env, HERALD_ROLES: "api,sequencer" });
    started.push(api);
    const origin = String((await api.logged((l) => l.msg === "Herald API listening", 120_000)).url);
    if (profileDir) mkdirSync(profileDir, { recursive: true });
    const worker = startHeraldProcess("worker", {
      ...env,
      HERALD_ROLES: "worker",
      HERALD_WORKER_ID: "bench-scenario-worker",
      ...(profileDir
        ? {
            NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --import ${PROFILER_MODULE}`,
            HERALD_BENCH_CPU_PROFILE_DIR: profileDir,
          }
        : {}),
    });
    started.push(worker);
    await worker.logged((l) => l.msg === "scenario run worker started", 120_000);
    const { call, token } = await apiClient(origin, ADMIN_KEY);
    await call("POST", `/v5/entities/${ENTITY}/custom-actions`, SEND_TO_CRM);
    watch = await BackendWatch.open(database.url);
    const processes = { api, worker };
    const profiler = profileDir ? new WorkerProfiler(worker.pid, profileDir) : undefined;

    const part1 = await throughput(sql, call, origin, token, options, processes, watch, profiler);
    const captureMs = part1.load.endedAt - part1.load.startedAt;
    const captureRate = perSecond(part1.profiles, captureMs);
    const runsRate = perSecond(part1.profiles, part1.lastFinishedAt - part1.load.startedAt);
    const engineRate = perSecond(part1.profiles, part1.lastEndedAt - part1.firstRunAt);
    const backlog = part1.profiles - part1.finishedAtLastCreate;
    const drainRate = perSecond(backlog, part1.lastFinishedAt - part1.load.endedAt);
    const ratio = runsRate / captureRate;

    const part2 =
      waiting > 0
        ? await dueTogether(
            sql,
            call,
            origin,
            token,
            options,
            waiting,
            captureRate,
            processes,
            watch,
            profiler,
          )
        : undefined;

    console.log();
    const s = (ms: number) => `${fixed(ms / 1000, 2)} s`;
    printTable([
      ["", "figure", "time", "target", ""],
      [
        `capture: ${part1.profiles.toLocaleString("en")} profile creates over HTTP`,
        `${fixed(captureRate)} creates/s`,
        `${s(captureMs)} (p50 ${fixed(part1.load.p50Ms, 1)} ms, p99 ${fixed(part1.load.p99Ms, 1)} ms)`,
        "",
        "",
      ],
      [
        "runs FINISHED, first create → last run FINISHED",
        `${fixed(runsRate)} runs/s`,
        s(part1.lastFinishedAt - part1.load.startedAt),
        `ratio ${fixed(ratio, 2)} ≥ ${TARGET_RATIO}`,
        ratio >= TARGET_RATIO ? "met" : "MISSED",
      ],
      [
        "the engine once started: first run created → last FINISHED",
        `${fixed(engineRate)} runs/s`,
        s(part1.lastEndedAt - part1.firstRunAt),
        "",
        "",
      ],
      [
        `the engine alone: the ${backlog.toLocaleString("en")} runs left when the creates ended`,
        backlog > 0 ? `${fixed(drainRate)} runs/s` : "-",
        s(part1.lastFinishedAt - part1.load.endedAt),
        "",
        "",
      ],
      [
        "a profile's CREATE committed → its run FINISHED",
        `p50 ${fixed(part1.latency.p50)} ms`,
        `p99 ${fixed(part1.latency.p99)} ms`,
        "",
        "",
      ],
      ...(part2
        ? [
            [
              `${part2.runs.toLocaleString("en")} WAITs ending at the same second: the last moved on`,
              `+${s(part2.lastMovedMs)}`,
              `first +${s(part2.firstMovedMs)}`,
              `≤ ${TARGET_WAKE_MS / 1000} s`,
              part2.lastMovedMs <= TARGET_WAKE_MS ? "met" : "MISSED",
            ],
            [
              `  the engine alone: ${part2.runs.toLocaleString("en")} due runs, first → last moved on`,
              `${fixed(perSecond(part2.runs, part2.lastMovedMs - part2.firstMovedMs))} runs/s`,
              s(part2.lastMovedMs - part2.firstMovedMs),
              "",
              "",
            ],
            [
              "  the same, by the worker's clock (when it took their batches)",
              `+${s(part2.lastTakenMs)}`,
              `first +${s(part2.firstTakenMs)}`,
              "",
              "",
            ],
          ]
        : []),
    ]);
    console.log(
      `\n  ${part1.triggers.toLocaleString("en")} TRIGGER events for ${part1.profiles.toLocaleString("en")} runs (one each); ` +
        `${part1.finishedAtLastCreate.toLocaleString("en")} runs had FINISHED when the last create was answered. ` +
        `"moved on" is seen from outside: the bench reads the block counts every 25 ms, so a move counts once committed.`,
    );
  } finally {
    await watch?.close();
    for (const p of started.reverse()) await p.stop();
    await sql.end();
    await database.drop();
  }
}
