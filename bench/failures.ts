/**
 * `npm run bench -- failures`: does one failing endpoint slow the others down, and is it hammered?
 * Real PostgreSQL, the in-process sequencer and delivery worker, ten ONE_BY_ONE subscriptions to
 * the same table, each pushing to its own loopback endpoint, while events are written faster than
 * the worker can push them (so the figures are the worker's capacity, not the write rate).
 *
 * Phase 1: all ten endpoints accept. Phase 2 (a fresh database, same load): endpoint #0 answers
 * 503 to every request. Measured over the same window in both phases: the events/s the nine other
 * subscriptions deliver, and their ratio (target ≥ 0.8: the failing subscription must not take the
 * capacity the healthy ones need). The failing endpoint's requests are counted against what its
 * schedule allows: circuitBreakerFailures + maxConcurrency attempts before the circuit opens, then
 * one probe per retry step whose cumulative delay (at its shortest, −20 % jitter) fits in the time
 * since its first failure, plus one (a probe may go at once when the circuit opens). The retry schedule runs on a clock CLOCK_FACTOR times faster than real
 * time (HERALD_BENCH_FAILURES_CLOCK), so a 10 s window covers several steps of the schedule.
 *
 * Benchmarks report; they never fail the run.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { loadavg } from "node:os";
import { bootstrap } from "../src/api/bootstrap.js";
import { loadConfig } from "../src/config/config.js";
import { scaledClock } from "../src/delivery/clock.js";
import { startDeliveryWorker } from "../src/delivery/delivery-worker.js";
import { DEFAULT_DELIVERY_TUNING } from "../src/delivery/delivery-tuning.js";
import { DEFAULT_RETRY_POLICY } from "../src/domain/retry-policy.js";
import { SUBSCRIPTION_DEFAULTS } from "../src/domain/subscription.js";
import { createLogger } from "../src/logger.js";
import { startSequencer } from "../src/sequencer/sequencer.js";
import { appendChangeEvents } from "../src/storage/change-event-repository.js";
import { LogSignals } from "../src/storage/log-signals.js";
import { PostgresDatabase } from "../src/storage/postgres-database.js";
import { insertSubscription } from "../src/storage/subscription-repository.js";
import { findEntityByName, firstLicenceId } from "../src/storage/tenancy-repository.js";
import type { BenchOptions } from "./bench-support.js";
import {
  benchSecrets,
  createBenchDatabase,
  fixed,
  postgresUnavailable,
  printTable,
  profileEvent,
} from "./bench-support.js";

const ENTITY = "bench";
const SUBSCRIPTIONS = 10;
const RECORDS = 10_000;
/** Events per write transaction, and write transactions per second at most. */
const WRITE_BATCH = 200;
const WRITES_PER_SECOND = 10;
const CLOCK_FACTOR = Number(process.env.HERALD_BENCH_FAILURES_CLOCK ?? 1_000);
/** Healthy/failing phase pairs (HERALD_BENCH_FAILURES_ROUNDS). */
const ROUNDS = Math.max(1, Number(process.env.HERALD_BENCH_FAILURES_ROUNDS ?? 2));
const logger = createLogger("silent");

// Endpoints --------------------------------------------------------------------------------------

interface Endpoint {
  url: string;
  /** Answer 503 to everything. */
  failing: boolean;
  requests: number;
  accepted: number;
  /** Real time of the first request answered with a failure. */
  firstFailureAt: number | undefined;
  /** Real times of the failed requests (HERALD_BENCH_FAILURES_TRACE=1 prints them). */
  failedAt: number[];
  close(): Promise<void>;
}

