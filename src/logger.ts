/**
 * Structured logs (pino). Secrets never reach the log: keys, tokens, signatures, headers, signing
 * secrets, file source credentials (passwords, private keys) and HERALD_SECRET_KEY are redacted,
 * at the top of a log object and up to two levels down (`{ source: { password } }`,
 * `{ fileReference: { source: { privateKey } } }`).
 */
import type { Logger } from "pino";
import { pino } from "pino";
import type { LogLevel } from "./config/config.js";

export const REDACTED_PATHS = [
  "req.headers.authorization",
  "headers.authorization",
  "*.headers.authorization",
  "apiKey",
  "*.apiKey",
  "secret",
  "*.secret",
  "previousSecret",
  "*.previousSecret",
  "password",
  "*.password",
  "*.*.password",
  "privateKey",
  "*.privateKey",
  "*.*.privateKey",
  "credentials",
  "*.credentials",
  "*.*.credentials",
  "secretKey",
  "*.secretKey",
  "secretKeyPrevious",
  "*.secretKeyPrevious",
  "accessToken",
  "*.accessToken",
  "adminApiKey",
  "*.adminApiKey",
  "databaseUrl",
  "*.databaseUrl",
  "headers",
  "*.headers",
  "*.*.headers",
];

export function createLogger(level: LogLevel, destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level,
      base: { service: "herald", pid: process.pid },
      redact: { paths: REDACTED_PATHS, censor: "[redacted]" },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination as pino.DestinationStream | undefined,
  );
}
