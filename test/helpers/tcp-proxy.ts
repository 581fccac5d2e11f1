/**
 * A TCP proxy on loopback that a test controls, to put between Herald and PostgreSQL and break the
 * connection on purpose:
 * - `forward` (the start): every byte goes through;
 * - `cut()`: destroys every connection (both sides, as when a network link or the server goes away)
 *   and refuses new ones (accepted, then reset at once: what a client sees as ECONNRESET);
 * - `blackHole()`: connections stay open but nothing goes through, either way; new connections are
 *   accepted and held without reaching the server (a stalled network, a frozen server);
 * - `slow(ms)`: every chunk is held `ms` before it is passed on;
 * - `restore()`: back to forwarding. Connections held by a black hole go on (what was sent meanwhile
 *   is delivered now); connections cut stay gone.
 */
import type { AddressInfo, Socket } from "node:net";
import { connect, createServer } from "node:net";

export type ProxyMode = "forward" | "cut" | "black-hole" | "slow";

export interface TcpProxy {
  /** Port on 127.0.0.1 that clients connect to. */
  readonly port: number;
  readonly mode: ProxyMode;
  /** Connections accepted since the start (refused ones included). */
  readonly accepted: number;
  /** Connections open now. */
  readonly open: number;
  cut(): void;
  blackHole(): void;
  slow(delayMs: number): void;
  restore(): void;
  /** `url` with its host and port replaced by this proxy's. */
  urlFor(url: string): string;
  close(): Promise<void>;
}

interface Pair {
  client: Socket;
  /** Undefined while a black hole holds a new connection. */
  server: Socket | undefined;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  let mode: ProxyMode = "forward";
  let delayMs = 0;
  let accepted = 0;
  const pairs = new Set<Pair>();
  /** Chunks a black hole holds, per destination socket, delivered on restore. */
  const held = new Map<Socket, Buffer[]>();

  function destroy(pair: Pair): void {
    pairs.delete(pair);
    held.delete(pair.client);
    if (pair.server) held.delete(pair.server);
    pair.client.destroy();
    pair.server?.destroy();
  }

  function send(to: Socket, chunk: Buffer): void {
    if (to.destroyed) return;
    if (mode === "black-hole") {
      const queue = held.get(to) ?? [];
      queue.push(chunk);
      held.set(to, queue);
    } else if (mode === "slow" && delayMs > 0) {
      setTimeout(() => {
        if (!to.destroyed) to.write(chunk);
      }, delayMs);
    } else to.write(chunk);
  }

  function link(pair: Pair): void {
    const server = connect(target.port, target.host);
    pair.server = server;
    server.setNoDelay(true);
    pair.client.on("data", (chunk: Buffer) => send(server, chunk));
    server.on("data", (chunk: Buffer) => send(pair.client, chunk));
    server.on("error", () => destroy(pair));
    server.on("close", () => destroy(pair));
    // Bytes the client sent while held (its startup message) go first.
    const early = held.get(pair.client);
    held.delete(pair.client);
    for (const chunk of early ?? []) server.write(chunk);
  }

  const proxy = createServer((client) => {
    accepted++;
    client.setNoDelay(true);
    if (mode === "cut") {
      client.resetAndDestroy();
      return;
    }
    const pair: Pair = { client, server: undefined };
    pairs.add(pair);
    client.on("error", () => destroy(pair));
    client.on("close", () => destroy(pair));
    if (mode === "black-hole") {
      // Held: what the client sends waits here until restore() links it to the server.
      client.on("data", (chunk: Buffer) => {
        if (pair.server) return;
        const queue = held.get(client) ?? [];
        queue.push(chunk);
        held.set(client, queue);
      });
      return;
    }
    link(pair);
  });
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  const port = (proxy.address() as AddressInfo).port;

  return {
    port,
    get mode() {
      return mode;
    },
    get accepted() {
      return accepted;
    },
    get open() {
      return pairs.size;
    },
    cut() {
      mode = "cut";
      for (const pair of [...pairs]) {
        pair.client.resetAndDestroy();
        pair.server?.resetAndDestroy();
        destroy(pair);
      }
    },
    blackHole() {
      mode = "black-hole";
    },
    slow(ms: number) {
      mode = "slow";
      delayMs = ms;
    },
    restore() {
      mode = "forward";
      delayMs = 0;
      for (const pair of [...pairs]) {
        if (!pair.server) {
          pair.client.removeAllListeners("data");
          link(pair);
          continue;
        }
        for (const socket of [pair.client, pair.server]) {
          const queue = held.get(socket);
          held.delete(socket);
          for (const chunk of queue ?? []) if (!socket.destroyed) socket.write(chunk);
        }
      }
    },
    urlFor(url: string) {
      const parsed = new URL(url);
      parsed.hostname = "127.0.0.1";
      parsed.port = String(port);
      return parsed.toString();
    },
    close: async () => {
      for (const pair of [...pairs]) destroy(pair);
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
    },
  };
}
