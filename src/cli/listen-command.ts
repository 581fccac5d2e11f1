/**
 * `herald listen --table T [--events CREATE,UPDATE,…] [--forward-to URL] [--port P]`: webhooks on a
 * developer's machine. Runs a receiver on 127.0.0.1, subscribes it to the table's events (one
 * temporary subscription per event type, renewed while it runs), prints one line per verified event,
 * forwards each push as it came when asked, and deletes the subscriptions on Ctrl-C or SIGTERM.
 */
import type { Command } from "commander";
import { Option } from "commander";
import type { EventType } from "../domain/change-event.js";
import { EVENT_TYPES, EVENT_TYPES_BY_SOURCE } from "../domain/change-event.js";
import { HeraldClient } from "./api-client.js";
import type { ConnectionOptions } from "./cli-support.js";
import {
  asClientCommand,
  EXIT_FAILURE,
  EXIT_OK,
  palette,
  reportFailure,
  resolveConnection,
  stopSignal,
  UsageError,
  wholeNumber,
  withConnectionOptions,
} from "./cli-support.js";
import { eventLine } from "./event-line.js";
import { forwardPush, forwardUrl } from "./push-forwarder.js";
import type { TableInfo } from "./table-directory.js";
import { TableDirectory, tableKindLabel } from "./table-directory.js";
import { TemporarySubscriptions } from "./temporary-subscriptions.js";
import type { Refusal, VerifiedPush } from "./webhook-listener.js";
import { startWebhookListener } from "./webhook-listener.js";

const HOST = "127.0.0.1";
/** How far ahead each subscription's expiresAt is set; renewed every quarter of it. */
const DEFAULT_EXPIRY_SECONDS = 120;
/** Deleting the subscriptions at the end may take this long before the command gives up on it. */
const CLEANUP_TIMEOUT_MS = 15_000;

interface ListenOptions extends ConnectionOptions {
  table: string;
  events?: string;
  forwardTo?: string;
  port?: string;
  expirySeconds?: string;
}

interface ListenPlan {
  table: string;
  /** undefined: every event type the table emits. */
  events: EventType[] | undefined;
  forwardTo: string | undefined;
  port: number;
  expirySeconds: number;
}

export function registerListenCommand(program: Command): void {
  const command = program
    .command("listen")
    .description(
      "Receive a table's events on this machine: temporary subscriptions to a local receiver that verifies every push's signature, prints one line per event and can forward it",
    )
    .requiredOption("--table <table>", "profile or custom table, by name or id")
    .option(
      "--events <types>",
      `comma-separated event types (default: every type the table emits; ${EVENT_TYPES.slice(0, 5).join(", ")})`,
    )
    .option("--forward-to <url>", "also send each push, as it came, to this URL")
    .option("--port <port>", "port of the local receiver on 127.0.0.1 (default: a free one)")
    // Tests: expiry within seconds instead of minutes.
    .addOption(new Option("--expiry-seconds <seconds>").hideHelp());
  withConnectionOptions(command, "entity of the table")
    .addHelpText(
      "after",
      "\nHerald must be able to push to 127.0.0.1 (run it on this machine, started with\n" +
        "--allow-insecure-targets). Event lines go to stdout; notices and refused pushes to stderr.\n" +
        "Ctrl-C deletes the subscriptions; those of a killed listen expire within about 2 minutes.\n" +
        "Exit codes: 0 stopped and cleaned up; 1 Herald failed or could not be reached, or the\n" +
        "subscriptions could not be deleted; 2 bad usage, an unknown table or entity, or a Herald\n" +
        "that refuses local targets.",
    )
    .action(async (options: ListenOptions) => {
      process.exit(await runListen(options));
    });
  asClientCommand(command, "listen");
}

