/**
 * The embedded default under a burst of concurrent writers (issue #19, defect 3), as a user runs
 * it: `node bin/herald.mjs start` on PGlite with all roles, then many keep-alive clients creating,
 * updating and reading profiles while a probe asks `/healthz` over a new connection each time.
 *
 * It checks fairness, not speed. Before the fix, the embedded session's hand-offs ran as one
 * endless chain of promise callbacks: the process kept doing database work and did not accept new
 * connections while the burst lasted, so the probe got nothing until the burst ended, and the
 * requests of connections accepted late waited as long. Now `/healthz` answers while the burst
 * runs, and every request either succeeds or is refused with 503 and `Retry-After`, each well
 * before the burst ends. The bounds are generous (two cores shared with other test files).
 *
 * And the process's memory once started on a new data directory (defect 6): under 400 MB.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Worker } from "node:worker_threads";
import { Client } from "undici";

const START_TIMEOUT_MS = 120_000;
const CLIENTS = 120;
const BURST_MS = 10_000;
/** A probe answered later than this did not answer "while the burst runs" (target: 50 ms). */
const PROBE_BOUND_MS = 2_000;
/** Before the fix the starved requests waited the whole burst; now about 1 s at most. */
const REQUEST_BOUND_MS = BURST_MS * 0.6;

let child: ChildProcess | undefined;
let dataDir: string;
let origin: string;
let stdout = "";

function outerEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith("HERALD_") && k !== "DATABASE_URL"),
  );
}

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "herald-pressure-"));
  // As `npm start` runs it (package.json), with the same Node flag.
  const started = spawn(process.execPath, ["--max-semi-space-size=4", "bin/herald.mjs", "start"], {
    env: {
      ...outerEnv(),
      HERALD_DATA_DIR: dataDir,
      HERALD_PORT: "0",
      HERALD_HOST: "127.0.0.1",
      HERALD_LOG_LEVEL: "info",
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  child = started;
  origin = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`Herald did not start:\n${stdout}`)),
      START_TIMEOUT_MS,
    );
    started.once("exit", (code) => reject(new Error(`Herald exited with ${code}:\n${stdout}`)));
    started.stdout!.on("data", (chunk: Buffer) => {
      if (stdout.length < 200_000) stdout += chunk.toString();
      const url = /"url":"([^"]+)"[^\n]*"msg":"Herald API listening"/.exec(stdout)?.[1];
      if (url && /^\s+hk_/m.test(stdout)) {
        clearTimeout(timer);
        started.removeAllListeners("exit");
        resolve(url);
      }
    });
  });
});

