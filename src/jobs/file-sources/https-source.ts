/**
 * Downloads from an HTTPS source with undici, through the delivery address guard: every socket,
 * the first and each redirect's, is checked at connect time against the address it is about to
 * reach (delivery/http-sender.ts `guardedConnector`), so neither a name resolving to a private
 * address nor a redirect to one gets through. `http://` and guarded addresses only with
 * HERALD_ALLOW_INSECURE_TARGETS.
 *
 * Redirects (301, 302, 303, 307, 308) are followed, at most MAX_REDIRECTS, each to an https URL
 * (http too with insecure targets allowed); the source's headers go only to the origin of the
 * source's URL, so a redirect elsewhere never receives its Authorization.
 */
import { rootCertificates } from "node:tls";
import { Agent, request } from "undici";
import type { Dispatcher } from "undici";
import type { HttpsSource } from "../../domain/file-source.js";
import { expandDatePlaceholders } from "../../domain/file-source.js";
import { BlockedTargetError, forbiddenRangeOf } from "../../delivery/address-guard.js";
import { guardedConnector } from "../../delivery/http-sender.js";
import { HERALD_VERSION } from "../../version.js";
import type { FetchedFile, TransferContext } from "./transfer-context.js";
import { errorCodeOf, FileTransferError, networkReason, tooLarge } from "./file-transfer-error.js";
import type { Deadline } from "./transfer-deadline.js";
import { failureOf, foundFile, once, startDeadline } from "./transfer-deadline.js";

export const MAX_REDIRECTS = 5;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const NOT_FOUND_STATUSES = new Set([404, 410]);
const FOUND_STATUSES = new Set([200, 203]);

const TLS_CODES = new Set([
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_REVOKED",
  "CERT_UNTRUSTED",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "ERR_TLS_CERT_ALTNAME_INVALID",
  "ERR_SSL_WRONG_VERSION_NUMBER",
  "EPROTO",
]);
const TIMEOUT_CODES = new Set([
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
]);

/** The URL as messages show it: no query string (it may carry a signature or a token). */
export function displayUrl(url: URL): string {
  return `${url.origin}${url.pathname}${url.search ? "?…" : ""}`;
}

function fileNameOf(url: URL): string {
  const last = url.pathname
    .split("/")
    .filter((s) => s !== "")
    .pop();
  if (last === undefined) return url.hostname;
  try {
    return decodeURIComponent(last);
  } catch {
    return last;
  }
}

/** The transfer error for what undici threw while reaching `url`. */
function describeFailure(error: unknown, url: URL): FileTransferError {
  const at = displayUrl(url);
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current; depth++) {
    if (current instanceof BlockedTargetError) {
      const range = forbiddenRangeOf(current.address) ?? "a forbidden address";
      return new FileTransferError(
        "BLOCKED_TARGET",
        `${at}: refusing to connect to ${current.address} (${range}); private, loopback, link-local and metadata addresses are refused unless the operator sets HERALD_ALLOW_INSECURE_TARGETS=true`,
      );
    }
    current = (current as { cause?: unknown }).cause;
  }
  const code = errorCodeOf(error) ?? "";
  if (TIMEOUT_CODES.has(code))
    return new FileTransferError("TIMEOUT", `${at}: ${url.host} did not answer in time`);
  const message = error instanceof Error ? error.message : String(error);
  if (TLS_CODES.has(code) || code.startsWith("ERR_SSL_") || /certificate|ssl|tls/i.test(message))
    return new FileTransferError(
      "TLS_FAILED",
      `${at}: the TLS connection to ${url.host} failed: ${message}${code && !message.includes(code) ? ` (${code})` : ""}; the certificate must be valid for the host and trusted by the system's store or NODE_EXTRA_CA_CERTS`,
    );
  return new FileTransferError(
    "CONNECTION_FAILED",
    `${at}: could not download from ${url.host}: ${networkReason(error)}`,
  );
}

function checkScheme(url: URL, ctx: TransferContext, what: string): void {
  if (url.protocol === "https:") return;
  if (url.protocol === "http:" && ctx.allowInsecureTargets) return;
  throw new FileTransferError(
    what === "source" ? "BLOCKED_TARGET" : "REDIRECT_REFUSED",
    `${displayUrl(url)}: ${url.protocol} URLs are refused${what === "source" ? "" : ` (a redirect led there)`}: only https is allowed (HERALD_ALLOW_INSECURE_TARGETS=true allows http for development)`,
  );
}

