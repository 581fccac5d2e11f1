/**
 * `herald subscriptions list | show ID | replay ID`: an entity's webhook subscriptions from the
 * command line (docs/subscriptions.md, docs/delivery-control.md). `list` is a table, `show` one
 * subscription's settings and health (status, recent attempts, replays) as aligned lines or JSON,
 * `replay` asks Herald to send its events again from a log position or a time. Secrets — the signing
 * secret and the values of the subscription's own headers — are shown only with `--show-secret`.
 */
import type { Command } from "commander";
import { HeraldClient } from "./api-client.js";
import type { ConnectionOptions, Palette } from "./cli-support.js";
import {
  asClientCommand,
  entitySegment,
  EXIT_OK,
  palette,
  reportFailure,
  resolveConnection,
  UsageError,
  wholeNumber,
  withConnectionOptions,
} from "./cli-support.js";
import { TableDirectory, tableKindLabel } from "./table-directory.js";

/** A subscription as the API answers it, read leniently. */
interface SubscriptionJson {
  id: number;
  on?: string;
  onElementId?: string | null;
  eventType?: string;
  targetUrl?: string;
  headers?: Record<string, string>;
  isActive?: boolean;
  expiresAt?: string | null;
  status?: { state?: string; reason?: string | null; lag?: number; parkedRecords?: number };
  [field: string]: unknown;
}

interface AttemptJson {
  attemptedAt?: string;
  outcome?: string;
  statusCode?: number | null;
  errorClass?: string | null;
  positions?: { first?: number; last?: number };
  durationMs?: number;
}

interface ReplayJson {
  id?: number;
  status?: string;
  fromPosition?: number;
  toPosition?: number;
  cursor?: number;
  eventsSent?: number;
  requestedAt?: string;
}

const LIST_PAGE_SIZE = 1000;
const RECENT_ATTEMPTS = 5;
const MASK = "********";

interface ShowOptions extends ConnectionOptions {
  json?: boolean;
  showSecret?: boolean;
}

interface ReplayOptions extends ConnectionOptions {
  fromPosition?: string;
  since?: string;
  toPosition?: string;
}

export function registerSubscriptionsCommand(program: Command): void {
  const group = program
    .command("subscriptions")
    .description("List, inspect and replay the entity's webhook subscriptions");
  asClientCommand(group, "subscriptions");

  const list = group
    .command("list")
    .description("One line per subscription: id, state, table or source, event type, target, lag")
    .option("--json", "print the API's JSON instead");
  withConnectionOptions(list, "entity whose subscriptions to list").action(
    async (options: ShowOptions) =>
      process.exit(await run(options, (c) => listCommand(c, options))),
  );
  asClientCommand(list, "subscriptions list");

  const show = group
    .command("show")
    .description("A subscription's settings and health: status, lag, recent attempts, replays")
    .argument("<id>", "subscription id")
    .option("--json", "print JSON instead of aligned lines")
    .option("--show-secret", "also print the signing secret and the values of its headers");
  withConnectionOptions(show, "entity of the subscription").action(
    async (id: string, options: ShowOptions) =>
      process.exit(await run(options, (c) => showCommand(c, id, options))),
  );
  asClientCommand(show, "subscriptions show");

  const replay = group
    .command("replay")
    .description("Send a subscription's events again, from a log position or from a time")
    .argument("<id>", "subscription id")
    .option("--from-position <n>", "first log position to send again")
    .option("--since <time>", "ISO 8601 time: the entity's events from then on")
    .option("--to-position <n>", "last log position (default: the log head now)");
  withConnectionOptions(replay, "entity of the subscription")
    .addHelpText(
      "after",
      "\nExactly one of --from-position and --since. Herald sends the matching events as new pushes\n" +
        "beside live delivery; follow the replay with herald subscriptions show ID.",
    )
    .action(async (id: string, options: ReplayOptions) =>
      process.exit(await run(options, (c) => replayCommand(c, id, options))),
    );
  asClientCommand(replay, "subscriptions replay");
}

interface Context {
  client: HeraldClient;
  entity: string;
  /** `/v4/entity/{entity}/webhookSubscription` */
  base: string;
  tables: TableDirectory;
  colours: Palette;
}

