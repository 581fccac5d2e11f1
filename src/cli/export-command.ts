/**
 * `herald export ID [--out FILE]`: runs an export (SPEC §7.3) now, follows its execution with its
 * row count, and downloads the file it wrote. The file appears under its final name only once it is
 * complete (written under a temporary name, its length checked against the execution's, renamed):
 * a failed or interrupted download leaves nothing that looks like an export. `--out -` writes the
 * file to stdout (the messages then go to stderr).
 */
import { randomBytes } from "node:crypto";
import { createWriteStream, renameSync, rmSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Writable } from "node:stream";
import { SingleBar } from "cli-progress";
import type { Command } from "commander";
import { HeraldApiError, HeraldClient, HeraldUnreachableError } from "./api-client.js";
import {
  asClientCommand,
  EXIT_FAILURE,
  EXIT_INTERRUPTED,
  EXIT_OK,
  EXIT_USAGE,
  reportFailure,
  resolveConnection,
  UsageError,
  withConnectionOptions,
} from "./cli-support.js";
import { duration, followExecution, formatBytes } from "./execution-follow.js";

interface ExportOptions {
  out?: string;
  entity?: string;
  url?: string;
  apiKey?: string;
}

/** Where the file goes: a path (a directory given by --out gets the default name) or stdout. */
type Target =
  { kind: "stdout" } | { kind: "file"; path: string } | { kind: "directory"; path: string };

/** An export as GET …/exports/{id} answers it, read leniently. */
interface ExportAnswer {
  id?: string | number;
  name?: string;
  format?: { type?: string; compression?: string };
}

/** An execution as GET …/exports/{id}/executions/{executionId} answers it, read leniently. */
interface Execution {
  id: string | number;
  status: string;
  rowCount?: number | null;
  bytes?: number | null;
  startedAt?: string | null;
  finishedAt?: string | null;
  error?: { code?: string; message?: string } | string | null;
}

export function registerExportCommand(program: Command): void {
  const command = program
    .command("export")
    .description("Run an export now, follow it, and download the file it wrote")
    .argument("<id>", "the export's id")
    .option(
      "--out <file>",
      "where to write the file: a path, a directory, or - for stdout " +
        "(default: the name Herald gives it, in the current directory)",
    );
  withConnectionOptions(command, "entity of the export")
    .addHelpText(
      "after",
      "\nExit codes: 0 the file is written; 1 the export ended in ERROR, the download failed or\n" +
        "Herald failed; 2 bad usage or an export Herald does not know; 130 interrupted (Ctrl-C).",
    )
    .action(async (id: string, options: ExportOptions) => {
      process.exit(await runExport(id, options));
    });
  asClientCommand(command, "export");
}

async function runExport(id: string, options: ExportOptions): Promise<number> {
  let connection: ReturnType<typeof resolveConnection>;
  let target: Target;
  try {
    connection = resolveConnection(options, process.env);
    if (id.trim() === "") throw new UsageError("the export id is empty");
    target = resolveTarget(options.out);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`herald: ${error.message}`);
    return EXIT_USAGE;
  }
  // With the file on stdout, everything else goes to stderr.
  const say = (line: string) =>
    target.kind === "stdout" ? console.error(line) : console.log(line);
  const client = new HeraldClient(connection.url, connection.apiKey);
  const exportPath = `/v5/entities/${encodeURIComponent(connection.entity)}/exports/${encodeURIComponent(id)}`;
  const interrupt = new AbortController();
  const onSigint = () => interrupt.abort();
  process.once("SIGINT", onSigint);
  try {
    const definition = (await client.getJson<ExportAnswer>(exportPath, interrupt.signal)).json;
    const started = await client.sendJson<{ executionId?: unknown }>(
      "POST",
      `${exportPath}/executions`,
      undefined,
      interrupt.signal,
    );
    const executionId = started.json.executionId;
    if (typeof executionId !== "string" && typeof executionId !== "number")
      throw new HeraldApiError(500, "", "Herald started the export but sent no executionId", []);
    const executionPath = `${exportPath}/executions/${encodeURIComponent(String(executionId))}`;
    const label = `Export ${id}${definition.name ? ` (${definition.name})` : ""}`;
    say(`${label}: execution ${executionId} started. Ctrl-C stops following, not the export.`);
    const execution = await follow(client, executionPath, interrupt.signal);
    if (execution === "interrupted") {
      console.error(
        `herald: stopped following; execution ${executionId} continues on the server.\n` +
          `  Its status: GET ${client.url(executionPath)}\n` +
          `  Its file, once it succeeded: GET ${client.url(`${executionPath}/file`)}`,
      );
      return EXIT_INTERRUPTED;
    }
    const took = duration(execution.startedAt, execution.finishedAt);
    const rows = execution.rowCount ?? "?";
    const counts = `${rows} ${rows === 1 ? "row" : "rows"}, ${formatBytes(execution.bytes ?? 0)}`;
    if (execution.status !== "SUCCESS") {
      console.error(
        `herald: export ${id} execution ${executionId} ended in ${execution.status}: ${reasonOf(execution)}`,
      );
      return EXIT_FAILURE;
    }
    say(`${label}: execution ${executionId} SUCCESS, ${counts}${took ? ` in ${took}` : ""}`);
    const saved = await download({
      client,
      path: `${executionPath}/file`,
      target,
      defaultName: defaultFileName(definition, id, String(executionId)),
      expectedBytes: typeof execution.bytes === "number" ? execution.bytes : undefined,
      signal: interrupt.signal,
    });
    if (saved === "interrupted") {
      console.error(
        `herald: download interrupted (Ctrl-C); nothing was written. The file stays on the server: GET ${client.url(`${executionPath}/file`)}`,
      );
      return EXIT_INTERRUPTED;
    }
    if (saved !== undefined) say(`Saved ${saved.path} (${formatBytes(saved.bytes)})`);
    return EXIT_OK;
  } catch (error) {
    if (interrupt.signal.aborted) {
      console.error("herald: interrupted (Ctrl-C)");
      return EXIT_INTERRUPTED;
    }
    return reportFailure(error);
  } finally {
    process.off("SIGINT", onSigint);
  }
}

