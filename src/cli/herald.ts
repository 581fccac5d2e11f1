/** The `herald` command line. Every setting of the README's table is also a flag of `herald start`. */
import { Command } from "commander";
import type { HeraldConfig } from "../config/config.js";
import { ConfigError, flagName, loadConfig, SETTINGS } from "../config/config.js";
import type { RunningHerald } from "../main.js";
import { HERALD_VERSION } from "../version.js";
import { registerExportCommand } from "./export-command.js";
import { registerImportCommand } from "./import-command.js";
import { registerListenCommand } from "./listen-command.js";
import { registerSubscriptionsCommand } from "./subscriptions-command.js";
import { registerTailCommand } from "./tail-command.js";

/** How long a SIGTERM may take before the process gives up waiting and exits 1. */
const SHUTDOWN_DEADLINE_MS = 30_000;

const program = new Command("herald")
  .version(HERALD_VERSION)
  .description("Herald: webhook engine for marketing data");

const start = program
  .command("start")
  .description("Run Herald (API, sequencer and delivery workers by default)")
  .option("--config <file>", "JSON config file (HERALD_CONFIG_FILE; names as in the README)");
for (const setting of Object.values(SETTINGS)) {
  // A yes/no setting works bare (`--allow-insecure-targets`) and with a value (`=false`).
  const value = isSwitch(setting) ? "[value]" : "<value>";
  start.option(`--${flagName(setting)} ${value}`, `${setting.env}: ${setting.doc}`);
}

start.action(async (options: Record<string, string | boolean | undefined>) => {
  let config: HeraldConfig;
  try {
    const flags: Partial<Record<keyof HeraldConfig, string>> = {};
    for (const setting of Object.values(SETTINGS)) {
      const value = options[camel(flagName(setting))] as string | boolean | undefined;
      if (value !== undefined) flags[setting.key] = value === true ? "true" : String(value);
    }
    const configFile = typeof options.config === "string" ? options.config : undefined;
    config = loadConfig({ configFile, flags });
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`herald: configuration error: ${error.message}`);
      process.exit(2);
    }
    throw error;
  }
  // Signals are handled from the start: one that arrives while Herald is still starting (migrating
  // the embedded database, say) stops it as soon as it is up, instead of killing it mid-write.
  const state: { herald?: RunningHerald; requested?: string } = {};
  const shutdown = (running: RunningHerald, signal: string) => {
    running.logger.info({ signal }, "shutdown requested");
    const force = setTimeout(() => {
      running.logger.error(`shutdown took longer than ${SHUTDOWN_DEADLINE_MS} ms; exiting now`);
      process.exit(1);
    }, SHUTDOWN_DEADLINE_MS);
    force.unref();
    running.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        running.logger.error({ err: error }, "error during shutdown");
        process.exit(1);
      },
    );
  };
  const onSignal = (signal: string) => {
    if (state.herald) shutdown(state.herald, signal);
    else state.requested ??= signal;
  };
  process.once("SIGTERM", () => onSignal("SIGTERM"));
  process.once("SIGINT", () => onSignal("SIGINT"));
  try {
    // Loaded here: the client commands (import, listen, tail…) start faster without the server's code.
    const { startHerald } = await import("../main.js");
    state.herald = await startHerald(config);
  } catch (error) {
    // A setting found wrong while starting (a secret key the database refuses): exit 2 as above.
    if (error instanceof ConfigError && !state.requested) {
      console.error(`herald: configuration error: ${error.message}`);
      process.exit(2);
    }
    // Asked to stop while still starting (waiting for the database, say): a stop, not a failure.
    if (!state.requested) throw error;
    console.error(`herald: ${state.requested} while starting: ${(error as Error).message}`);
    process.exit(0);
  }
  if (state.requested) shutdown(state.herald, state.requested);
});

function isSwitch(setting: (typeof SETTINGS)[keyof typeof SETTINGS]): boolean {
  return typeof setting.default === "boolean";
}

function camel(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

registerImportCommand(program);
registerListenCommand(program);
registerTailCommand(program);
registerSubscriptionsCommand(program);
registerExportCommand(program);

program.parseAsync().catch((error: unknown) => {
  console.error(`herald: ${(error as Error).message}`);
  process.exit(1);
});
