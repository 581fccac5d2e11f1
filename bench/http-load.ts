/**
 * Runs HTTP load from a child process (http-load-worker.ts) and returns what it measured.
 *
 * The load generator runs in its own process, not in a thread of the bench process, so that the
 * CPU time the bench measures for "this process" is Herald's alone: the generator (undici, 16
 * clients) costs about as much CPU per request as a third of Herald's, and the ceiling has no such
 * client to pay for. The generator's own CPU time over the measured window comes back beside the
 * load figures, so the output can show it separately instead of hiding it.
 */
import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";
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
  /** lean (default: lean-http-client.ts) or undici, to compare what the generator costs. */
  client?: "lean" | "undici";
  warmupMs: number;
  durationMs: number;
}

export interface HttpLoadResult extends LoadResult {
  /** CPU seconds (user + system) the load generator's process used during the measured window. */
  generatorCpuSeconds: number;
}

/** Messages of the load process (http-load-worker.ts). */
export type HttpLoadMessage =
  | { kind: "measuring"; at: number }
  | { kind: "done"; result: LoadResult; generatorCpuSeconds: number };

export function runHttpLoad(
  spec: HttpLoadSpec,
  onMeasureStart?: (at: number) => void,
): Promise<HttpLoadResult> {
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(new URL("./http-load-worker.ts", import.meta.url)), [], {
      execArgv: ["--import", "tsx"],
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    let result: HttpLoadResult | undefined;
    child.on("message", (message: HttpLoadMessage) => {
      if (message.kind === "measuring") onMeasureStart?.(message.at);
      if (message.kind === "done")
        result = { ...message.result, generatorCpuSeconds: message.generatorCpuSeconds };
    });
    child.on("error", reject);
    child.on("exit", (code) => {
      if (result) resolve(result);
      else reject(new Error(`the load process exited with code ${code} before reporting`));
    });
    child.send(spec);
  });
}
