/**
 * The source of a file reference (SPEC §7.2): where a synchronisation reads a file from, and where
 * an export's destination copy is written to. Three kinds: an HTTPS URL with headers, an SFTP
 * server with a pinned host key, and a path inside the operator's drop directory.
 *
 * Pure: this file checks a source from a request and names what is wrong with it, path by path;
 * jobs/file-sources/ moves the bytes. The checks here are about form. The address guard (which
 * addresses a URL or an SFTP host may reach) and the drop directory's real boundaries (symbolic
 * links) are judged again at transfer time, where they are the defence.
 *
 * Credentials are write-only: the SFTP `password` and `privateKey`, and the values of an HTTPS
 * source's `headers` (they usually carry an `Authorization` or an API key), are split off with
 * `splitCredentials` to be sealed, and `describeFileSource` answers only that they are set.
 */

export { expandDatePlaceholders, hasDatePlaceholders } from "./date-placeholders.js";

export const FILE_SOURCE_TYPES = ["HTTPS", "SFTP", "DIRECTORY"] as const;
export type FileSourceType = (typeof FILE_SOURCE_TYPES)[number];

export interface HttpsSource {
  type: "HTTPS";
  url: string;
  headers: Record<string, string>;
}
export interface SftpSource {
  type: "SFTP";
  host: string;
  port: number;
  username: string;
  path: string;
  /** `SHA256:<base64 without padding>`, as `ssh-keygen -lf` prints it; null: not pinned (refused). */
  hostKeySha256: string | null;
  password?: string;
  privateKey?: string;
}
export interface DirectorySource {
  type: "DIRECTORY";
  /** Relative to HERALD_FILE_DROP_DIR; no `..` segment, never absolute. */
  path: string;
}
export type FileSource = HttpsSource | SftpSource | DirectorySource;

/** The write-only parts of a source, sealed at rest. */
export interface SourceCredentials {
  password?: string;
  privateKey?: string;
  /** An HTTPS source's headers (names and values). */
  headers?: Record<string, string>;
}

export interface ParseFileSourceOptions {
  /** HERALD_ALLOW_INSECURE_TARGETS: `http://` URLs allowed. */
  allowInsecureTargets: boolean;
  /** HERALD_FILE_DROP_DIR is set: DIRECTORY sources are possible. */
  dropDirSet: boolean;
  /** Where the source sits in the request, for problem paths (default `source`). */
  path?: string;
}

export const MAX_URL_LENGTH = 2048;
export const MAX_PATH_LENGTH = 1024;
export const MAX_SOURCE_HEADERS = 32;
export const MAX_SOURCE_HEADER_VALUE_LENGTH = 4096;
const MAX_HOST_LENGTH = 253;
const MAX_USERNAME_LENGTH = 255;
const MAX_PASSWORD_LENGTH = 1024;
const MAX_PRIVATE_KEY_LENGTH = 16_384;
const DEFAULT_SFTP_PORT = 22;

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
/** Headers the transfer sets itself (or that would change how the body is framed). */
const RESERVED_HEADERS = [
  "host",
  "content-length",
  "transfer-encoding",
  "connection",
  "keep-alive",
  "upgrade",
  "te",
  "trailer",
  "expect",
];
// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x1f\x7f]/;
/** A host name (letters, digits, `-`, `.`, `_`), an IPv4 literal, or an IPv6 literal in brackets or not. */
const HOST_NAME = /^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?$/;
const IPV6_LITERAL = /^\[?[0-9A-Fa-f:.]+(%[A-Za-z0-9._-]+)?\]?$/;

type Add = (path: string, message: string) => void;
type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The first of `keys` present in `raw` (aliases, read leniently). */
function pick(raw: Json, ...keys: string[]): unknown {
  for (const key of keys) if (raw[key] !== undefined && raw[key] !== null) return raw[key];
  return undefined;
}

function text(value: unknown, path: string, add: Add, max: number): string | undefined {
  if (value === undefined) {
    add(path, "is required");
    return undefined;
  }
  if (typeof value !== "string" || value.trim() === "") {
    add(path, "must be a non-empty string");
    return undefined;
  }
  if (value.length > max) {
    add(path, `must be at most ${max} characters`);
    return undefined;
  }
  return value;
}

/**
 * Checks a source object from a request; each problem is reported through `add` with its path
 * (`source.url`, `source.hostKeySha256`…). Returns the normalised source, or undefined when
 * anything was wrong.
 */
