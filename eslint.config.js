import js from "@eslint/js";
import tseslint from "typescript-eslint";

/**
 * DESIGN §8, the layers of src/: dependencies point inward only. Each folder (and the process-wide
 * modules at the root of src/) lists what of Herald it may import; every other Herald module is
 * refused with a message that names the rule broken. The checks read import specifiers as written
 * (relative, prettier-formatted), so an entry names a folder (`capture`) or a root module
 * (`metrics`), and matches `../capture/…`, `../../capture/…` or `./metrics.js` alike.
 *
 * Where each root module sits:
 * - `version`, `metrics`, `background-service`, `database-outage-log` are process infrastructure
 *   that the pipeline, the jobs and the API share (the version string, the one Prometheus registry,
 *   the contract of a background loop, the once-per-outage log of those loops). They may use the
 *   domain, config and storage (the outage log recognises storage's DatabaseUnavailable), never
 *   the layers that use them; domain and storage, being inner, may not import them.
 * - `logger` builds the process's pino logger from the config: wiring, so only cli/ and main.ts
 *   import it; every other module takes the Logger it is handed.
 * - `config/` is read by the outer layers and imports nothing of Herald but the domain.
 */
const FOLDERS = [
  "domain",
  "config",
  "storage",
  "capture",
  "sequencer",
  "delivery",
  "jobs",
  "api",
  "console",
  "cli",
];
const INFRASTRUCTURE = ["version", "metrics", "background-service", "database-outage-log"];
const ROOT_MODULES = [...INFRASTRUCTURE, "logger", "main"];
const EVERYTHING = [...FOLDERS, ...ROOT_MODULES];

/**
 * DESIGN §6's outbound HTTP (the address guard and the guarded sender): modules of delivery/ that
 * the API reuses for the test push and the target check of a subscription, and the jobs for file
 * sources (DESIGN §6b).
 */
const OUTBOUND_HTTP = ["address-guard", "http-sender"];

/**
 * The log follower (with the handed-over events it takes from this process's sequencer, and the
 * wake-ups of new log heads): delivery's reader of the change log, which the jobs reuse for the
 * scenario starters, log consumers as subscriptions are (DESIGN §6b: a cursor over the log starts
 * a scenario's runs).
 */
const LOG_FOLLOWING = ["log-follower", "handed-events", "log-wakeups"];

/** The regular expression of an import of `name` (a folder or a root module) from anywhere in src/. */
function heraldImport(name, onlyModules) {
  const from = String.raw`^(?:\./|(?:\.\./)+)`;
  if (ROOT_MODULES.includes(name)) return `${from}${name}\\.js$`;
  if (!onlyModules) return `${from}${name}/`;
  return `${from}${name}/(?!(?:${onlyModules.join("|")})\\.js$)`;
}

/** Packages that only one layer may use: the database drivers and the HTTP framework. */
const DATABASE_DRIVERS = {
  group: ["pg", "pg-copy-streams", "@electric-sql/*"],
  message:
    "DESIGN §2/§8: only the storage adapters know which database is underneath; go through the Database port (storage/database.ts).",
};
const HTTP_FRAMEWORK = {
  group: ["fastify", "@fastify/*"],
  message:
    "DESIGN §8: Fastify belongs to api/ and console/; take plain values and return plain results instead.",
};
const IO_PACKAGES = {
  group: [
    "pg",
    "pg-copy-streams",
    "@electric-sql/*",
    "undici",
    "fastify",
    "@fastify/*",
    "pino",
    "prom-client",
    "ssh2",
    "node:fs",
    "node:net",
    "node:http",
    "node:https",
    "node:dns",
    "node:child_process",
  ],
  message:
    "DESIGN §8: the domain is pure types and rules, with no I/O and no framework; do the I/O in an outer layer and hand the domain plain values.",
};

/**
 * One block of rules: files of one layer may import their own modules, the Herald modules listed in
 * `may`, and only some modules of the folders in `partly`.
 */
