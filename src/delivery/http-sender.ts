/**
 * Outbound HTTP for pushes (DESIGN §6, SPEC §6): ONE undici agent per worker (keep-alive sockets
 * shared by every subscription of an origin), an overall deadline per attempt (connect + headers +
 * body), redirects not followed, the response body read up to a small cap then dropped, and the SSRF
 * guard applied to the address each socket actually connects to.
 *
 * Bulkheads (docs/delivery.md): the delivery worker's sender puts no cap on connections per origin,
 * because its callers are bounded: a subscription runner never has more than the subscription's
 * `maxConcurrency` requests in flight. A request then never queues behind another subscription's
 * (a capped pool would hand a slow endpoint's subscription every connection and make its neighbours
 * on the same host wait for its answers), and the sockets open to an origin are at most the sum of
 * the budgets of the subscriptions that send to it. Idle sockets close after KEEP_ALIVE_MS, and an
 * origin's pool is dropped with its last socket, so thousands of quiet subscriptions cost nothing.
 */
import { lookup as dnsLookup } from "node:dns";
import type { LookupAddress, LookupOptions } from "node:dns";
import { isIP } from "node:net";
import { Agent, buildConnector, request } from "undici";
import type { AttemptResult } from "../domain/delivery-outcome.js";
import type { ErrorClass } from "../domain/retry-policy.js";
import { HERALD_VERSION } from "../version.js";
import { BlockedTargetError, isForbiddenAddress } from "./address-guard.js";

/** Bytes of a response body kept as the attempt's excerpt. */
export const EXCERPT_BYTES = 4096;
/** Bytes of a response body read at most; past that the connection is dropped instead of drained. */
const DRAIN_LIMIT_BYTES = 64 * 1024;
/**
 * Connections per origin of a sender whose callers do not bound themselves (the API's test pushes):
 * past that, requests wait for a free connection.
 */
export const CONNECTIONS_PER_ORIGIN = 64;
/** An idle keep-alive socket is closed after this long (unless the server asks for less). */
const KEEP_ALIVE_MS = 30_000;

/** Headers a subscription may not set (SPEC §4): the engine owns them. */
const RESERVED_HEADERS = new Set([
  "content-type",
  "content-length",
  "transfer-encoding",
  "host",
  "connection",
  "user-agent",
  "webhook-id",
  "webhook-timestamp",
  "webhook-signature",
]);

/** Error codes of node and undici, mapped to failure classes. */
const ERROR_CODE_CLASSES: Record<string, ErrorClass> = {
  HERALD_BLOCKED_TARGET: "blocked_target",
  UND_ERR_CONNECT_TIMEOUT: "timeout",
  UND_ERR_HEADERS_TIMEOUT: "timeout",
  UND_ERR_BODY_TIMEOUT: "timeout",
  UND_ERR_ABORTED: "timeout",
  ABORT_ERR: "timeout",
  ETIMEDOUT: "timeout",
  ECONNREFUSED: "connection_refused",
  ECONNRESET: "connection_reset",
  EPIPE: "connection_reset",
  UND_ERR_SOCKET: "connection_reset",
  UND_ERR_CLOSED: "connection_reset",
  ENOTFOUND: "dns",
  EAI_AGAIN: "dns",
  EAI_FAIL: "dns",
  EAI_NONAME: "dns",
  CERT_HAS_EXPIRED: "tls",
  DEPTH_ZERO_SELF_SIGNED_CERT: "tls",
  SELF_SIGNED_CERT_IN_CHAIN: "tls",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "tls",
  ERR_TLS_CERT_ALTNAME_INVALID: "tls",
  EPROTO: "tls",
};

export interface HttpSenderOptions {
  timeoutMs: number;
  allowInsecureTargets: boolean;
  /** Sent as `herald-worker` so operators (and tests) see which worker pushed. */
  workerId: string;
  /**
   * Connections per origin at most (default CONNECTIONS_PER_ORIGIN); `null`: no cap, for a caller
   * that bounds its own requests in flight (the delivery worker: each subscription's maxConcurrency).
   */
  connectionsPerOrigin?: number | null;
}

export interface OutgoingPush {
  url: string;
  /** The JSON text, or its UTF-8 bytes (encoded once for both the signature and the request). */
  body: string | Uint8Array;
  /** The subscription's own headers (reserved ones are dropped here). */
  headers: Record<string, string>;
  /** The three Standard Webhooks headers of this attempt. */
  signatureHeaders: Record<string, string>;
  /** Ends the attempt early when aborted (as an error result), besides the timeout. */
  signal?: AbortSignal;
}

export interface HttpSender {
  send(push: OutgoingPush): Promise<AttemptResult>;
  close(): Promise<void>;
}

type LookupCallback = (
  error: NodeJS.ErrnoException | null,
  address: string | LookupAddress[],
  family?: number,
) => void;

/** dns.lookup that refuses any forbidden address before the socket connects to it. */
function guardedLookup(hostname: string, options: LookupOptions, callback: LookupCallback): void {
  dnsLookup(hostname, { ...options, all: true }, (error, addresses) => {
    if (error) return callback(error, []);
    const bad = addresses.find((entry) => isForbiddenAddress(entry.address));
    if (bad) return callback(new BlockedTargetError(bad.address) as NodeJS.ErrnoException, []);
    if (options.all) return callback(null, addresses);
    const first = addresses[0];
    if (!first)
      return callback(
        Object.assign(new Error(`no address for ${hostname}`), { code: "ENOTFOUND" }),
        [],
      );
    callback(null, first.address, first.family);
  });
}

