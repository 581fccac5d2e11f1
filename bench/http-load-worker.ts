/**
 * Load process: drives HTTP load at a Herald API, in a process of its own so that neither its
 * event loop nor its CPU time mixes with the server's. Started by `runHttpLoad` (http-load.ts),
 * which sends the spec as the first IPC message; reports its CPU time over the measured window
 * with the result. The client is the lean one (lean-http-client.ts: one connection per client)
 * unless the spec asks for undici (a Pool of as many connections).
 */
import { Pool } from "undici";
import { LeanConnection, requestBytes } from "./lean-http-client.js";
import type { HttpLoadMessage, HttpLoadSpec } from "./http-load.js";
import { runClosedLoop } from "./closed-loop.js";

const spec = await new Promise<HttpLoadSpec>((resolve) =>
  process.once("message", (message) => resolve(message as HttpLoadSpec)),
);
/** Sends a message; resolves once it has been handed to the IPC channel. */
const report = (message: HttpLoadMessage) =>
  new Promise<void>((resolve) => {
    if (!process.send) return resolve();
    process.send(message, undefined, {}, () => resolve());
  });

const headers = {
  authorization: `Bearer ${spec.token}`,
  "content-type": "application/json",
};

function fill(template: string): string {
  return template
    .replaceAll("{key}", String(Math.floor(Math.random() * spec.keySpace)))
    .replaceAll("{rand}", Math.random().toString(36).slice(2, 10));
}

function undiciClient(): { send(client: number): Promise<boolean>; close(): Promise<void> } {
  const pool = new Pool(spec.origin, { connections: spec.clients, pipelining: 1 });
  return {
    async send() {
      const response = await pool.request({
        method: spec.method,
        path: fill(spec.path),
        headers,
        body: spec.bodyTemplate === undefined ? undefined : fill(spec.bodyTemplate),
      });
      const text = await response.body.text();
      if (response.statusCode >= 300)
        throw new Error(`${response.statusCode} ${text.slice(0, 300)}`);
      return true;
    },
    close: () => pool.close(),
  };
}

function leanClient(): { send(client: number): Promise<boolean>; close(): Promise<void> } {
  const origin = new URL(spec.origin);
  const connections = Array.from({ length: spec.clients }, () => new LeanConnection(origin));
  return {
    async send(client) {
      const body = spec.bodyTemplate === undefined ? undefined : fill(spec.bodyTemplate);
      const request = requestBytes(spec.method, origin, fill(spec.path), headers, body);
      const response = await connections[client]!.send(request);
      if (response.status >= 300)
        throw new Error(`${response.status} ${response.body.slice(0, 300)}`);
      return true;
    },
    close: async () => connections.forEach((connection) => connection.close()),
  };
}

const client = spec.client === "undici" ? undiciClient() : leanClient();

let cpuAtStart: NodeJS.CpuUsage | undefined;
const result = await runClosedLoop(
  spec,
  (n) => client.send(n),
  (at) => {
    cpuAtStart = process.cpuUsage();
    void report({ kind: "measuring", at });
  },
);
// The loops stop at the window's end (the last requests finish just after it).
const used = process.cpuUsage(cpuAtStart);
await client.close();
// Disconnect only once the result is on its way: a message still queued when the channel closes is lost.
await report({ kind: "done", result, generatorCpuSeconds: (used.user + used.system) / 1e6 });
process.disconnect();