export function parseFileSource(
  raw: unknown,
  add: Add,
  options: ParseFileSourceOptions,
): FileSource | undefined {
  const at = options.path ?? "source";
  if (!isObject(raw)) {
    add(at, `must be an object with a "type" (${FILE_SOURCE_TYPES.join(", ")})`);
    return undefined;
  }
  const type = typeof raw.type === "string" ? raw.type.trim().toUpperCase() : undefined;
  let problems = 0;
  const counted: Add = (path, message) => {
    problems++;
    add(path, message);
  };
  let source: FileSource | undefined;
  if (type === "HTTPS") source = parseHttps(raw, counted, at, options);
  else if (type === "SFTP") source = parseSftp(raw, counted, at);
  else if (type === "DIRECTORY") source = parseDirectory(raw, counted, at, options);
  else {
    counted(
      `${at}.type`,
      raw.type === undefined
        ? `is required (one of ${FILE_SOURCE_TYPES.join(", ")})`
        : `must be one of ${FILE_SOURCE_TYPES.join(", ")}`,
    );
  }
  return problems === 0 ? source : undefined;
}

function parseHttps(
  raw: Json,
  add: Add,
  at: string,
  options: ParseFileSourceOptions,
): HttpsSource | undefined {
  const url = text(pick(raw, "url", "uri"), `${at}.url`, add, MAX_URL_LENGTH)?.trim();
  if (url !== undefined) {
    const problem = urlProblem(url, options.allowInsecureTargets);
    if (problem) add(`${at}.url`, problem);
  }
  const headers = parseHeaders(raw.headers, add, `${at}.headers`);
  if (url === undefined || headers === undefined) return undefined;
  return { type: "HTTPS", url, headers };
}

function urlProblem(raw: string, allowInsecure: boolean): string | undefined {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return "must be an absolute URL such as https://files.example.com/export_$yyyyMMdd.csv";
  }
  const allowed = allowInsecure ? ["https:", "http:"] : ["https:"];
  if (!allowed.includes(url.protocol))
    return allowInsecure
      ? "must be an http:// or https:// URL"
      : "must be an https:// URL (plain http is allowed only when the operator sets HERALD_ALLOW_INSECURE_TARGETS=true)";
  if (url.hostname === "") return "must name a host";
  if (url.username !== "" || url.password !== "")
    return "must not carry credentials; send them in `headers` (an Authorization header) instead";
  return undefined;
}

function parseHeaders(raw: unknown, add: Add, at: string): Record<string, string> | undefined {
  if (raw === undefined || raw === null) return {};
  if (!isObject(raw)) {
    add(at, 'must be an object of header names and values, e.g. {"Authorization": "Bearer …"}');
    return undefined;
  }
  const names = Object.keys(raw);
  let ok = true;
  if (names.length > MAX_SOURCE_HEADERS) {
    add(at, `must have at most ${MAX_SOURCE_HEADERS} headers`);
    ok = false;
  }
  const headers: Record<string, string> = {};
  for (const name of names) {
    const value = raw[name];
    const path = `${at}.${name}`;
    let problem: string | undefined;
    if (!HEADER_NAME.test(name)) problem = "is not a valid HTTP header name";
    else if (RESERVED_HEADERS.includes(name.toLowerCase()))
      problem = "is set by Herald itself and may not be given";
    else if (typeof value !== "string") problem = "must be a string";
    else if (!HEADER_VALUE.test(value))
      problem = "must not contain line breaks or control characters";
    else if (value.length > MAX_SOURCE_HEADER_VALUE_LENGTH)
      problem = `must be at most ${MAX_SOURCE_HEADER_VALUE_LENGTH} characters`;
    if (problem) {
      add(path, problem);
      ok = false;
    } else headers[name] = value as string;
  }
  return ok ? headers : undefined;
}

