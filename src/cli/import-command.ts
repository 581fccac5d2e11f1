/**
 * `herald import FILE --table T`: uploads a data file as a one-shot ETL execution (SPEC §7.1) with a
 * progress bar, follows the execution to its end, and reports its counts and first rejected rows.
 */
import { readFileSync, statSync } from "node:fs";
import { basename } from "node:path";
import { SingleBar } from "cli-progress";
import type { Command } from "commander";
import { Option } from "commander";
import { TABLE_KINDS } from "../domain/data-table.js";
import type { TableKind } from "../domain/data-table.js";
import { IMPORT_MODES } from "../domain/etl-definition.js";
import type { ImportMode } from "../domain/etl-definition.js";
import { HeraldApiError, HeraldClient } from "./api-client.js";
import {
  asClientCommand,
  EXIT_INTERRUPTED,
  EXIT_USAGE,
  reportFailure,
  resolveConnection,
  UsageError,
  withConnectionOptions,
} from "./cli-support.js";
import { duration, followExecution, formatBytes } from "./execution-follow.js";

const FINAL_STATUSES = ["SUCCESS", "WITH_ERROR", "ERROR", "CANCELLED"] as const;
type FinalStatus = (typeof FINAL_STATUSES)[number];

/** Only SUCCESS is 0. An ERROR execution, like bad usage, means the file itself needs fixing. */
const EXIT_BY_FINAL_STATUS: Record<FinalStatus, number> = {
  SUCCESS: 0,
  WITH_ERROR: 1,
  CANCELLED: 1,
  ERROR: 2,
};

const REJECTED_ROWS_SHOWN = 5;

/** Suffixes, checked from the end of the name: `customers.csv.gz` is a gzipped CSV. */
const COMPRESSION_BY_SUFFIX = { ".gz": "GZIP", ".zip": "ZIP" } as const;
const FORMAT_BY_SUFFIX = { ".csv": "CSV", ".txt": "CSV", ".ndjson": "NDJSON", ".jsonl": "NDJSON" };

interface ImportOptions {
  table: string;
  tableType?: TableKind;
  mode?: ImportMode;
  definition?: string;
  entity?: string;
  url?: string;
  apiKey?: string;
}

/** What to send where, settled before any network call so that usage errors cost nothing. */
interface ImportPlan {
  url: string;
  apiKey: string;
  entity: string;
  file: { path: string; name: string; size: number };
  definition: Record<string, unknown>;
}

const COUNT_NAMES = ["read", "created", "updated", "unchanged", "rejected"] as const;

/** An execution as GET …/etl-executions/{id} answers it, read leniently: any field may be missing. */
interface Execution {
  id: string;
  status: string;
  startedAt?: string | null;
  finishedAt?: string | null;
  progress?: { bytesRead?: number; bytesTotal?: number; rowsRead?: number };
  counts?: Partial<Record<(typeof COUNT_NAMES)[number], number>>;
  rejectedRows?: { line?: number; column?: string | null; code?: string; message?: string }[];
  error?: { code?: string; message?: string } | null;
}

export function registerImportCommand(program: Command): void {
  const command = program
    .command("import")
    .description("Upload a data file into a table and follow the import to its end")
    .argument("<file>", "CSV or NDJSON file, optionally compressed (.gz, .zip)")
    .requiredOption("--table <table>", "target table, by name or id")
    .addOption(
      new Option("--table-type <type>", "look the table up among these only").choices(TABLE_KINDS),
    )
    .addOption(
      new Option("--mode <mode>", "what to do with rows (server default CREATE_UPDATE)").choices(
        IMPORT_MODES,
      ),
    )
    .option("--definition <file>", "ETL definition JSON to start from (mapping, file options…)");
  withConnectionOptions(command, "entity to import into")
    .addHelpText(
      "after",
      "\nExit codes: 0 every row imported; 1 some rows rejected, import cancelled, or Herald failed;\n" +
        "2 bad usage, a file or definition Herald refused, or an import that ended in ERROR.",
    )
    .action(async (file: string, options: ImportOptions) => {
      process.exit(await runImport(file, options));
    });
  asClientCommand(command, "import");
}

