/** The `herald` command line. */
import { Command, Option } from "commander";
import { ConfigError, loadConfig } from "../config/config.js";
import { startHerald } from "../main.js";
import { HERALD_VERSION } from "../version.js";

const program = new Command("herald")
  .version(HERALD_VERSION)
  .description("Herald: webhook engine for marketing data");

program
  .command("start")
  .description("Run Herald (API, sequencer and delivery workers by default)")
  .option("--config <file>", "JSON config file (same names as the README's config table)")
  .option("--port <port>", "HERALD_PORT")
  .option("--host <host>", "HERALD_HOST")
  .option("--data-dir <dir>", "HERALD_DATA_DIR")
  .option("--database-url <url>", "DATABASE_URL")
  .addOption(new Option("--role <roles>", "HERALD_ROLES: comma-separated api,sequencer,worker"))
  .option("--log-level <level>", "HERALD_LOG_LEVEL")
  .action(async (options: Record<string, string | undefined>) => {
    let config;
    try {
      config = loadConfig({
        configFile: options.config,
        flags: {
          port: options.port,
          host: options.host,
          dataDir: options.dataDir,
          databaseUrl: options.databaseUrl,
          roles: options.role,
          logLevel: options.logLevel,
        },
      });
    } catch (error) {
      if (error instanceof ConfigError) {
        console.error(`herald: configuration error: ${error.message}`);
        process.exit(2);
      }
      throw error;
    }
    const herald = await startHerald(config);
    const shutdown = (signal: string) => {
      herald.logger.info({ signal }, "shutdown requested");
      const force = setTimeout(() => {
        herald.logger.error("shutdown took longer than 30 s; exiting now");
        process.exit(1);
      }, 30_000);
      force.unref();
      herald.stop().then(
        () => process.exit(0),
        (error: unknown) => {
          herald.logger.error({ err: error }, "error during shutdown");
          process.exit(1);
        },
      );
    };
    process.once("SIGTERM", () => shutdown("SIGTERM"));
    process.once("SIGINT", () => shutdown("SIGINT"));
  });

program.parseAsync().catch((error: unknown) => {
  console.error(`herald: ${(error as Error).message}`);
  process.exit(1);
});