function parseSftp(raw: Json, add: Add, at: string): SftpSource | undefined {
  let ok = true;
  const fail = (path: string, message: string) => {
    ok = false;
    add(path, message);
  };
  const host = text(raw.host, `${at}.host`, fail, MAX_HOST_LENGTH)?.trim();
  if (host !== undefined && !HOST_NAME.test(host) && !IPV6_LITERAL.test(host))
    fail(`${at}.host`, "must be a host name or an IP address, without a scheme or a port");
  let port = DEFAULT_SFTP_PORT;
  if (raw.port !== undefined && raw.port !== null) {
    const value = typeof raw.port === "string" ? Number(raw.port) : raw.port;
    if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > 65535)
      fail(`${at}.port`, "must be an integer from 1 to 65535");
    else port = value;
  }
  const username = text(
    pick(raw, "username", "user", "login"),
    `${at}.username`,
    fail,
    MAX_USERNAME_LENGTH,
  );
  if (username !== undefined && CONTROL.test(username))
    fail(`${at}.username`, "must not contain control characters");
  const path = remotePath(raw.path, `${at}.path`, fail);
  const hostKeySha256 = parseHostKeySha256(
    pick(raw, "hostKeySha256", "hostKeyFingerprint", "hostKey"),
    `${at}.hostKeySha256`,
    fail,
  );
  const password = optionalSecret(raw.password, `${at}.password`, fail, MAX_PASSWORD_LENGTH);
  const privateKey = optionalSecret(
    raw.privateKey,
    `${at}.privateKey`,
    fail,
    MAX_PRIVATE_KEY_LENGTH,
  );
  if (privateKey !== undefined) {
    const problem = privateKeyProblem(privateKey);
    if (problem) fail(`${at}.privateKey`, problem);
  }
  const absent = (value: unknown) => value === undefined || value === null;
  if (absent(raw.password) && absent(raw.privateKey))
    fail(`${at}.password`, "is required when there is no `privateKey` (one of them must be given)");
  if (!ok || host === undefined || username === undefined || path === undefined) return undefined;
  const source: SftpSource = { type: "SFTP", host, port, username, path, hostKeySha256 };
  if (password !== undefined) source.password = password;
  if (privateKey !== undefined) source.privateKey = privateKey;
  return source;
}

function remotePath(value: unknown, path: string, add: Add): string | undefined {
  const result = text(value, path, add, MAX_PATH_LENGTH);
  if (result === undefined) return undefined;
  if (CONTROL.test(result)) {
    add(path, "must not contain control characters");
    return undefined;
  }
  return result;
}

function optionalSecret(value: unknown, path: string, add: Add, max: number): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string" || value === "") {
    add(path, "must be a non-empty string");
    return undefined;
  }
  if (value.length > max) {
    add(path, `must be at most ${max} characters`);
    return undefined;
  }
  return value;
}

/**
 * What is wrong with a private key's text, or undefined. Herald takes unencrypted keys in PEM
 * (`-----BEGIN RSA PRIVATE KEY-----`, `… EC …`, PKCS#8) or OpenSSH form, as `ssh-keygen` writes them.
 */
function privateKeyProblem(key: string): string | undefined {
  const match = /-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----([\s\S]*?)-----END \1PRIVATE KEY-----/.exec(
    key,
  );
  if (!match)
    return "must be a private key in OpenSSH or PEM form (-----BEGIN OPENSSH PRIVATE KEY----- …), as ssh-keygen writes it";
  const kind = match[1] ?? "";
  const body = match[2] ?? "";
  if (kind === "ENCRYPTED " || /Proc-Type:\s*4,ENCRYPTED/.test(body))
    return "is protected by a passphrase; give an unencrypted key (ssh-keygen -p -N '' -f KEY removes it from a copy)";
  if (kind === "OPENSSH ") {
    const bytes = Buffer.from(body.replace(/\s+/g, ""), "base64");
    const magic = "openssh-key-v1\0";
    if (bytes.subarray(0, magic.length).toString("latin1") !== magic)
      return "is not a readable OpenSSH private key";
    const length = bytes.length >= magic.length + 4 ? bytes.readUInt32BE(magic.length) : -1;
    const cipher = bytes.subarray(magic.length + 4, magic.length + 4 + length).toString("latin1");
    if (cipher !== "none")
      return "is protected by a passphrase; give an unencrypted key (ssh-keygen -p -N '' -f KEY removes it from a copy)";
  }
  return undefined;
}

/**
 * A host key fingerprint in the canonical form `SHA256:<base64 without padding>`. Accepted: that
 * form as `ssh-keygen -lf` prints it (the key size, comment and key type around it may stay), the
 * bare base64 (with or without `=`), and the 64 hex digits of the same SHA-256 (colons allowed).
 * Undefined when `value` is none of those.
 */
