/**
 * `npm run bench -- faults`: Herald under the faults and loads of issue #19, each part beside its
 * target, one line of detail per part as it runs and one table at the end:
 *
 * - `recovery` (PostgreSQL): all roles in one process behind a TCP proxy, a 5 s database cut under
 *   steady writes; the time from the restore to the first 2xx write and to the first push of a
 *   write made after it (≤ 2 s), how the requests during the cut were answered, and whether the
 *   process lived (faults-recovery.ts).
 * - `takeover` (PostgreSQL): two worker processes, SIGKILL of the one pushing; the time to the
 *   other's first push (≤ 3 s) (faults-takeover.ts).
 * - `neighbour` (PostgreSQL): a healthy subscription's throughput beside a 14 s endpoint on the same
 *   origin, as a ratio to its throughput alone (≥ 0.8) (faults-neighbour.ts).
 * - `rss` (embedded): `herald start` on a fresh data directory, idle a few seconds after it listens;
 *   VmRSS (< 400 MB).
 * - `healthz` (embedded): 200 keep-alive clients mixing profile creates, PUT updates and reads
 *   (bench/embedded-pressure.ts's load) while a probe asks `/healthz` every 100 ms; its p99
 *   (< 50 ms), the share answered 503 with Retry-After and the slowest request (≤ 2 s).
 *
 * HERALD_BENCH_FAULTS=recovery,takeover,neighbour,rss,healthz picks parts (they run in that order);
 * HERALD_BENCH_FAULTS_BURST sets the embedded burst in seconds (default 20). The neighbour part's
 * windows follow --warmup and --duration. The PostgreSQL parts are skipped, each with a line, when
 * the server does not answer. A part that fails prints why and the others still run; every process
 * and temporary directory is removed either way. Benchmarks report; they never fail the run.
 */
import { loadavg } from "node:os";
import type { BenchOptions } from "./bench-support.js";
import { fixed, postgresUnavailable, printTable } from "./bench-support.js";
import { runPressure } from "./embedded-pressure.js";
import { neighbour } from "./faults-neighbour.js";
import { recovery } from "./faults-recovery.js";
import type { HeraldProcess, ResultRow } from "./faults-support.js";
import {
  FAULTS_ADMIN_KEY,
  sleep,
  startHeraldProcess,
  stopAllHeraldProcesses,
  verdict,
  vmRssMb,
} from "./faults-support.js";
import { percentile } from "./closed-loop.js";
import { takeover } from "./faults-takeover.js";

const IDLE_MS = 5_000;
const RSS_TARGET_MB = 400;
const CLIENTS = 200;
const BURST_MS = Number(process.env.HERALD_BENCH_FAULTS_BURST ?? 20) * 1000;

/** The embedded Herald, shared by `rss` (measured first, while idle) and `healthz`. */
let embedded: { herald: HeraldProcess; origin: string } | undefined;

async function startEmbedded() {
  const herald = startHeraldProcess({ roles: "api,sequencer,worker" });
  embedded = { herald, origin: await herald.listening() };
  return embedded;
}

async function rss(): Promise<ResultRow[]> {
  const { herald } = embedded ?? (await startEmbedded());
  const atListen = vmRssMb(herald.pid);
  await sleep(IDLE_MS);
  const idle = vmRssMb(herald.pid);
  console.log(
    `rss: embedded Herald (all roles, fresh data directory): VmRSS ${fixed(atListen)} MB when it listens, ` +
      `${fixed(idle)} MB idle ${IDLE_MS / 1000} s later`,
  );
  return [
    [
      `embedded idle RSS, ${IDLE_MS / 1000} s after listening (MB)`,
      fixed(idle),
      `< ${RSS_TARGET_MB}`,
      verdict(idle < RSS_TARGET_MB),
    ],
  ];
}

