/**
 * One configuration module (SPEC §8). Every setting has a documented default, an environment
 * variable, and may also come from a JSON config file (`HERALD_CONFIG_FILE` or `--config`).
 * Precedence: command-line flags > environment > config file > defaults.
 * `loadConfig` validates everything at start and says exactly what to change.
 */
import { readFileSync } from "node:fs";

export const ROLES = ["api", "sequencer", "worker"] as const;
export type Role = (typeof ROLES)[number];
export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface HeraldConfig {
  databaseUrl: string | undefined;
  dataDir: string;
  port: number;
  host: string;
  roles: Role[];
  defaultEntity: string;
  adminApiKey: string | undefined;
  allowInsecureTargets: boolean;
  logLevel: LogLevel;
  bodyLimitBytes: number;
  deliveryTimeoutMs: number;
  operationsWebhookUrl: string | undefined;
  retentionDays: number;
  housekeepingIntervalMs: number;
  workerId: string | undefined;
  rateLimitPerMinute: number;
  rateLimitConcurrent: number;
  maxFileBytes: number;
  maxExpandedBytes: number;
  fileRetentionDays: number;
  importConcurrency: number;
  fileDropDir: string | undefined;
  fileFetchTimeoutMs: number;
  fileSyncConcurrency: number;
  exportConcurrency: number;
  secretKey: string | undefined;
  secretKeyPrevious: string | undefined;
}

type Parser<T> = (raw: string, name: string) => T;

interface Setting<K extends keyof HeraldConfig> {
  key: K;
  env: string;
  file: string;
  /** Command-line flag, without the dashes (default: the key in kebab-case). */
  flag?: string;
  default: HeraldConfig[K];
  parse: Parser<HeraldConfig[K]>;
  doc: string;
}

export class ConfigError extends Error {
  override name = "ConfigError";
}

const text: Parser<string> = (raw, name) => {
  if (raw.trim() === "") throw new ConfigError(`${name} must not be empty`);
  return raw;
};
const optionalText: Parser<string | undefined> = (raw) => (raw === "" ? undefined : raw);
const postgresUrl: Parser<string | undefined> = (raw, name) => {
  if (raw === "") return undefined;
  if (!/^postgres(ql)?:\/\//.test(raw)) {
    throw new ConfigError(
      `${name} must be a postgres:// or postgresql:// connection string; leave it unset for the embedded database`,
    );
  }
  return raw;
};
/** Entity names appear in URL paths: 1 to 64 letters, digits, '_', '.', '-', not starting with a sign. */
export const ENTITY_NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$";
const entityName: Parser<string> = (raw, name) => {
  if (!new RegExp(ENTITY_NAME_PATTERN).test(raw)) {
    throw new ConfigError(
      `${name} must be 1 to 64 letters, digits, '_', '.' or '-' (starting with a letter or digit); got '${raw}'`,
    );
  }
  return raw;
};
const integer =
  (min: number, max: number): Parser<number> =>
  (raw, name) => {
    const value = /^\s*-?\d+\s*$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isInteger(value) || value < min || value > max) {
      throw new ConfigError(`${name} must be a whole number from ${min} to ${max}; got '${raw}'`);
    }
    return value;
  };
const boolean: Parser<boolean> = (raw, name) => {
  const v = raw.trim().toLowerCase();
  if (["1", "true", "yes", "on"].includes(v)) return true;
  if (["0", "false", "no", "off", ""].includes(v)) return false;
  throw new ConfigError(`${name} must be true or false; got '${raw}'`);
};
const roles: Parser<Role[]> = (raw, name) => {
  const list = raw
    .split(",")
    .map((r) => r.trim())
    .filter(Boolean);
  for (const role of list) {
    if (!(ROLES as readonly string[]).includes(role)) {
      throw new ConfigError(
        `${name} lists unknown role '${role}'; use a comma-separated mix of ${ROLES.join(", ")}`,
      );
    }
  }
  if (list.length === 0)
    throw new ConfigError(`${name} must name at least one of ${ROLES.join(", ")}`);
  return [...new Set(list)] as Role[];
};
const logLevel: Parser<LogLevel> = (raw, name) => {
  if (!(LOG_LEVELS as readonly string[]).includes(raw)) {
    throw new ConfigError(`${name} must be one of ${LOG_LEVELS.join(", ")}; got '${raw}'`);
  }
  return raw as LogLevel;
};

