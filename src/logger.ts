/** Structured logs (pino). Secrets never reach the log: keys, tokens, signatures and headers are redacted. */
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
  "accessToken",
  "*.accessToken",
  "adminApiKey",
  "*.adminApiKey",
  "databaseUrl",
  "*.databaseUrl",
  "headers",
  "*.headers",
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
