/**
 * The embedded default under pressure (issue #19, defects 3 and 6), as a user runs it:
 * `node bin/herald.mjs start` on a fresh data directory (PGlite, all roles), its RSS once idle, then
 * `clients` keep-alive clients mixing profile creates, PUT updates and reads while a probe asks
 * `/healthz` every 100 ms on its own connection.
 *
 *   node --import tsx bench/embedded-pressure.ts [--clients=200] [--duration=20]
 *
 * Prints the idle RSS, the probe's latencies, the load's answers by status and its latencies (the
 * slowest request is the figure that matters: no request should wait unboundedly). The module also
 * exports the pieces, so a bench scenario can reuse them.
 */
import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { appendFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { Worker } from "node:worker_threads";
import { join } from "node:path";
import { Client, request } from "undici";
import { percentile } from "./closed-loop.js";
import { vmRssMb } from "./faults-support.js";

/**
 * GET /healthz every 100 ms on one keep-alive connection until the `end` it is sent; posts the
 * latencies. One request first, outside the count, so that the thread's start does not count.
 */
const PROBE_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const { Client } = require("undici");
const client = new Client(workerData.origin);
client.request({ path: "/healthz", method: "GET" }).then(async (answer) => {
  await answer.body.dump();
  parentPort.postMessage({ kind: "ready" });
});
parentPort.once("message", async ({ end }) => {
  const healthz = [];
  let failures = 0;
  while (Date.now() < end) {
    const began = performance.now();
    try {
      const answer = await client.request({ path: "/healthz", method: "GET", headersTimeout: 30000 });
      await answer.body.dump();
      if (answer.statusCode === 200) healthz.push(Math.round(performance.now() - began));
      else failures++;
    } catch {
      failures++;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  await client.close();
  parentPort.postMessage({ kind: "done", healthz, failures });
});
`;

export interface EmbeddedHerald {
  child: ChildProcess;
  origin: string;
  adminKey: string;
  stop(): Promise<void>;
}

/** Starts Herald on a fresh embedded data directory and resolves once it listens. */
export async function startEmbeddedHerald(
  env: Record<string, string> = {},
): Promise<EmbeddedHerald> {
  const dataDir = mkdtempSync(join(tmpdir(), "herald-pressure-"));
  const child = spawn(process.execPath, ["--max-semi-space-size=4", "bin/herald.mjs", "start"], {
    env: {
      ...Object.fromEntries(
        Object.entries(process.env).filter(
          ([k]) => !k.startsWith("HERALD_") && k !== "DATABASE_URL",
        ),
      ),
      HERALD_DATA_DIR: dataDir,
      HERALD_PORT: "0",
      HERALD_HOST: "127.0.0.1",
      HERALD_LOG_LEVEL: process.env.PRESSURE_LOG_LEVEL ?? "info",
      ...env,
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  const started = await new Promise<{ origin: string; adminKey: string }>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`Herald exited with ${code}:\n${out}`)));
    child.stdout!.on("data", (chunk: Buffer) => {
      if (process.env.PRESSURE_LOG_FILE) appendFileSync(process.env.PRESSURE_LOG_FILE, chunk);
      if (out.length > 100_000) return;
      out += chunk.toString();
      const key = /^\s+(hk_[A-Za-z0-9_-]{20,})\s*$/m.exec(out)?.[1];
      const url =
        /"msg":"Herald API listening".*?"url":"([^"]+)"|"url":"([^"]+)".*?"msg":"Herald API listening"/.exec(
          out,
        );
      const origin = url?.[1] ?? url?.[2];
      if (key && origin) resolve({ origin, adminKey: key });
    });
  });
  child.removeAllListeners("exit");
  return {
    child,
    ...started,
    stop: () =>
      new Promise<void>((resolve) => {
        child.once("exit", () => {
          rmSync(dataDir, { recursive: true, force: true });
          resolve();
        });
        child.kill("SIGTERM");
      }),
  };
}

export interface PressureResult {
  healthz: number[];
  healthzFailures: number;
  latencies: number[];
  /** The slowest requests: method, status, latency (ms), start (ms after the load began). */
  slowest: { method: string; status: number; ms: number; at: number }[];
  statuses: Map<number, number>;
  errors: number;
  retryAfterMissing: number;
}

/** Runs the mixed load for `durationMs` with `clients` connections, probing /healthz meanwhile. */
export async function runPressure(
  herald: EmbeddedHerald,
  options: { clients: number; durationMs: number },
): Promise<PressureResult> {
  const { origin } = herald;
  const tokenAnswer = await request(`${origin}/auth/token`, {
    headers: { authorization: herald.adminKey },
  });
  const token = ((await tokenAnswer.body.json()) as { accessToken: string }).accessToken;
  const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" };
  const tableAnswer = await request(`${origin}/v5/entities/default/profile-tables`, {
    method: "POST",
    headers,
    body: JSON.stringify({
      name: "PressureCustomers",
      attributes: [
        { name: "emailAddress", type: "EMAIL_ADDRESS", unique: true, mandatory: true },
        { name: "firstName", type: "FIRSTNAME" },
      ],
    }),
  });
  const table = ((await tableAnswer.body.json()) as { id: string | number }).id;
  const base = `/v4/entity/default/table/${table}/profile`;

  // One connection per client, as 200 separate keep-alive clients would have (one shared pool
  // would queue some requests behind a connection still being opened, on the client's side).
  const connections = Array.from(
    { length: options.clients },
    () => new Client(origin, { pipelining: 1, keepAliveTimeout: 60_000 }),
  );
  const result: PressureResult = {
    healthz: [],
    healthzFailures: 0,
    latencies: [],
    slowest: [],
    statuses: new Map(),
    errors: 0,
    retryAfterMissing: 0,
  };
  // The probe runs in a thread of its own: on this thread its timings would include the load
  // generator's own event loop delays.
  const probe = new Worker(PROBE_SOURCE, { eval: true, workerData: { origin } });
  await new Promise<void>((resolve, reject) => {
    probe.once("message", () => resolve());
    probe.once("error", reject);
  });
  // Every connection open before the clock starts: the burst is one of 200 keep-alive clients, not
  // of 200 clients connecting at once (the opening alone takes about a second here).
  await Promise.all(
    connections.map(async (connection) => {
      const answer = await connection.request({ path: "/healthz", method: "GET" });
      await answer.body.dump();
    }),
  );
  const loadStart = performance.now();
  const end = Date.now() + options.durationMs;
  const client = async (n: number) => {
    const mine: string[] = [];
    let i = 0;
    while (Date.now() < end) {
      i++;
      // Creates, PUT updates and reads in turn; updates and reads go to a profile this client made.
      const kind = mine.length === 0 ? 0 : i % 3;
      const email =
        kind === 0 ? `c${n}-${i}@pressure.test` : mine[Math.floor(Math.random() * mine.length)]!;
      const path =
        kind === 0
          ? `${base}?allowUpdate=true`
          : `${base}/${encodeURIComponent(`emailAddress=${email}`)}`;
      const body =
        kind === 0
          ? {
              attributes: [
                { name: "emailAddress", value: email },
                { name: "firstName", value: `f${i}` },
              ],
            }
          : kind === 1
            ? { attributes: [{ name: "firstName", value: `u${i}` }] }
            : undefined;
      const began = performance.now();
      try {
        const answer = await request(`${origin}${path}`, {
          dispatcher: connections[n],
          method: kind === 0 ? "POST" : kind === 1 ? "PUT" : "GET",
          headers,
          ...(body ? { body: JSON.stringify(body) } : {}),
        });
        await answer.body.dump();
        const ms = performance.now() - began;
        result.latencies.push(ms);
        const method = kind === 0 ? "POST" : kind === 1 ? "PUT" : "GET";
        if (ms > 1000) {
          result.slowest.push({ method, status: answer.statusCode, ms, at: began - loadStart });
        }
        result.statuses.set(answer.statusCode, (result.statuses.get(answer.statusCode) ?? 0) + 1);
        if (answer.statusCode === 503 && !answer.headers["retry-after"]) result.retryAfterMissing++;
        if (kind === 0 && answer.statusCode === 200) mine.push(email);
        // A polite client: it waits as long as Retry-After asks.
        if (answer.statusCode === 503)
          await new Promise((r) =>
            setTimeout(r, Number(answer.headers["retry-after"] ?? 1) * 1000),
          );
      } catch {
        result.errors++;
      }
    }
  };
  probe.postMessage({ end });
  const probing = new Promise<{ healthz: number[]; failures: number }>((resolve, reject) => {
    probe.on("message", (m: { kind: string; healthz: number[]; failures: number }) => {
      if (m.kind === "done") resolve(m);
    });
    probe.once("error", reject);
  });
  await Promise.all(Array.from({ length: options.clients }, (_, n) => client(n)));
  const probed = await probing;
  result.healthz = probed.healthz;
  result.healthzFailures = probed.failures;
  await Promise.all(connections.map((c) => c.close()));
  return result;
}

function argument(name: string, fallback: number): number {
  const given = process.argv.find((a) => a.startsWith(`--${name}=`));
  return given ? Number(given.split("=")[1]) : fallback;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const clients = argument("clients", 200);
  const durationMs = argument("duration", 20) * 1000;
  const herald = await startEmbeddedHerald();
  try {
    await new Promise((r) => setTimeout(r, 3000));
    console.log(`idle RSS: ${vmRssMb(herald.child.pid!).toFixed(0)} MB`);
    const r = await runPressure(herald, { clients, durationMs });
    const f = (v: number) => v.toFixed(1);
    console.log(
      `healthz: ${r.healthz.length} probes, p50 ${f(percentile(r.healthz, 50))} ms, p99 ${f(percentile(r.healthz, 99))} ms, max ${f(Math.max(...r.healthz))} ms, failed ${r.healthzFailures}`,
    );
    console.log(
      `load: ${r.latencies.length} answers in ${durationMs / 1000} s (${f(r.latencies.length / (durationMs / 1000))}/s), statuses ${JSON.stringify(Object.fromEntries(r.statuses))}, errors ${r.errors}, 503 without Retry-After ${r.retryAfterMissing}`,
    );
    console.log(
      `latency: p50 ${f(percentile(r.latencies, 50))} ms, p99 ${f(percentile(r.latencies, 99))} ms, max ${f(Math.max(...r.latencies))} ms`,
    );
    console.log(
      `probes over 50 ms (index:ms): ${r.healthz
        .map((ms, i) => (ms > 50 ? `${i}:${ms}` : ""))
        .filter(Boolean)
        .join(" ")}`,
    );
    const slow = r.slowest.sort((a, b) => b.ms - a.ms).slice(0, 10);
    for (const s of slow)
      console.log(`  slow: ${s.method} ${s.status} ${f(s.ms)} ms, began at ${f(s.at)} ms`);
    const later = r.slowest.filter((s) => s.at > 1000);
    console.log(
      `requests over 1 s: ${r.slowest.length}, over 2 s: ${r.slowest.filter((s) => s.ms > 2000).length}; of those begun after the first second (connections open): ${later.length} and ${later.filter((s) => s.ms > 2000).length}, slowest ${later.length ? f(Math.max(...later.map((s) => s.ms))) : 0} ms`,
    );
    console.log(`RSS after load: ${vmRssMb(herald.child.pid!).toFixed(0)} MB`);
  } finally {
    await herald.stop();
  }
}