function planListen(options: ListenOptions): ListenPlan {
  const events = options.events
    ?.split(",")
    .map((e) => e.trim().toUpperCase())
    .filter(Boolean);
  for (const event of events ?? [])
    if (!(EVENT_TYPES as readonly string[]).includes(event))
      throw new UsageError(
        `--events: unknown event type '${event}'; use ${EVENT_TYPES.join(", ")}`,
      );
  if (events && events.length === 0) throw new UsageError("--events names no event type");
  return {
    table: options.table,
    events: events ? ([...new Set(events)] as EventType[]) : undefined,
    forwardTo: options.forwardTo === undefined ? undefined : forwardUrl(options.forwardTo),
    port: options.port === undefined ? 0 : wholeNumber(options.port, "--port", 1, 65_535),
    expirySeconds:
      options.expirySeconds === undefined
        ? DEFAULT_EXPIRY_SECONDS
        : wholeNumber(options.expirySeconds, "--expiry-seconds", 2, 3600),
  };
}

/** The event types to subscribe to: those asked for, each one the table can emit. */
function eventTypesFor(
  table: TableInfo,
  asked: EventType[] | undefined,
): { types: EventType[]; note: string | undefined } {
  const fits = EVENT_TYPES_BY_SOURCE[table.kind];
  const where = `${tableKindLabel(table.kind)} table ${table.name}`;
  const noUpdates = `${where} declares no UPDATE event (eventsToTrigger), so it emits no UPDATE events`;
  if (!asked) {
    const types = fits.filter((t) => t !== "UPDATE" || table.emitsUpdates);
    return { types, note: table.emitsUpdates ? undefined : `UPDATE left out: ${noUpdates}` };
  }
  for (const type of asked) {
    if (!fits.includes(type))
      throw new UsageError(`--events: ${type} does not fit ${where}; it emits ${fits.join(", ")}`);
    if (type === "UPDATE" && !table.emitsUpdates) throw new UsageError(`--events: ${noUpdates}`);
  }
  return { types: asked, note: undefined };
}

