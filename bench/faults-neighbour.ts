/**
 * Part `neighbour` of the faults bench: is a healthy subscription starved by a slow one on the same
 * origin? Real PostgreSQL, the in-process sequencer and delivery worker, one loopback endpoint with
 * two paths: `/fast` answers at once, `/slow` after 14 s (inside the 15 s delivery timeout, so its
 * pushes succeed, slowly). The healthy subscription (default maxConcurrency) gets a steady
 * HEALTHY_RATE events/s on table "1"; the slow one (maxConcurrency 64) gets events on table "2",
 * enough records at once to keep its 64 pushes in flight.
 *
 * Phase 1 measures the healthy subscription alone; phase 2, on the same database, starts the slow
 * subscription's events and measures again. Printed: the healthy subscription's delivered events/s
 * and p99 latency (commit → receipt) in each, and their ratio (target ≥ 0.8).
 */
import { loadConfig } from "../src/config/config.js";
import { startDeliveryWorker } from "../src/delivery/delivery-worker.js";
import { bootstrap } from "../src/api/bootstrap.js";
import { createLogger } from "../src/logger.js";
import { startSequencer } from "../src/sequencer/sequencer.js";
import { appendChangeEvents } from "../src/storage/change-event-repository.js";
import { LogSignals } from "../src/storage/log-signals.js";
import { PostgresDatabase } from "../src/storage/postgres-database.js";
import { insertSubscription } from "../src/storage/subscription-repository.js";
import { findEntityByName, firstLicenceId } from "../src/storage/tenancy-repository.js";
import type { BenchOptions } from "./bench-support.js";
import { benchSecrets, createBenchDatabase, fixed, profileEvent } from "./bench-support.js";
import type { ResultRow } from "./faults-support.js";
import {
  FAULTS_ADMIN_KEY,
  sleep,
  startPushRecorder,
  subscriptionSettings,
  until,
  verdict,
} from "./faults-support.js";
import { percentile } from "./closed-loop.js";

const SLOW_MS = 14_000;
const SLOW_CONCURRENCY = 64;
/** The healthy subscription's events per second, written in batches every 100 ms. */
const HEALTHY_RATE = 100;
const RECORDS = 1_000;
/** The slow subscription's events: a first burst on distinct records, then a few per second. */
const SLOW_BURST = 2 * SLOW_CONCURRENCY;
const SLOW_RATE = 10;
const logger = createLogger("silent");

interface Arrival {
  receivedAt: number;
  /** Undefined when the push came before the writer had noted the commit time. */
  latencyMs: number | undefined;
}

interface Window {
  eventsPerSecond: number;
  p50: number;
  p99: number;
}

function measure(arrivals: readonly Arrival[], from: number, to: number): Window {
  const inside = arrivals.filter((a) => a.receivedAt >= from && a.receivedAt < to);
  const latencies = inside.flatMap((a) => (a.latencyMs === undefined ? [] : [a.latencyMs]));
  return {
    eventsPerSecond: inside.length / ((to - from) / 1000),
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
  };
}

