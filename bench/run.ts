/**
 * `npm run bench [-- <scenario>… ] [--duration=10] [--warmup=2] [--clients=16] [--events=N]`
 *
 * Runs the named scenarios (default: all of them, in the order below). Each scenario is a module
 * exporting `run(options: BenchOptions)`; to add one, write `bench/<name>.ts` and add a line to
 * SCENARIOS. Modules load lazily, so one scenario's imports cannot break another.
 * PostgreSQL: HERALD_BENCH_ADMIN_URL (default postgres://postgres@127.0.0.1:5432/postgres).
 */
import type { BenchOptions } from "./bench-support.js";
import { DEFAULT_BENCH_OPTIONS } from "./bench-support.js";

interface ScenarioModule {
  run(options: BenchOptions): Promise<void>;
}

const SCENARIOS: Record<string, { summary: string; load: () => Promise<ScenarioModule> }> = {
  capture: {
    summary: "API writes to logged events, against plain INSERTs on the same server",
    load: () => import("./capture.js"),
  },
  console: { summary: "console pages' p50/p95/max, 1M events", load: () => import("./console.js") },
  delivery: {
    summary: "pushes per second against a plain-undici ceiling, BULK drain, latency, worker memory",
    load: () => import("./delivery.js"),
  },
  export: {
    summary:
      "FULL CSV export of 1,000,000 profiles, against COPY (SELECT …) TO STDOUT of the same columns",
    load: () => import("./export.js"),
  },
  failures: {
    summary: "nine healthy subscriptions' throughput beside one whose endpoint fails everything",
    load: () => import("./failures.js"),
  },
  faults: {
    summary:
      "recovery after a database cut, worker takeover, a slow neighbour, the embedded default under load and idle",
    load: () => import("./faults.js"),
  },
  import: {
    summary: "1,000,000-row CSV import with a BULK subscription, against COPY of the same file",
    load: () => import("./import.js"),
  },
  scenarios: {
    summary:
      "100,000 profiles created into a scenario: runs/s beside the capture rate; 10,000 WAITs ending together",
    load: () => import("./scenarios.js"),
  },
  peers: {
    summary:
      "the same ONE_BY_ONE workload through Herald, graphile-worker + undici and pg-boss + undici",
    load: () => import("./peers.js"),
  },
};

function parseArguments(argv: string[]): { names: string[]; options: BenchOptions } {
  const options = { ...DEFAULT_BENCH_OPTIONS };
  const names: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith("--")) {
      names.push(arg);
      continue;
    }
    const [flag, inline] = arg.slice(2).split("=", 2) as [string, string | undefined];
    const value = inline ?? argv[++i];
    const number = Number(value);
    if (value === undefined || !Number.isFinite(number) || number <= 0)
      throw new Error(`--${flag} needs a positive number`);
    if (flag === "duration") options.durationMs = number * 1000;
    else if (flag === "warmup") options.warmupMs = number * 1000;
    else if (flag === "clients") options.clients = Math.round(number);
    else if (flag === "events") options.events = Math.round(number);
    else
      throw new Error(`unknown option --${flag}; use --duration, --warmup, --clients or --events`);
  }
  return { names, options };
}

const { names, options } = parseArguments(process.argv.slice(2));
const selected = names.length > 0 ? names : Object.keys(SCENARIOS);
for (const name of selected) {
  if (!SCENARIOS[name]) {
    console.error(
      `unknown scenario '${name}'; known: ${Object.entries(SCENARIOS)
        .map(([n, s]) => `${n} (${s.summary})`)
        .join(", ")}`,
    );
    process.exit(2);
  }
}
for (const name of selected) {
  console.log(`\n=== ${name} ===`);
  const scenario = await SCENARIOS[name]!.load();
  await scenario.run(options);
}