async function runListen(options: ListenOptions): Promise<number> {
  let plan: ListenPlan;
  let connection: ReturnType<typeof resolveConnection>;
  try {
    connection = resolveConnection(options);
    plan = planListen(options);
  } catch (error) {
    return reportFailure(error);
  }
  const out = palette(process.stdout);
  const err = palette(process.stderr);
  const client = new HeraldClient(connection.url, connection.apiKey);
  const tables = new TableDirectory(client, connection.entity);
  let subscriptions: TemporarySubscriptions | undefined;
  const stop = stopSignal(() =>
    console.error(
      `herald: stopped before the subscriptions were deleted; they expire by themselves within ${plan.expirySeconds} s`,
    ),
  );

  const onPush = async (push: VerifiedPush) => {
    const envelope = push.json as { data?: unknown } | undefined;
    const objects = Array.isArray(envelope?.data) ? envelope.data : [envelope?.data];
    if (envelope?.data === undefined)
      console.error(
        err.yellow(`herald listen: push ${push.webhookId} holds no events (not JSON?)`),
      );
    else for (const object of objects) console.log(await eventLine(object, tables, out));
    if (!plan.forwardTo) return;
    const result = await forwardPush(plan.forwardTo, push);
    const line =
      result.kind === "answered"
        ? `forwarded to ${plan.forwardTo}: ${result.status} (${result.ms} ms)`
        : `forward to ${plan.forwardTo} failed: ${result.message}`;
    const ok = result.kind === "answered" && result.status >= 200 && result.status < 300;
    console.log(`${" ".repeat(10)}${ok ? out.dim(`→ ${line}`) : out.red(`→ ${line}`)}`);
  };
  const onRefused = (refusal: Refusal) =>
    console.error(
      err.red(
        `herald listen: refused a request from ${refusal.from}` +
          `${refusal.webhookId ? ` (webhook-id ${refusal.webhookId})` : ""}: ${refusal.reason}; answered ${refusal.status}`,
      ),
    );

  let listener: Awaited<ReturnType<typeof startWebhookListener>> | undefined;
  let renewal: Renewal | undefined;
  let code = EXIT_OK;
  try {
    const table = await tables.find(plan.table, stop.signal);
    const { types, note } = eventTypesFor(table, plan.events);
    listener = await startWebhookListener({
      host: HOST,
      port: plan.port,
      secrets: () => subscriptions?.secrets() ?? [],
      onPush,
      onRefused,
    });
    subscriptions = new TemporarySubscriptions(
      client,
      connection.entity,
      table,
      listener.url,
      plan.expirySeconds,
    );
    // Not cut short by Ctrl-C: every subscription made is known, so every one is deleted below.
    await subscriptions.createAll(types);
    console.error(
      `Listening on ${listener.url} for ${types.join(", ")} on ${tableKindLabel(table.kind)} table ` +
        `${table.name} (entity ${connection.entity}): subscriptions ${subscriptions.ids().join(", ")}` +
        `${plan.forwardTo ? `, forwarding to ${plan.forwardTo}` : ""}.`,
    );
    if (note) console.error(err.dim(note));
    console.error("Ready. Ctrl-C stops and deletes the subscriptions.");
    renewal = keepRenewing(subscriptions, plan.expirySeconds, err);
    await stop.stopped;
  } catch (error) {
    // Ctrl-C while the table was looked up: nothing was made, nothing to report.
    if (!stop.signal.aborted) code = reportOrExplain(error);
  } finally {
    // A round under way could make a gone subscription again: it ends before the deletes start.
    await renewal?.stop();
    await listener?.close();
  }
  if (subscriptions && subscriptions.ids().length > 0) {
    const ids = subscriptions.ids();
    const failures = await subscriptions.deleteAll(AbortSignal.timeout(CLEANUP_TIMEOUT_MS));
    for (const failure of failures)
      console.error(
        `herald: could not delete subscription ${failure.id} (${failure.error.message}); ` +
          `it expires by itself within ${plan.expirySeconds} s`,
      );
    if (failures.length > 0) code = EXIT_FAILURE;
    else if (stop.signal.aborted)
      console.error(`Stopped; deleted subscriptions ${ids.join(", ")}.`);
  }
  stop.dispose();
  return code;
}

/** `reportFailure`, and a bug's message as one line too: the subscriptions must still be deleted. */
function reportOrExplain(error: unknown): number {
  try {
    return reportFailure(error);
  } catch {
    console.error(`herald: ${(error as Error).message ?? String(error)}`);
    return EXIT_FAILURE;
  }
}

interface Renewal {
  /** No further round; resolves once the round under way, if any, has ended. */
  stop(): Promise<void>;
}

/** Renews every quarter of the expiry, so that two renewals may fail before a subscription expires. */
function keepRenewing(
  subscriptions: TemporarySubscriptions,
  expirySeconds: number,
  err: ReturnType<typeof palette>,
): Renewal {
  let failing = false;
  let round: Promise<void> | undefined;
  const renew = async () => {
    const report = await subscriptions.renewAll();
    for (const r of report.recreated)
      console.error(
        err.yellow(
          `herald listen: subscription ${r.oldId} (${r.eventType}) was gone; made it again as ${r.newId}`,
        ),
      );
    if (report.failure && !failing)
      console.error(
        err.yellow(
          `herald listen: cannot renew the subscriptions (${report.failure.message}); retrying. ` +
            `They expire ${expirySeconds} s after the last renewal if Herald stays away.`,
        ),
      );
    else if (!report.failure && failing)
      console.error("herald listen: renewing the subscriptions again");
    failing = report.failure !== undefined;
  };
  const timer = setInterval(
    () => {
      round ??= renew()
        .catch(() => {})
        .finally(() => (round = undefined));
    },
    Math.max(500, (expirySeconds * 1000) / 4),
  );
  return {
    stop: async () => {
      clearInterval(timer);
      await round;
    },
  };
}
