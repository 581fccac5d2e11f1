/**
 * `npm run bench -- delivery`: the delivery engine on real PostgreSQL, pushing to a receiver on
 * loopback. Four measurements, each printed with its target:
 *
 * 1. ONE_BY_ONE drain of a backlog spread over 10,000 records, against the ceiling taken in the same
 *    run: undici posting the same bodies to the same receiver with the same concurrency (ratio ≥ 0.3).
 * 2. BULK (maxBlockSize 500) drain of a backlog inserted straight into the inbox and stamped
 *    (≥ 100,000 events/s).
 * 3. Latency commit → receipt at a steady 1,000 events/s ONE_BY_ONE (p50 < 5 ms, p99 < 25 ms).
 * 4. Peak RSS of a worker process (`herald start --role worker`) draining a 1,000,000-event
 *    backlog (< 300 MB).
 *
 * HERALD_BENCH_DELIVERY=throughput,bulk,latency,memory picks parts; HERALD_BENCH_MEMORY_EVENTS
 * changes the size of the memory backlog.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Agent, request } from "undici";
import { bootstrap } from "../src/api/bootstrap.js";
import { loadConfig } from "../src/config/config.js";
import type { DeliveryWorker } from "../src/delivery/delivery-service.js";
import { startDeliveryWorker } from "../src/delivery/delivery-service.js";
import type { NewChangeEvent } from "../src/domain/change-event.js";
import { buildEnvelope, toDataObject } from "../src/domain/event-payload.js";
import type { Subscription, SubscriptionSettings } from "../src/domain/subscription.js";
import { SUBSCRIPTION_DEFAULTS } from "../src/domain/subscription.js";
import { createLogger } from "../src/logger.js";
import { startSequencer } from "../src/sequencer/sequencer-service.js";
import {
  appendChangeEvents,
  readLog,
  readLogHead,
} from "../src/storage/change-event-repository.js";
import type { Database } from "../src/storage/database.js";
import { PostgresDatabase } from "../src/storage/postgres-database.js";
import { stampPendingEvents } from "../src/storage/sequencer-repository.js";
import { insertSubscription } from "../src/storage/subscription-repository.js";
import { findEntityByName } from "../src/storage/tenancy-repository.js";
import type { BenchOptions } from "./bench-support.js";
import { createBenchDatabase, fixed, postgresUnavailable, printTable } from "./bench-support.js";

const ENTITY = "bench";
const RECORDS = 10_000;
const logger = createLogger("silent");
const rows: string[][] = [["measure", "value", "target", "verdict"]];
const verdict = (ok: boolean) => (ok ? "ok" : "MISSED");

// Fixtures ----------------------------------------------------------------------------------------

interface Setup {
  db: Database;
  url: string;
  entity: number;
  drop(): Promise<void>;
}

async function setUp(options: BenchOptions): Promise<Setup> {
  const bench = await createBenchDatabase(options.adminUrl);
  const db = new PostgresDatabase({ connectionString: bench.url, maxConnections: 10 });
  await bootstrap(db, {
    defaultEntity: ENTITY,
    adminApiKey: "hk_bench_delivery_admin_key_0123456789",
  });
  const entity = (await findEntityByName(db, ENTITY))!.id;
  return {
    db,
    url: bench.url,
    entity,
    drop: async () => {
      await db.close();
      await bench.drop();
    },
  };
}

function profileEvent(entity: number, record: number, version: number): NewChangeEvent {
  const email = `customer${record}@example.com`;
  return {
    entityId: entity,
    source: "PROFILE_TABLE",
    sourceId: "1",
    eventType: "UPDATE",
    recordKey: String(record),
    keys: { profileId: record, emailAddress: email },
    state: {
      profileId: record,
      emailAddress: email,
      firstName: "Ann",
      counter: version,
      tier: "GOLD",
    },
    fields: ["counter"],
    previous: { counter: version - 1 },
    extra: {},
    version,
    declaredEvents: [],
    origin: { kind: "SYSTEM" },
  };
}

/** Appends `total` events over RECORDS records in big transactions, then stamps them all. */
async function insertBacklog(setup: Setup, total: number): Promise<void> {
  const chunk = 10_000;
  for (let start = 0; start < total; start += chunk) {
    const events: NewChangeEvent[] = [];
    for (let i = start; i < Math.min(total, start + chunk); i++)
      events.push(profileEvent(setup.entity, i % RECORDS, Math.floor(i / RECORDS) + 1));
    await setup.db.transaction((tx) => appendChangeEvents(tx, events));
  }
  while ((await stampPendingEvents(setup.db, 10_000)).stamped > 0);
}