async function run(
  options: ConnectionOptions,
  body: (context: Context) => Promise<number>,
): Promise<number> {
  try {
    const connection = resolveConnection(options);
    const client = new HeraldClient(connection.url, connection.apiKey);
    return await body({
      client,
      entity: connection.entity,
      base: `/v4/entity/${entitySegment(connection.entity)}/webhookSubscription`,
      tables: new TableDirectory(client, connection.entity),
      colours: palette(process.stdout),
    });
  } catch (error) {
    return reportFailure(error);
  }
}

/** A subscription id as the path takes it; anything else is a usage error before any call. */
function subscriptionId(raw: string): number {
  const id = /^\d{1,15}$/.test(raw) ? Number(raw) : 0;
  if (id < 1) throw new UsageError(`a subscription id is a whole number such as 12; got '${raw}'`);
  return id;
}

/** `profile Customers`, `custom Orders`, `ETL 3`, `EXPORT (all)`. */
async function sourceLabel(s: SubscriptionJson, tables: TableDirectory): Promise<string> {
  if (s.on === "PROFILE_TABLE" || s.on === "CUSTOM_TABLE") {
    const table = s.onElementId ? await tables.byId(s.onElementId) : undefined;
    return `${tableKindLabel(s.on)} ${table?.name ?? `table ${s.onElementId ?? "?"}`}`;
  }
  return `${s.on ?? "?"} ${s.onElementId ?? "(all)"}`;
}

function paintState(state: string, colours: Palette): string {
  return state === "ACTIVE"
    ? colours.green(state)
    : state === "FAILING"
      ? colours.red(state)
      : colours.yellow(state);
}

