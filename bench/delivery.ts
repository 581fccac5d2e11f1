/**
 * `npm run bench -- delivery`: the delivery engine on real PostgreSQL, pushing to a receiver on
 * loopback. Four measurements, each printed with its target:
 *
 * 1. ONE_BY_ONE drain of a backlog spread over 10,000 records, against the ceiling taken in the same
 *    run: undici posting the same bodies to the same receiver with the same concurrency (ratio ≥ 0.3).
 * 2. BULK (maxBlockSize 500) drain of a backlog inserted straight into the inbox and stamped
 *    (≥ 100,000 events/s).
 * 3. Latency commit → receipt at a steady 1,000 events/s ONE_BY_ONE (p50 < 5 ms, p99 < 25 ms), measured
 *    after a warm-up (`--warmup`, default 2 s) at the same rate.
 * 4. Peak RSS of a worker process (`herald start --role worker`) draining a 1,000,000-event
 *    backlog (< 300 MB).
 *
 * HERALD_BENCH_DELIVERY=throughput,bulk,latency,memory picks parts (`HERALD_BENCH_DELIVERY=bulk` runs
 * only the BULK drain); HERALD_BENCH_MEMORY_EVENTS and HERALD_BENCH_BULK_EVENTS change the backlogs.
 *
 * The receiver is a real HTTP server that reads every body; it counts the events in each (one
 * `"_event":` member per data object, found with Buffer.indexOf) instead of parsing the JSON, and the
 * BULK part fails if fewer events arrived than were drained. The BULK receiver runs in a process of
 * its own (receiver-process.ts), as a real endpoint does, so its HTTP parsing does not share the
 * worker's event loop; it also checks every 50th push in full (signature, webhook-id, JSON) and the
 * part fails if one does not hold. The BULK part prints the CPU time per event of this process (the
 * worker), of the PostgreSQL backends and, apart, of the receiver: CPU per event moves much less
 * with the machine's load than events/s does.
 */
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { Agent, request } from "undici";
import { bootstrap } from "../src/api/bootstrap.js";
import { loadConfig } from "../src/config/config.js";
import type { DeliveryWorker } from "../src/delivery/delivery-worker.js";
import { startDeliveryWorker } from "../src/delivery/delivery-worker.js";
import { buildEnvelope, toDataObject } from "../src/domain/event-payload.js";
import type { Subscription, SubscriptionSettings } from "../src/domain/subscription.js";
import { SUBSCRIPTION_DEFAULTS } from "../src/domain/subscription.js";
import { createLogger } from "../src/logger.js";
import { startSequencer } from "../src/sequencer/sequencer.js";
import {
  appendChangeEvents,
  LOG_CHANNEL,
  readLog,
  readLogHead,
} from "../src/storage/change-event-repository.js";
import type { Database } from "../src/storage/database.js";
import { LogSignals } from "../src/storage/log-signals.js";
import { PostgresDatabase } from "../src/storage/postgres-database.js";
import { stampPendingEvents } from "../src/storage/sequencer-repository.js";
import { insertSubscription } from "../src/storage/subscription-repository.js";
import { findEntityByName, firstLicenceId } from "../src/storage/tenancy-repository.js";
import type { BenchOptions } from "./bench-support.js";
import { countEvents } from "./event-count.js";
import { startReceiverProcess } from "./receiver-launch.js";
import {
  cpuSecondsOf,
  BENCH_SECRET_KEY,
  benchSecrets,
  createBenchDatabase,
  fixed,
  HERALD_NODE_FLAGS,
  postgresUnavailable,
  printTable,
  profileEvent,
} from "./bench-support.js";

const ENTITY = "bench";
/** The subscriptions' signing secret (the BULK receiver checks signatures with it). */
export const BENCH_SECRET = `whsec_${Buffer.alloc(32, 7).toString("base64")}`;
export const RECORDS = 10_000;
const logger = createLogger("silent");
const rows: string[][] = [["measure", "value", "target", "verdict"]];
const verdict = (ok: boolean) => (ok ? "ok" : "MISSED");