async function subscribeFrom(
  setup: Setup,
  targetUrl: string,
  settings: Partial<SubscriptionSettings>,
  watermark: number | "head",
): Promise<Subscription> {
  const sub = await insertSubscription(setup.db, setup.entity, {
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
    secret: `whsec_${Buffer.alloc(32, 7).toString("base64")}`,
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

function startWorker(setup: Setup, workerId: string): Promise<DeliveryWorker> {
  return startDeliveryWorker({
    db: setup.db,
    logger,
    config: { ...loadConfig({ env: {} }), allowInsecureTargets: true, workerId },
  });
}

interface Receiver {
  url: string;
  requests: number;
  onBody?: (body: string, at: number) => void;
  close(): Promise<void>;
}

/** A minimal loopback endpoint: 200 as soon as the body is in. */
async function startReceiver(): Promise<Receiver> {
  const receiver: Receiver = { url: "", requests: 0, close: async () => {} };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => {
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

function percentile(sorted: number[], p: number): number {
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
    const heraldMs = await drained(setup.db, sub.id, head, started);
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
  const receiver = await startReceiver();
  try {
    await insertBacklog(setup, total);
    const head = await readLogHead(setup.db);
    const sub = await subscribeFrom(
      setup,
      receiver.url,
      { pushMode: "BULK", maxBlockSize: 500 },
      0,
    );
    const started = performance.now();
    const worker = await startWorker(setup, "bench-bulk");
    const ms = await drained(setup.db, sub.id, head, started);
    await worker.stop();
    const rate = (total / ms) * 1000;
    console.log(
      `BULK 500: ${total} events drained in ${fixed(ms)} ms (${receiver.requests} blocks): ${fixed(rate)} events/s`,
    );
    rows.push(["BULK(500) delivered events/s", fixed(rate), ">= 100000", verdict(rate >= 100_000)]);
  } finally {
    await receiver.close();
    await setup.drop();
  }
}

// 3. Latency at a steady 1,000 events/s -------------------------------------------------------------

async function latency(options: BenchOptions): Promise<void> {
  const setup = await setUp(options);
  const receiver = await startReceiver();
  const sequencer = await startSequencer({ db: setup.db, logger });
  const committedAt = new Map<string, number>();
  const samples: number[] = [];
  receiver.onBody = (body, at) => {
    const data = (JSON.parse(body) as { data: { profileId: string; _event: { version: number } } })
      .data;
    const key = `${data.profileId}:${data._event.version}`;
    const committed = committedAt.get(key);
    if (committed !== undefined) samples.push(Math.max(0, at - committed));
  };
  try {
    await subscribeFrom(setup, receiver.url, {}, "head");
    const worker = await startWorker(setup, "bench-latency");
    await new Promise((resolve) => setTimeout(resolve, 500));
    const versions = new Array<number>(RECORDS).fill(0);
    const rate = 1_000;
    const duration = options.durationMs;
    const start = performance.now();
    let sent = 0;
    // Four writers, each one event per transaction, paced on a common schedule of 1 event per ms.
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        for (;;) {
          const i = sent++;
          const due = start + (i * 1000) / rate;
          if (due - start > duration) return;
          const wait = due - performance.now();
          if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
          const record = Math.floor(Math.random() * RECORDS);
          const version = ++versions[record]!;
          await setup.db.transaction((tx) =>
            appendChangeEvents(tx, [profileEvent(setup.entity, record, version)]),
          );
          committedAt.set(`${record}:${version}`, performance.timeOrigin + performance.now());
        }
      }),
    );
    const written = committedAt.size;
    const deadline = Date.now() + 10_000;
    while (samples.length < written && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 50));
    await worker.stop();
    const sorted = [...samples].sort((a, b) => a - b);
    const p50 = percentile(sorted, 50);
    const p99 = percentile(sorted, 99);
    const achieved = (written / duration) * 1000;
    console.log(
      `latency ONE_BY_ONE at ${fixed(achieved)} events/s: ${samples.length}/${written} received, p50 ${fixed(p50, 1)} ms, p90 ${fixed(percentile(sorted, 90), 1)} ms, p99 ${fixed(p99, 1)} ms, max ${fixed(sorted.at(-1) ?? 0, 1)} ms`,
    );
    // How much of it is the sequencer's part: insert → stamped in the log (same clock: the server's).
    const { rows: lag } = await setup.db.query<{ p50: number; p99: number }>(
      `SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS p50,
              percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) AS p99
         FROM (SELECT extract(epoch FROM sequenced_at - occurred_at) * 1000 AS ms
                 FROM change_events WHERE sequenced_at IS NOT NULL) t`,
    );
    console.log(
      `  of which insert → stamped by the sequencer: p50 ${fixed(lag[0]?.p50 ?? 0, 1)} ms, p99 ${fixed(lag[0]?.p99 ?? 0, 1)} ms`,
    );
    rows.push(["latency commit→receipt p50 (ms)", fixed(p50, 1), "< 5", verdict(p50 < 5)]);
    rows.push(["latency commit→receipt p99 (ms)", fixed(p99, 1), "< 25", verdict(p99 < 25)]);
  } finally {
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
    const child = spawn(process.execPath, ["bin/herald.mjs", "start", "--role", "worker"], {
      cwd: new URL("..", import.meta.url).pathname,
      env: {
        ...process.env,
        DATABASE_URL: setup.url,
        HERALD_ALLOW_INSECURE_TARGETS: "true",
        HERALD_DEFAULT_ENTITY: ENTITY,
        HERALD_LOG_LEVEL: "warn",
        HERALD_WORKER_ID: "bench-memory",
      },
      stdio: ["ignore", "inherit", "inherit"],
    });
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
