/**
 * Worker thread: drives HTTP load at a Herald API with an undici Pool, so that the load generator
 * does not share the server's event loop. Started by `runHttpLoad` (http-load.ts).
 */
import { parentPort, workerData } from "node:worker_threads";
import { Pool } from "undici";
import type { HttpLoadSpec } from "./http-load.js";
import { runClosedLoop } from "./closed-loop.js";

const spec = workerData as HttpLoadSpec;
const pool = new Pool(spec.origin, { connections: spec.clients, pipelining: 1 });
const headers = {
  authorization: `Bearer ${spec.token}`,
  "content-type": "application/json",
};

function fill(template: string): string {
  return template
    .replaceAll("{key}", String(Math.floor(Math.random() * spec.keySpace)))
    .replaceAll("{rand}", Math.random().toString(36).slice(2, 10));
}

const result = await runClosedLoop(
  spec,
  async () => {
    const response = await pool.request({
      method: spec.method,
      path: fill(spec.path),
      headers,
      body: spec.bodyTemplate === undefined ? undefined : fill(spec.bodyTemplate),
    });
    const text = await response.body.text();
    if (response.statusCode >= 300) throw new Error(`${response.statusCode} ${text.slice(0, 300)}`);
    return true;
  },
  (at) => parentPort?.postMessage({ kind: "measuring", at }),
);
await pool.close();
parentPort?.postMessage({ kind: "done", result });
