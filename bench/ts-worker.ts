/** Starts a worker thread on a TypeScript file of bench/ (worker threads do not inherit `--import tsx`). */
import { Worker } from "node:worker_threads";

export function startTsWorker(file: string, workerData: unknown): Worker {
  const entry = new URL(file, import.meta.url).href;
  return new Worker(
    `import("tsx/esm/api").then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}); });`,
    { eval: true, workerData },
  );
}
