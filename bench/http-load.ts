/** Runs HTTP load from a worker thread (http-load-worker.ts) and returns what it measured. */
import { startTsWorker } from "./ts-worker.js";
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
    const worker = startTsWorker("./http-load-worker.ts", spec);
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
