/**
 * What every `herald` client command shares (`import`, `listen`, `tail`, `subscriptions`): the
 * connection options (`--url`/HERALD_URL, `--api-key`/HERALD_API_KEY, `--entity`/HERALD_ENTITY),
 * the exit codes, usage errors and one-line error reports (never a stack trace), and colours only on
 * a terminal that has not asked for none (NO_COLOR).
 */
import type { Command } from "commander";
import type { ErrorDetail } from "./api-client.js";
import { HeraldApiError, HeraldUnreachableError, UploadFileError } from "./api-client.js";

export const EXIT_OK = 0;
/** Herald failed, could not be reached, or refused the key; the command's work did not happen. */
export const EXIT_FAILURE = 1;
/** Bad usage, or something the user named that Herald refused (a table, a subscription, a file). */
export const EXIT_USAGE = 2;
/** 128 + SIGINT: what shells and CI runners expect of a command stopped by Ctrl-C mid-work. */
export const EXIT_INTERRUPTED = 130;

/** Error answers caused by what the user asked (a bad file, table or entity): exit 2 like bad usage. */
const USER_FAULT_STATUSES: readonly number[] = [400, 404, 413, 415, 422];
/** Answers worth waiting out while following: Herald restarting or shedding load. */
const TRANSIENT_STATUSES: readonly number[] = [429, 502, 503, 504];

export const DEFAULT_HERALD_URL = "http://localhost:8080";
export const DEFAULT_ENTITY = "default";

/** A mistake in how the command was called; reported as one line, exit 2, before any call is made. */
export class UsageError extends Error {
  override name = "UsageError";
}

export interface ConnectionOptions {
  url?: string;
  apiKey?: string;
  entity?: string;
}

/** Where a command talks to, settled before any network call so that usage errors cost nothing. */
export interface Connection {
  /** http(s) origin plus any path prefix, without a trailing slash. */
  url: string;
  apiKey: string;
  entity: string;
}

/** Flags beat the environment, which beats the defaults (as for `herald start`'s settings). */
export function resolveConnection(
  options: ConnectionOptions,
  env: NodeJS.ProcessEnv = process.env,
): Connection {
  const apiKey = options.apiKey || env.HERALD_API_KEY;
  if (!apiKey) throw new UsageError("no API key: pass --api-key KEY or set HERALD_API_KEY");
  return {
    url: baseUrl(options.url || env.HERALD_URL || DEFAULT_HERALD_URL),
    apiKey,
    entity: options.entity || env.HERALD_ENTITY || DEFAULT_ENTITY,
  };
}

export function baseUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`--url / HERALD_URL must be an http(s) address; got '${raw}'`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new UsageError(`--url / HERALD_URL must be an http(s) address; got '${raw}'`);
  }
  // A path prefix (Herald behind a proxy at /herald) is kept; paths are appended to it.
  return `${url.origin}${url.pathname.replace(/\/+$/, "")}`;
}

/** Adds `--entity`, `--url` and `--api-key`; `entityHelp` says what the entity is for here. */
export function withConnectionOptions(command: Command, entityHelp: string): Command {
  return command
    .option("--entity <entity>", `${entityHelp} (HERALD_ENTITY; default: ${DEFAULT_ENTITY})`)
    .option("--url <url>", `Herald's address (HERALD_URL; default: ${DEFAULT_HERALD_URL})`)
    .option("--api-key <key>", "API key (HERALD_API_KEY)");
}

/**
 * Usage errors (a missing option, a bad choice) as one `herald: …` line pointing at `--help`, and
 * exit 2 rather than Commander's 1, so that scripts can tell bad usage from a failure.
 */
export function asClientCommand(command: Command, helpName: string): Command {
  return command
    .configureOutput({
      outputError: (text, write) =>
        write(
          `herald: ${text.replace(/^error: /, "").trimEnd()} (see herald ${helpName} --help)\n`,
        ),
    })
    .exitOverride((error) => process.exit(error.exitCode === 0 ? EXIT_OK : EXIT_USAGE));
}