export function normalizeHostKeySha256(value: string): string | undefined {
  let candidate = value.trim();
  const printed = /SHA256:([A-Za-z0-9+/]{43}=?)(?=\s|$)/.exec(candidate);
  if (printed) candidate = printed[1] ?? "";
  const hex = candidate.replace(/:/g, "");
  let digest: Buffer;
  if (/^[0-9a-fA-F]{64}$/.test(hex)) digest = Buffer.from(hex, "hex");
  else if (/^[A-Za-z0-9+/]{43}=?$/.test(candidate)) digest = Buffer.from(candidate, "base64");
  else return undefined;
  if (digest.length !== 32) return undefined;
  return `SHA256:${digest.toString("base64").replace(/=+$/, "")}`;
}

function parseHostKeySha256(value: unknown, path: string, add: Add): string | null {
  if (value === undefined || value === null || value === "") return null;
  const normalized = typeof value === "string" ? normalizeHostKeySha256(value) : undefined;
  if (normalized === undefined) {
    add(
      path,
      "must be the server's host key fingerprint as `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` prints it (SHA256:…, 43 base64 characters) or its 64 hex digits",
    );
    return null;
  }
  return normalized;
}

function parseDirectory(
  raw: Json,
  add: Add,
  at: string,
  options: ParseFileSourceOptions,
): DirectorySource | undefined {
  const path = `${at}.path`;
  if (!options.dropDirSet) {
    add(
      at,
      "DIRECTORY sources are refused: the operator has not set HERALD_FILE_DROP_DIR (the directory they may read from and write to)",
    );
    return undefined;
  }
  const value = text(raw.path, path, add, MAX_PATH_LENGTH);
  if (value === undefined) return undefined;
  const problem = dropPathProblem(value);
  if (problem) {
    add(path, problem);
    return undefined;
  }
  return { type: "DIRECTORY", path: value };
}

/** Why a DIRECTORY path may not be used, or undefined; the same rule is applied again at transfer. */
export function dropPathProblem(path: string): string | undefined {
  if (CONTROL.test(path)) return "must not contain control characters";
  if (path.startsWith("/") || path.startsWith("\\") || /^[A-Za-z]:/.test(path) || path === "~")
    return "must be relative to HERALD_FILE_DROP_DIR, not an absolute path";
  if (path.startsWith("~/")) return "must be relative to HERALD_FILE_DROP_DIR (no ~)";
  if (path.split(/[/\\]/).includes(".."))
    return "must stay inside HERALD_FILE_DROP_DIR: `..` segments are not allowed";
  return undefined;
}

/** Splits the write-only credentials off (to be sealed) and puts them back with `withCredentials`. */
export function splitCredentials(source: FileSource): {
  source: FileSource;
  credentials: SourceCredentials | undefined;
} {
  if (source.type === "SFTP") {
    const { password, privateKey, ...rest } = source;
    const credentials: SourceCredentials = {};
    if (password !== undefined) credentials.password = password;
    if (privateKey !== undefined) credentials.privateKey = privateKey;
    return {
      source: rest,
      credentials: Object.keys(credentials).length > 0 ? credentials : undefined,
    };
  }
  if (source.type === "HTTPS" && Object.keys(source.headers).length > 0)
    return { source: { ...source, headers: {} }, credentials: { headers: { ...source.headers } } };
  return { source, credentials: undefined };
}

export function withCredentials(
  source: FileSource,
  credentials: SourceCredentials | undefined,
): FileSource {
  if (credentials === undefined) return source;
  if (source.type === "SFTP") {
    const result: SftpSource = { ...source };
    if (credentials.password !== undefined) result.password = credentials.password;
    if (credentials.privateKey !== undefined) result.privateKey = credentials.privateKey;
    return result;
  }
  if (source.type === "HTTPS" && credentials.headers !== undefined)
    return { ...source, headers: { ...source.headers, ...credentials.headers } };
  return source;
}

/**
 * The source as the API answers it: never a password, a private key or a header value, but
 * `passwordSet` / `privateKeySet` (SFTP) and `headerNames` (HTTPS) so the caller sees what is set.
 * Give the (opened) credentials of a stored source: without them it has no header names to show.
 */
export function describeFileSource(
  source: FileSource,
  credentials?: SourceCredentials,
): Record<string, unknown> {
  const full = withCredentials(source, credentials);
  if (full.type === "SFTP") {
    const { password, privateKey, ...rest } = full;
    return {
      ...rest,
      passwordSet: password !== undefined,
      privateKeySet: privateKey !== undefined,
    };
  }
  if (full.type === "HTTPS") {
    const { headers, ...rest } = full;
    return { ...rest, headerNames: Object.keys(headers) };
  }
  return { ...full };
}