async function runImport(file: string, options: ImportOptions): Promise<number> {
  let plan: ImportPlan;
  try {
    plan = planImport(file, options, process.env);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`herald: ${error.message}`);
    return EXIT_USAGE;
  }
  const client = new HeraldClient(plan.url, plan.apiKey);
  const executions = `/mass-imports/v5/entities/${encodeURIComponent(plan.entity)}/etl-executions`;
  // The first Ctrl-C stops this command politely; a second one gets Node's default (kill).
  const interrupt = new AbortController();
  const onSigint = () => interrupt.abort();
  process.once("SIGINT", onSigint);
  try {
    let id: string;
    try {
      id = await upload(client, executions, plan, interrupt.signal);
    } catch (error) {
      if (!interrupt.signal.aborted) throw error;
      console.error("herald: upload interrupted (Ctrl-C) before Herald accepted the file");
      return EXIT_INTERRUPTED;
    }
    const executionPath = `${executions}/${encodeURIComponent(id)}`;
    console.log(
      `Uploaded ${plan.file.name} (${formatBytes(plan.file.size)}): execution ${id}. ` +
        "Following it; Ctrl-C stops following, not the import.",
    );
    const execution = await follow(client, executionPath, plan.file.size, interrupt.signal);
    if (execution === "interrupted") {
      console.error(
        `herald: stopped following; import ${id} continues on the server.\n` +
          `  Its status: GET ${client.url(executionPath)}\n` +
          `  To cancel it: POST ${client.url(`${executionPath}/cancel`)}`,
      );
      return EXIT_INTERRUPTED;
    }
    return report(execution, client.url(`${executionPath}/rejected-rows`));
  } catch (error) {
    return reportFailure(error);
  } finally {
    process.off("SIGINT", onSigint);
  }
}

