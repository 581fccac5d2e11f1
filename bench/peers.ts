/**
 * `npm run bench -- peers [--events 50000] [--duration 10] [--warmup 2]`: Herald beside what a team
 * would otherwise build, graphile-worker + undici and pg-boss + undici (peer-systems.ts says how
 * each is set up), pushing the same ONE_BY_ONE workload: the same events (bench/delivery.ts's
 * profile UPDATEs over 10,000 records), the same bodies (Herald's payloads for those events, signed
 * the same way), the same receiver (receiver-process.ts, in a process of its own, checking every
 * 50th push in full), the same concurrency (8 requests in flight) and the same writers (4 concurrent
 * transactions), each system on a database of its own on the same PostgreSQL server. Herald runs
 * first: its log gives the peers their bodies.
 *
 * Two parts per system, in one run:
 * 1. Drain: `--events` events (default 50,000) written as fast as the writers go, BATCH events per
 *    transaction, while the system delivers. Events/s from the first write's start to the last
 *    receipt; commit → receipt latency of every event (at full load this is mostly the queue's wait,
 *    so it follows from the rate); CPU time per event of this process (writers and system) and of
 *    the system's PostgreSQL backends, which moves much less with the machine's load than events/s.
 * 2. Steady: STEADY_RATE events/s for `--duration` seconds after a `--warmup` at the same rate, one
 *    event per transaction (as bench/delivery.ts's latency part), commit → receipt p50/p95/p99.
 * The writer notes each commit's time and the receiver each push's arrival (both wall clocks of
 * this machine, to the µs). Herald's ratio is its drain events/s over each peer's.
 * Last, the HTTP alone: the drain's signed bodies POSTed from memory by the peers' sender at the same
 * concurrency to a receiver of the same kind, with no database and no writers. No system drains
 * faster than that on this machine, so it bounds the lead any of them can have over another.
 */
import { readFileSync } from "node:fs";
import { PostgresDatabase } from "../src/storage/postgres-database.js";
import type { BenchOptions } from "./bench-support.js";
import { fixed, postgresUnavailable, printTable } from "./bench-support.js";
import { BENCH_SECRET, percentile, RECORDS, startCpuMeter } from "./delivery.js";
import type { PushJobs, SystemUnderTest, WorkloadEvent } from "./peer-systems.js";
import {
  CONCURRENCY,
  eventKey,
  startGraphileWorker,
  startHerald,
  startPeerSender,
  startPgBoss,
  Teardown,
  WRITERS,
} from "./peer-systems.js";
import type { ReceiverProcess } from "./receiver-launch.js";
import { startReceiverProcess } from "./receiver-launch.js";

const DEFAULT_EVENTS = 50_000;
/** Events per writing transaction in the drain, so that the writers outpace every system. */
const BATCH = 100;
const STEADY_RATE = 1_000;
/** A system that has not delivered a part's events by then is reported as such. */
const DRAIN_DEADLINE_MS = 180_000;
const STEADY_DEADLINE_MS = 20_000;

const now = () => performance.timeOrigin + performance.now();

/** Event i of the workload: profile i % RECORDS, its (i / RECORDS + 1)-th version. */
function workloadEvent(i: number): WorkloadEvent {
  return { record: i % RECORDS, version: Math.floor(i / RECORDS) + 1 };
}

interface Latency {
  p50: number;
  p95: number;
  p99: number;
}

interface PartResult {
  latency: Latency;
  /** Events written but not received by the part's deadline. */
  missing: number;
}

interface DrainResult extends PartResult {
  rate: number;
  /** CPU µs per event of this process (writers and system) and of the system's PostgreSQL backends. */
  cpu: { node: number; postgres: number };
}

interface SystemResult {
  name: string;
  drain: DrainResult;
  steady: PartResult | undefined;
}

/** Commit → receipt of every event of `committed` the receiver saw. */
function latencyOf(committed: Map<string, number>, arrivals: Record<string, number>): PartResult {
  const samples: number[] = [];
  for (const [key, at] of committed) {
    const arrived = arrivals[key];
    if (arrived !== undefined) samples.push(Math.max(0, arrived - at));
  }
  samples.sort((a, b) => a - b);
  return {
    latency: {
      p50: percentile(samples, 50),
      p95: percentile(samples, 95),
      p99: percentile(samples, 99),
    },
    missing: committed.size - samples.length,
  };
}

/** Waits until the receiver has counted `events` events in all, or the deadline passes. */
async function received(receiver: ReceiverProcess, events: number, deadlineMs: number) {
  const deadline = Date.now() + deadlineMs;
  while ((await receiver.counts()).events < events && Date.now() < deadline)
    await new Promise((resolve) => setTimeout(resolve, 20));
}