// Fixtures ----------------------------------------------------------------------------------------

export interface Setup {
  db: Database;
  /** This bench process's log signals on `db`: its writers, sequencer and workers share them. */
  logSignals: LogSignals;
  url: string;
  entity: number;
  drop(): Promise<void>;
}

export async function setUp(options: BenchOptions): Promise<Setup> {
  const bench = await createBenchDatabase(options.adminUrl);
  const db = new PostgresDatabase({ connectionString: bench.url, maxConnections: 10 });
  await bootstrap(db, {
    defaultEntity: ENTITY,
    adminApiKey: "hk_bench_delivery_admin_key_0123456789",
  });
  const entity = (await findEntityByName(db, await firstLicenceId(db), ENTITY))!.id;
  return {
    db,
    logSignals: new LogSignals(),
    url: bench.url,
    entity,
    drop: async () => {
      await db.close();
      await bench.drop();
    },
  };
}

/**
 * Appends `total` events over RECORDS records (event i: record i % RECORDS, version
 * i / RECORDS + 1, exactly what profileEvent builds), generated by PostgreSQL in one INSERT per
 * 100,000 events instead of shipped from here as JSON (a 1M backlog took minutes), then stamps them.
 */
async function insertBacklog(setup: Setup, total: number): Promise<void> {
  const chunk = 100_000;
  for (let start = 0; start < total; start += chunk) {
    await setup.db.query(
      `INSERT INTO change_events
         (entity_id, source, source_id, event_type, record_key, keys, state, fields, previous, extra,
          version, declared_events, origin)
       SELECT $1, 'PROFILE_TABLE', '1', 'UPDATE', (i % $2)::text,
              jsonb_build_object('profileId', i % $2, 'emailAddress', 'customer' || (i % $2) || '@example.com'),
              jsonb_build_object('profileId', i % $2, 'emailAddress', 'customer' || (i % $2) || '@example.com',
                                 'firstName', 'Ann', 'counter', i / $2 + 1, 'tier', 'GOLD'),
              '["counter"]', jsonb_build_object('counter', i / $2), '{}', i / $2 + 1, '[]',
              '{"kind": "SYSTEM"}'
         FROM generate_series($3::bigint, $4::bigint) AS i
        ORDER BY i`,
      [setup.entity, RECORDS, start, Math.min(total, start + chunk) - 1],
    );
  }
  while ((await stampPendingEvents(setup.db, 50_000)).stamped > 0);
}

/**
 * HERALD_BENCH_PROFILE=<dir>: a CPU profile of this process while `fn` runs, written to
 * `<dir>/delivery-<name>.cpuprofile`, and the ten functions with the most self time printed.
 */
async function profiled<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const dir = process.env.HERALD_BENCH_PROFILE;
  if (!dir) return fn();
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.setSamplingInterval", { interval: 500 });
  await session.post("Profiler.start");
  try {
    return await fn();
  } finally {
    const { profile } = await session.post("Profiler.stop");
    session.disconnect();
    writeFileSync(join(dir, `delivery-${name}.cpuprofile`), JSON.stringify(profile));
    const self = new Map<string, number>();
    const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
    for (const id of profile.samples ?? []) {
      const frame = nodes.get(id)?.callFrame;
      if (!frame) continue;
      const where = `${frame.functionName || "(anonymous)"} ${frame.url.split("/").slice(-2).join("/")}:${frame.lineNumber + 1}`;
      self.set(where, (self.get(where) ?? 0) + 1);
    }
    const total = profile.samples?.length ?? 1;
    const top = [...self].sort((a, b) => b[1] - a[1]).slice(0, 10);
    console.log(`  CPU profile (${name}), self time of this process:`);
    for (const [where, count] of top)
      console.log(`    ${fixed((count / total) * 100, 1)}%  ${where}`);
  }
}

export interface CpuMeter {
  /** CPU seconds of this process (worker and receiver) and of the bench database's backends. */
  stop(): Promise<{ benchSeconds: number; databaseSeconds: number }>;
}