function layer({ name, files, ignores, may, partly = {}, packages = [], advice }) {
  const own = FOLDERS.includes(name) ? [name] : [];
  const allowed = new Set([...own, ...may]);
  const what = [
    ...may,
    ...Object.entries(partly).map(([folder, modules]) => `${folder}/{${modules.join(",")}}`),
  ];
  const rule = `DESIGN §8: ${name} may import ${what.length > 0 ? what.join(", ") : "nothing of Herald"} (besides its own files)`;
  const patterns = EVERYTHING.filter((target) => !allowed.has(target)).map((target) => ({
    regex: heraldImport(target, partly[target]),
    message: `${rule}, not ${target}${partly[target] ? "'s other modules" : ""}. ${advice}`,
  }));
  return {
    files,
    ...(ignores ? { ignores } : {}),
    rules: { "no-restricted-imports": ["error", { patterns: [...packages, ...patterns] }] },
  };
}

const PIPELINE_MAY = ["domain", "config", "storage", ...INFRASTRUCTURE];
const OUTER_PACKAGES = [DATABASE_DRIVERS, HTTP_FRAMEWORK];

export default tseslint.config(
  { ignores: ["node_modules/**", "herald-data/**", ".tmp/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        process: "readonly",
        console: "readonly",
        Buffer: "readonly",
        URL: "readonly",
        setTimeout: "readonly",
        clearTimeout: "readonly",
        setInterval: "readonly",
        clearInterval: "readonly",
      },
    },
  },
  {
    rules: {
      "@typescript-eslint/no-unused-vars": [
        "error",
        { argsIgnorePattern: "^_", varsIgnorePattern: "^_" },
      ],
      "@typescript-eslint/consistent-type-imports": "error",
      "no-console": "off",
    },
  },
  {
    // A module of src/ past 500 lines is a hub waiting to be split (STYLE): cut it at its seam
    // rather than raise the limit (#18). Tests and benches are exempt: a scenario reads best whole.
    files: ["src/**/*.ts"],
    rules: { "max-lines": ["error", { max: 500 }] },
  },
  layer({
    name: "domain",
    files: ["src/domain/**/*.ts"],
    may: [],
    packages: [IO_PACKAGES],
    advice: "Move what the domain needs into domain/, or pass it in as a plain value.",
  }),
  layer({
    name: "config",
    files: ["src/config/**/*.ts"],
    may: ["domain"],
    packages: OUTER_PACKAGES,
    advice: "The config is read by the outer layers, it reads none of them.",
  }),
  layer({
    name: "storage",
    files: ["src/storage/**/*.ts"],
    may: ["domain"],
    packages: [HTTP_FRAMEWORK],
    advice:
      "Storage holds the SQL for everyone and knows only domain types; let the caller pass what it needs.",
  }),
  layer({
    name: "root infrastructure",
    files: ["src/*.ts"],
    ignores: ["src/main.ts"],
    may: PIPELINE_MAY,
    packages: OUTER_PACKAGES,
    advice: "The modules at the root of src/ serve the layers above them and import none of them.",
  }),
  ...["capture", "sequencer", "delivery"].map((name) =>
    layer({
      name,
      files: [`src/${name}/**/*.ts`],
      may: PIPELINE_MAY,
      packages: OUTER_PACKAGES,
      advice:
        "The stages of the pipeline meet through the database (inbox, log, cursors) and objects main.ts hands them, not through each other's modules.",
    }),
  ),
  layer({
    name: "jobs",
    files: ["src/jobs/**/*.ts"],
    may: [...PIPELINE_MAY, "capture"],
    partly: { delivery: [...OUTBOUND_HTTP, ...LOG_FOLLOWING] },
    packages: OUTER_PACKAGES,
    advice:
      "Jobs write through capture and read through storage; what they share with another layer belongs in domain/ or storage/.",
  }),
  layer({
    name: "api",
    files: ["src/api/**/*.ts"],
    may: [...PIPELINE_MAY, "capture", "jobs"],
    partly: { delivery: OUTBOUND_HTTP, console: ["console-plugin"] },
    packages: [DATABASE_DRIVERS],
    advice:
      "The API writes through capture, starts jobs and reads through storage; delivery and the sequencer run beside it, wired in main.ts.",
  }),
  layer({
    name: "console",
    files: ["src/console/**/*.ts"],
    may: [...PIPELINE_MAY, "api"],
    packages: [DATABASE_DRIVERS],
    advice:
      "The console acts through the API (inject) and reads the API's read models in storage/.",
  }),
);