function planImport(file: string, options: ImportOptions, env: NodeJS.ProcessEnv): ImportPlan {
  const { url, apiKey, entity } = resolveConnection(options, env);

  let size: number;
  try {
    const stat = statSync(file);
    if (!stat.isFile()) throw new UsageError(`${file} is not a file`);
    size = stat.size;
  } catch (error) {
    if (error instanceof UsageError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new UsageError(`${file}: no such file`);
    throw new UsageError(`cannot read ${file}: ${(error as Error).message}`);
  }
  const name = basename(file);
  const base = options.definition ? readDefinition(options.definition) : {};
  return {
    url,
    apiKey,
    entity,
    file: { path: file, name, size },
    definition: buildEtlDefinition(base, name, options),
  };
}

function readDefinition(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new UsageError(`cannot read --definition ${path}: ${(error as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`--definition ${path} is not JSON: ${(error as Error).message}`);
  }
  if (!isObject(parsed)) throw new UsageError(`--definition ${path} must hold a JSON object`);
  for (const key of ["target", "file"]) {
    if (parsed[key] !== undefined && !isObject(parsed[key])) {
      throw new UsageError(`--definition ${path}: "${key}" must be an object`);
    }
  }
  return parsed;
}

/**
 * The ETL definition sent with the file: the --definition file's, with the flags on top, and the
 * file's format and compression guessed from its name where the definition leaves them out.
 */
export function buildEtlDefinition(
  base: Record<string, unknown>,
  fileName: string,
  choices: Pick<ImportOptions, "table" | "tableType" | "mode">,
): Record<string, unknown> {
  const target: Record<string, unknown> = { ...(isObject(base.target) ? base.target : {}) };
  target.table = choices.table;
  if (choices.tableType) target.tableType = choices.tableType;
  const file: Record<string, unknown> = { ...(isObject(base.file) ? base.file : {}) };
  const inferred = inferFileFormat(fileName);
  if (file.compression === undefined && inferred.compression)
    file.compression = inferred.compression;
  if (file.format === undefined && inferred.format) file.format = inferred.format;
  const definition: Record<string, unknown> = { ...base, target };
  if (Object.keys(file).length > 0) definition.file = file;
  if (choices.mode) definition.mode = choices.mode;
  return definition;
}

function inferFileFormat(fileName: string): { format?: string; compression?: string } {
  let rest = fileName.toLowerCase();
  let compression: string | undefined;
  for (const [suffix, kind] of Object.entries(COMPRESSION_BY_SUFFIX)) {
    if (rest.endsWith(suffix)) {
      compression = kind;
      rest = rest.slice(0, -suffix.length);
    }
  }
  const format = Object.entries(FORMAT_BY_SUFFIX).find(([suffix]) => rest.endsWith(suffix))?.[1];
  // A zip's name rarely says what it holds (`export.zip`); CSV is what such archives carry.
  return { format: format ?? (compression === "ZIP" ? "CSV" : undefined), compression };
}

async function upload(
  client: HeraldClient,
  path: string,
  plan: ImportPlan,
  signal: AbortSignal,
): Promise<string> {
  const bar = progressBar(`Uploading ${plan.file.name}`, plan.file.size);
  try {
    const answer = await client.upload<{ executionId?: unknown }>(
      path,
      {
        // The definition goes first so that Herald can check it before the file's bytes arrive.
        fields: [{ name: "etlDefinition", value: JSON.stringify(plan.definition) }],
        file: {
          field: "inputFile",
          path: plan.file.path,
          filename: plan.file.name,
          size: plan.file.size,
        },
        onProgress: (sent) => bar.update(sent, plan.file.size),
      },
      signal,
    );
    const id = answer.json.executionId;
    if (typeof id !== "string" && typeof id !== "number") {
      throw new HeraldApiError(500, "", `Herald accepted the upload but sent no executionId`, []);
    }
    return String(id);
  } finally {
    bar.stop();
  }
}

/** Follows the execution until it is final, or until Ctrl-C ("interrupted"). */
async function follow(
  client: HeraldClient,
  path: string,
  fileSize: number,
  signal: AbortSignal,
): Promise<Execution | "interrupted"> {
  const bar = progressBar("Importing", fileSize);
  try {
    return await followExecution<Execution>(client, path, {
      what: "import",
      signal,
      ended: (execution) => {
        const progress = execution.progress ?? {};
        bar.update(progress.bytesRead ?? 0, progress.bytesTotal ?? fileSize, progress.rowsRead);
        return isFinal(execution.status);
      },
    });
  } finally {
    bar.stop();
  }
}

function isFinal(status: string): status is FinalStatus {
  return (FINAL_STATUSES as readonly string[]).includes(status);
}

function report(execution: Execution, rejectedRowsUrl: string): number {
  const status = execution.status as FinalStatus;
  const counts = execution.counts ?? {};
  const took = duration(execution.startedAt, execution.finishedAt);
  console.log(`Import ${execution.id}: ${status}${took ? ` in ${took}` : ""}`);
  console.log(`  ${COUNT_NAMES.map((name) => `${name} ${counts[name] ?? "?"}`).join(", ")}`);
  const rejected = execution.rejectedRows ?? [];
  if (rejected.length > 0) {
    console.log("First rejected rows:");
    for (const row of rejected.slice(0, REJECTED_ROWS_SHOWN)) {
      const where = `line ${row.line ?? "?"}${row.column ? `, column ${row.column}` : ""}`;
      console.log(`  ${where}: ${row.code ? `${row.code}: ` : ""}${row.message ?? ""}`);
    }
  }
  const rejectedCount = counts.rejected ?? rejected.length;
  if (rejectedCount > 0) {
    console.log(`All rejected rows (${rejectedCount}), as CSV: GET ${rejectedRowsUrl}`);
  }
  if (status === "ERROR") {
    const error = execution.error;
    console.error(
      `herald: import ${execution.id} ended in ERROR: ` +
        `${error?.code ? `${error.code}: ` : ""}${error?.message ?? "no reason given"}` +
        " (rows written before it stopped stay)",
    );
  }
  if (status === "CANCELLED") console.log("Cancelled; rows written before the cancel stay.");
  return EXIT_BY_FINAL_STATUS[status];
}

interface Bar {
  update(value: number, total: number, rows?: number): void;
  stop(): void;
}

/** A bar on stderr when it is a terminal; in a pipe or a CI log a redrawn line is only noise. */
function progressBar(label: string, total: number): Bar {
  if (!process.stderr.isTTY) return { update: () => {}, stop: () => {} };
  const bar = new SingleBar({
    format: `${label} [{bar}] {percentage}% | {done} of {size}{rows}`,
    stream: process.stderr,
  });
  const payload = (value: number, size: number, rows?: number) => ({
    done: formatBytes(value),
    size: formatBytes(size),
    rows: rows === undefined ? "" : ` | ${rows} rows read`,
  });
  bar.start(total, 0, payload(0, total));
  return {
    update: (value, size, rows) => {
      bar.setTotal(size);
      bar.update(value, payload(value, size, rows));
    },
    stop: () => bar.stop(),
  };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