/**
 * Counts the CPU time spent while a drain runs: this process (the worker, the receiver, the bench
 * loop) and the PostgreSQL backends serving the bench database (server on this host, read from
 * /proc). Throughput on a loaded 2-core machine moves with the load; CPU time per event does much
 * less, and 100,000 events/s on two cores needs the whole path under 20 µs of CPU per event.
 */
export async function startCpuMeter(db: Database): Promise<CpuMeter> {
  const backends = async () =>
    (
      await db.query<{ pid: number }>(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()",
      )
    ).rows.map((row) => row.pid);
  const before = new Map((await backends()).map((pid) => [pid, cpuSecondsOf(pid)]));
  const usage = process.cpuUsage();
  return {
    stop: async () => {
      const used = process.cpuUsage(usage);
      let databaseSeconds = 0;
      for (const pid of await backends())
        databaseSeconds += cpuSecondsOf(pid) - (before.get(pid) ?? 0);
      return { benchSeconds: (used.user + used.system) / 1e6, databaseSeconds };
    },
  };
}

export async function subscribeFrom(
  setup: Setup,
  targetUrl: string,
  settings: Partial<SubscriptionSettings>,
  watermark: number | "head",
): Promise<Subscription> {
  const sub = await insertSubscription(setup.db, benchSecrets(), setup.entity, {
    on: "PROFILE_TABLE",
    onElementId: "1",
    eventType: "UPDATE",
    onFields: [],
    targetUrl,
    headers: {},
    isActive: true,
    pushMode: SUBSCRIPTION_DEFAULTS.pushMode,
    maxBlockSize: SUBSCRIPTION_DEFAULTS.maxBlockSize,
    lingerMs: SUBSCRIPTION_DEFAULTS.lingerMs,
    maxWaitMs: SUBSCRIPTION_DEFAULTS.maxWaitMs,
    maxConcurrency: SUBSCRIPTION_DEFAULTS.maxConcurrency,
    includePrevious: false,
    conditions: null,
    secret: BENCH_SECRET,
    ...settings,
  });
  if (watermark !== "head")
    await setup.db.query("UPDATE webhook_subscriptions SET watermark = $2 WHERE id = $1", [
      sub.id,
      watermark,
    ]);
  return sub;
}

async function watermarkOf(db: Database, id: number): Promise<number> {
  const { rows: found } = await db.query<{ watermark: number }>(
    "SELECT watermark FROM webhook_subscriptions WHERE id = $1",
    [id],
  );
  return found[0]?.watermark ?? 0;
}

