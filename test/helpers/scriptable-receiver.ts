/**
 * A loopback webhook endpoint that misbehaves on request, for the delivery failure tests and the
 * failures benchmark. Beyond answering with a status, `Retry-After` or a delay, it can hang past the
 * client's timeout, close the socket without an answer, and go down altogether (the port refuses
 * connections until `up()` listens on it again). Every request is recorded with what it was answered
 * and whether that answer was a delivery (a 2xx written before the client could give up), so a test
 * can tell what the endpoint really accepted from what it merely saw.
 *
 * `keepRequests: false` keeps only counters (for benchmarks that receive hundreds of thousands).
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import { createServer } from "node:http";
import type { AddressInfo, Socket } from "node:net";

/** How to answer one request. Nothing (undefined or `{}`) means 200 with an empty body. */
export interface Answer {
  status?: number;
  headers?: Record<string, string>;
  body?: string;
  /** Wait this long (real ms) before answering: longer than the sender's timeout is a hang. */
  delayMs?: number;
  /** Close the socket without answering. */
  destroy?: boolean;
}

export interface SeenRequest {
  /** 0-based arrival index. */
  index: number;
  headers: IncomingHttpHeaders;
  /** The `webhook-id` header: one push, the same on every retry. */
  pushId: string;
  body: string;
  json: unknown;
  /** Real time (ms since the epoch) when the body had arrived. */
  receivedAt: number;
  /** Requests of this endpoint in progress when this one arrived (this one included). */
  concurrent: number;
  /** What it was answered: an HTTP status, "destroyed", or undefined while pending. */
  answer?: number | "destroyed";
  /** Real time of the answer (or of closing the socket). */
  answeredAt?: number;
  /** A 2xx written before `acceptWithinMs` passed: the sender saw a delivery. */
  accepted: boolean;
}

export type Script = (request: SeenRequest) => Answer | undefined;

export interface ScriptableReceiver {
  url: string;
  readonly port: number;
  readonly requests: readonly SeenRequest[];
  /** Counters kept even when requests are not. */
  readonly counts: { received: number; accepted: number };
  /** Replaces how requests are answered. */
  script(next: Script): void;
  /** Stops listening and drops every connection: new connections are refused until `up()`. */
  down(): Promise<void>;
  /** Listens on the same port again. */
  up(): Promise<void>;
  /** Resolves when `predicate` holds; rejects after `timeoutMs` with `what` and the request count. */
  waitFor(
    predicate: (requests: readonly SeenRequest[]) => boolean,
    timeoutMs: number,
    what: string,
  ): Promise<void>;
  close(): Promise<void>;
}

export interface ScriptableReceiverOptions {
  keepRequests?: boolean;
  /**
   * An answer written later than this after the body arrived is not counted as accepted (the sender
   * has timed out by then). Set it to the sender's timeout; default 1 000 ms.
   */
  acceptWithinMs?: number;
  onRequest?: (request: SeenRequest) => void;
}

function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    request.on("error", reject);
  });
}

function parse(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch {
    return undefined;
  }
}

export async function startScriptableReceiver(
  options: ScriptableReceiverOptions = {},
): Promise<ScriptableReceiver> {
  const keep = options.keepRequests !== false;
  const acceptWithinMs = options.acceptWithinMs ?? 1_000;
  const requests: SeenRequest[] = [];
  const counts = { received: 0, accepted: 0 };
  const sockets = new Set<Socket>();
  const waiters = new Set<() => void>();
  let script: Script = () => undefined;
  let inProgress = 0;

  const wakeWaiters = () => {
    for (const wake of waiters) wake();
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    inProgress++;
    try {
      const body = await readBody(req);
      const seen: SeenRequest = {
        index: counts.received++,
        headers: req.headers,
        pushId: String(req.headers["webhook-id"] ?? ""),
        body: keep ? body : "",
        json: keep ? parse(body) : undefined,
        receivedAt: Date.now(),
        concurrent: inProgress,
        accepted: false,
      };
      if (keep) requests.push(seen);
      options.onRequest?.(seen);
      const answer = script(seen) ?? {};
      if (answer.delayMs) await new Promise((resolve) => setTimeout(resolve, answer.delayMs));
      seen.answeredAt = Date.now();
      if (answer.destroy) {
        seen.answer = "destroyed";
        req.socket.destroy();
      } else {
        const status = answer.status ?? 200;
        seen.answer = status;
        seen.accepted =
          status >= 200 &&
          status < 300 &&
          !req.socket.destroyed &&
          seen.answeredAt - seen.receivedAt < acceptWithinMs;
        if (seen.accepted) counts.accepted++;
        if (!req.socket.destroyed) {
          res.writeHead(status, answer.headers ?? {});
          res.end(answer.body ?? "");
        }
      }
      wakeWaiters();
    } finally {
      inProgress--;
    }
  };

  const server = createServer((req, res) => {
    handle(req, res).catch(() => req.socket.destroy());
  });
  server.keepAliveTimeout = 60_000;
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  const listen = (port: number) =>
    new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => {
        server.off("error", reject);
        resolve();
      });
    });
  await listen(0);
  const port = (server.address() as AddressInfo).port;
  let listening = true;

  const stopListening = async () => {
    if (!listening) return;
    listening = false;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of sockets) socket.destroy();
    await closed;
  };

  return {
    url: `http://127.0.0.1:${port}/hook`,
    port,
    requests,
    counts,
    script: (next) => {
      script = next;
    },
    down: stopListening,
    up: async () => {
      if (listening) return;
      await listen(port);
      listening = true;
    },
    waitFor: (predicate, timeoutMs, what) =>
      new Promise<void>((resolve, reject) => {
        if (predicate(requests)) return resolve();
        const check = () => {
          if (!predicate(requests)) return;
          cleanup();
          resolve();
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(
            new Error(
              `timed out after ${timeoutMs} ms waiting for ${what} (${counts.received} requests, ${counts.accepted} accepted)`,
            ),
          );
        }, timeoutMs);
        const tick = setInterval(check, 50);
        const cleanup = () => {
          clearTimeout(timer);
          clearInterval(tick);
          waiters.delete(check);
        };
        waiters.add(check);
      }),
    close: stopListening,
  };
}