after(async () => {
  if (child && child.exitCode === null) {
    const exited = new Promise((resolve) => child!.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
  }
  rmSync(dataDir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  body: string;
  retryAfter: string | undefined;
}

async function send(
  client: Client,
  method: "GET" | "POST" | "PUT",
  path: string,
  headers: Record<string, string>,
  body?: unknown,
): Promise<Answer> {
  const answer = await client.request({
    method,
    path,
    headers,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    headersTimeout: 120_000,
    bodyTimeout: 120_000,
  });
  const retryAfter = answer.headers["retry-after"];
  return {
    status: answer.statusCode,
    body: await answer.body.text(),
    retryAfter: typeof retryAfter === "string" ? retryAfter : undefined,
  };
}

/**
 * GET /healthz every 100 ms until the `end` (a Date.now() time) it is sent, each over a new
 * connection as a load balancer's or an orchestrator's probe would be. In a thread of its own, so
 * that the writers' work in this thread does not count in its timings; one request first, outside
 * the count, so that neither does the thread's start.
 */
const PROBE_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const { Client } = require("undici");
async function probe() {
  const client = new Client(workerData.origin);
  const began = performance.now();
  const answer = await client.request({ path: "/healthz", method: "GET", headersTimeout: 120000 });
  await answer.body.dump();
  const ms = performance.now() - began;
  await client.close();
  if (answer.statusCode !== 200) throw new Error("/healthz answered " + answer.statusCode);
  return ms;
}
parentPort.once("message", async ({ end }) => {
  const probes = [];
  while (Date.now() < end) {
    const ms = await probe();
    probes.push({ ms, during: Date.now() < end });
    await new Promise((r) => setTimeout(r, 100));
  }
  parentPort.postMessage({ kind: "done", probes });
});
probe().then(() => parentPort.postMessage({ kind: "ready" }));
`;

interface Probe {
  ms: number;
  /** Answered before the burst ended. */
  during: boolean;
}

/** Starts the probe thread; once it is ready, `run(end)` probes until `end` and resolves. */
async function startProbes(origin: string): Promise<{ run: (end: number) => Promise<Probe[]> }> {
  const worker = new Worker(PROBE_SOURCE, { eval: true, workerData: { origin } });
  const failed = new Promise<never>((_, reject) => worker.once("error", reject));
  const message = (kind: string) =>
    Promise.race([
      failed,
      new Promise<{ probes?: Probe[] }>((resolve) =>
        worker.on("message", (m: { kind: string; probes?: Probe[] }) => {
          if (m.kind === kind) resolve(m);
        }),
      ),
    ]);
  await message("ready");
  return {
    run: async (end) => {
      worker.postMessage({ end });
      const { probes } = await message("done");
      await worker.terminate();
      return probes!;
    },
  };
}

test("the embedded process holds under 400 MB once started on a new data directory", async (t) => {
  // Before: ~500-900 MB (initdb's memory kept in the process, and 128 MB of shared buffers).
  // Idle: a few seconds after it listens, once the start's own garbage is collected.
  await new Promise((resolve) => setTimeout(resolve, 5000));
  const rssMb =
    Number(execFileSync("ps", ["-o", "rss=", "-p", String(child!.pid)]).toString()) / 1024;
  t.diagnostic(`idle RSS ${Math.round(rssMb)} MB`);
  assert.ok(rssMb < 400, `idle RSS ${Math.round(rssMb)} MB`);
});

test("on the embedded database, /healthz answers and no request waits unboundedly while 120 clients write", async (t) => {
  const adminKey = /^\s+(hk_[A-Za-z0-9_-]{20,})\s*$/m.exec(stdout)![1]!;
  const setup = new Client(origin);
  const tokenAnswer = await send(setup, "GET", "/auth/token", { authorization: adminKey });
  assert.equal(tokenAnswer.status, 200, tokenAnswer.body);
  const token = (JSON.parse(tokenAnswer.body) as { accessToken: string }).accessToken;
  const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" };
  const table = await send(setup, "POST", "/v5/entities/default/profile-tables", headers, {
    name: "Customers",
    attributes: [
      { name: "emailAddress", type: "EMAIL_ADDRESS", unique: true, mandatory: true },
      { name: "firstName", type: "FIRSTNAME" },
    ],
  });
  assert.equal(table.status, 201, table.body);
  const base = `/v4/entity/default/table/${(JSON.parse(table.body) as { id: string }).id}/profile`;
  await setup.close();

  const prober = await startProbes(origin);
  const burstEnd = performance.now() + BURST_MS;
  const slow: string[] = [];
  let slowest = 0;
  const unexpected: string[] = [];
  const statuses = new Map<number, number>();
  const writer = async (n: number) => {
    const client = new Client(origin, { pipelining: 1 });
    const mine: string[] = [];
    try {
      for (let i = 0; performance.now() < burstEnd; i++) {
        // Creates, PUT updates and reads of this client's own profiles, in turn.
        const kind = mine.length === 0 ? 0 : i % 3;
        const email = kind === 0 ? `w${n}-${i}@pressure.test` : mine[i % mine.length]!;
        const one = `${base}/${encodeURIComponent(`emailAddress=${email}`)}`;
        const began = performance.now();
        const answer =
          kind === 0
            ? await send(client, "POST", `${base}?allowUpdate=true`, headers, {
                attributes: [
                  { name: "emailAddress", value: email },
                  { name: "firstName", value: `f${i}` },
                ],
              })
            : kind === 1
              ? await send(client, "PUT", one, headers, {
                  attributes: [{ name: "firstName", value: `u${i}` }],
                })
              : await send(client, "GET", one, headers);
        const waited = performance.now() - began;
        slowest = Math.max(slowest, waited);
        statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
        if (waited > REQUEST_BOUND_MS)
          slow.push(`${kind} answered ${answer.status} after ${Math.round(waited)} ms`);
        if (answer.status === 503) {
          const code = (JSON.parse(answer.body) as { code?: string }).code;
          if (code !== "HERALD_DATABASE_BUSY" || !answer.retryAfter)
            unexpected.push(`503 ${code} with Retry-After ${answer.retryAfter}: ${answer.body}`);
          await new Promise((r) => setTimeout(r, Number(answer.retryAfter) * 1000));
        } else if (answer.status !== 200) unexpected.push(`${answer.status}: ${answer.body}`);
        else if (kind === 0) mine.push(email);
      }
    } finally {
      await client.close();
    }
  };
  const probing = prober.run(Date.now() + BURST_MS);
  await Promise.all(Array.from({ length: CLIENTS }, (_, n) => writer(n)));
  const probes = await probing;

  const summary = `statuses ${JSON.stringify(Object.fromEntries(statuses))}; slowest request ${Math.round(slowest)} ms; probes (ms) ${probes.map((p) => Math.round(p.ms)).join(" ")}`;
  t.diagnostic(summary);
  assert.deepEqual(unexpected.slice(0, 5), [], summary);
  assert.ok((statuses.get(200) ?? 0) > CLIENTS, `the writers got work done: ${summary}`);
  const during = probes.filter((p) => p.during);
  assert.ok(during.length >= 5, `/healthz answered while the burst ran: ${summary}`);
  const late = probes.filter((p) => p.ms > PROBE_BOUND_MS);
  assert.deepEqual(late, [], `every /healthz answered within ${PROBE_BOUND_MS} ms: ${summary}`);
  assert.deepEqual(
    slow.slice(0, 10),
    [],
    `no request waited more than ${REQUEST_BOUND_MS} ms (${slow.length} did): ${summary}`,
  );
});
