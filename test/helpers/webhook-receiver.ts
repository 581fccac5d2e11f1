/**
 * A real webhook endpoint on loopback for delivery tests: records every request (headers, raw body,
 * parsed JSON, arrival time) and answers as scripted — 2xx by default, or slowly, with an error
 * status, with `Retry-After`, or by closing the socket without an answer.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

export interface ReceivedRequest {
  /** 0-based arrival index. */
  index: number;
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  json: unknown;
  /** `performance.timeOrigin + performance.now()` at the end of the body: comparable across processes via Date.now(). */
  receivedAt: number;
  /** Same clock: when the answer was written (or the socket closed); undefined while pending. */
  answeredAt?: number;
}

/** How to answer one request. */
export interface ScriptedAnswer {
  status?: number;
  headers?: Record<string, string>;
  body?: string;
  /** Wait this long before answering. */
  delayMs?: number;
  /** Close the socket without answering. */
  destroy?: boolean;
}

export type Responder = (request: ReceivedRequest) => ScriptedAnswer | undefined;

export interface WebhookReceiver {
  url: string;
  readonly requests: ReceivedRequest[];
  /** Replaces how requests are answered (default: 200 with an empty body). */
  respondWith(responder: Responder): void;
  /** Resolves when `predicate` holds over the requests so far; rejects after `timeoutMs`. */
  waitFor(
    predicate: (requests: readonly ReceivedRequest[]) => boolean,
    timeoutMs: number,
    what?: string,
  ): Promise<void>;
  close(): Promise<void>;
}

function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    request.on("error", reject);
  });
}

export async function startWebhookReceiver(
  options: { keepRequests?: boolean; onRequest?: (request: ReceivedRequest) => void } = {},
): Promise<WebhookReceiver> {
  const requests: ReceivedRequest[] = [];
  let responder: Responder = () => undefined;
  let count = 0;
  const waiters = new Set<() => void>();

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const body = await readBody(req);
    const receivedAt = performance.timeOrigin + performance.now();
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch {
      json = undefined;
    }
    const received: ReceivedRequest = {
      index: count++,
      method: req.method ?? "",
      path: req.url ?? "",
      headers: req.headers,
      body,
      json,
      receivedAt,
    };
    if (options.keepRequests !== false) requests.push(received);
    options.onRequest?.(received);
    for (const wake of waiters) wake();
    const answer = responder(received) ?? {};
    if (answer.delayMs) await new Promise((resolve) => setTimeout(resolve, answer.delayMs));
    if (answer.destroy) {
      received.answeredAt = performance.timeOrigin + performance.now();
      req.socket.destroy();
      return;
    }
    res.writeHead(answer.status ?? 200, answer.headers ?? {});
    res.end(answer.body ?? "");
    received.answeredAt = performance.timeOrigin + performance.now();
  };

  const server = createServer((req, res) => {
    handle(req, res).catch(() => req.socket.destroy());
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}/hook`,
    requests,
    respondWith: (next) => {
      responder = next;
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
              `timed out after ${timeoutMs} ms waiting for ${what} (${requests.length} requests so far)`,
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
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
