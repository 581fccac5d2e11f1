/**
 * `herald tail [--after N] [--follow] [--table T] [--limit N]`: the entity's change log read over the
 * pull API (SPEC §4b, docs/change-log.md), one line per event in log order. Without `--follow` it
 * prints what is there and exits; with it, it asks again every second (the API has no long poll)
 * until Ctrl-C, riding out a Herald that restarts.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { Command } from "commander";
import { Option } from "commander";
import { HeraldClient, HeraldUnreachableError } from "./api-client.js";
import type { ConnectionOptions } from "./cli-support.js";
import {
  asClientCommand,
  entitySegment,
  EXIT_OK,
  isTransient,
  palette,
  reportFailure,
  resolveConnection,
  stopSignal,
  wholeNumber,
  withConnectionOptions,
} from "./cli-support.js";
import { eventLine } from "./event-line.js";
import { TableDirectory } from "./table-directory.js";

/** The pull API's largest page (change-event-routes.ts). */
const PAGE_LIMIT = 1000;
const DEFAULT_POLL_MS = 1000;
/** While following, how long Herald may stay away before the command gives up. */
const FOLLOW_PATIENCE_MS = 60_000;

interface TailOptions extends ConnectionOptions {
  after?: string;
  follow?: boolean;
  table?: string;
  limit?: string;
  pollMs?: string;
}

interface ChangeEventPage {
  events?: unknown[];
  next?: number;
}

export function registerTailCommand(program: Command): void {
  const command = program
    .command("tail")
    .description(
      "Print the change log, one line per event in log order (position, time, type, table, key)",
    )
    .option("--after <position>", "start after this log position (default 0: the oldest kept)")
    .option("--follow", "keep printing new events until Ctrl-C")
    .option("--table <table>", "only this profile or custom table's events (name or id)")
    .option("--limit <n>", "stop after this many events")
    // Tests: a shorter wait between two reads of a followed log.
    .addOption(new Option("--poll-ms <ms>").hideHelp());
  withConnectionOptions(command, "entity whose log to read")
    .addHelpText(
      "after",
      "\nExit codes: 0 printed (or stopped with Ctrl-C while following); 1 Herald failed or could\n" +
        "not be reached; 2 bad usage, an unknown table or entity.",
    )
    .action(async (options: TailOptions) => {
      process.exit(await runTail(options));
    });
  asClientCommand(command, "tail");
}

async function runTail(options: TailOptions): Promise<number> {
  let connection: ReturnType<typeof resolveConnection>;
  let after: number;
  let limit: number | undefined;
  let pollMs: number;
  try {
    connection = resolveConnection(options);
    after = options.after === undefined ? 0 : wholeNumber(options.after, "--after", 0, 1e15);
    limit = options.limit === undefined ? undefined : wholeNumber(options.limit, "--limit", 1, 1e9);
    pollMs =
      options.pollMs === undefined
        ? DEFAULT_POLL_MS
        : wholeNumber(options.pollMs, "--poll-ms", 10, 60_000);
  } catch (error) {
    return reportFailure(error);
  }
  const client = new HeraldClient(connection.url, connection.apiKey);
  const tables = new TableDirectory(client, connection.entity);
  const colours = palette(process.stdout);
  const stop = stopSignal(() => {});
  try {
    const filter = new URLSearchParams();
    if (options.table) {
      const table = await tables.find(options.table, stop.signal);
      filter.set("on", table.kind);
      filter.set("onElementId", table.id);
    }
    const path = `/v5/entities/${entitySegment(connection.entity)}/change-events`;
    let printed = 0;
    let lostSince: number | undefined;
    while (!stop.signal.aborted && (limit === undefined || printed < limit)) {
      const pageSize = Math.min(PAGE_LIMIT, limit === undefined ? PAGE_LIMIT : limit - printed);
      const query = new URLSearchParams(filter);
      query.set("after", String(after));
      query.set("limit", String(pageSize));
      let page: ChangeEventPage;
      try {
        page = (await client.getJson<ChangeEventPage>(`${path}?${query}`, stop.signal)).json;
        if (lostSince !== undefined) console.error("herald: Herald answers again; following");
        lostSince = undefined;
      } catch (error) {
        if (stop.signal.aborted) break;
        if (!options.follow || !isTransient(error)) throw error;
        if (lostSince === undefined) {
          lostSince = Date.now();
          console.error(`herald: ${(error as Error).message}; retrying for up to 60 s`);
        } else if (Date.now() - lostSince > FOLLOW_PATIENCE_MS) {
          throw new HeraldUnreachableError(
            `gave up following after ${FOLLOW_PATIENCE_MS / 1000} s without an answer (${(error as Error).message})`,
          );
        }
        await pause(pollMs, stop.signal);
        continue;
      }
      const events = page.events ?? [];
      for (const event of events) console.log(await eventLine(event, tables, colours));
      printed += events.length;
      if (typeof page.next === "number") after = page.next;
      // A short page is the head of the log: done, or wait for more.
      if (events.length < pageSize) {
        if (!options.follow) break;
        await pause(pollMs, stop.signal);
      }
    }
    return EXIT_OK;
  } catch (error) {
    // Ctrl-C while the table was looked up.
    if (stop.signal.aborted) return EXIT_OK;
    return reportFailure(error);
  } finally {
    stop.dispose();
  }
}

async function pause(ms: number, signal: AbortSignal): Promise<void> {
  try {
    await sleep(ms, undefined, { signal });
  } catch {
    // Ctrl-C: the loop sees the signal.
  }
}
