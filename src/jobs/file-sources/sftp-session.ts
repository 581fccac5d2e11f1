/**
 * An SFTP session with ssh2 for a file source: the host through the address guard, the server's
 * host key checked against the pinned SHA-256 fingerprint (no pin: refused, never trusted on first
 * use, the key seen named in the message so the operator can check it and pin it), password or
 * private key authentication, and the transfer's deadline ending the connection wherever it stalls.
 */
import { createHash } from "node:crypto";
import { isIP } from "node:net";
import ssh2 from "ssh2";
import type { Client, ConnectConfig, SFTPWrapper } from "ssh2";
import type { SftpSource } from "../../domain/file-source.js";
import { normalizeHostKeySha256 } from "../../domain/file-source.js";
import { forbiddenRangeOf, systemHostLookup } from "../../delivery/address-guard.js";
import type { TransferContext } from "./transfer-context.js";
import { FileTransferError, networkReason } from "./file-transfer-error.js";
import type { Deadline } from "./transfer-deadline.js";

export interface SftpSession {
  sftp: SFTPWrapper;
  /** Ends the connection (idempotent). */
  end(): void;
}

/** `sftp://user@host:port/path` (a relative path as `/~/path`, home-relative as OpenSSH writes it). */
export function sftpLocation(source: SftpSource, path: string): string {
  const host = isIP(source.host) === 6 ? `[${source.host}]` : source.host;
  return `sftp://${source.username}@${host}:${source.port}${path.startsWith("/") ? "" : "/~/"}${path}`;
}

/** The OpenSSH fingerprint of a host key blob (`SHA256:` and the unpadded base64 digest). */
export function hostKeyFingerprint(key: Buffer): string {
  return `SHA256:${createHash("sha256").update(key).digest("base64").replace(/=+$/, "")}`;
}

/** The key type a host key blob starts with (`ssh-ed25519`, `rsa-sha2-512`…). */
function hostKeyType(key: Buffer): string {
  if (key.length < 4) return "unknown";
  const length = key.readUInt32BE(0);
  return key.subarray(4, 4 + Math.min(length, 64)).toString("latin1");
}

function keyFileHint(type: string): string {
  const name = type.includes("ed25519") ? "ed25519" : type.includes("ecdsa") ? "ecdsa" : "rsa";
  return `ssh-keygen -lf /etc/ssh/ssh_host_${name}_key.pub`;
}

/** The address to connect to: the host's, checked by the guard unless insecure targets are allowed. */
async function guardedAddress(
  source: SftpSource,
  ctx: TransferContext,
  location: string,
  deadline: Deadline,
): Promise<string> {
  const host = source.host.replace(/^\[|\]$/g, "");
  const refuse = (address: string, range: string) =>
    new FileTransferError(
      "BLOCKED_TARGET",
      `${location}: refusing to connect to ${address === host ? host : `${host} (${address})`}, ${range}; private, loopback, link-local and metadata addresses are refused unless the operator sets HERALD_ALLOW_INSECURE_TARGETS=true`,
    );
  if (isIP(host) !== 0) {
    const range = ctx.allowInsecureTargets ? undefined : forbiddenRangeOf(host);
    if (range !== undefined) throw refuse(host, range);
    return host;
  }
  deadline.phase = `resolving ${host}`;
  let addresses: readonly { address: string }[];
  try {
    addresses = await Promise.race([
      systemHostLookup(host),
      new Promise<never>((_, reject) => {
        const fail = () => reject(deadline.signal.reason);
        if (deadline.signal.aborted) fail();
        else deadline.signal.addEventListener("abort", fail, { once: true });
      }),
    ]);
  } catch (error) {
    if (error instanceof FileTransferError) throw error;
    throw new FileTransferError(
      "CONNECTION_FAILED",
      `${location}: ${host} does not resolve (${networkReason(error)})`,
    );
  }
  // Every address is judged, as the HTTPS guard does: one forbidden address refuses the name.
  if (!ctx.allowInsecureTargets)
    for (const { address } of addresses) {
      const range = forbiddenRangeOf(address);
      if (range !== undefined) throw refuse(address, range);
    }
  const first = addresses[0];
  if (first === undefined)
    throw new FileTransferError("CONNECTION_FAILED", `${location}: ${host} resolved to no address`);
  return first.address;
}

function authMethods(source: SftpSource): string {
  if (source.password !== undefined && source.privateKey !== undefined)
    return "password or private key";
  return source.privateKey !== undefined ? "private key" : "password";
}

/**
 * Connects, checks the host key, logs in and opens the SFTP subsystem. Rejects with a
 * FileTransferError; the deadline's abort ends the connection at any point, also after the
 * session is open (a stalled read or write then fails instead of hanging).
 */
