/**
 * A loopback endpoint with several paths on ONE origin, for the bulkhead tests: each path answers
 * 200 at once, after a delay, or holds every request until the test releases it. It counts the
 * requests in progress per path (arrival to answer) and the most ever seen at once, which is what a
 * receiver can tell of a sender's concurrency.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer } from "node:http";
import type { AddressInfo, Socket } from "node:net";

export interface HeldRequest {
  path: string;
  json: unknown;
  /** Date.now() when the body had arrived. */
  receivedAt: number;
  /** Date.now() when it was answered; undefined while held. */
  answeredAt?: number;
}

/** How a path answers: at once (undefined), after `delayMs`, or not until released. */
export type PathMode = { delayMs: number } | "hold" | undefined;

export interface HeldReceiver {
  /** `http://127.0.0.1:<port>`: append a path. */
  origin: string;
  readonly requests: readonly HeldRequest[];
  answer(path: string, mode: PathMode): void;
  /** Answers every request held on `path`; later ones answer at once. */
  release(path: string): void;
  /** Requests of `path` in progress now. */
  inFlight(path: string): number;
  /** The most requests of `path` ever in progress at once. */
  maxInFlight(path: string): number;
  /** Resolves when `predicate` holds; rejects after `timeoutMs` naming `what`. */
  waitFor(
    predicate: (requests: readonly HeldRequest[]) => boolean,
    timeoutMs: number,
    what: string,
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

export async function startHeldReceiver(): Promise<HeldReceiver> {
  const requests: HeldRequest[] = [];
  const modes = new Map<string, PathMode>();
  const held = new Map<string, (() => void)[]>();
  const current = new Map<string, number>();
  const most = new Map<string, number>();
  const sockets = new Set<Socket>();
  const waiters = new Set<() => void>();
  const changed = () => {
    for (const wake of waiters) wake();
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? "/").split("?")[0] as string;
    const body = await readBody(req);
    const now = (current.get(path) ?? 0) + 1;
    current.set(path, now);
    most.set(path, Math.max(most.get(path) ?? 0, now));
    const seen: HeldRequest = { path, json: JSON.parse(body) as unknown, receivedAt: Date.now() };
    requests.push(seen);
    changed();
    const mode = modes.get(path);
    if (mode === "hold") {
      await new Promise<void>((resolve) => {
        const list = held.get(path) ?? [];
        list.push(resolve);
        held.set(path, list);
      });
    } else if (mode) await new Promise((resolve) => setTimeout(resolve, mode.delayMs));
    current.set(path, (current.get(path) ?? 1) - 1);
    seen.answeredAt = Date.now();
    if (!req.socket.destroyed) res.writeHead(200).end();
    changed();
  };

  const server = createServer((req, res) => {
    handle(req, res).catch(() => req.socket.destroy());
  });
  server.keepAliveTimeout = 60_000;
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;

  const release = (path: string) => {
    modes.delete(path);
    for (const resolve of held.get(path)?.splice(0) ?? []) resolve();
  };

  return {
    origin: `http://127.0.0.1:${port}`,
    requests,
    answer: (path, mode) => {
      if (mode === undefined) release(path);
      else modes.set(path, mode);
    },
    release,
    inFlight: (path) => current.get(path) ?? 0,
    maxInFlight: (path) => most.get(path) ?? 0,
    waitFor: (predicate, timeoutMs, what) =>
      new Promise<void>((resolve, reject) => {
        if (predicate(requests)) return resolve();
        const check = () => {
          if (!predicate(requests)) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve();
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
        }, timeoutMs);
        waiters.add(check);
      }),
    close: async () => {
      for (const path of [...held.keys()]) release(path);
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}