/** The settings, in the order the README documents them. */
export const SETTINGS: { [K in keyof HeraldConfig]: Setting<K> } = {
  databaseUrl: {
    key: "databaseUrl",
    env: "DATABASE_URL",
    file: "databaseUrl",
    default: undefined,
    parse: postgresUrl,
    doc: "PostgreSQL connection string. Absent: the embedded database (PGlite) in HERALD_DATA_DIR. Required for more than one process.",
  },
  dataDir: {
    key: "dataDir",
    env: "HERALD_DATA_DIR",
    file: "dataDir",
    default: "./herald-data",
    parse: text,
    doc: "Directory of the embedded database; kept across restarts. Ignored with DATABASE_URL.",
  },
  port: {
    key: "port",
    env: "HERALD_PORT",
    file: "port",
    default: 8080,
    parse: integer(0, 65535),
    doc: "TCP port of the API (0 picks a free port and logs it).",
  },
  host: {
    key: "host",
    env: "HERALD_HOST",
    file: "host",
    default: "0.0.0.0",
    parse: text,
    doc: "Address the API listens on.",
  },
  roles: {
    key: "roles",
    env: "HERALD_ROLES",
    file: "roles",
    flag: "role",
    default: ["api", "sequencer", "worker"],
    parse: roles,
    doc: "Comma-separated roles of this process: api, sequencer, worker. Default all three.",
  },
  defaultEntity: {
    key: "defaultEntity",
    env: "HERALD_DEFAULT_ENTITY",
    file: "defaultEntity",
    default: "default",
    parse: entityName,
    doc: "Name of the entity created on first start.",
  },
  adminApiKey: {
    key: "adminApiKey",
    env: "HERALD_ADMIN_API_KEY",
    file: "adminApiKey",
    default: undefined,
    parse: optionalText,
    doc: "Use this admin API key instead of generating one on first start (at least 24 characters).",
  },
  allowInsecureTargets: {
    key: "allowInsecureTargets",
    env: "HERALD_ALLOW_INSECURE_TARGETS",
    file: "allowInsecureTargets",
    default: false,
    parse: boolean,
    doc: "Allow http:// and private/loopback webhook targets. For local development and tests only.",
  },
  logLevel: {
    key: "logLevel",
    env: "HERALD_LOG_LEVEL",
    file: "logLevel",
    default: "info",
    parse: logLevel,
    doc: "fatal, error, warn, info, debug, trace or silent.",
  },
  bodyLimitBytes: {
    key: "bodyLimitBytes",
    env: "HERALD_BODY_LIMIT_BYTES",
    file: "bodyLimitBytes",
    default: 1_048_576,
    parse: integer(1024, 1_073_741_824),
    doc: "Largest accepted request body; larger ones get 413.",
  },
  deliveryTimeoutMs: {
    key: "deliveryTimeoutMs",
    env: "HERALD_DELIVERY_TIMEOUT_MS",
    file: "deliveryTimeoutMs",
    default: 15_000,
    parse: integer(100, 120_000),
    doc: "Time a webhook endpoint has to answer a push (connect + headers + body).",
  },
  operationsWebhookUrl: {
    key: "operationsWebhookUrl",
    env: "HERALD_OPERATIONS_WEBHOOK_URL",
    file: "operationsWebhookUrl",
    default: undefined,
    parse: optionalText,
    doc: "URL that receives operational events (endpoint failing for 24 h, subscription disabled).",
  },
  retentionDays: {
    key: "retentionDays",
    env: "HERALD_RETENTION_DAYS",
    file: "retentionDays",
    default: 7,
    parse: integer(1, 3650),
    doc: "Days of change log and delivery attempts kept (never pruned below a live subscription's watermark).",
  },
  housekeepingIntervalMs: {
    key: "housekeepingIntervalMs",
    env: "HERALD_HOUSEKEEPING_INTERVAL_MS",
    file: "housekeepingIntervalMs",
    default: 600_000,
    parse: integer(1_000, 86_400_000),
    doc: "Time between housekeeping runs (pruning, and deleting subscriptions whose expiresAt has passed); the first run comes after this time or one minute, whichever is shorter.",
  },
  workerId: {
    key: "workerId",
    env: "HERALD_WORKER_ID",
    file: "workerId",
    default: undefined,
    parse: optionalText,
    doc: "Name of this process in leases and logs. Default: hostname and pid.",
  },
  rateLimitPerMinute: {
    key: "rateLimitPerMinute",
    env: "HERALD_RATE_LIMIT_PER_MINUTE",
    file: "rateLimitPerMinute",
    default: 0,
    parse: integer(0, 100_000_000),
    doc: "API calls per minute allowed to one licence, per API process (bursts up to the same number); beyond it 429 with Retry-After. 0 = no limit (the default).",
  },
  rateLimitConcurrent: {
    key: "rateLimitConcurrent",
    env: "HERALD_RATE_LIMIT_CONCURRENT",
    file: "rateLimitConcurrent",
    default: 0,
    parse: integer(0, 1_000_000),
    doc: "API requests of one licence in progress at once, per API process; beyond it 429 with Retry-After. 0 = no limit (the default).",
  },
  maxFileBytes: {
    key: "maxFileBytes",
    env: "HERALD_MAX_FILE_BYTES",
    file: "maxFileBytes",
    default: 104_857_600,
    parse: integer(1024, 1_099_511_627_776),
    doc: "Largest file Herald stores (an import's upload); larger uploads get 413. Default 100 MiB, Actito's limit.",
  },
  maxExpandedBytes: {
    key: "maxExpandedBytes",
    env: "HERALD_MAX_EXPANDED_BYTES",
    file: "maxExpandedBytes",
    default: 1_073_741_824,
    parse: integer(1024, 1_099_511_627_776),
    doc: "Largest a ZIP or GZIP file may expand to when it is read; beyond it the import stops ERROR (a zip bomb). Default 1 GiB.",
  },
  fileRetentionDays: {
    key: "fileRetentionDays",
    env: "HERALD_FILE_RETENTION_DAYS",
    file: "fileRetentionDays",
    default: 7,
    parse: integer(1, 3650),
    doc: "Days stored files (uploads, rejected rows) are kept; an execution that has not finished keeps its file.",
  },
  importConcurrency: {
    key: "importConcurrency",
    env: "HERALD_IMPORT_CONCURRENCY",
    file: "importConcurrency",
    default: 2,
    parse: integer(1, 64),
    doc: "Import executions one worker process runs at once (others wait PENDING for a free worker).",
  },
  fileDropDir: {
    key: "fileDropDir",
    env: "HERALD_FILE_DROP_DIR",
    file: "fileDropDir",
    default: undefined,
    parse: optionalText,
    doc: "Directory that DIRECTORY file references read from and export destinations write to (paths inside it only). Unset: DIRECTORY references are refused.",
  },
  fileFetchTimeoutMs: {
    key: "fileFetchTimeoutMs",
    env: "HERALD_FILE_FETCH_TIMEOUT_MS",
    file: "fileFetchTimeoutMs",
    default: 60_000,
    parse: integer(1_000, 3_600_000),
    doc: "How long one file synchronisation or export copy may take against an HTTPS or SFTP server before it ends ERROR.",
  },
  fileSyncConcurrency: {
    key: "fileSyncConcurrency",
    env: "HERALD_FILE_SYNC_CONCURRENCY",
    file: "fileSyncConcurrency",
    default: 2,
    parse: integer(1, 64),
    doc: "File synchronisations one worker process runs at once.",
  },
  exportConcurrency: {
    key: "exportConcurrency",
    env: "HERALD_EXPORT_CONCURRENCY",
    file: "exportConcurrency",
    default: 2,
    parse: integer(1, 64),
    doc: "Export executions one worker process runs at once.",
  },
  secretKey: {
    key: "secretKey",
    env: "HERALD_SECRET_KEY",
    file: "secretKey",
    default: undefined,
    parse: optionalText,
    doc: "Key that encrypts credentials and webhook signing secrets in the database (32 bytes as 64 hex digits or base64). Required with DATABASE_URL; on the embedded database one is generated into HERALD_DATA_DIR.",
  },
  secretKeyPrevious: {
    key: "secretKeyPrevious",
    env: "HERALD_SECRET_KEY_PREVIOUS",
    file: "secretKeyPrevious",
    default: undefined,
    parse: optionalText,
    doc: "During a key rotation: the former HERALD_SECRET_KEY, still accepted for reading while Herald rewrites every row with the new key at start.",
  },
};