export async function openSftpSession(
  source: SftpSource,
  ctx: TransferContext,
  location: string,
  deadline: Deadline,
): Promise<SftpSession> {
  const address = await guardedAddress(source, ctx, location, deadline);
  const endpoint = `${source.host}:${source.port}`;
  deadline.phase = `connecting to ${endpoint}`;
  return new Promise<SftpSession>((resolve, reject) => {
    const client: Client = new ssh2.Client();
    let seen: { fingerprint: string; type: string } | undefined;
    let settled = false;
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      deadline.signal.removeEventListener("abort", onAbort);
      client.destroy();
    };
    const fail = (error: FileTransferError) => {
      if (settled) return;
      settled = true;
      end();
      reject(error);
    };
    function onAbort() {
      // Also after the session is open: whatever waits on it then fails at once.
      fail(deadline.signal.reason as FileTransferError);
      end();
    }
    deadline.signal.addEventListener("abort", onAbort, { once: true });

    // parseFileSource stored the canonical form; a pin written otherwise (hex) is read the same.
    const pinned =
      source.hostKeySha256 === null ? undefined : normalizeHostKeySha256(source.hostKeySha256);
    const hostVerifier = (key: Buffer): boolean => {
      seen = { fingerprint: hostKeyFingerprint(key), type: hostKeyType(key) };
      return pinned !== undefined && seen.fingerprint === pinned;
    };

    const describe = (error: Error & { level?: string }): FileTransferError => {
      if (deadline.signal.aborted) return deadline.signal.reason as FileTransferError;
      if (error.level === "client-timeout")
        return new FileTransferError(
          "TIMEOUT",
          `${location}: no SSH handshake with ${endpoint} in time (stalled while ${deadline.phase})`,
        );
      if (error.level === "client-authentication")
        return new FileTransferError(
          "AUTHENTICATION_FAILED",
          `${location}: the server refused to log "${source.username}" in with the ${authMethods(source)} given (check the username and the ${authMethods(source)}${source.privateKey === undefined ? "" : "; a key's public half must be in the user's authorized_keys on the server"})`,
        );
      if (/verification failed/i.test(error.message) && seen !== undefined)
        return source.hostKeySha256 === null
          ? new FileTransferError(
              "HOST_KEY_NOT_PINNED",
              `${location}: refusing the server's host key, because the source pins none (hostKeySha256 is not set). The server presented the ${seen.type} key ${seen.fingerprint}: check it with the server's operator (on the server: ${keyFileHint(seen.type)}) and set "hostKeySha256": "${seen.fingerprint}"`,
            )
          : new FileTransferError(
              "HOST_KEY_MISMATCH",
              `${location}: the server presented the ${seen.type} host key ${seen.fingerprint}, not the pinned ${source.hostKeySha256}; the connection was refused (the server's key changed, or something is in between). Set the new fingerprint only after the server's operator confirms it`,
            );
      return new FileTransferError(
        "CONNECTION_FAILED",
        `${location}: could not connect to ${endpoint}: ${networkReason(error)}`,
      );
    };

    client.on("connect", () => (deadline.phase = "in the SSH handshake"));
    client.on("handshake", () => (deadline.phase = "logging in"));
    client.on("error", (error) => fail(describe(error)));
    client.on("close", () =>
      fail(
        new FileTransferError(
          "CONNECTION_FAILED",
          `${location}: ${endpoint} closed the connection (stalled while ${deadline.phase})`,
        ),
      ),
    );
    client.on("ready", () => {
      deadline.phase = "opening the SFTP session";
      client.sftp((error, sftp) => {
        if (error)
          return fail(
            new FileTransferError(
              "REMOTE_ERROR",
              `${location}: the server refused the SFTP subsystem (${error.message})`,
            ),
          );
        if (settled) return;
        settled = true;
        resolve({ sftp, end });
      });
    });

    const config: ConnectConfig = {
      host: address,
      port: source.port,
      username: source.username,
      hostVerifier,
      // A backstop: the deadline (which names the phase) normally ends a stalled handshake first.
      readyTimeout: deadline.remainingMs() + 1_000,
      keepaliveInterval: 0,
    };
    if (source.password !== undefined) config.password = source.password;
    if (source.privateKey !== undefined) config.privateKey = source.privateKey;
    try {
      client.connect(config);
    } catch (error) {
      // ssh2 parses the key synchronously; its message names the problem, never the key's text.
      fail(
        new FileTransferError(
          "INVALID_SOURCE",
          `${location}: the private key cannot be used: ${(error as Error).message}`,
        ),
      );
    }
  });
}
