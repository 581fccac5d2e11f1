/**
 * The database went away: refused or reset connections, a connection lost mid-query, no connection
 * or no answer within the adapter's time limits, a server starting up or shutting down. The
 * PostgreSQL adapter throws a `DatabaseUnavailable` for each of these (the driver's error is its
 * `cause`), so that the API answers 503 with `Retry-After`, background loops wait and try again, and
 * the start waits for the database, each without knowing the driver's ways of saying so. Everything
 * else (a bad password, a database that does not exist, a constraint violated) passes through as it
 * was thrown. The embedded database runs in-process and never throws one.
 */
export class DatabaseUnavailable extends Error {
  /** What happened, in words for the operator ("connection refused (ECONNREFUSED)"). */
  readonly reason: string;

  constructor(reason: string, where: string | undefined, cause: unknown) {
    super(`the database${where ? ` at ${where}` : ""} is not available: ${reason}`, { cause });
    this.name = "DatabaseUnavailable";
    this.reason = reason;
  }
}

/** True when `error`, or an error it wraps (`cause`), says the database is unavailable. */
export function isDatabaseUnavailable(error: unknown): error is Error {
  return findUnavailable(error) !== undefined;
}

/** The DatabaseUnavailable in `error` or its causes, if any. */
export function findUnavailable(error: unknown): DatabaseUnavailable | undefined {
  for (let e = error, depth = 0; e && depth < 8; depth++) {
    if (e instanceof DatabaseUnavailable) return e;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Network errors of the socket (Node's `code`) that mean the server cannot be reached right now. */
const NETWORK_CODES: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  ECONNABORTED: "connection aborted",
  EPIPE: "connection closed while writing",
  ETIMEDOUT: "connection timed out",
  EHOSTUNREACH: "host unreachable",
  EHOSTDOWN: "host down",
  ENETUNREACH: "network unreachable",
  ENETDOWN: "network down",
  // A name that does not resolve yet: in Docker Compose a service's name resolves only once its
  // container runs. A typo in the host looks the same, so the log says which name it was.
  ENOTFOUND: "host name not found",
  EAI_AGAIN: "host name lookup failed for now",
};

/**
 * SQLSTATEs the server answers with when it cannot serve anyone right now: class 08 (connection
 * exception), an administrator or a crash ending sessions, a server starting up or shutting down,
 * no connection slot left.
 */
const SERVER_STATES: Record<string, string> = {
  "57P01": "the server ended the session (administrator command or shutdown)",
  "57P02": "the server ended the session (crash of another server process)",
  "57P03": "the server is starting up or shutting down",
  "53300": "the server has no connection slot left (max_connections)",
};

/** The driver's messages for a time limit that ran out (POSTGRES_TIME_LIMITS). */
const TIMEOUT_MESSAGES = {
  connect:
    /^(timeout exceeded when trying to connect|timeout expired|Connection terminated due to connection timeout)$/i,
  query: /^Query read timeout$/i,
};

/**
 * True when `error` (a driver error, or one wrapping it) is a time limit that ran out: the database
 * did not answer at all, rather than refusing or dropping the connection.
 */
export function isTimeout(error: unknown): boolean {
  for (let e = error, depth = 0; e && typeof e === "object" && depth < 8; depth++) {
    const { code, message } = e as { code?: unknown; message?: unknown };
    if (code === "ETIMEDOUT") return true;
    if (
      typeof message === "string" &&
      (TIMEOUT_MESSAGES.connect.test(message) || TIMEOUT_MESSAGES.query.test(message))
    )
      return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/**
 * The driver's messages (pg and pg-pool) for a connection lost, a connection that could not be made
 * in time, and a query left without an answer.
 */
const DRIVER_MESSAGES: [RegExp, string][] = [
  [TIMEOUT_MESSAGES.connect, "no connection within the time limit"],
  [TIMEOUT_MESSAGES.query, "no answer within the time limit"],
  [/^Connection terminated/i, "the connection was lost"],
  [/not queryable/i, "the connection was lost"],
  [/^Connection closed$/i, "the connection was lost"],
];

/**
 * Why `error` (a driver error) means the database is unavailable, in words; undefined when it means
 * something else (authentication, a missing database, a bad statement...).
 */
export function unavailabilityReason(error: unknown): string | undefined {
  if (typeof error !== "object" || error === null) return undefined;
  // Node tries each address of a name in turn and reports all failures together.
  if (error instanceof AggregateError && error.errors.length > 0 && !("code" in error))
    return unavailabilityReason(error.errors[0]);
  const { code, message } = error as { code?: unknown; message?: unknown };
  if (typeof code === "string") {
    const network = NETWORK_CODES[code];
    if (network) return `${network} (${code})`;
    if (/^08[0-9A-Z]{3}$/.test(code)) return `connection failure (SQLSTATE ${code})`;
    const state = SERVER_STATES[code];
    if (state) return state;
  }
  if (typeof message === "string")
    for (const [pattern, reason] of DRIVER_MESSAGES) if (pattern.test(message)) return reason;
  const cause = (error as { cause?: unknown }).cause;
  return cause && cause !== error ? unavailabilityReason(cause) : undefined;
}