/** Resolves with the elapsed ms when the subscription's watermark reaches `head`. */
async function drained(db: Database, id: number, head: number, startedAt: number): Promise<number> {
  const deadline = Date.now() + 600_000;
  while ((await watermarkOf(db, id)) < head) {
    if (Date.now() > deadline) throw new Error("the backlog did not drain in 10 minutes");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return performance.now() - startedAt;
}

export function startWorker(setup: Setup, workerId: string): Promise<DeliveryWorker> {
  return startDeliveryWorker({
    db: setup.db,
    logSignals: setup.logSignals,
    logger,
    secrets: benchSecrets(),
    config: { ...loadConfig({ env: {} }), allowInsecureTargets: true, workerId },
  });
}

interface Receiver {
  url: string;
  requests: number;
  /** Data objects received, counted by their `"_event":` member (see countEvents). */
  events: number;
  onBody?: (body: string, at: number) => void;
  close(): Promise<void>;
}

/**
 * A minimal loopback endpoint: reads every body, counts the events in it without parsing the JSON
 * (countEvents; the latency part parses them), and answers 200 as soon as the body is in.
 */
async function startReceiver(): Promise<Receiver> {
  const receiver: Receiver = { url: "", requests: 0, events: 0, close: async () => {} };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    const carry = { tail: Buffer.alloc(0) };
    req.on("data", (chunk: Buffer) => {
      receiver.events += countEvents(chunk, carry);
      if (receiver.onBody) chunks.push(chunk);
    });
    req.on("end", () => {
      receiver.requests++;
      if (receiver.onBody)
        receiver.onBody(
          Buffer.concat(chunks).toString("utf8"),
          performance.timeOrigin + performance.now(),
        );
      res.writeHead(200, { "content-length": "0" });
      res.end();
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  receiver.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return receiver;
}

function loadAverage(): string {
  return readFileSync("/proc/loadavg", "utf8").split(" ")[0] ?? "?";
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

// 1. ONE_BY_ONE against the ceiling ---------------------------------------------------------------

async function throughput(options: BenchOptions): Promise<void> {
  const total = 50_000;
  const setup = await setUp(options);
  const receiver = await startReceiver();
  try {
    await insertBacklog(setup, total);
    const head = await readLogHead(setup.db);
    const sub = await subscribeFrom(setup, receiver.url, {}, 0);
    const started = performance.now();
    const worker = await startWorker(setup, "bench-one-by-one");
    const heraldMs = await profiled("one-by-one", () => drained(setup.db, sub.id, head, started));
    await worker.stop();
    const heraldRate = (total / heraldMs) * 1000;

    // The ceiling: the same bodies, the same receiver, the same concurrency, nothing else.
    const bodies: string[] = [];
    for (let after = 0; bodies.length < total;) {
      const events = await readLog(setup.db, after, 5_000);
      if (events.length === 0) break;
      for (const event of events) {
        const data = toDataObject(event, { entityName: ENTITY, includePrevious: false });
        bodies.push(JSON.stringify(buildEnvelope(crypto.randomUUID(), sub, data)));
      }
      after = events.at(-1)!.position;
    }
    const agent = new Agent({ connections: 64, keepAliveTimeout: 30_000 });
    let next = 0;
    const ceilingStarted = performance.now();
    await Promise.all(
      Array.from({ length: sub.maxConcurrency }, async () => {
        while (next < bodies.length) {
          const body = bodies[next++]!;
          const response = await request(receiver.url, {
            method: "POST",
            dispatcher: agent,
            headers: { "content-type": "application/json" },
            body,
          });
          await response.body.dump();
        }
      }),
    );
    const ceilingMs = performance.now() - ceilingStarted;
    await agent.close();
    const ceilingRate = (bodies.length / ceilingMs) * 1000;
    const ratio = heraldRate / ceilingRate;
    console.log(
      `ONE_BY_ONE: ${total} events over ${RECORDS} records, concurrency ${sub.maxConcurrency}: ` +
        `Herald ${fixed(heraldRate)} events/s (${fixed(heraldMs)} ms), ceiling ${fixed(ceilingRate)} posts/s, ratio ${fixed(ratio, 2)}`,
    );
    rows.push(["ONE_BY_ONE delivered events/s", fixed(heraldRate), "", ""]);
    rows.push(["ONE_BY_ONE ceiling posts/s (same bodies)", fixed(ceilingRate), "", ""]);
    rows.push(["ONE_BY_ONE ratio to ceiling", fixed(ratio, 2), ">= 0.30", verdict(ratio >= 0.3)]);
  } finally {
    await receiver.close();
    await setup.drop();
  }
}

// 2. BULK drain -------------------------------------------------------------------------------------

async function bulk(options: BenchOptions): Promise<void> {
  const total = Number(process.env.HERALD_BENCH_BULK_EVENTS ?? 200_000);
  const setup = await setUp(options);
  const receiver = await startReceiverProcess(BENCH_SECRET);
  try {
    await insertBacklog(setup, total);
    const head = await readLogHead(setup.db);
    const sub = await subscribeFrom(
      setup,
      receiver.url,
      { pushMode: "BULK", maxBlockSize: 500 },
      0,
    );
    const load = loadAverage();
    const meter = await startCpuMeter(setup.db);
    const receiverCpu = cpuSecondsOf(receiver.pid);
    const started = performance.now();
    const worker = await startWorker(setup, "bench-bulk");
    const ms = await profiled("bulk", () => drained(setup.db, sub.id, head, started));
    const cpu = await meter.stop();
    const receiverSeconds = cpuSecondsOf(receiver.pid) - receiverCpu;
    await worker.stop();
    const got = await receiver.counts();
    const rate = (total / ms) * 1000;
    const perEvent = (seconds: number) => (seconds / total) * 1e6;
    console.log(
      `BULK 500: ${total} events drained in ${fixed(ms)} ms (${got.requests} blocks, ${got.events} events received, ${got.checked} checked in full): ${fixed(rate)} events/s, load average ${load} -> ${loadAverage()}`,
    );
    console.log(
      `  CPU per event: worker ${fixed(perEvent(cpu.benchSeconds), 1)} µs, PostgreSQL backends ${fixed(perEvent(cpu.databaseSeconds), 1)} µs, ` +
        `total ${fixed(perEvent(cpu.benchSeconds + cpu.databaseSeconds), 1)} µs (100,000 events/s on 2 cores needs < 20); ` +
        `the receiver process besides: ${fixed(perEvent(receiverSeconds), 1)} µs`,
    );
    if (got.events < total)
      throw new Error(`the receiver counted ${got.events} events of the ${total} drained`);
    if (got.rejected > 0)
      throw new Error(
        `the receiver rejected ${got.rejected} of the ${got.checked} pushes it checked`,
      );
    rows.push(["BULK(500) delivered events/s", fixed(rate), ">= 100000", verdict(rate >= 100_000)]);
    rows.push([
      "BULK(500) CPU per event, worker / PostgreSQL (µs)",
      `${fixed(perEvent(cpu.benchSeconds), 1)} / ${fixed(perEvent(cpu.databaseSeconds), 1)}`,
      "sum < 20",
      verdict(perEvent(cpu.benchSeconds + cpu.databaseSeconds) < 20),
    ]);
  } finally {
    await receiver.close();
    await setup.drop();
  }
}

// 3. Latency at a steady 1,000 events/s -------------------------------------------------------------

async function latency(options: BenchOptions): Promise<void> {
  const setup = await setUp(options);
  const receiver = await startReceiver();
  const sequencer = await startSequencer({ db: setup.db, logSignals: setup.logSignals, logger });
  const committedAt = new Map<string, number>();
  const receivedAt = new Map<string, number>();
  // Receipts are matched with commits after the run: on a stalled event loop a push can arrive
  // before the writer's code has noted its commit (it was then never counted, and the bench waited
  // 10 s for it).
  receiver.onBody = (body, at) => {
    const data = (JSON.parse(body) as { data: { profileId: string; _event: { version: number } } })
      .data;
    receivedAt.set(`${data.profileId}:${data._event.version}`, at);
  };
  // When each log head was announced (the sequencer's NOTIFY, as a LISTENing worker sees it).
  const announced: { head: number; at: number }[] = [];
  const unlisten = await setup.db.listen(LOG_CHANNEL, (payload) => {
    if (/^\d+$/.test(payload))
      announced.push({ head: Number(payload), at: performance.timeOrigin + performance.now() });
  });
  try {
    await subscribeFrom(setup, receiver.url, {}, "head");
    const worker = await startWorker(setup, "bench-latency");
    await new Promise((resolve) => setTimeout(resolve, 500));
    const versions = new Array<number>(RECORDS).fill(0);
    const rate = 1_000;
    const duration = options.durationMs;
    // The first events meet cold code and new pool connections: a warm-up at the same rate is not
    // measured (its events are neither counted nor sampled).
    const warmup = options.warmupMs;
    const start = performance.now();
    let sent = 0;
    // Four writers, each one event per transaction, paced on a common schedule of 1 event per ms.
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        for (;;) {
          const i = sent++;
          const due = start + (i * 1000) / rate;
          if (due - start > warmup + duration) return;
          const wait = due - performance.now();
          if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
          const record = Math.floor(Math.random() * RECORDS);
          const version = ++versions[record]!;
          await setup.db.transaction((tx) =>
            appendChangeEvents(tx, [profileEvent(setup.entity, record, version)], setup.logSignals),
          );
          // What capture does after its commits (profile-upsert.ts): wake this process's sequencer.
          setup.logSignals.inboxCommitted();
          if (due - start >= warmup)
            committedAt.set(`${record}:${version}`, performance.timeOrigin + performance.now());
        }
      }),
    );
    const written = committedAt.size;
    const received = () => [...committedAt.keys()].filter((key) => receivedAt.has(key)).length;
    const deadline = Date.now() + 10_000;
    while (received() < written && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 50));
    await worker.stop();
    const samples: number[] = [];
    for (const [key, committed] of committedAt) {
      const at = receivedAt.get(key);
      if (at !== undefined) samples.push(Math.max(0, at - committed));
    }
    const sorted = [...samples].sort((a, b) => a - b);
    const p50 = percentile(sorted, 50);
    const p99 = percentile(sorted, 99);
    const achieved = (written / duration) * 1000;
    console.log(
      `latency ONE_BY_ONE at ${fixed(achieved)} events/s: ${samples.length}/${written} received, p50 ${fixed(p50, 1)} ms, p90 ${fixed(percentile(sorted, 90), 1)} ms, p99 ${fixed(p99, 1)} ms, max ${fixed(sorted.at(-1) ?? 0, 1)} ms`,
    );
    // How much of it is the sequencer's part: insert → stamped in the log (same clock: the server's),
    // and the rest: stamped → received (the NOTIFY, the worker's read and the push), the server's
    // clock set against this process's with the offset measured below.
    const { rows: stamps } = await setup.db.query<{
      key: string;
      position: number;
      inserted: number;
      stamped: number;
    }>(
      `SELECT record_key || ':' || version AS key, position,
              (extract(epoch FROM occurred_at) * 1000)::float8 AS inserted,
              (extract(epoch FROM sequenced_at) * 1000)::float8 AS stamped
         FROM change_events WHERE sequenced_at IS NOT NULL`,
    );
    // The server's clock minus this process's (timeOrigin + now), from the quickest of a few reads.
    let offset = 0;
    let quickest = Number.POSITIVE_INFINITY;
    for (let i = 0; i < 10; i++) {
      const before = performance.timeOrigin + performance.now();
      const { rows: clock } = await setup.db.query<{ ms: number }>(
        "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS ms",
      );
      const after = performance.timeOrigin + performance.now();
      if (after - before < quickest) {
        quickest = after - before;
        offset = clock[0]!.ms - (before + after) / 2;
      }
    }
    const sequencing: number[] = [];
    const afterStamp: number[] = [];
    const afterNotify: number[] = [];
    /** When the first head at or past `position` was announced. */
    const notifiedAt = (position: number): number | undefined => {
      let low = 0;
      let high = announced.length;
      while (low < high) {
        const mid = (low + high) >> 1;
        if (announced[mid]!.head < position) low = mid + 1;
        else high = mid;
      }
      return announced[low]?.at;
    };
    for (const stamp of stamps) {
      if (!committedAt.has(stamp.key)) continue; // warm-up
      sequencing.push(stamp.stamped - stamp.inserted);
      const received = receivedAt.get(stamp.key);
      if (received === undefined) continue;
      afterStamp.push(received + offset - stamp.stamped);
      const notified = notifiedAt(stamp.position);
      if (notified !== undefined) afterNotify.push(received - notified);
    }
    sequencing.sort((a, b) => a - b);
    afterStamp.sort((a, b) => a - b);
    afterNotify.sort((a, b) => a - b);
    console.log(
      `  of which insert → stamped by the sequencer: p50 ${fixed(percentile(sequencing, 50), 1)} ms, p99 ${fixed(percentile(sequencing, 99), 1)} ms; ` +
        `stamped → received (stamp commit, NOTIFY, read, push): p50 ${fixed(percentile(afterStamp, 50), 1)} ms, p99 ${fixed(percentile(afterStamp, 99), 1)} ms; ` +
        `NOTIFY seen → received (the worker's read and push): p50 ${fixed(percentile(afterNotify, 50), 1)} ms, p99 ${fixed(percentile(afterNotify, 99), 1)} ms`,
    );
    rows.push(["latency commit→receipt p50 (ms)", fixed(p50, 1), "< 5", verdict(p50 < 5)]);
    rows.push(["latency commit→receipt p99 (ms)", fixed(p99, 1), "< 25", verdict(p99 < 25)]);
  } finally {
    await unlisten();
    await sequencer.stop();
    await receiver.close();
    await setup.drop();
  }
}

