/**
 * `herald listen --forward-to URL`: sends a verified push on to the developer's own endpoint as it
 * came (same method, same headers — the Standard Webhooks ones included, so the endpoint can verify
 * the signature with the subscription's secret — same body bytes), and says what it answered.
 */
import { request } from "undici";
import { UsageError } from "./cli-support.js";
import type { VerifiedPush } from "./webhook-listener.js";

/** Headers that belong to the connection the push came on, not to the push. */
const CONNECTION_HEADERS = new Set([
  "host",
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "content-length",
  "upgrade",
  "te",
  "trailer",
  "expect",
]);

const FORWARD_TIMEOUT_MS = 15_000;

export type ForwardResult =
  | { kind: "answered"; status: number; ms: number }
  | { kind: "failed"; message: string; ms: number };

/** The --forward-to address, checked before anything is created. */
export function forwardUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(
      `--forward-to must be an http(s) URL such as http://localhost:3000/hooks; got '${raw}'`,
    );
  }
  if (url.protocol !== "http:" && url.protocol !== "https:")
    throw new UsageError(`--forward-to must be an http(s) URL; got '${raw}'`);
  return url.href;
}

export async function forwardPush(url: string, push: VerifiedPush): Promise<ForwardResult> {
  const headers: string[] = [];
  for (let i = 0; i + 1 < push.rawHeaders.length; i += 2) {
    const name = push.rawHeaders[i]!;
    if (!CONNECTION_HEADERS.has(name.toLowerCase())) headers.push(name, push.rawHeaders[i + 1]!);
  }
  const started = performance.now();
  const ms = () => Math.round(performance.now() - started);
  try {
    const answer = await request(url, {
      method: push.method as "POST",
      headers,
      body: push.body,
      headersTimeout: FORWARD_TIMEOUT_MS,
      bodyTimeout: FORWARD_TIMEOUT_MS,
    });
    await answer.body.dump();
    return { kind: "answered", status: answer.statusCode, ms: ms() };
  } catch (error) {
    const e = error as { code?: string; message?: string };
    return {
      kind: "failed",
      message: e.code ? `${e.code}: ${e.message}` : String(e.message),
      ms: ms(),
    };
  }
}
