/**
 * The error catalogue (SPEC §2). Every error Herald answers with has a stable code, an HTTP status
 * and a message template. Codes are never reused: add new ones at the end of their group.
 * Handlers throw `HeraldError`s built from this catalogue; one error handler renders them.
 */
export const ERRORS = {
  // 400: the request is malformed or a value is invalid
  HERALD_VALIDATION: { status: 400, message: "The request is invalid: {reason}" },
  HERALD_MALFORMED_JSON: { status: 400, message: "The request body is not valid JSON: {reason}" },
  HERALD_INVALID_VALUE: {
    status: 400,
    message: "Invalid value for attribute '{attribute}': {reason}",
  },
  HERALD_UNKNOWN_ATTRIBUTE: {
    status: 400,
    message: "Attribute '{attribute}' does not exist in table '{table}'",
  },
  HERALD_TECHNICAL_ATTRIBUTE: {
    status: 400,
    message: "Attribute '{attribute}' is maintained by Herald and cannot be written",
  },
  HERALD_MISSING_MANDATORY: {
    status: 400,
    message: "Mandatory attribute '{attribute}' is missing",
  },
  HERALD_INVALID_TABLE_DEFINITION: {
    status: 400,
    message: "The table definition is invalid: {reason}",
  },
  HERALD_INVALID_PROFILE_KEY: {
    status: 400,
    message: "'{key}' is not a profile id nor attribute=value of a unique attribute",
  },
  HERALD_INVALID_QUERY: { status: 400, message: "Invalid query parameter '{parameter}': {reason}" },
  HERALD_INVALID_ETL_DEFINITION: {
    status: 400,
    message: "The ETL definition is invalid: {reason}",
  },
  HERALD_MISSING_PART: {
    status: 400,
    message: "The multipart request has no '{part}' part (also accepted: {aliases})",
  },
  HERALD_INVALID_FILE: { status: 400, message: "The file cannot be imported: {reason}" },
  HERALD_INVALID_ROW: { status: 400, message: "Line {line} cannot be imported: {reason}" },
  HERALD_UNKNOWN_SEGMENT: {
    status: 400,
    message: "'{segment}' is not a segment of segmentation '{segmentation}' in table '{table}'",
  },
  HERALD_INVALID_FILE_REFERENCE: {
    status: 400,
    message: "The file reference is invalid: {reason}",
  },
  HERALD_NO_SYNCHRONIZED_FILE: {
    status: 400,
    message:
      "ETL '{etl}' reads file reference '{reference}', which has no synchronised file to import: {reason}",
  },
  HERALD_INVALID_EXPORT_DEFINITION: {
    status: 400,
    message: "The export definition is invalid: {reason}",
  },
  HERALD_INVALID_CUSTOM_ACTION: {
    status: 400,
    message: "The custom action is invalid: {reason}",
  },
  HERALD_INVALID_ACTION_PARAMETERS: {
    status: 400,
    message: "The parameters given to custom action '{action}' are invalid: {reason}",
  },
  HERALD_INVALID_SCENARIO: {
    status: 400,
    message: "The scenario is invalid: {reason}",
  },
  // 401 / 403
  HERALD_UNAUTHENTICATED: { status: 401, message: "Authentication is required: {reason}" },
  HERALD_INVALID_API_KEY: { status: 401, message: "The API key is not valid" },
  HERALD_INVALID_TOKEN: { status: 401, message: "The access token is missing, invalid or expired" },
  HERALD_FORBIDDEN: { status: 403, message: "This API key may not {action}" },
  HERALD_ENTITY_FORBIDDEN: {
    status: 403,
    message: "This API key may not access entity '{entity}'",
  },
  // 404 / 405
  HERALD_NOT_FOUND: { status: 404, message: "No route {method} {url}" },
  HERALD_ENTITY_NOT_FOUND: { status: 404, message: "Entity '{entity}' does not exist" },
  HERALD_TABLE_NOT_FOUND: {
    status: 404,
    message: "Table '{table}' does not exist in entity '{entity}'",
  },
  HERALD_PROFILE_NOT_FOUND: {
    status: 404,
    message: "Profile '{key}' does not exist in table '{table}'",
  },
  HERALD_RECORD_NOT_FOUND: {
    status: 404,
    message: "Record '{key}' does not exist in table '{table}'",
  },
  HERALD_SUBSCRIPTION_NOT_FOUND: {
    status: 404,
    message: "Webhook subscription '{id}' does not exist in entity '{entity}'",
  },
  HERALD_API_KEY_NOT_FOUND: { status: 404, message: "API key '{id}' does not exist" },
  HERALD_SEGMENTATION_NOT_FOUND: {
    status: 404,
    message: "Segmentation '{segmentation}' does not exist in table '{table}'",
  },
  HERALD_PROFILE_SUBSCRIPTION_NOT_FOUND: {
    status: 404,
    message: "Subscription '{subscription}' does not exist in table '{table}'",
  },
  HERALD_REPLAY_NOT_FOUND: {
    status: 404,
    message: "Replay '{replayId}' does not exist for webhook subscription '{id}'",
  },
  HERALD_ETL_NOT_FOUND: { status: 404, message: "ETL '{id}' does not exist in entity '{entity}'" },
  HERALD_EXECUTION_NOT_FOUND: {
    status: 404,
    message: "ETL execution '{id}' does not exist in entity '{entity}'",
  },
  HERALD_TRIGGER_SOURCE_NOT_FOUND: {
    status: 404,
    message: "{kind} '{id}' does not exist in entity '{entity}': {reason}",
  },
  HERALD_FILE_REFERENCE_NOT_FOUND: {
    status: 404,
    message: "File reference '{id}' does not exist in entity '{entity}'",
  },
  HERALD_FILE_SYNCHRONIZATION_NOT_FOUND: {
    status: 404,
    message: "Synchronisation '{id}' does not exist for file reference '{reference}'",
  },
  HERALD_SYNCHRONIZED_FILE_GONE: {
    status: 404,
    message: "Synchronisation '{id}' has no file to download: {reason}",
  },
  HERALD_EXPORT_NOT_FOUND: {
    status: 404,
    message: "Export '{id}' does not exist in entity '{entity}'",
  },
  HERALD_EXPORT_EXECUTION_NOT_FOUND: {
    status: 404,
    message: "Execution '{id}' does not exist for export '{export}'",
  },
  HERALD_CUSTOM_ACTION_NOT_FOUND: {
    status: 404,
    message: "Custom action '{id}' does not exist in entity '{entity}'",
  },
  HERALD_SCENARIO_NOT_FOUND: {
    status: 404,
    message: "Scenario '{id}' does not exist in entity '{entity}'",
  },
  HERALD_SCENARIO_RUN_NOT_FOUND: {
    status: 404,
    message: "Run '{id}' does not exist for scenario '{scenario}'",
  },
  HERALD_METHOD_NOT_ALLOWED: { status: 405, message: "Method {method} is not allowed on {url}" },
  // 409
  HERALD_UNIQUE_KEY_TAKEN: {
    status: 409,
    message: "Value '{value}' of unique attribute '{attribute}' is already taken",
  },
  HERALD_NAME_TAKEN: { status: 409, message: "{kind} '{name}' already exists" },
  HERALD_CONFLICT: { status: 409, message: "{reason}" },
  HERALD_RECORD_EXISTS: {
    status: 409,
    message: "A record with {attribute} '{value}' already exists and the mode is CREATE_ONLY",
  },
  HERALD_EXECUTION_FINISHED: {
    status: 409,
    message: "ETL execution '{id}' has already finished ({status})",
  },
  HERALD_RECORD_REFERENCED: {
    status: 409,
    message:
      "Record '{key}' of table '{table}' is referred to by {count} record(s) of table '{referring}' (foreign key '{attribute}', onDelete RESTRICT)",
  },
  HERALD_REFERENCED_VALUE_IN_USE: {
    status: 409,
    message:
      "The {referencedAttribute} '{value}' of a record of table '{table}' cannot change: records of table '{referring}' refer to it (foreign key '{attribute}')",
  },
  HERALD_FILE_REFERENCE_IN_USE: {
    status: 409,
    message:
      "File reference '{id}' cannot be deleted: {users} read or write through it; change or delete them first",
  },
  HERALD_EXPORT_FILE_NOT_READY: {
    status: 409,
    message:
      "Execution '{id}' has no file to download: it is {status}; only a SUCCESS execution's file is complete",
  },
  HERALD_CUSTOM_ACTION_IN_USE: {
    status: 409,
    message: "Custom action '{id}' cannot be {change}: {scenarios}. To go on: {advice}",
  },
  HERALD_SCENARIO_ACTIVE: {
    status: 409,
    message: "Scenario '{id}' cannot be {change} while it is {state}: {advice}",
  },
  HERALD_SCENARIO_NOT_STARTABLE: {
    status: 409,
    message: "Scenario '{id}' cannot start a run: {reason}",
  },
  // 413 / 415 / 422 / 429
  HERALD_BODY_TOO_LARGE: { status: 413, message: "The request body exceeds {limit} bytes" },
  HERALD_UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    message: "Content type '{contentType}' is not supported; send application/json",
  },
  HERALD_FILE_TOO_LARGE: {
    status: 413,
    message: "The file exceeds {limit} bytes, the largest Herald stores (HERALD_MAX_FILE_BYTES)",
  },
  HERALD_MULTIPART_EXPECTED: {
    status: 415,
    message: "Content type '{contentType}' is not supported here; send multipart/form-data",
  },
  HERALD_UNPROCESSABLE: { status: 422, message: "{reason}" },
  HERALD_REFERENCED_RECORD_NOT_FOUND: {
    status: 422,
    message: "Value '{value}' of '{attribute}' refers to no record of table '{table}'",
  },
  HERALD_TABLE_DEFINITION_INCONSISTENT: {
    status: 422,
    message: "The table definition is inconsistent: {reason}",
  },
  HERALD_BLOCKED_TARGET: {
    status: 422,
    message:
      "The target URL is refused: {reason}. Pushes to loopback, private, link-local and metadata addresses are refused; set HERALD_ALLOW_INSECURE_TARGETS=true (or start with --allow-insecure-targets) to allow them, for development only",
  },
  HERALD_RATE_LIMITED: {
    status: 429,
    message: "Too many requests for this licence; retry after {retryAfter} s",
  },
  // 408 / 431: refused by the HTTP server before any route runs
  HERALD_REQUEST_TIMEOUT: {
    status: 408,
    message: "The request was not received in time; the connection is closed",
  },
  HERALD_HEADERS_TOO_LARGE: {
    status: 431,
    message: "The request line and headers exceed the server's limit (16 KiB by default)",
  },
  // 5xx
  HERALD_INTERNAL: {
    status: 500,
    message: "Internal error; the server log has the details under request id {requestId}",
  },
  HERALD_UNAVAILABLE: { status: 503, message: "Herald is not ready: {reason}" },
  HERALD_DATABASE_UNAVAILABLE: {
    status: 503,
    message: "The database is not available right now: {reason}. Retry after {retryAfter} s",
  },
  HERALD_DATABASE_BUSY: {
    status: 503,
    message:
      "The embedded database is busy: this request waited {waitedMs} ms for its turn; retry after {retryAfter} s. For more load than one embedded process takes, run Herald on PostgreSQL (DATABASE_URL)",
  },
  // Final states of jobs (an import execution's `error`), never an HTTP answer of their own
  HERALD_TOO_MANY_REJECTED_ROWS: {
    status: 422,
    message: "{count} rows were rejected, more than maxRejectedRows ({max}); the import stopped",
  },
  HERALD_IMPORT_FAILED: { status: 500, message: "The import could not finish: {reason}" },
  HERALD_SOURCE_FILE_NOT_FOUND: { status: 404, message: "No file at {location}" },
  HERALD_FILE_SYNC_FAILED: {
    status: 502,
    message: "The file could not be synchronised: {reason}",
  },
  HERALD_EXPORT_FAILED: { status: 500, message: "The export could not finish: {reason}" },
  HERALD_EXPORT_COPY_FAILED: {
    status: 502,
    message: "The export's file could not be copied to file reference '{reference}': {reason}",
  },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERRORS;

export interface ErrorDetail {
  path: string;
  message: string;
}

export class HeraldError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: ErrorDetail[];
  readonly headers: Record<string, string>;

  constructor(
    code: ErrorCode,
    params: Record<string, string | number> = {},
    details: ErrorDetail[] = [],
    headers: Record<string, string> = {},
  ) {
    const entry = ERRORS[code];
    super(
      entry.message.replace(/\{(\w+)\}/g, (_, name: string) => String(params[name] ?? `{${name}}`)),
    );
    this.name = "HeraldError";
    this.code = code;
    this.status = entry.status;
    this.details = details;
    this.headers = headers;
  }

  toBody(): { status: number; code: ErrorCode; message: string; details: ErrorDetail[] } {
    return { status: this.status, code: this.code, message: this.message, details: this.details };
  }
}

/** Shorthand for a 400 on one field: `invalid("attributes[2].value", "must be an integer")`. */
export function invalid(path: string, message: string): HeraldError {
  return new HeraldError("HERALD_VALIDATION", { reason: `${path} ${message}` }, [
    { path, message },
  ]);
}