/** A whole number option within bounds, or a usage error naming the option. */
export function wholeNumber(raw: string, option: string, min: number, max: number): number {
  const value = /^\d{1,16}$/.test(raw.trim()) ? Number(raw.trim()) : NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max)
    throw new UsageError(`${option} must be a whole number from ${min} to ${max}; got '${raw}'`);
  return value;
}

/**
 * Reports a failure as one line on stderr (plus the API's details, one per line) and returns the
 * exit code. Anything else is a bug: it is thrown on, and the program's last catch prints its message.
 */
export function reportFailure(error: unknown): number {
  if (error instanceof UsageError) {
    console.error(`herald: ${error.message}`);
    return EXIT_USAGE;
  }
  if (error instanceof HeraldApiError) {
    console.error(`herald: ${error.message}`);
    for (const detail of error.details) console.error(`  ${describeDetail(detail)}`);
    return USER_FAULT_STATUSES.includes(error.status) ? EXIT_USAGE : EXIT_FAILURE;
  }
  if (error instanceof HeraldUnreachableError || error instanceof UploadFileError) {
    console.error(`herald: ${error.message}`);
    return EXIT_FAILURE;
  }
  throw error;
}

export function describeDetail(detail: ErrorDetail): string {
  return detail.path ? `${detail.path}: ${detail.message}` : detail.message;
}

/** Herald unreachable, restarting or shedding load: a follower waits it out instead of failing. */
export function isTransient(error: unknown): boolean {
  if (error instanceof HeraldUnreachableError) return true;
  return error instanceof HeraldApiError && TRANSIENT_STATUSES.includes(error.status);
}

/** `error` is this HTTP status answered by Herald (with this code, when given). */
export function isApiError(error: unknown, status: number, code?: string): error is HeraldApiError {
  return (
    error instanceof HeraldApiError &&
    error.status === status &&
    (code === undefined || error.code === code)
  );
}

/** The entity's part of a path. */
export function entitySegment(entity: string): string {
  return encodeURIComponent(entity);
}

export type Paint = (text: string) => string;

export interface Palette {
  red: Paint;
  green: Paint;
  yellow: Paint;
  cyan: Paint;
  dim: Paint;
  bold: Paint;
}

const ANSI = { red: 31, green: 32, yellow: 33, cyan: 36, dim: 2, bold: 1 } as const;

/**
 * Colours for text written to `stream`: ANSI codes on a terminal, plain text in a pipe, a file or a
 * CI log, and whenever NO_COLOR is set to anything (no-color.org).
 */
export function palette(
  stream: { isTTY?: boolean },
  env: NodeJS.ProcessEnv = process.env,
): Palette {
  const on = stream.isTTY === true && !env.NO_COLOR;
  const paint =
    (code: number): Paint =>
    (text) =>
      on ? `\u001b[${code}m${text}\u001b[0m` : text;
  return {
    red: paint(ANSI.red),
    green: paint(ANSI.green),
    yellow: paint(ANSI.yellow),
    cyan: paint(ANSI.cyan),
    dim: paint(ANSI.dim),
    bold: paint(ANSI.bold),
  };
}

/**
 * Resolves on the first SIGINT or SIGTERM (the command then stops politely); a second one exits at
 * once with `onSecond`'s line. `dispose` removes the handlers.
 */
export function stopSignal(onSecond: () => void): {
  stopped: Promise<NodeJS.Signals>;
  signal: AbortSignal;
  dispose: () => void;
} {
  const controller = new AbortController();
  let resolve: (signal: NodeJS.Signals) => void = () => {};
  const stopped = new Promise<NodeJS.Signals>((r) => (resolve = r));
  const handler = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) {
      onSecond();
      process.exit(EXIT_INTERRUPTED);
    }
    controller.abort();
    resolve(signal);
  };
  process.on("SIGINT", handler);
  process.on("SIGTERM", handler);
  return {
    stopped,
    signal: controller.signal,
    dispose: () => {
      process.off("SIGINT", handler);
      process.off("SIGTERM", handler);
    },
  };
}
