/**
 * The benches' webhook endpoint (receiver-process.ts) in a process of its own, as a real endpoint
 * is: its work (HTTP parsing, counting, sampled signature checks) neither runs on the measured
 * process's event loop nor counts as its CPU.
 */
import { spawn } from "node:child_process";
import type { ReceiverCounts } from "./receiver-process.js";

export interface ReceiverProcess {
  url: string;
  pid: number;
  counts(): Promise<ReceiverCounts>;
  close(): Promise<void>;
}

export async function startReceiverProcess(secret: string): Promise<ReceiverProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", "bench/receiver-process.ts"], {
    cwd: new URL("..", import.meta.url).pathname,
    env: { ...process.env, HERALD_BENCH_SECRET: secret },
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
    close: async () => {
      child.send("close");
      await exited;
    },
  };
}