/** --out as a target, checked before any network call. */
export function resolveTarget(out: string | undefined): Target {
  if (out === "-") return { kind: "stdout" };
  const path = out ?? ".";
  let isDirectory = false;
  try {
    isDirectory = statSync(path).isDirectory();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT")
      throw new UsageError(`cannot write to --out ${path}: ${(error as Error).message}`);
  }
  if (isDirectory) return { kind: "directory", path };
  const parent = dirname(path);
  try {
    if (!statSync(parent).isDirectory())
      throw new UsageError(`--out ${path}: ${parent} is not a directory`);
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError(`--out ${path}: no directory ${parent}`);
  }
  return { kind: "file", path };
}

/** Follows the execution until it ends, or until Ctrl-C ("interrupted"). */
async function follow(
  client: HeraldClient,
  path: string,
  signal: AbortSignal,
): Promise<Execution | "interrupted"> {
  const bar = statusLine("Exporting");
  try {
    return await followExecution<Execution>(client, path, {
      what: "export",
      signal,
      ended: (execution) => {
        bar.update(execution.status, execution.rowCount ?? 0, execution.bytes ?? 0);
        return execution.status === "SUCCESS" || execution.status === "ERROR";
      },
    });
  } finally {
    bar.stop();
  }
}

interface DownloadPlan {
  client: HeraldClient;
  path: string;
  target: Target;
  defaultName: string;
  expectedBytes: number | undefined;
  signal: AbortSignal;
}

/**
 * Streams the file to its target: under a temporary name beside the final one, renamed once all
 * of it arrived and its length is the execution's. Undefined for stdout (nothing to name).
 */
async function download(
  plan: DownloadPlan,
): Promise<{ path: string; bytes: number } | undefined | "interrupted"> {
  const response = await plan.client.download(plan.path, plan.signal);
  // The length announced for the body, else the execution's: a body that ends short is no file.
  const announced = Number(response.headers["content-length"]);
  const expected =
    Number.isSafeInteger(announced) && announced >= 0 ? announced : plan.expectedBytes;
  const total = expected ?? 0;
  const finalPath =
    plan.target.kind === "file"
      ? plan.target.path
      : join(
          plan.target.kind === "directory" ? plan.target.path : ".",
          fileNameFromDisposition(response.headers["content-disposition"]) ?? plan.defaultName,
        );
  const temporary =
    plan.target.kind === "stdout"
      ? undefined
      : join(
          dirname(finalPath),
          `.${basename(finalPath)}.${randomBytes(4).toString("hex")}.partial`,
        );
  const bar = progressBar(`Downloading ${basename(finalPath)}`, total);
  let bytes = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      bytes += chunk.length;
      bar.update(bytes);
      done(null, chunk);
    },
  });
  const sink: Writable = temporary ? createWriteStream(temporary, { flags: "wx" }) : process.stdout;
  try {
    await pipeline(response.body, counter, sink, {
      signal: plan.signal,
      end: temporary !== undefined,
    });
    if (expected !== undefined && bytes !== expected)
      throw new HeraldUnreachableError(
        `the download ended after ${bytes} of ${expected} bytes` +
          (temporary ? `; nothing was written to ${finalPath}` : ""),
      );
    if (!temporary) return undefined;
    renameSync(temporary, finalPath);
    return { path: finalPath, bytes };
  } catch (error) {
    if (temporary) rmSync(temporary, { force: true });
    if (plan.signal.aborted) return "interrupted";
    if (error instanceof HeraldApiError || error instanceof HeraldUnreachableError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    if (code && ["ENOSPC", "EACCES", "EROFS", "EISDIR", "EEXIST", "EPERM"].includes(code))
      throw new UsageError(`cannot write ${finalPath}: ${(error as Error).message}`);
    throw new HeraldUnreachableError(
      `the download of ${plan.client.url(plan.path)} failed: ${(error as Error).message}` +
        (temporary ? `; nothing was written to ${finalPath}` : ""),
    );
  } finally {
    bar.stop();
  }
}

