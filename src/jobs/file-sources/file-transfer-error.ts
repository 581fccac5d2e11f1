/**
 * Why a transfer from or to a file source failed, for the person who reads a synchronisation's or
 * an export's error at 3 a.m. The message names the place (a URL without its query, an SFTP
 * location, a path in the drop directory) and the reason; it never holds a password, a private key
 * or a header value.
 */
export const FILE_TRANSFER_ERROR_CODES = [
  /** The address guard refused the host (private, loopback, metadata…), or `http://` without the setting. */
  "BLOCKED_TARGET",
  /** The host did not resolve, refused or dropped the connection. */
  "CONNECTION_FAILED",
  /** No complete transfer within the timeout. */
  "TIMEOUT",
  /** The HTTPS server's certificate could not be verified, or TLS failed. */
  "TLS_FAILED",
  /** The HTTPS server answered a status other than 200 (or 404/410, which mean NOT_FOUND). */
  "HTTP_STATUS",
  /** Too many redirects, or one to a URL that may not be followed. */
  "REDIRECT_REFUSED",
  /** The file is larger than the size limit. */
  "TOO_LARGE",
  /** The SFTP source has no `hostKeySha256`: the key seen is in the message, to be checked and pinned. */
  "HOST_KEY_NOT_PINNED",
  /** The SFTP server presented a host key other than the pinned one. */
  "HOST_KEY_MISMATCH",
  /** The SFTP server refused the username with the password or key given. */
  "AUTHENTICATION_FAILED",
  /** The SFTP server refused an operation (permission denied, no such directory…). */
  "REMOTE_ERROR",
  /** HERALD_FILE_DROP_DIR is not set, or is not a readable directory. */
  "DROP_DIR_UNAVAILABLE",
  /** The path (through a symbolic link or otherwise) ends outside the drop directory. */
  "OUTSIDE_DROP_DIR",
  /** The path names a directory or a special file, not a regular file. */
  "NOT_A_FILE",
  /** The local write failed (disk full, permissions, a directory missing). */
  "WRITE_FAILED",
  /** The source cannot be used as given (a bad time zone, an unreadable key, a bad file name). */
  "INVALID_SOURCE",
  /** The caller cancelled the transfer (shutdown). */
  "ABORTED",
] as const;
export type FileTransferErrorCode = (typeof FILE_TRANSFER_ERROR_CODES)[number];

export class FileTransferError extends Error {
  override name = "FileTransferError";
  constructor(
    readonly code: FileTransferErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** `n` bytes the way a person reads them in a message. */
export function byteCount(n: number): string {
  if (n < 1024) return `${n} bytes`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1).replace(/\.0$/, "")} KiB`;
  return `${(n / 1024 / 1024).toFixed(1).replace(/\.0$/, "")} MiB`;
}

export function tooLarge(location: string, maxBytes: number, size?: number): FileTransferError {
  const what = size === undefined ? "is larger than" : `is ${byteCount(size)}, over`;
  return new FileTransferError(
    "TOO_LARGE",
    `${location}: the file ${what} the limit of ${byteCount(maxBytes)} (HERALD_MAX_FILE_BYTES)`,
  );
}

/** The error code of node or a library (`ECONNREFUSED`…) found along `error`'s causes. */
export function errorCodeOf(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === "string") return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Node's network error codes, in words. */
const NETWORK_REASONS: Record<string, string> = {
  ECONNREFUSED: "the connection was refused (nothing listens on that port)",
  ECONNRESET: "the server closed the connection",
  EPIPE: "the server closed the connection",
  EHOSTUNREACH: "the host is unreachable",
  ENETUNREACH: "the network is unreachable",
  ETIMEDOUT: "the connection timed out",
  ENOTFOUND: "the host name does not resolve",
  EAI_AGAIN: "the host name could not be resolved (DNS did not answer)",
  EAI_NONAME: "the host name does not resolve",
  EAI_FAIL: "the host name could not be resolved",
};

export function networkReason(error: unknown): string {
  const code = errorCodeOf(error);
  const known = code === undefined ? undefined : NETWORK_REASONS[code];
  if (known) return known;
  const message = error instanceof Error ? error.message : String(error);
  return code && !message.includes(code) ? `${code}: ${message}` : message;
}