async function drain(
  system: SystemUnderTest,
  receiver: ReceiverProcess,
  total: number,
): Promise<DrainResult> {
  const committed = new Map<string, number>();
  let next = 0;
  const db = new PostgresDatabase({ connectionString: system.databaseUrl, maxConnections: 1 });
  let started: number;
  let cpu: { benchSeconds: number; databaseSeconds: number };
  try {
    const meter = await startCpuMeter(db);
    started = now();
    await Promise.all(
      Array.from({ length: WRITERS }, async () => {
        while (next < total) {
          const first = next;
          next = Math.min(total, next + BATCH);
          const events = Array.from({ length: next - first }, (_, i) => workloadEvent(first + i));
          await system.write(events);
          const at = now();
          for (const event of events) committed.set(eventKey(event), at);
        }
      }),
    );
    await received(receiver, total, DRAIN_DEADLINE_MS);
    cpu = await meter.stop();
  } finally {
    await db.close();
  }
  const arrivals = await receiver.arrivals();
  let last = started;
  for (const key of committed.keys()) last = Math.max(last, arrivals[key] ?? started);
  const part = latencyOf(committed, arrivals);
  return {
    ...part,
    rate: part.missing > 0 ? Number.NaN : (total / (last - started)) * 1000,
    cpu: {
      node: (cpu.benchSeconds / total) * 1e6,
      postgres: (cpu.databaseSeconds / total) * 1e6,
    },
  };
}

/** STEADY_RATE events/s from workload event `first` on, the warm-up's events not measured. */
async function steady(
  system: SystemUnderTest,
  receiver: ReceiverProcess,
  first: number,
  options: BenchOptions,
): Promise<PartResult> {
  const committed = new Map<string, number>();
  const count = steadyEvents(options);
  const start = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: WRITERS }, async () => {
      while (next < count) {
        const i = next++;
        const due = (i * 1000) / STEADY_RATE;
        const wait = start + due - performance.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        const event = workloadEvent(first + i);
        await system.write([event]);
        if (due >= options.warmupMs) committed.set(eventKey(event), now());
      }
    }),
  );
  await received(receiver, first + count, STEADY_DEADLINE_MS);
  return latencyOf(committed, await receiver.arrivals());
}

/** How many events the steady part writes (the same for every system: its schedule is fixed). */
function steadyEvents(options: BenchOptions): number {
  return Math.floor(((options.warmupMs + options.durationMs) * STEADY_RATE) / 1000) + 1;
}

/** Both parts on a fresh system and receiver, whose teardown steps go to `teardown`. */
async function measure<S extends SystemUnderTest>(
  name: string,
  start: (receiverUrl: string) => Promise<S>,
  total: number,
  options: BenchOptions,
  teardown: Teardown,
): Promise<{ result: SystemResult; system: S }> {
  const receiver = await startReceiverProcess(BENCH_SECRET, { arrivals: true });
  teardown.add(() => receiver.close());
  const load = loadAverage();
  const system = await start(receiver.url);
  const drained = await drain(system, receiver, total);
  const result: SystemResult = { name, drain: drained, steady: undefined };
  if (drained.missing === 0) result.steady = await steady(system, receiver, total, options);
  const counts = await receiver.counts();
  console.log(
    `${name}: ${describe(result, total)}; ${counts.requests} pushes received, ${counts.checked} checked in full; load average ${load} -> ${loadAverage()}`,
  );
  if (counts.rejected > 0)
    throw new Error(`${name}: the receiver rejected ${counts.rejected} of the pushes it checked`);
  return { result, system };
}

function describe(result: SystemResult, total: number): string {
  const { drain: d, steady: s } = result;
  const drainText =
    d.missing > 0
      ? `drain: ${d.missing} of ${total} events not received in ${DRAIN_DEADLINE_MS / 1000} s`
      : `drain: ${fixed(d.rate)} events/s, commit → receipt ${latencyText(d.latency)} ms, ` +
        `CPU per event ${fixed(d.cpu.node)} µs (this process) + ${fixed(d.cpu.postgres)} µs (PostgreSQL)`;
  if (!s) return drainText;
  const missing = s.missing > 0 ? ` (${s.missing} not received)` : "";
  return `${drainText}; at ${STEADY_RATE}/s ${latencyText(s.latency)} ms${missing}`;
}

function latencyText(latency: Latency): string {
  return `${fixed(latency.p50, 1)} / ${fixed(latency.p95, 1)} / ${fixed(latency.p99, 1)}`;
}

function loadAverage(): string {
  return readFileSync("/proc/loadavg", "utf8").split(" ")[0] ?? "?";
}

