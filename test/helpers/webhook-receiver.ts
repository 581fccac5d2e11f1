/**
 * A real webhook endpoint on loopback for the tests that deliver: records every request (headers,
 * raw body, parsed JSON, arrival time, what it was answered) and answers as scripted: 2xx by
 * default, or slowly (past the sender's timeout: a hang), with an error status, with `Retry-After`,
 * or by closing the socket without an answer. It can also go down altogether (the port refuses
 * connections until `up()` listens on it again). Each request says whether its answer was a
 * delivery (a 2xx written before the sender could give up), so a test can tell what the endpoint
 * really accepted from what it merely saw.
 *
 * `keepRequests: false` keeps only counters, for tests that receive too many to hold; `onRequest`
 * still sees each request whole.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import { createServer } from "node:http";
import type { AddressInfo, Socket } from "node:net";

export interface ReceivedRequest {
  /** 0-based arrival index. */
  index: number;
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** The `webhook-id` header: one push, the same on every retry. */
  pushId: string;
  body: string;
  json: unknown;
  /**
   * `performance.timeOrigin + performance.now()` at the end of the body: comparable across
   * processes via Date.now(), finer than a millisecond, so that arrivals keep their order.
   */
  receivedAt: number;
  /** Requests of this endpoint in progress when this one arrived (this one included). */
  concurrent: number;
  /** What it was answered: an HTTP status, "destroyed", or undefined while pending. */
  answer?: number | "destroyed";
  /** Same clock: when the answer was written (or the socket closed); undefined while pending. */
  answeredAt?: number;
  /** A 2xx written before `acceptWithinMs` passed: the sender saw a delivery. */
  accepted: boolean;
}

/** How to answer one request. Nothing (undefined or `{}`) means 200 with an empty body. */
export interface ScriptedAnswer {
  status?: number;
  headers?: Record<string, string>;
  body?: string;
  /** Wait this long (real ms) before answering: longer than the sender's timeout is a hang. */
  delayMs?: number;
  /** Close the socket without answering. */
  destroy?: boolean;
}

export type Responder = (request: ReceivedRequest) => ScriptedAnswer | undefined;

export interface WebhookReceiver {
  url: string;
  readonly port: number;
  readonly requests: readonly ReceivedRequest[];
  /** Counters kept even when requests are not. */
  readonly counts: { received: number; accepted: number };
  /** Replaces how requests are answered (default: 200 with an empty body). */
  respondWith(responder: Responder): void;
  /** Stops listening and drops every connection: new connections are refused until `up()`. */
  down(): Promise<void>;
  /** Listens on the same port again. */
  up(): Promise<void>;
  /** Resolves when `predicate` holds over the requests so far; rejects after `timeoutMs`. */
  waitFor(
    predicate: (requests: readonly ReceivedRequest[]) => boolean,
    timeoutMs: number,
    what?: string,
  ): Promise<void>;
  close(): Promise<void>;
}

export interface WebhookReceiverOptions {
  keepRequests?: boolean;
  /**
   * An answer written later than this after the body arrived is not counted as accepted (the sender
   * has timed out by then). Set it to the sender's timeout; default 1 000 ms.
   */
  acceptWithinMs?: number;
  onRequest?: (request: ReceivedRequest) => void;
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

const now = () => performance.timeOrigin + performance.now();

export async function startWebhookReceiver(
  options: WebhookReceiverOptions = {},
): Promise<WebhookReceiver> {
  const keep = options.keepRequests !== false;
  const acceptWithinMs = options.acceptWithinMs ?? 1_000;
  const requests: ReceivedRequest[] = [];
  const counts = { received: 0, accepted: 0 };
  const sockets = new Set<Socket>();
  const waiters = new Set<() => void>();
  let responder: Responder = () => undefined;
  let inProgress = 0;

  const wakeWaiters = () => {
    for (const wake of waiters) wake();
  };

  const answer = (req: IncomingMessage, res: ServerResponse, seen: ReceivedRequest) => {
    const scripted = responder(seen) ?? {};
    const write = () => {
      seen.answeredAt = now();
      if (scripted.destroy) {
        seen.answer = "destroyed";
        req.socket.destroy();
        return;
      }
      const status = scripted.status ?? 200;
      seen.answer = status;
      seen.accepted =
        status >= 200 &&
        status < 300 &&
        !req.socket.destroyed &&
        seen.answeredAt - seen.receivedAt < acceptWithinMs;
      if (seen.accepted) counts.accepted++;
      if (!req.socket.destroyed) {
        res.writeHead(status, scripted.headers ?? {});
        res.end(scripted.body ?? "");
      }
    };
    if (!scripted.delayMs) return write();
    return new Promise<void>((resolve) => setTimeout(resolve, scripted.delayMs)).then(write);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    inProgress++;
    try {
      const body = await readBody(req);
      const seen: ReceivedRequest = {
        index: counts.received++,
        method: req.method ?? "",
        path: req.url ?? "",
        headers: req.headers,
        pushId: String(req.headers["webhook-id"] ?? ""),
        body,
        json: parse(body),
        receivedAt: now(),
        concurrent: inProgress,
        accepted: false,
      };
      if (keep) requests.push(seen);
      options.onRequest?.(seen);
      wakeWaiters();
      await answer(req, res, seen);
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
    respondWith: (next) => {
      responder = next;
    },
    down: stopListening,
    up: async () => {
      if (listening) return;
      await listen(port);
      listening = true;
    },
    waitFor: (predicate, timeoutMs, what = "the expected requests") =>
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
        // Requests may also be answered later; re-check on a slow tick as well as on arrival.
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