function errorClassOf(error: unknown): ErrorClass {
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === "string" && ERROR_CODE_CLASSES[code]) return ERROR_CODE_CLASSES[code];
    if ((current as Error).name === "AbortError" || (current as Error).name === "TimeoutError")
      return "timeout";
    if (current instanceof BlockedTargetError) return "blocked_target";
    if (/certificate|ssl|tls/i.test(String((current as Error).message))) return "tls";
    current = (current as { cause?: unknown }).cause;
  }
  return "network";
}

/**
 * The signal that ends one attempt: at its deadline (the reason AbortSignal.timeout gives, so the
 * error reads the same), or when `outer` aborts (with its reason). A controller, a timer and a
 * listener, all released when the attempt ends: AbortSignal.timeout keeps each signal and its timer
 * alive until the deadline passes, and AbortSignal.any registers each push with the long-lived
 * liveness signal, so at thousands of pushes a second both leave a heap of finished signals to the
 * collector (docs/performance-notes.md).
 */
function cutOff(
  timeoutMs: number,
  outer: AbortSignal | undefined,
): { signal: AbortSignal; release(): void } {
  const controller = new AbortController();
  const timer = setTimeout(
    () =>
      controller.abort(
        new DOMException("The operation was aborted due to timeout", "TimeoutError"),
      ),
    timeoutMs,
  );
  timer.unref();
  if (!outer) return { signal: controller.signal, release: () => clearTimeout(timer) };
  const abort = () => controller.abort(outer.reason);
  if (outer.aborted) abort();
  else outer.addEventListener("abort", abort, { once: true });
  return {
    signal: controller.signal,
    release: () => {
      clearTimeout(timer);
      outer.removeEventListener("abort", abort);
    },
  };
}

function messageOf(error: unknown): string {
  const err = error as Error & { cause?: Error; code?: string };
  const cause = err.cause ? `: ${err.cause.message}` : "";
  return `${err.code ?? err.name}: ${err.message}${cause}`.slice(0, 500);
}

/**
 * An undici connector that applies the address guard to every socket it opens (unless insecure
 * targets are allowed): names through `guardedLookup`, IP literals (which never go through a
 * lookup) here. `options` are undici's (connect timeout, TLS options). Also used by file downloads
 * (jobs/file-sources/https-source.ts).
 */
export function guardedConnector(
  options: buildConnector.BuildOptions,
  allowInsecureTargets: boolean,
): buildConnector.connector {
  const baseConnect = buildConnector({
    ...options,
    ...(allowInsecureTargets ? {} : { lookup: guardedLookup }),
  } as buildConnector.BuildOptions);
  return (connectOptions, callback) => {
    const host = connectOptions.hostname.replace(/^\[|\]$/g, "");
    if (!allowInsecureTargets && isIP(host) && isForbiddenAddress(host)) {
      callback(new BlockedTargetError(host), null);
      return;
    }
    baseConnect(connectOptions, callback);
  };
}

export function createHttpSender(options: HttpSenderOptions): HttpSender {
  const connect = guardedConnector({ timeout: options.timeoutMs }, options.allowInsecureTargets);
  const agent = new Agent({
    connect,
    // undici reads null as "no cap": a request always gets an idle socket or a new one.
    connections:
      options.connectionsPerOrigin === undefined
        ? CONNECTIONS_PER_ORIGIN
        : options.connectionsPerOrigin,
    keepAliveTimeout: KEEP_ALIVE_MS,
    headersTimeout: options.timeoutMs,
    bodyTimeout: options.timeoutMs,
  });

  async function send(push: OutgoingPush): Promise<AttemptResult> {
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    let url: URL;
    try {
      url = new URL(push.url);
    } catch {
      return { kind: "error", errorClass: "network", message: "invalid target URL", durationMs: 0 };
    }
    if (url.protocol !== "https:" && !(options.allowInsecureTargets && url.protocol === "http:")) {
      return {
        kind: "error",
        errorClass: "blocked_target",
        message: `${url.protocol} targets are refused: only https is allowed (HERALD_ALLOW_INSECURE_TARGETS allows http for development)`,
        durationMs: 0,
      };
    }
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(push.headers))
      if (!RESERVED_HEADERS.has(name.toLowerCase())) headers[name] = value;
    Object.assign(headers, push.signatureHeaders, {
      "content-type": "application/json",
      "user-agent": `Herald/${HERALD_VERSION}`,
      "herald-worker": options.workerId,
    });
    const cut = cutOff(options.timeoutMs, push.signal);
    try {
      const response = await request(url, {
        method: "POST",
        dispatcher: agent,
        headers,
        body: push.body,
        signal: cut.signal,
      });
      let excerpt = "";
      let read = 0;
      for await (const chunk of response.body as AsyncIterable<Buffer>) {
        if (read < EXCERPT_BYTES)
          excerpt += chunk.subarray(0, EXCERPT_BYTES - read).toString("utf8");
        read += chunk.length;
        if (read > DRAIN_LIMIT_BYTES) {
          response.body.destroy();
          break;
        }
      }
      const retryAfter = response.headers["retry-after"];
      return {
        kind: "response",
        status: response.statusCode,
        retryAfter: Array.isArray(retryAfter) ? retryAfter[0] : retryAfter,
        excerpt,
        durationMs: elapsed(),
      };
    } catch (error) {
      return {
        kind: "error",
        errorClass: errorClassOf(error),
        message: messageOf(error),
        durationMs: elapsed(),
      };
    } finally {
      cut.release();
    }
  }

  return { send, close: () => agent.close() };
}
