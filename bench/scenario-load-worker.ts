/**
 * Load process of the `scenarios` bench (bench/scenarios.ts): creates exactly `total` profiles over
 * HTTP, each once, `clients` requests in flight (closed loop: a client sends its next request when
 * its previous one answered). The capture bench's generator (http-load-worker.ts) runs for a time
 * with random keys, so creates and updates mix; this one counts creates, because the scenario
 * bench follows each created profile into a run and needs them all, and only them.
 *
 * In a process of its own, as the capture bench's: its CPU is not Herald's. Started by
 * `runCreateLoad`, which sends the spec as the first IPC message; reports progress every second and
 * the result at the end. `{n}` in the path and body templates becomes the profile's number
 * (`firstNumber` … `firstNumber + total - 1`).
 */
import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { LeanConnection, requestBytes } from "./lean-http-client.js";

export interface CreateLoadSpec {
  origin: string;
  token: string;
  path: string;
  bodyTemplate: string;
  total: number;
  firstNumber: number;
  clients: number;
}

export interface CreateLoadResult {
  /** Requests answered 2xx. */
  created: number;
  failed: number;
  firstError: string | undefined;
  /** Date.now() when the first request was sent, and when the last answer arrived. */
  startedAt: number;
  endedAt: number;
  /** Latency percentiles of the requests, ms. */
  p50Ms: number;
  p99Ms: number;
  /** CPU seconds (user + system) of the load process from the first request to the last answer. */
  cpuSeconds: number;
}

type LoadMessage =
  { kind: "progress"; answered: number } | { kind: "done"; result: CreateLoadResult };

/** Runs the load in a child process; `onProgress` sees the count of answers every second. */
export function runCreateLoad(
  spec: CreateLoadSpec,
  onProgress?: (answered: number) => void,
): Promise<CreateLoadResult> {
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(import.meta.url), [], {
      execArgv: ["--import", "tsx"],
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    let result: CreateLoadResult | undefined;
    child.on("message", (message: LoadMessage) => {
      if (message.kind === "progress") onProgress?.(message.answered);
      else result = message.result;
    });
    child.on("error", reject);
    child.on("exit", (code) => {
      if (result) resolve(result);
      else reject(new Error(`the create load exited with code ${code} before reporting`));
    });
    child.send(spec);
  });
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[
    Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  ]!;
}

/** The child's side: runs when this file is the process's entry (forked by runCreateLoad). */
async function main(): Promise<void> {
  const spec = await new Promise<CreateLoadSpec>((resolve) =>
    process.once("message", (message) => resolve(message as CreateLoadSpec)),
  );
  const send = (message: LoadMessage) =>
    new Promise<void>((resolve) => {
      if (!process.send) return resolve();
      process.send(message, undefined, {}, () => resolve());
    });
  const origin = new URL(spec.origin);
  const headers = { authorization: `Bearer ${spec.token}`, "content-type": "application/json" };
  const connections = Array.from({ length: spec.clients }, () => new LeanConnection(origin));
  const latencies: number[] = [];
  let next = 0;
  let answered = 0;
  let failed = 0;
  let firstError: string | undefined;
  const progress = setInterval(() => void send({ kind: "progress", answered }), 1_000);

  const cpuAtStart = process.cpuUsage();
  const startedAt = Date.now();
  await Promise.all(
    connections.map(async (connection) => {
      while (next < spec.total) {
        const n = String(spec.firstNumber + next++);
        const began = performance.now();
        try {
          const response = await connection.send(
            requestBytes(
              "POST",
              origin,
              spec.path.replaceAll("{n}", n),
              headers,
              spec.bodyTemplate.replaceAll("{n}", n),
            ),
          );
          if (response.status >= 300) throw new Error(`${response.status} ${response.body}`);
          latencies.push(performance.now() - began);
        } catch (error) {
          failed++;
          firstError ??= (error as Error).message.slice(0, 300);
          if (/closed|ECONN/.test((error as Error).message)) break;
        }
        answered++;
      }
    }),
  );
  const endedAt = Date.now();
  const used = process.cpuUsage(cpuAtStart);
  clearInterval(progress);
  for (const connection of connections) connection.close();
  latencies.sort((a, b) => a - b);
  await send({
    kind: "done",
    result: {
      created: latencies.length,
      failed,
      firstError,
      startedAt,
      endedAt,
      p50Ms: percentile(latencies, 50),
      p99Ms: percentile(latencies, 99),
      cpuSeconds: (used.user + used.system) / 1e6,
    },
  });
  process.disconnect();
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