// 4. Memory of a worker process draining a big backlog ----------------------------------------------

function rssOf(pid: number): { rss: number; peak: number } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
    return { rss: kb("VmRSS") * 1024, peak: kb("VmHWM") * 1024 };
  } catch {
    return { rss: 0, peak: 0 };
  }
}

async function memory(options: BenchOptions): Promise<void> {
  const total = Number(process.env.HERALD_BENCH_MEMORY_EVENTS ?? 1_000_000);
  const setup = await setUp(options);
  const receiver = await startReceiver();
  try {
    const filling = performance.now();
    await insertBacklog(setup, total);
    console.log(
      `memory: ${total} events inserted and stamped in ${fixed(performance.now() - filling)} ms`,
    );
    const head = await readLogHead(setup.db);
    const sub = await subscribeFrom(
      setup,
      receiver.url,
      { pushMode: "BULK", maxBlockSize: 500 },
      0,
    );
    const child = spawn(
      process.execPath,
      [...HERALD_NODE_FLAGS, "bin/herald.mjs", "start", "--role", "worker"],
      {
        cwd: new URL("..", import.meta.url).pathname,
        env: {
          ...process.env,
          DATABASE_URL: setup.url,
          HERALD_SECRET_KEY: BENCH_SECRET_KEY,
          HERALD_ALLOW_INSECURE_TARGETS: "true",
          HERALD_DEFAULT_ENTITY: ENTITY,
          HERALD_LOG_LEVEL: "warn",
          HERALD_WORKER_ID: "bench-memory",
        },
        stdio: ["ignore", "inherit", "inherit"],
      },
    );
    const pid = child.pid!;
    let peak = 0;
    const sampler = setInterval(() => (peak = Math.max(peak, rssOf(pid).rss)), 100);
    const started = performance.now();
    const ms = await drained(setup.db, sub.id, head, started);
    clearInterval(sampler);
    const { rss, peak: hwm } = rssOf(pid);
    peak = Math.max(peak, hwm);
    child.kill("SIGTERM");
    await new Promise((resolve) => child.once("exit", resolve));
    const mb = peak / 1024 / 1024;
    console.log(
      `memory: worker process drained ${total} events in ${fixed(ms)} ms (${fixed((total / ms) * 1000)} events/s, BULK 500); RSS at the end ${fixed(rss / 1024 / 1024)} MB, peak ${fixed(mb)} MB`,
    );
    rows.push([
      `worker peak RSS draining ${total} events (MB)`,
      fixed(mb),
      "< 300",
      verdict(mb < 300),
    ]);
  } finally {
    await receiver.close();
    await setup.drop();
  }
}

const PARTS: Record<string, (options: BenchOptions) => Promise<void>> = {
  throughput,
  bulk,
  latency,
  memory,
};

export async function run(options: BenchOptions): Promise<void> {
  const unavailable = await postgresUnavailable(options.adminUrl);
  if (unavailable) {
    console.log(`SKIPPED: the delivery bench needs PostgreSQL (${unavailable})`);
    return;
  }
  const wanted = (process.env.HERALD_BENCH_DELIVERY ?? Object.keys(PARTS).join(","))
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean);
  for (const name of wanted) {
    const part = PARTS[name];
    if (!part)
      throw new Error(
        `unknown delivery bench part '${name}'; known: ${Object.keys(PARTS).join(", ")}`,
      );
    await part(options);
  }
  console.log("");
  printTable(rows);
}