export async function fetchHttpsFile(
  source: HttpsSource,
  ctx: TransferContext,
): Promise<FetchedFile> {
  let url: URL;
  try {
    url = new URL(expandDatePlaceholders(source.url, ctx.at, ctx.timeZone));
  } catch (error) {
    throw new FileTransferError(
      "INVALID_SOURCE",
      error instanceof RangeError
        ? `the time zone ${ctx.timeZone} is unknown, so the URL's date placeholders cannot be expanded`
        : `the source URL is not an absolute URL`,
    );
  }
  checkScheme(url, ctx, "source");
  const origin = url.origin;
  const deadline = startDeadline(ctx.timeoutMs, displayUrl(url), ctx.signal);
  const agent = new Agent({
    connect: guardedConnector(
      {
        timeout: ctx.timeoutMs,
        ...(ctx.trustedCa === undefined
          ? {}
          : { ca: [...rootCertificates, ctx.trustedCa.toString()] }),
      },
      ctx.allowInsecureTargets,
    ),
    // The deadline is the limit; these only keep undici from ending a slow transfer earlier.
    headersTimeout: ctx.timeoutMs,
    bodyTimeout: ctx.timeoutMs,
    connections: 1,
  });
  const release = once(async () => {
    deadline.clear();
    await agent.destroy();
  });
  // Past the deadline the connection is let go even if the reader never comes back to it.
  deadline.signal.addEventListener("abort", () => void release(), { once: true });
  try {
    for (let hop = 0; ; hop++) {
      const headers: Record<string, string> = {
        ...(url.origin === origin ? source.headers : {}),
        "user-agent": `Herald/${HERALD_VERSION}`,
      };
      deadline.phase = `waiting for ${url.host} to answer`;
      const response = await send(agent, url, headers, deadline);
      const status = response.statusCode;
      const location = response.headers.location;
      if (REDIRECT_STATUSES.has(status) && typeof location === "string") {
        await response.body.dump().catch(() => undefined);
        if (hop >= MAX_REDIRECTS)
          throw new FileTransferError(
            "REDIRECT_REFUSED",
            `${displayUrl(url)}: more than ${MAX_REDIRECTS} redirects; give the file's final URL`,
          );
        const next = redirectTarget(url, location);
        checkScheme(next, ctx, "redirect");
        url = next;
        continue;
      }
      const at = displayUrl(url);
      if (NOT_FOUND_STATUSES.has(status)) {
        await response.body.dump().catch(() => undefined);
        await release();
        return { found: false, location: at };
      }
      if (!FOUND_STATUSES.has(status)) {
        discard(response.body);
        throw new FileTransferError(
          "HTTP_STATUS",
          `${at}: ${url.host} answered ${status}${REDIRECT_STATUSES.has(status) ? " (a redirect without a Location)" : ""} instead of 200 with the file`,
        );
      }
      const declared = Number(response.headers["content-length"]);
      if (Number.isFinite(declared) && declared > ctx.maxBytes) {
        discard(response.body);
        throw tooLarge(at, ctx.maxBytes, declared);
      }
      const target = url;
      return foundFile(response.body, fileNameOf(url), {
        maxBytes: ctx.maxBytes,
        location: at,
        deadline,
        describe: (error) => describeFailure(error, target),
        release,
      });
    }
  } catch (error) {
    await release();
    throw failureOf(error, deadline, (e) => describeFailure(e, url));
  }
}

/** Drops a body not to be read (its end is nobody's concern: the error undici reports is ignored). */
function discard(body: Dispatcher.ResponseData["body"]): void {
  body.on("error", () => undefined);
  body.destroy();
}

function send(
  agent: Agent,
  url: URL,
  headers: Record<string, string>,
  deadline: Deadline,
): Promise<Dispatcher.ResponseData> {
  return request(url, { method: "GET", dispatcher: agent, headers, signal: deadline.signal });
}

function redirectTarget(from: URL, location: string): URL {
  try {
    return new URL(location, from);
  } catch {
    throw new FileTransferError(
      "REDIRECT_REFUSED",
      `${displayUrl(from)}: ${from.host} redirected to something that is not a URL`,
    );
  }
}