export interface ConfigSources {
  flags?: Partial<Record<keyof HeraldConfig, string>>;
  env?: NodeJS.ProcessEnv;
  configFile?: string;
}

export function loadConfig(sources: ConfigSources = {}): HeraldConfig {
  const env = sources.env ?? process.env;
  const fileValues = readConfigFile(sources.configFile ?? env.HERALD_CONFIG_FILE);
  const config = {} as Record<keyof HeraldConfig, unknown>;
  for (const setting of Object.values(SETTINGS) as Setting<keyof HeraldConfig>[]) {
    const flag = sources.flags?.[setting.key];
    const fromEnv = env[setting.env];
    const fromFile = fileValues[setting.file];
    if (flag !== undefined) config[setting.key] = setting.parse(flag, `--${flagName(setting)}`);
    else if (fromEnv !== undefined) config[setting.key] = setting.parse(fromEnv, setting.env);
    else if (fromFile !== undefined) {
      const raw = Array.isArray(fromFile) ? fromFile.join(",") : String(fromFile);
      config[setting.key] = setting.parse(raw, `'${setting.file}' in the config file`);
    } else config[setting.key] = setting.default;
  }
  const result = config as unknown as HeraldConfig;
  if (result.adminApiKey !== undefined && result.adminApiKey.length < 24) {
    throw new ConfigError("HERALD_ADMIN_API_KEY must be at least 24 characters long");
  }
  return result;
}

function readConfigFile(path: string | undefined): Record<string, unknown> {
  if (!path) return {};
  let raw: string;
  try {
    raw = readFileSync(path, "utf8");
  } catch (error) {
    throw new ConfigError(`Cannot read the config file ${path}: ${(error as Error).message}`);
  }
  try {
    const parsed: unknown = JSON.parse(raw);
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
      throw new Error("not a JSON object");
    const known = new Set(Object.values(SETTINGS).map((s) => s.file));
    for (const key of Object.keys(parsed)) {
      if (!known.has(key))
        throw new Error(`unknown setting '${key}'; known: ${[...known].join(", ")}`);
    }
    return parsed as Record<string, unknown>;
  } catch (error) {
    throw new ConfigError(`The config file ${path} is invalid: ${(error as Error).message}`);
  }
}

/** The command-line flag of a setting, without the dashes: `dataDir` → `data-dir`. */
export function flagName(setting: { key: string; flag?: string }): string {
  return setting.flag ?? setting.key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}
