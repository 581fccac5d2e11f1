/**
 * The receiver `herald listen` runs on this machine: an HTTP server on loopback that accepts a push
 * only when its Standard Webhooks signature verifies with one of the listener's subscription secrets
 * (docs/delivery.md "Verifying the signature"), answers it 204 at once, and hands verified pushes to
 * the command one at a time, in arrival order, so that their lines and forwards never interleave.
 * Anything else is answered 401 (a bad or missing signature, a stale timestamp) or 405/413, and
 * reported.
 */
import { timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { signatureOf } from "../domain/webhook-signature.js";
import { UsageError } from "./cli-support.js";

/** Standard Webhooks' default: a push signed more than 5 minutes away from now is refused. */
export const TIMESTAMP_TOLERANCE_SECONDS = 300;
/** A BULK block of 1000 large records stays well below this. */
const MAX_BODY_BYTES = 32 * 1024 * 1024;

export interface VerifiedPush {
  method: string;
  /** As received (`rawHeaders`: names in their case, repeated headers kept), for forwarding. */
  rawHeaders: string[];
  body: Buffer;
  webhookId: string;
  /** The parsed body; undefined when it is not JSON. */
  json: unknown;
}

export interface Refusal {
  status: number;
  reason: string;
  /** `address:port` of the sender. */
  from: string;
  webhookId: string | undefined;
}

export interface WebhookListenerOptions {
  host: string;
  /** 0 = a free port. */
  port: number;
  /** The secrets that may have signed a push: those of the listener's subscriptions now. */
  secrets: () => readonly string[];
  onPush: (push: VerifiedPush) => Promise<void>;
  onRefused: (refusal: Refusal) => void;
  /** Tests: the clock the timestamp is checked against, in seconds. */
  nowSeconds?: () => number;
}

export interface WebhookListener {
  /** `http://127.0.0.1:<port>/`: the subscriptions' target. */
  url: string;
  port: number;
  /** Stops taking pushes and waits for the ones being handled. */
  close(): Promise<void>;
}

/** Why the Standard Webhooks headers of a push do not verify, or undefined when they do. */
export function signatureProblem(
  headers: { id?: string; timestamp?: string; signature?: string },
  body: Buffer,
  secrets: readonly string[],
  nowSeconds: number,
): string | undefined {
  const { id, timestamp, signature } = headers;
  if (!id || !timestamp || !signature)
    return "no webhook-id, webhook-timestamp or webhook-signature header";
  const seconds = /^\d{1,12}$/.test(timestamp) ? Number(timestamp) : NaN;
  if (!Number.isFinite(seconds)) return `webhook-timestamp '${timestamp}' is not a Unix time`;
  if (Math.abs(nowSeconds - seconds) > TIMESTAMP_TOLERANCE_SECONDS)
    return `webhook-timestamp is ${Math.round(nowSeconds - seconds)} s away from now (more than ${TIMESTAMP_TOLERANCE_SECONDS} s)`;
  const offered = signature
    .split(" ")
    .filter((s) => s.startsWith("v1,"))
    .map((s) => Buffer.from(s));
  for (const secret of secrets) {
    const expected = Buffer.from(signatureOf(secret, id, seconds, body));
    if (offered.some((o) => o.length === expected.length && timingSafeEqual(o, expected)))
      return undefined;
  }
  return "webhook-signature does not verify with the subscriptions' secrets";
}

function header(request: IncomingMessage, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** The body, or undefined when it is larger than MAX_BODY_BYTES (the rest is not read). */
function readBody(request: IncomingMessage): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        request.removeAllListeners("data");
        request.resume();
        resolve(undefined);
      } else chunks.push(chunk);
    });
    request.on("end", () => resolve(Buffer.concat(chunks)));
    request.on("error", reject);
  });
}

export async function startWebhookListener(
  options: WebhookListenerOptions,
): Promise<WebhookListener> {
  const nowSeconds = options.nowSeconds ?? (() => Math.floor(Date.now() / 1000));
  // Verified pushes are handled one after the other, in the order they arrived.
  let queue: Promise<void> = Promise.resolve();

  const refuse = (
    request: IncomingMessage,
    response: ServerResponse,
    status: number,
    reason: string,
  ) => {
    response.writeHead(status, { "content-type": "text/plain; charset=utf-8" });
    response.end(`herald listen refused this request: ${reason}\n`);
    options.onRefused({
      status,
      reason,
      from: `${request.socket.remoteAddress ?? "?"}:${request.socket.remotePort ?? "?"}`,
      webhookId: header(request, "webhook-id"),
    });
  };

  const handle = async (request: IncomingMessage, response: ServerResponse) => {
    if (request.method !== "POST") {
      request.resume();
      return refuse(request, response, 405, `${request.method} is not a push (Herald POSTs)`);
    }
    const body = await readBody(request);
    if (!body) return refuse(request, response, 413, `body larger than ${MAX_BODY_BYTES} bytes`);
    const problem = signatureProblem(
      {
        id: header(request, "webhook-id"),
        timestamp: header(request, "webhook-timestamp"),
        signature: header(request, "webhook-signature"),
      },
      body,
      options.secrets(),
      nowSeconds(),
    );
    if (problem) return refuse(request, response, 401, problem);
    response.writeHead(204).end();
    let json: unknown;
    try {
      json = JSON.parse(body.toString("utf8"));
    } catch {
      json = undefined;
    }
    const push: VerifiedPush = {
      method: request.method,
      rawHeaders: request.rawHeaders,
      body,
      webhookId: header(request, "webhook-id")!,
      json,
    };
    queue = queue.then(() => options.onPush(push)).catch(() => {});
  };

  const server = createServer((request, response) => {
    handle(request, response).catch(() => request.socket.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "EADDRINUSE")
        reject(
          new UsageError(
            `port ${options.port} is already in use on ${options.host}; pick another with --port, or leave --port out for a free one`,
          ),
        );
      else if (error.code === "EACCES")
        reject(new UsageError(`not allowed to listen on port ${options.port}; pick another`));
      else reject(error);
    });
    server.listen(options.port, options.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${options.host}:${port}/`,
    port,
    close: async () => {
      await new Promise<void>((resolve) => {
        // Herald keeps connections open between pushes; one still answering gets a moment.
        const force = setTimeout(() => server.closeAllConnections(), 2_000);
        server.close(() => {
          clearTimeout(force);
          resolve();
        });
        server.closeIdleConnections();
      });
      await queue;
    },
  };
}