/** Writes `perTick` events of table `sourceId` every `tickMs`, after `burst` at once. */
function startWriter(
  db: PostgresDatabase,
  logSignals: LogSignals,
  entity: number,
  plan: { sourceId: string; perTick: number; tickMs: number; burst?: number },
  committed: Map<string, number>,
) {
  let running = true;
  let next = 0;
  const batch = (size: number) => {
    const events = Array.from({ length: size }, (_, i) => {
      const n = next + i;
      const record = n % RECORDS;
      const version = Math.floor(n / RECORDS) + 1;
      return { ...profileEvent(entity, record, version), sourceId: plan.sourceId };
    });
    next += size;
    return events;
  };
  const done = (async () => {
    if (plan.burst)
      await db.transaction((tx) => appendChangeEvents(tx, batch(plan.burst!), logSignals));
    while (running) {
      const started = Date.now();
      const events = batch(plan.perTick);
      await db.transaction((tx) => appendChangeEvents(tx, events, logSignals));
      const at = Date.now();
      for (const e of events) committed.set(`${plan.sourceId}:${e.recordKey}:${e.version}`, at);
      await sleep(Math.max(0, plan.tickMs - (Date.now() - started)));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await done;
    },
  };
}

export async function neighbour(options: BenchOptions): Promise<ResultRow[]> {
  const bench = await createBenchDatabase(options.adminUrl);
  const db = new PostgresDatabase({ connectionString: bench.url, maxConnections: 10 });
  const writerDb = new PostgresDatabase({ connectionString: bench.url, maxConnections: 2 });
  const committed = new Map<string, number>();
  const arrivals: Arrival[] = [];
  let slowPushes = 0;
  const recorder = await startPushRecorder({
    holdMs: { "/slow": SLOW_MS },
    keep: () => false,
    onPush: (push) => {
      if (push.path === "/slow") {
        slowPushes++;
        return;
      }
      for (const data of push.data) {
        const event = data._event as { version: number };
        const at = committed.get(`1:${String(data.profileId)}:${event.version}`);
        arrivals.push({
          receivedAt: push.receivedAt,
          latencyMs: at === undefined ? undefined : push.receivedAt - at,
        });
      }
    },
  });
  const stops: (() => Promise<void>)[] = [];
  try {
    await bootstrap(db, { defaultEntity: "bench", adminApiKey: FAULTS_ADMIN_KEY });
    const entity = (await findEntityByName(db, await firstLicenceId(db), "bench"))!.id;
    await insertSubscription(
      db,
      benchSecrets(),
      entity,
      subscriptionSettings(`${recorder.origin}/fast`),
    );
    await insertSubscription(
      db,
      benchSecrets(),
      entity,
      subscriptionSettings(`${recorder.origin}/slow`, {
        onElementId: "2",
        maxConcurrency: SLOW_CONCURRENCY,
      }),
    );
    const logSignals = new LogSignals();
    const sequencer = await startSequencer({ db, logSignals, logger });
    stops.push(() => sequencer.stop());
    const worker = await startDeliveryWorker({
      db,
      logSignals,
      logger,
      secrets: benchSecrets(),
      config: {
        ...loadConfig({ env: {} }),
        allowInsecureTargets: true,
        workerId: "bench-neighbour",
      },
    });
    stops.push(() => worker.stop());
    await sleep(500); // leases claimed

    // The writers' pool is another process's: they pace their NOTIFY with signals of their own.
    const writerSignals = new LogSignals();
    const healthy = startWriter(
      writerDb,
      writerSignals,
      entity,
      { sourceId: "1", perTick: HEALTHY_RATE / 10, tickMs: 100 },
      committed,
    );
    stops.push(() => healthy.stop());
    await sleep(options.warmupMs);
    let from = Date.now();
    await sleep(options.durationMs);
    const alone = measure(arrivals, from, Date.now());

    const slow = startWriter(
      writerDb,
      writerSignals,
      entity,
      { sourceId: "2", perTick: SLOW_RATE, tickMs: 1000, burst: SLOW_BURST },
      new Map(),
    );
    stops.push(() => slow.stop());
    await until(() => recorder.open() >= SLOW_CONCURRENCY, 10_000);
    await sleep(options.warmupMs);
    from = Date.now();
    await sleep(options.durationMs);
    const beside = measure(arrivals, from, Date.now());
    const slowOpen = recorder.open();

    const ratio = beside.eventsPerSecond / alone.eventsPerSecond;
    const ms = (value: number) => (Number.isFinite(value) ? fixed(value, 1) : "—");
    console.log(
      `neighbour: healthy subscription at ${HEALTHY_RATE} events/s written: alone ${fixed(alone.eventsPerSecond)} events/s ` +
        `(p50 ${ms(alone.p50)} ms, p99 ${ms(alone.p99)} ms); beside a ${SLOW_MS / 1000} s endpoint on the same origin ` +
        `(maxConcurrency ${SLOW_CONCURRENCY}, ${slowOpen} pushes open at the end, ${slowPushes} received) ` +
        `${fixed(beside.eventsPerSecond)} events/s (p50 ${ms(beside.p50)} ms, p99 ${ms(beside.p99)} ms); ratio ${fixed(ratio, 2)}`,
    );
    return [
      [
        `healthy throughput beside a ${SLOW_MS / 1000} s endpoint, same origin / alone`,
        `${fixed(ratio, 2)} (${fixed(beside.eventsPerSecond)} / ${fixed(alone.eventsPerSecond)} ev/s)`,
        "≥ 0.8",
        verdict(ratio >= 0.8),
      ],
      [
        "healthy p99 latency commit → receipt, beside / alone (ms)",
        `${ms(beside.p99)} / ${ms(alone.p99)}`,
        "—",
        "",
      ],
    ];
  } finally {
    // The endpoint goes first: the slow pushes it holds end at once instead of after 14 s.
    await recorder.close();
    for (const stop of stops.reverse()) await stop().catch(() => {});
    await writerDb.close().catch(() => {});
    await db.close().catch(() => {});
    await bench.drop();
  }
}