/** Runs `work` with a teardown of its own, also run if the bench is interrupted (Ctrl-C). */
async function withTeardown<T>(work: (teardown: Teardown) => Promise<T>): Promise<T> {
  const teardown = new Teardown();
  const interrupted = () => {
    console.error("interrupted: dropping the bench's databases");
    // The run goes on and fails while its pools close: its errors no longer matter.
    process.on("uncaughtException", () => {});
    process.on("unhandledRejection", () => {});
    void teardown.run().finally(() => process.exit(130));
  };
  process.once("SIGINT", interrupted);
  process.once("SIGTERM", interrupted);
  try {
    return await work(teardown);
  } finally {
    process.off("SIGINT", interrupted);
    process.off("SIGTERM", interrupted);
    await teardown.run();
  }
}

export async function run(options: BenchOptions): Promise<void> {
  const unavailable = await postgresUnavailable(options.adminUrl);
  if (unavailable) {
    console.log(`SKIPPED: the peers bench needs PostgreSQL (${unavailable})`);
    return;
  }
  const total = options.events ?? DEFAULT_EVENTS;
  console.log(
    `${total} events over ${RECORDS} records (ONE_BY_ONE), then ${steadyEvents(options)} at ${STEADY_RATE}/s`,
  );
  // Herald first: the peers' jobs are its payloads, read from its log before it is dropped.
  const { result: herald, jobs } = await withTeardown(async (teardown) => {
    const measured = await measure(
      "Herald",
      (url) => startHerald(options, url, teardown),
      total,
      options,
      teardown,
    );
    return { result: measured.result, jobs: await measured.system.pushJobs() };
  });
  const peers: [string, typeof startPgBoss][] = [
    ["graphile-worker + undici", startGraphileWorker],
    ["pg-boss + undici", startPgBoss],
  ];
  const results = [herald];
  for (const [name, start] of peers) {
    const measured = await withTeardown((teardown) =>
      measure(name, (url) => start(options, url, jobs, teardown), total, options, teardown),
    );
    results.push(measured.result);
  }
  const alone = await httpAlone(jobs, total);
  console.log(
    `HTTP alone (the drain's signed bodies from memory, no database, no writers): ${fixed(alone)} posts/s`,
  );
  console.log("");
  printResults(results, alone);
}

/** Posts/s of the drain's bodies sent by the peers' sender alone (see the header). */
async function httpAlone(jobs: PushJobs, total: number): Promise<number> {
  const bodies = Array.from({ length: total }, (_, i) => {
    const job = jobs.get(eventKey(workloadEvent(i)));
    if (!job) throw new Error(`Herald's log has no payload for event ${i} of the workload`);
    return job;
  });
  return withTeardown(async (teardown) => {
    const receiver = await startReceiverProcess(BENCH_SECRET, { arrivals: true });
    teardown.add(() => receiver.close());
    const sender = startPeerSender(receiver.url, teardown);
    let next = 0;
    const started = now();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < bodies.length) await sender.post(bodies[next++]!);
      }),
    );
    const rate = (total / (now() - started)) * 1000;
    const counts = await receiver.counts();
    if (counts.rejected > 0)
      throw new Error(
        `HTTP alone: the receiver rejected ${counts.rejected} of the pushes it checked`,
      );
    return rate;
  });
}

function printResults(results: SystemResult[], httpAlone: number): void {
  const herald = results[0]!.drain.rate;
  const rows = [
    [
      "system",
      "events/s",
      "drain p50 / p95 / p99 (ms)",
      `at ${STEADY_RATE}/s p50 / p95 / p99 (ms)`,
      "CPU µs/event",
      "Herald ×",
    ],
  ];
  for (const result of results) {
    const { drain: d, steady: s } = result;
    rows.push([
      result.name,
      d.missing > 0 ? "unfinished" : fixed(d.rate),
      latencyText(d.latency),
      s ? latencyText(s.latency) : "-",
      `${fixed(d.cpu.node)} + ${fixed(d.cpu.postgres)}`,
      result === results[0] || !Number.isFinite(herald / d.rate) ? "" : fixed(herald / d.rate, 2),
    ]);
  }
  rows.push([
    "HTTP alone (no database)",
    fixed(httpAlone),
    "-",
    "-",
    "-",
    fixed(herald / httpAlone, 2),
  ]);
  printTable(rows);
  const fastestPeer = Math.max(...results.slice(1).map((result) => result.drain.rate || 0));
  if (fastestPeer > 0)
    console.log(
      `A 3× lead over the fastest peer needs ${fixed(3 * fastestPeer)} events/s; the HTTP alone reaches ` +
        `${fixed(httpAlone)} posts/s, ${fixed(httpAlone / fastestPeer, 2)}× that peer.`,
    );
}