/** Aligned columns; colours are added after padding so that escape codes do not skew widths. */
function printTable(
  headings: string[],
  rows: string[][],
  paint: (column: number, cell: string) => string,
) {
  const widths = headings.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[], painter: (column: number, cell: string) => string) =>
    cells
      .map((cell, i) => painter(i, i === cells.length - 1 ? cell : cell.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  console.log(line(headings, (_, c) => c));
  for (const row of rows) console.log(line(row, paint));
}

async function listCommand(context: Context, options: ShowOptions): Promise<number> {
  const all: SubscriptionJson[] = [];
  for (let page = 0; ; page++) {
    const answer = await context.client.getJson<{
      webhookSubscriptions?: SubscriptionJson[];
      totalElements?: number;
    }>(`${context.base}?page=${page}&pageSize=${LIST_PAGE_SIZE}`);
    const items = answer.json.webhookSubscriptions ?? [];
    all.push(...items);
    if (items.length < LIST_PAGE_SIZE || all.length >= (answer.json.totalElements ?? 0)) break;
  }
  if (options.json) {
    console.log(
      JSON.stringify(
        all.map((s) => masked(s, false)),
        null,
        2,
      ),
    );
    return EXIT_OK;
  }
  if (all.length === 0) {
    console.log(`No webhook subscriptions in entity ${context.entity}.`);
    return EXIT_OK;
  }
  const withExpiry = all.some((s) => s.expiresAt);
  const headings = ["ID", "STATE", "SOURCE", "EVENT", "TARGET", "LAG"];
  if (withExpiry) headings.push("EXPIRES");
  const rows: string[][] = [];
  for (const s of all) {
    const row = [
      String(s.id),
      s.status?.state ?? "?",
      await sourceLabel(s, context.tables),
      s.eventType ?? "?",
      s.targetUrl ?? "?",
      String(s.status?.lag ?? "?"),
    ];
    if (withExpiry) row.push(s.expiresAt ?? "-");
    rows.push(row);
  }
  printTable(headings, rows, (column, cell) =>
    column === 1
      ? paintState(cell.trimEnd(), context.colours) + cell.slice(cell.trimEnd().length)
      : cell,
  );
  return EXIT_OK;
}

/** The subscription with its header values hidden unless `reveal`. */
function masked(s: SubscriptionJson, reveal: boolean): SubscriptionJson {
  if (reveal || !s.headers) return s;
  return { ...s, headers: Object.fromEntries(Object.keys(s.headers).map((n) => [n, MASK])) };
}

async function showCommand(context: Context, rawId: string, options: ShowOptions): Promise<number> {
  const id = subscriptionId(rawId);
  const path = `${context.base}/${id}`;
  const subscription = (await context.client.getJson<SubscriptionJson>(path)).json;
  const attempts =
    (
      await context.client.getJson<{ attempts?: AttemptJson[] }>(
        `${path}/attempts?pageSize=${RECENT_ATTEMPTS}`,
      )
    ).json.attempts ?? [];
  const replays =
    (await context.client.getJson<{ replays?: ReplayJson[] }>(`${path}/replays`)).json.replays ??
    [];
  const secret = options.showSecret
    ? (await context.client.getJson<{ secret?: string }>(`${path}/secret`)).json.secret
    : undefined;
  const shown = masked(subscription, options.showSecret === true);
  if (options.json) {
    console.log(
      JSON.stringify(
        { ...shown, ...(secret ? { secret } : {}), recentAttempts: attempts, replays },
        null,
        2,
      ),
    );
    return EXIT_OK;
  }
  const { colours } = context;
  const status = subscription.status ?? {};
  const lines: [string, string][] = [
    ["id", String(subscription.id)],
    ["state", paintState(status.state ?? "?", colours)],
    ["reason", status.reason ?? "-"],
    ["lag", `${status.lag ?? "?"} log positions`],
    ["parked records", String(status.parkedRecords ?? "?")],
    ["source", await sourceLabel(subscription, context.tables)],
  ];
  const skip = new Set(["id", "status", "on", "onElementId", "_links", "secret"]);
  for (const [field, value] of Object.entries(shown)) {
    if (skip.has(field)) continue;
    lines.push([field, render(value)]);
  }
  if (secret) lines.push(["secret", secret]);
  const width = Math.max(...lines.map(([label]) => label.length));
  for (const [label, value] of lines) console.log(`${colours.dim(label.padEnd(width))}  ${value}`);

  console.log(colours.bold(`\nRecent attempts (newest first)`));
  if (attempts.length === 0) console.log("  none");
  for (const a of attempts) {
    const positions =
      a.positions?.first === a.positions?.last
        ? `position ${a.positions?.first ?? "?"}`
        : `positions ${a.positions?.first ?? "?"}-${a.positions?.last ?? "?"}`;
    const answer = a.statusCode ?? a.errorClass ?? "-";
    console.log(
      `  ${a.attemptedAt ?? "?"}  ${(a.outcome ?? "?").padEnd(9)}  ${String(answer).padEnd(18)}  ${positions}  ${a.durationMs ?? "?"} ms`,
    );
  }
  console.log(colours.bold(`\nReplays`));
  if (replays.length === 0) console.log("  none");
  for (const r of replays)
    console.log(
      `  ${r.id ?? "?"}  ${(r.status ?? "?").padEnd(9)}  positions ${r.fromPosition ?? "?"}-${r.toPosition ?? "?"}` +
        `, at ${r.cursor ?? "?"}, ${r.eventsSent ?? 0} events delivered (requested ${r.requestedAt ?? "?"})`,
    );
  return EXIT_OK;
}

function render(value: unknown): string {
  if (value === null || value === undefined) return "-";
  if (Array.isArray(value)) return value.length === 0 ? "-" : value.map(String).join(", ");
  if (typeof value === "object") {
    const entries = Object.entries(value);
    if (entries.length === 0) return "-";
    return JSON.stringify(value);
  }
  return String(value);
}

async function replayCommand(
  context: Context,
  rawId: string,
  options: ReplayOptions,
): Promise<number> {
  const id = subscriptionId(rawId);
  if ((options.fromPosition === undefined) === (options.since === undefined))
    throw new UsageError("give exactly one of --from-position N and --since TIME");
  const body: Record<string, unknown> = {};
  if (options.fromPosition !== undefined)
    body.fromPosition = wholeNumber(options.fromPosition, "--from-position", 1, 1e15);
  if (options.since !== undefined) {
    if (Number.isNaN(Date.parse(options.since)))
      throw new UsageError(
        `--since must be an ISO 8601 time such as 2026-11-30T08:00:00Z; got '${options.since}'`,
      );
    body.fromTime = options.since;
  }
  if (options.toPosition !== undefined)
    body.toPosition = wholeNumber(options.toPosition, "--to-position", 1, 1e15);
  const replay = (
    await context.client.sendJson<ReplayJson>("POST", `${context.base}/${id}/replay`, body)
  ).json;
  console.log(
    `Replay ${replay.id ?? "?"} of subscription ${id}: ${replay.status ?? "?"}, ` +
      `positions ${replay.fromPosition ?? "?"} to ${replay.toPosition ?? "?"}.`,
  );
  console.log(`Follow it with: herald subscriptions show ${id}`);
  return EXIT_OK;
}
