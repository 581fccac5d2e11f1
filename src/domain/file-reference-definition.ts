/**
 * A file reference as a request defines it (SPEC §7.2): `{"name", "source", "schedule", "timezone"}`.
 * The source is checked by file-source.ts (HTTPS, SFTP, DIRECTORY), the schedule by schedule.ts;
 * every problem is collected with its path (400 HERALD_INVALID_FILE_REFERENCE), unknown keys are
 * warnings, as the ETL definition does. Pure: storing it is storage/file-reference-repository.ts.
 */
import type { ErrorDetail } from "./errors.js";
import { HeraldError } from "./errors.js";
import type { FileSource, SourceCredentials } from "./file-source.js";
import { parseFileSource } from "./file-source.js";
import { findUnstorableText, UNSTORABLE_TEXT_MESSAGE } from "./safe-text.js";
import type { Schedule } from "./schedule.js";
import { parseSchedule } from "./schedule.js";

export interface FileReferenceDefinition {
  name: string;
  /** The source with its credentials (split off and sealed before it is stored). */
  source: FileSource;
  schedule: Schedule | null;
  /** The zone date placeholders expand in: `timezone`, else the schedule's, else UTC. */
  timeZone: string;
}

export interface ParsedFileReference {
  definition: FileReferenceDefinition;
  /** Unknown keys, ignored. */
  warnings: ErrorDetail[];
}

export interface FileReferenceParseOptions {
  allowInsecureTargets: boolean;
  /** HERALD_FILE_DROP_DIR is set (else a DIRECTORY source is refused). */
  dropDirSet: boolean;
  /**
   * A PUT's stored credentials: put back into an SFTP source that sends neither `password` nor
   * `privateKey`, when its host, port and username are those of the stored source (credentials
   * are write-only, so a client that read the reference cannot send them back; they are never
   * carried over to another server or user).
   */
  current?: { source: FileSource; credentials: SourceCredentials | undefined };
}

const KNOWN_KEYS = ["name", "source", "schedule", "timezone", "timeZone", "id", "_links"];

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** True when `zone` is an IANA time zone this Node.js knows. */
export function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

function originOf(url: unknown): string | undefined {
  try {
    return typeof url === "string" ? new URL(url.trim()).origin : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The request's source with the stored credentials put back when a PUT leaves them out: an SFTP
 * source without `password` and `privateKey` on the same host, port and username; an HTTPS source
 * without a `headers` key on the same origin (`"headers": {}` removes them).
 */
function withKeptCredentials(raw: unknown, current: FileReferenceParseOptions["current"]): unknown {
  const kept = current?.credentials;
  if (!isObject(raw) || !current || !kept) return raw;
  const type = typeof raw.type === "string" ? raw.type.trim().toUpperCase() : raw.type;
  const stored = current.source;
  if (type === "SFTP" && stored.type === "SFTP") {
    if (raw.password !== undefined || raw.privateKey !== undefined) return raw;
    const port = raw.port === undefined || raw.port === null ? 22 : Number(raw.port);
    const username = raw.username ?? raw.user ?? raw.login;
    const sameServer =
      typeof raw.host === "string" &&
      raw.host.trim() === stored.host &&
      port === stored.port &&
      username === stored.username;
    if (!sameServer) return raw;
    const { password, privateKey } = kept;
    return {
      ...raw,
      ...(password !== undefined ? { password } : {}),
      ...(privateKey !== undefined ? { privateKey } : {}),
    };
  }
  if (type === "HTTPS" && stored.type === "HTTPS" && kept.headers !== undefined) {
    if (raw.headers !== undefined) return raw;
    const origin = originOf(raw.url ?? raw.uri);
    return origin !== undefined && origin === originOf(stored.url)
      ? { ...raw, headers: kept.headers }
      : raw;
  }
  return raw;
}

export function parseFileReferenceDefinition(
  raw: unknown,
  options: FileReferenceParseOptions,
): ParsedFileReference {
  const errors: ErrorDetail[] = [];
  const warnings: ErrorDetail[] = [];
  const add = (path: string, message: string) => errors.push({ path, message });
  if (!isObject(raw))
    throw new HeraldError("HERALD_INVALID_FILE_REFERENCE", { reason: "it must be a JSON object" }, [
      { path: "", message: "must be a JSON object" },
    ]);
  const unstorable = findUnstorableText(raw, "");
  if (unstorable !== undefined) add(unstorable, UNSTORABLE_TEXT_MESSAGE);
  for (const key of Object.keys(raw))
    if (!KNOWN_KEYS.includes(key))
      warnings.push({ path: key, message: "is not a key Herald knows here; ignored" });

  let name = "";
  if (typeof raw.name !== "string" || raw.name.trim() === "")
    add("name", "is required: a non-empty string that names the reference in its entity");
  else if (raw.name.length > 200) add("name", "must be at most 200 characters");
  else name = raw.name;

  let source: FileSource | undefined;
  if (raw.source === undefined || raw.source === null)
    add("source", "is required: {type: HTTPS | SFTP | DIRECTORY, …}");
  else
    source = parseFileSource(withKeptCredentials(raw.source, options.current), add, {
      allowInsecureTargets: options.allowInsecureTargets,
      dropDirSet: options.dropDirSet,
      path: "source",
    });

  let schedule: Schedule | null = null;
  if (raw.schedule !== undefined && raw.schedule !== null)
    schedule = parseSchedule(raw.schedule, add, "schedule") ?? null;

  let timeZone = schedule?.timezone ?? "UTC";
  const zone = raw.timezone ?? raw.timeZone;
  if (zone !== undefined && zone !== null) {
    if (typeof zone !== "string" || !isTimeZone(zone))
      add("timezone", "must be an IANA time zone such as Europe/Brussels or UTC");
    else timeZone = zone;
  }

  if (errors.length > 0 || !source) {
    const first = errors[0] ?? { path: "source", message: "is invalid" };
    throw new HeraldError(
      "HERALD_INVALID_FILE_REFERENCE",
      { reason: `${first.path} ${first.message}` },
      errors,
    );
  }
  return { definition: { name, source, schedule, timeZone }, warnings };
}
