/**
 * A lean HTTP/1.1 client for the load generator: one keep-alive TCP connection per client, one
 * request at a time on each, request bytes written in one go, the answer read by its
 * Content-Length. In production Herald's callers run on other machines and cost it nothing; on the
 * 2-core bench machine the generator's CPU is taken from Herald's, so it should cost as little as
 * it can. undici (the general client) spent about 0.07 ms of CPU per request here; this one
 * spends a fraction of that (the bench prints the generator's CPU per request).
 *
 * It understands exactly what Herald answers: a status line, headers, and a body with a
 * Content-Length. Anything else (a chunked body, a closed connection, bytes nobody asked for)
 * fails the request loudly instead of being guessed at.
 */
import { connect, type Socket } from "node:net";

export interface LeanResponse {
  status: number;
  body: string;
}

const HEADER_END = Buffer.from("\r\n\r\n");

export class LeanConnection {
  private readonly socket: Socket;
  private readonly ready: Promise<void>;
  private chunks: Buffer[] = [];
  private received = 0;
  private waiting:
    { resolve(response: LeanResponse): void; reject(error: Error): void } | undefined;
  private failure: Error | undefined;

  constructor(origin: URL) {
    this.socket = connect({ host: origin.hostname, port: Number(origin.port || 80) });
    this.socket.setNoDelay(true);
    this.ready = new Promise((resolve, reject) => {
      this.socket.once("connect", () => resolve());
      this.socket.once("error", reject);
    });
    this.socket.on("data", (data: Buffer) => this.onData(data));
    this.socket.on("error", (error) => this.fail(error));
    this.socket.on("close", () => this.fail(new Error("the server closed the connection")));
  }

  /** Sends one whole request (head and body) and resolves with the answer. */
  async send(request: Buffer | string): Promise<LeanResponse> {
    await this.ready;
    if (this.failure) throw this.failure;
    if (this.waiting) throw new Error("a request is already in flight on this connection");
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      this.socket.write(request);
    });
  }

  close(): void {
    this.failure ??= new Error("closed");
    this.socket.destroy();
  }

  private fail(error: Error): void {
    if (this.failure) return;
    this.failure = error;
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting?.reject(error);
  }

  private onData(data: Buffer): void {
    this.chunks.push(data);
    this.received += data.length;
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    this.chunks = [all];
    const headEnd = all.indexOf(HEADER_END);
    if (headEnd < 0) return;
    const head = all.toString("latin1", 0, headEnd);
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    if (!length) return this.fail(new Error(`an answer without Content-Length: ${head}`));
    const total = headEnd + HEADER_END.length + Number(length[1]);
    if (this.received < total) return;
    if (this.received > total) return this.fail(new Error("bytes after the answer"));
    this.chunks = [];
    this.received = 0;
    const waiting = this.waiting;
    this.waiting = undefined;
    if (!waiting) return this.fail(new Error("an answer to no request"));
    if (!head.startsWith("HTTP/1.1 "))
      return this.fail(new Error(`not an HTTP/1.1 answer: ${head}`));
    waiting.resolve({
      status: Number(head.slice(9, 12)),
      body: all.toString("utf8", headEnd + HEADER_END.length, total),
    });
  }
}

/** The bytes of one request with a JSON body (or none). */
export function requestBytes(
  method: string,
  origin: URL,
  path: string,
  headers: Record<string, string>,
  body: string | undefined,
): string {
  let head = `${method} ${path} HTTP/1.1\r\nhost: ${origin.host}\r\n`;
  for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`;
  if (body === undefined) return `${head}\r\n`;
  return `${head}content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}
