/**
 * The benches' webhook endpoint (receiver-process.ts) in a process of its own, as a real endpoint
 * is: its work (HTTP parsing, counting, sampled signature checks) neither runs on the measured
 * process's event loop nor counts as its CPU.
 */
import { spawn } from "node:child_process";
import type { Arrivals, ReceiverCounts } from "./receiver-process.js";

export interface ReceiverProcess {
  url: string;
  pid: number;
  counts(): Promise<ReceiverCounts>;
  /** When each event arrived since the last call; only with `{ arrivals: true }` (else empty). */
  arrivals(): Promise<Arrivals>;
  close(): Promise<void>;
}

export async function startReceiverProcess(
  secret: string,
  options: { arrivals?: boolean } = {},
): Promise<ReceiverProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", "bench/receiver-process.ts"], {
    cwd: new URL("..", import.meta.url).pathname,
    env: {
      ...process.env,
      HERALD_BENCH_SECRET: secret,
      HERALD_BENCH_ARRIVALS: options.arrivals ? "1" : "",
    },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const next = () =>
    new Promise<unknown>((resolve, reject) => {
      child.once("message", resolve);
      void exited.then(() => reject(new Error("the receiver process exited")));
    });
  const { url } = (await next()) as { url: string };
  return {
    url,
    pid: child.pid!,
    counts: async () => {
      const answer = next();
      child.send("counts");
      return (await answer) as ReceiverCounts;
    },
    arrivals: async () => {
      const answer = next();
      child.send("arrivals");
      return (await answer) as Arrivals;
    },
    close: async () => {
      child.send("close");
      await exited;
    },
  };
}
