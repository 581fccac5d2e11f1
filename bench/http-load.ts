/** Runs HTTP load from a worker thread (http-load-worker.ts) and returns what it measured. */
import { Worker } from "node:worker_threads";
import type { LoadResult } from "./closed-loop.js";

export interface HttpLoadSpec {
  origin: string;
  token: string;
  method: "GET" | "POST" | "PUT" | "DELETE";
  /** Path and body templates: `{key}` becomes a random integer below `keySpace`, `{rand}` a random word. */
  path: string;
  bodyTemplate?: string;
  keySpace: number;
  clients: number;
  warmupMs: number;
  durationMs: number;
}

export function runHttpLoad(
  spec: HttpLoadSpec,
  onMeasureStart?: (at: number) => void,
): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    // Worker threads do not run this process's `--import tsx`: register tsx in the worker first.
    const entry = new URL("./http-load-worker.ts", import.meta.url).href;
    const worker = new Worker(
      `import("tsx/esm/api").then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}); });`,
      { eval: true, workerData: spec },
    );
    let result: LoadResult | undefined;
    worker.on("message", (message: { kind: string; at?: number; result?: LoadResult }) => {
      if (message.kind === "measuring") onMeasureStart?.(message.at ?? Date.now());
      if (message.kind === "done") result = message.result;
    });
    worker.on("error", reject);
    worker.on("exit", (code) => {
      if (result) resolve(result);
      else reject(new Error(`the load worker exited with code ${code} before reporting`));
    });
  });
}