async function healthz(): Promise<ResultRow[]> {
  const { herald, origin } = embedded ?? (await startEmbedded());
  const result = await runPressure(
    {
      child: herald.child,
      origin,
      adminKey: FAULTS_ADMIN_KEY,
      stop: () => herald.stop(),
    },
    { clients: CLIENTS, durationMs: BURST_MS },
  );
  const answered = result.latencies.length;
  const all = answered + result.errors;
  const unavailable = result.statuses.get(503) ?? 0;
  const withRetryAfter = unavailable - result.retryAfterMissing;
  const slowest = Math.max(0, ...result.latencies);
  const p99 = percentile(result.healthz, 99);
  const statuses = [...result.statuses]
    .sort(([a], [b]) => a - b)
    .map(([status, n]) => `${status}: ${n}`)
    .join(", ");
  console.log(
    `healthz: ${CLIENTS} clients for ${BURST_MS / 1000} s on the embedded database: ${answered} answers ` +
      `(${fixed(answered / (BURST_MS / 1000))}/s; ${statuses}; ${result.errors} unanswered), ` +
      `p50 ${fixed(percentile(result.latencies, 50), 1)} ms, p99 ${fixed(percentile(result.latencies, 99), 1)} ms, slowest ${fixed(slowest)} ms; ` +
      `/healthz ${result.healthz.length} probes, p50 ${fixed(percentile(result.healthz, 50), 1)} ms, p99 ${fixed(p99, 1)} ms, ` +
      `max ${fixed(Math.max(0, ...result.healthz), 1)} ms, ${result.healthzFailures} failed; VmRSS after ${fixed(vmRssMb(herald.pid))} MB`,
  );
  return [
    [
      `embedded /healthz p99 under ${CLIENTS} clients (ms)`,
      result.healthzFailures > 0
        ? `${fixed(p99, 1)} (${result.healthzFailures} failed)`
        : fixed(p99, 1),
      "< 50",
      verdict(p99 < 50 && result.healthzFailures === 0),
    ],
    [
      "embedded: requests answered 503 with Retry-After",
      `${fixed((100 * withRetryAfter) / Math.max(1, all), 1)} % (${withRetryAfter} of ${all})`,
      "—",
      "",
    ],
    [
      "embedded: slowest request under the burst (ms)",
      fixed(slowest),
      "≤ 2000",
      verdict(slowest <= 2000 && result.errors === 0),
    ],
  ];
}

const PARTS: Record<
  string,
  { postgres: boolean; run: (options: BenchOptions) => Promise<ResultRow[]> }
> = {
  recovery: { postgres: true, run: recovery },
  takeover: { postgres: true, run: takeover },
  neighbour: { postgres: true, run: neighbour },
  rss: { postgres: false, run: rss },
  healthz: { postgres: false, run: healthz },
};

export async function run(options: BenchOptions): Promise<void> {
  const wanted = (process.env.HERALD_BENCH_FAULTS ?? Object.keys(PARTS).join(","))
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean);
  for (const name of wanted)
    if (!PARTS[name])
      throw new Error(
        `unknown faults bench part '${name}'; known: ${Object.keys(PARTS).join(", ")}`,
      );
  const load = () =>
    loadavg()
      .map((l) => l.toFixed(2))
      .join(", ");
  console.log(`load average before: ${load()}`);
  const unavailable = await postgresUnavailable(options.adminUrl);
  const rows: ResultRow[] = [["measure", "value", "target", "verdict"]];
  try {
    for (const [name, part] of Object.entries(PARTS)) {
      if (!wanted.includes(name)) continue;
      if (part.postgres && unavailable) {
        console.log(`${name}: SKIPPED, needs PostgreSQL at ${options.adminUrl} (${unavailable})`);
        rows.push([name, "skipped (no PostgreSQL)", "", ""]);
        continue;
      }
      try {
        rows.push(...(await part.run(options)));
      } catch (error) {
        console.log(`${name}: FAILED: ${(error as Error).stack ?? String(error)}`);
        rows.push([name, "failed (see above)", "", "FAILED"]);
        await embedded?.herald.stop();
        embedded = undefined;
      } finally {
        if (name === "healthz" || (name === "rss" && !wanted.includes("healthz"))) {
          await embedded?.herald.stop();
          embedded = undefined;
        }
      }
    }
  } finally {
    await stopAllHeraldProcesses();
  }
  console.log("");
  printTable(rows);
  console.log(`load average after: ${load()}`);
}