async function startEndpoint(): Promise<Endpoint> {
  const endpoint: Endpoint = {
    url: "",
    failing: false,
    requests: 0,
    accepted: 0,
    firstFailureAt: undefined,
    failedAt: [],
    close: async () => {},
  };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    req.on("end", () => {
      endpoint.requests++;
      if (endpoint.failing) endpoint.failedAt.push(Date.now());
      if (endpoint.failing) {
        endpoint.firstFailureAt ??= Date.now();
        res.writeHead(503).end("down for the benchmark");
      } else {
        endpoint.accepted++;
        res.writeHead(200).end();
      }
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  endpoint.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  endpoint.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return endpoint;
}

// Load -------------------------------------------------------------------------------------------

/** Writes WRITE_BATCH events per transaction, up to WRITES_PER_SECOND transactions a second. */
function startWriter(db: PostgresDatabase, entity: number) {
  // The writer's pool is another process's: its NOTIFY is paced by signals of its own.
  const logSignals = new LogSignals();
  let running = true;
  let written = 0;
  const done = (async () => {
    let next = 0;
    while (running) {
      const started = Date.now();
      const events = Array.from({ length: WRITE_BATCH }, (_, i) => {
        const n = next + i;
        return profileEvent(entity, n % RECORDS, Math.floor(n / RECORDS) + 1);
      });
      next += WRITE_BATCH;
      await db.transaction((tx) => appendChangeEvents(tx, events, logSignals));
      written += WRITE_BATCH;
      const wait = 1000 / WRITES_PER_SECOND - (Date.now() - started);
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    }
  })();
  return {
    written: () => written,
    stop: async () => {
      running = false;
      await done;
    },
  };
}

/** Retry steps (after the first attempt) whose cumulative shortest delay fits in `clockMs`. */
function probeStepsWithin(clockMs: number): number {
  const { scheduleMs, jitter } = DEFAULT_RETRY_POLICY;
  let total = 0;
  let steps = 0;
  for (let i = 1; i < scheduleMs.length; i++) {
    total += scheduleMs[i]! * (1 - jitter);
    if (total > clockMs) break;
    steps++;
  }
  return steps;
}

// One phase --------------------------------------------------------------------------------------

interface PhaseResult {
  /** Events/s of each of the nine healthy subscriptions over the window. */
  healthyRates: number[];
  writtenPerSecond: number;
  failing?: {
    requestsInWindow: number;
    requestsTotal: number;
    allowedTotal: number;
    sinceFirstFailureMs: number;
    state: string;
    parkedRecords: number;
  };
}

async function runPhase(options: BenchOptions, failingOne: boolean): Promise<PhaseResult> {
  const bench = await createBenchDatabase(options.adminUrl);
  const db = new PostgresDatabase({ connectionString: bench.url, maxConnections: 10 });
  const writerDb = new PostgresDatabase({ connectionString: bench.url, maxConnections: 2 });
  const endpoints: Endpoint[] = [];
  try {
    await bootstrap(db, {
      defaultEntity: ENTITY,
      adminApiKey: "hk_bench_failures_admin_key_0123456789",
    });
    const entity = (await findEntityByName(db, await firstLicenceId(db), ENTITY))!.id;
    const ids: number[] = [];
    for (let i = 0; i < SUBSCRIPTIONS; i++) {
      const endpoint = await startEndpoint();
      endpoint.failing = failingOne && i === 0;
      endpoints.push(endpoint);
      const sub = await insertSubscription(db, benchSecrets(), entity, {
        on: "PROFILE_TABLE",
        onElementId: "1",
        eventType: "UPDATE",
        onFields: [],
        targetUrl: endpoint.url,
        headers: {},
        isActive: true,
        pushMode: "ONE_BY_ONE",
        maxBlockSize: SUBSCRIPTION_DEFAULTS.maxBlockSize,
        lingerMs: SUBSCRIPTION_DEFAULTS.lingerMs,
        maxWaitMs: SUBSCRIPTION_DEFAULTS.maxWaitMs,
        maxConcurrency: SUBSCRIPTION_DEFAULTS.maxConcurrency,
        includePrevious: false,
        conditions: null,
        secret: `whsec_${Buffer.alloc(32, 7).toString("base64")}`,
      });
      ids.push(sub.id);
    }
    const logSignals = new LogSignals();
    const sequencer = await startSequencer({ db, logSignals, logger });
    const worker = await startDeliveryWorker({
      db,
      logSignals,
      logger,
      secrets: benchSecrets(),
      config: {
        ...loadConfig({ env: {} }),
        allowInsecureTargets: true,
        workerId: `bench-failures-${failingOne ? "one-failing" : "all-healthy"}`,
      },
      clock: scaledClock(CLOCK_FACTOR),
    });
    await new Promise((resolve) => setTimeout(resolve, 500)); // leases claimed
    const writer = startWriter(writerDb, entity);
    await new Promise((resolve) => setTimeout(resolve, options.warmupMs));
    const before = endpoints.map((e) => ({ accepted: e.accepted, requests: e.requests }));
    const writtenBefore = writer.written();
    const windowStart = Date.now();
    await new Promise((resolve) => setTimeout(resolve, options.durationMs));
    const windowEnd = Date.now();
    const after = endpoints.map((e) => ({ accepted: e.accepted, requests: e.requests }));
    const writtenAfter = writer.written();
    const seconds = (windowEnd - windowStart) / 1000;
    await writer.stop();

    let failing: PhaseResult["failing"];
    if (failingOne && process.env.HERALD_BENCH_FAILURES_TRACE) {
      const times = endpoints[0]!.failedAt;
      console.log(
        `  failing endpoint, ms after its first request: ${times.map((t) => t - times[0]!).join(" ")}`,
      );
    }
    if (failingOne) {
      const first = endpoints[0]!.firstFailureAt ?? windowEnd;
      const sinceFirstFailureMs = windowEnd - first;
      const { rows } = await db.query<{ state: string; parked: number }>(
        `SELECT state,
                (SELECT count(*)::int FROM parked_records p WHERE p.subscription_id = s.id) AS parked
           FROM webhook_subscriptions s WHERE id = $1`,
        [ids[0]],
      );
      failing = {
        requestsInWindow: after[0]!.requests - before[0]!.requests,
        requestsTotal: after[0]!.requests,
        allowedTotal:
          DEFAULT_DELIVERY_TUNING.circuitBreakerFailures +
          SUBSCRIPTION_DEFAULTS.maxConcurrency +
          probeStepsWithin(sinceFirstFailureMs * CLOCK_FACTOR) +
          1,
        sinceFirstFailureMs,
        state: rows[0]?.state ?? "?",
        parkedRecords: rows[0]?.parked ?? -1,
      };
    }
    await worker.stop();
    await sequencer.stop();
    return {
      healthyRates: endpoints
        .map((_, i) => (after[i]!.accepted - before[i]!.accepted) / seconds)
        .slice(1),
      writtenPerSecond: (writtenAfter - writtenBefore) / seconds,
      failing,
    };
  } finally {
    for (const endpoint of endpoints) await endpoint.close();
    await writerDb.close().catch(() => {});
    await db.close().catch(() => {});
    await bench.drop();
  }
}

// Report -----------------------------------------------------------------------------------------

const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);

export async function run(options: BenchOptions): Promise<void> {
  const unavailable = await postgresUnavailable(options.adminUrl);
  if (unavailable) {
    console.log(`skipped: PostgreSQL at ${options.adminUrl} is not reachable (${unavailable})`);
    return;
  }
  const load = () =>
    loadavg()
      .map((l) => l.toFixed(2))
      .join(", ");
  console.log(
    `${SUBSCRIPTIONS} ONE_BY_ONE subscriptions (maxConcurrency ${SUBSCRIPTION_DEFAULTS.maxConcurrency}), ` +
      `writes of ${WRITE_BATCH} events up to ${WRITES_PER_SECOND}/s, window ${options.durationMs / 1000} s ` +
      `after ${options.warmupMs / 1000} s warm-up, retry clock ×${CLOCK_FACTOR}; load average before: ${load()}`,
  );
  // Phases alternate (healthy, failing, healthy, failing…) so that a change in the machine's load
  // during the run weighs on both sides.
  const healthyRuns: PhaseResult[] = [];
  const failingRuns: PhaseResult[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    healthyRuns.push(await runPhase(options, false));
    failingRuns.push(await runPhase(options, true));
  }
  const rate = (r: PhaseResult) => sum(r.healthyRates);
  const perSub = (r: PhaseResult) =>
    `${fixed(Math.min(...r.healthyRates))}–${fixed(Math.max(...r.healthyRates))}`;
  const rows: string[][] = [
    ["phase", "written ev/s", "9 healthy: ev/s", "per sub", "failing endpoint requests"],
  ];
  for (let round = 0; round < ROUNDS; round++) {
    const healthy = healthyRuns[round]!;
    const oneFailing = failingRuns[round]!;
    const failing = oneFailing.failing!;
    rows.push(
      [
        `all ten healthy (${round + 1})`,
        fixed(healthy.writtenPerSecond),
        fixed(rate(healthy)),
        perSub(healthy),
        "—",
      ],
      [
        `one endpoint 503s (${round + 1})`,
        fixed(oneFailing.writtenPerSecond),
        fixed(rate(oneFailing)),
        perSub(oneFailing),
        `${failing.requestsInWindow} in the window, ${failing.requestsTotal} in ${fixed(failing.sinceFirstFailureMs / 1000, 1)} s (≤ ${failing.allowedTotal})`,
      ],
    );
  }
  printTable(rows);
  console.log("");
  const ratios = healthyRuns.map((h, i) => rate(failingRuns[i]!) / rate(h));
  // Pooled over the rounds (all failing-phase events over all healthy-phase events): a round that
  // hit a busy moment of the machine weighs by its events, not as one vote of two.
  const ratio = sum(failingRuns.map(rate)) / sum(healthyRuns.map(rate));
  const worst = failingRuns
    .map((r) => r.failing!)
    .reduce((a, b) =>
      b.requestsTotal - b.allowedTotal > a.requestsTotal - a.allowedTotal ? b : a,
    );
  const allCalm = failingRuns.every(
    (r) => r.failing!.state === "FAILING" && r.failing!.parkedRecords === 0,
  );
  const verdict = (ok: boolean) => (ok ? "ok" : "MISSED");
  printTable([
    ["measure", "value", "target", "verdict"],
    [
      `healthy throughput, one failing / all healthy (rounds: ${ratios.map((r) => fixed(r, 2)).join(", ")})`,
      fixed(ratio, 2),
      "≥ 0.8",
      verdict(ratio >= 0.8),
    ],
    [
      `failing endpoint requests in ${fixed(worst.sinceFirstFailureMs / 1000, 1)} s (${fixed((worst.sinceFirstFailureMs * CLOCK_FACTOR) / 3_600_000, 1)} h clock), worst round`,
      String(worst.requestsTotal),
      `≤ ${worst.allowedTotal}`,
      verdict(failingRuns.every((r) => r.failing!.requestsTotal <= r.failing!.allowedTotal)),
    ],
    [
      "failing subscription state / parked records, every round",
      allCalm
        ? "FAILING / 0"
        : failingRuns.map((r) => `${r.failing!.state} / ${r.failing!.parkedRecords}`).join("; "),
      "FAILING / 0",
      verdict(allCalm),
    ],
  ]);
  console.log(`load average after: ${load()}`);
}
