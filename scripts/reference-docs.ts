/**
 * The generated reference documents: docs/openapi.json (from the route schemas) and docs/errors.md
 * (from the error catalogue). `npm run openapi` writes both; a test regenerates them and fails when
 * the committed copies differ, so they cannot drift from the code.
 */
import { buildApp } from "../src/api/app.js";
import { loadConfig } from "../src/config/config.js";
import { ERRORS } from "../src/domain/errors.js";
import { createLogger } from "../src/logger.js";
import type { Database } from "../src/storage/database.js";

export const OPENAPI_PATH = "docs/openapi.json";
export const ERRORS_DOC_PATH = "docs/errors.md";

/**
 * Route modules only declare routes; a database that refuses every call proves they do no I/O.
 * Listening is the exception: the app subscribes to table changes (notices it would only act on).
 */
const NO_DATABASE: Database = new Proxy({} as Database, {
  get: (_target, property) =>
    property === "then"
      ? undefined
      : property === "listen"
        ? async () => async () => {}
        : () => {
            throw new Error(
              `the OpenAPI document is built without a database (called ${String(property)})`,
            );
          },
});

export async function renderOpenApi(): Promise<string> {
  const app = await buildApp({
    db: NO_DATABASE,
    config: loadConfig({ env: {} }),
    logger: createLogger("silent"),
  });
  try {
    await app.ready();
    return `${JSON.stringify(app.swagger(), null, 2)}\n`;
  } finally {
    await app.close();
  }
}

/** What a client should do about each class of status. */
const STATUS_ADVICE: Record<number, string> = {
  400: "The request is wrong; `details` names each offending field. Fix it; retrying as is fails again.",
  401: "Get a token with `GET /auth/token` (the raw API key in `Authorization`), then send `Authorization: Bearer <token>`. Tokens live 15 minutes.",
  403: "The key exists but may not do this: it is not an admin key, or it is limited to other entities.",
  404: "The path or the named thing does not exist, or it belongs to another licence (Herald does not tell which).",
  405: "The path exists with other methods; the `Allow` header lists them.",
  409: "The request conflicts with the current data (a unique value or a name already taken).",
  413: "The body is larger than `HERALD_BODY_LIMIT_BYTES`.",
  415: "Send the body as `application/json`.",
  422: "The request is well formed but refers to something that does not fit (an attribute the table lacks…).",
  429: "The licence is over its rate limit; wait the `Retry-After` seconds.",
  500: "A bug or an outage. The message carries the request id; the server log has the details under it.",
  503: "Herald is starting, stopping or cannot reach its database; retry later.",
};

export function renderErrorsDoc(): string {
  const lines = [
    "# Errors",
    "",
    "<!-- Generated from src/domain/errors.ts by `npm run openapi`; do not edit by hand. -->",
    "",
    "Every 4xx and 5xx answer has a JSON body:",
    "",
    "```json",
    '{ "status": 400, "code": "HERALD_VALIDATION", "message": "The request is invalid: body.name must match pattern …",',
    '  "details": [{ "path": "body.name", "message": "must match pattern …" }] }',
    "```",
    "",
    "`code` is stable: programs should test it, not the message. A code is never renamed nor reused.",
    "`details` lists each offending field (`body.…`, `querystring.…`, `params.…`), or is empty.",
    "`{name}` in a message stands for a value of the failing request.",
    "",
  ];
  const statuses = [...new Set(Object.values(ERRORS).map((e) => e.status))].sort((a, b) => a - b);
  for (const status of statuses) {
    lines.push(
      `## ${status}`,
      "",
      STATUS_ADVICE[status] ?? "",
      "",
      "| code | message |",
      "|---|---|",
    );
    for (const [code, entry] of Object.entries(ERRORS)) {
      if (entry.status === status)
        lines.push(`| \`${code}\` | ${entry.message.replace(/\|/g, "\\|")} |`);
    }
    lines.push("");
  }
  return lines.join("\n");
}