/** The name in a Content-Disposition header, reduced to a plain file name; undefined when none. */
export function fileNameFromDisposition(header: string | string[] | undefined): string | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (!value) return undefined;
  let name: string | undefined;
  const extended = /filename\*\s*=\s*(?:UTF-8|utf-8)''([^;]+)/.exec(value);
  if (extended) {
    try {
      name = decodeURIComponent(extended[1]!.trim());
    } catch {
      name = undefined;
    }
  }
  if (name === undefined) {
    const plain = /filename\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))/.exec(value);
    name = plain ? (plain[1]?.replace(/\\(.)/g, "$1") ?? plain[2]) : undefined;
  }
  return name === undefined ? undefined : safeFileName(name);
}

/** `<export name>-<executionId>.<ext>`, the extension from the export's format. */
export function defaultFileName(definition: ExportAnswer, id: string, executionId: string): string {
  const type = definition.format?.type === "NDJSON" ? "ndjson" : "csv";
  const compression = definition.format?.compression;
  const extension = compression === "ZIP" ? "zip" : compression === "GZIP" ? `${type}.gz` : type;
  const stem = safeFileName(definition.name ?? "") ?? `export-${id}`;
  return `${stem}-${executionId}.${extension}`;
}

// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f]/g;

/**
 * A name that stays in the chosen directory and is no hidden file there (`.bashrc` in a home
 * directory): no separators, no leading dots, no control characters.
 */
function safeFileName(raw: string): string | undefined {
  const last = raw.split(/[/\\]/).pop() ?? "";
  const cleaned = last.replace(CONTROL_CHARACTERS, "").trim().replace(/^\.+/, "");
  if (cleaned === "") return undefined;
  return cleaned.replace(/[^\p{L}\p{N}._ -]/gu, "_").slice(0, 200);
}

function reasonOf(execution: Execution): string {
  const error = execution.error;
  if (typeof error === "string") return error;
  if (error && (error.code || error.message))
    return `${error.code ? `${error.code}: ` : ""}${error.message ?? ""}`;
  return "no reason given";
}

interface Progress {
  update(value: number): void;
  stop(): void;
}

/** A bar on stderr when it is a terminal; in a pipe or a CI log a redrawn line is only noise. */
function progressBar(label: string, total: number): Progress {
  if (!process.stderr.isTTY) return { update: () => {}, stop: () => {} };
  const bar = new SingleBar({
    format: `${label} [{bar}] {percentage}% | {done} of {size}`,
    stream: process.stderr,
  });
  bar.start(total, 0, { done: formatBytes(0), size: total ? formatBytes(total) : "?" });
  return {
    update: (value) =>
      bar.update(Math.min(value, total || value), {
        done: formatBytes(value),
        size: total ? formatBytes(total) : "?",
      }),
    stop: () => bar.stop(),
  };
}

/** The execution's status and counts, redrawn on a terminal (the total is not known in advance). */
function statusLine(label: string): {
  update(status: string, rows: number, bytes: number): void;
  stop(): void;
} {
  if (!process.stderr.isTTY) return { update: () => {}, stop: () => {} };
  const bar = new SingleBar({
    format: `${label} {status} | {rows} rows | {done}`,
    stream: process.stderr,
  });
  bar.start(1, 0, { status: "PENDING", rows: 0, done: formatBytes(0) });
  return {
    update: (status, rows, bytes) => bar.update(0, { status, rows, done: formatBytes(bytes) }),
    stop: () => bar.stop(),
  };
}
