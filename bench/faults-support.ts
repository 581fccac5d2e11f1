/**
 * Pieces of the `faults` bench (bench/faults.ts): Herald started as users start it
 * (`node bin/herald.mjs start`) in a process of its own, a loopback endpoint that records every push
 * (when it came, which worker sent it, its data objects) and can hold some paths before answering,
 * and small measures (RSS from /proc, percentiles).
 */
import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { SubscriptionSettings } from "../src/domain/subscription.js";
import { SUBSCRIPTION_DEFAULTS } from "../src/domain/subscription.js";
import { BENCH_SECRET_KEY, HERALD_NODE_FLAGS } from "./bench-support.js";

export const FAULTS_ADMIN_KEY = "hk_bench_faults_admin_key_0123456789";
const ROOT = new URL("..", import.meta.url).pathname;

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `check` every 20 ms; resolves to the time it first held, or undefined after `timeoutMs`. */
export async function until(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
): Promise<number | undefined> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return Date.now();
    await sleep(20);
  }
  return undefined;
}

// Herald processes -------------------------------------------------------------------------------

export interface HeraldProcess {
  child: ChildProcess;
  pid: number;
  /** Everything it wrote to stdout and stderr (the first MB). */
  output(): string;
  /** Still running (no exit, no signal). */
  alive(): boolean;
  /** Resolves to the API's origin once it logs "Herald API listening". */
  listening(timeoutMs?: number): Promise<string>;
  /** Resolves once `text` appears in its output; throws if it exits first or after `timeoutMs`. */
  waitFor(text: string, timeoutMs?: number): Promise<void>;
  /** SIGTERM, then SIGKILL after 15 s; removes its data directory. Safe to call twice. */
  stop(): Promise<void>;
}

const started = new Set<HeraldProcess>();

/**
 * `node bin/herald.mjs start --role <roles>` on PostgreSQL (`databaseUrl`) or, without it, on the
 * embedded database in a fresh temporary data directory. HERALD_* settings of this shell are not
 * passed on: the bench decides them.
 */
export function startHeraldProcess(options: {
  roles: string;
  databaseUrl?: string;
  env?: Record<string, string>;
}): HeraldProcess {
  const dataDir = options.databaseUrl ? undefined : mkdtempSync(join(tmpdir(), "herald-faults-"));
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith("HERALD_") && k !== "DATABASE_URL"),
  );
  const child = spawn(
    process.execPath,
    [...HERALD_NODE_FLAGS, "bin/herald.mjs", "start", "--role", options.roles],
    {
      cwd: ROOT,
      env: {
        ...inherited,
        ...(options.databaseUrl
          ? { DATABASE_URL: options.databaseUrl, HERALD_SECRET_KEY: BENCH_SECRET_KEY }
          : {}),
        ...(dataDir ? { HERALD_DATA_DIR: dataDir } : {}),
        HERALD_ADMIN_API_KEY: FAULTS_ADMIN_KEY,
        HERALD_ALLOW_INSECURE_TARGETS: "true",
        HERALD_LOG_LEVEL: "info",
        HERALD_PORT: "0",
        HERALD_HOST: "127.0.0.1",
        ...options.env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let out = "";
  const collect = (chunk: Buffer) => {
    if (out.length < 1_000_000) out += chunk.toString();
  };
  child.stdout!.on("data", collect);
  child.stderr!.on("data", collect);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const alive = () => child.exitCode === null && child.signalCode === null;
  const waitFor = async (text: string, timeoutMs = 120_000) => {
    const at = await until(() => out.includes(text) || !alive(), timeoutMs);
    if (at === undefined || !out.includes(text))
      throw new Error(
        `Herald (${options.roles}) ${alive() ? `did not log '${text}' within ${timeoutMs / 1000} s` : `exited (${child.exitCode ?? child.signalCode})`}:\n${out.slice(-3000)}`,
      );
  };
  let stopping: Promise<void> | undefined;
  const herald: HeraldProcess = {
    child,
    pid: child.pid!,
    output: () => out,
    alive,
    waitFor,
    listening: async (timeoutMs) => {
      await waitFor('"msg":"Herald API listening"', timeoutMs);
      const line = out.split("\n").find((l) => l.includes('"msg":"Herald API listening"'))!;
      return (JSON.parse(line) as { url: string }).url;
    },
    stop: () =>
      (stopping ??= (async () => {
        if (alive()) {
          child.kill("SIGTERM");
          const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
          await exited;
          clearTimeout(timer);
        }
        started.delete(herald);
        if (dataDir) rmSync(dataDir, { recursive: true, force: true });
      })()),
  };
  started.add(herald);
  return herald;
}

/** Stops every Herald process this module started and has not stopped yet. */
export async function stopAllHeraldProcesses(): Promise<void> {
  await Promise.all([...started].map((herald) => herald.stop()));
}

// The endpoint -----------------------------------------------------------------------------------

export interface Push {
  path: string;
  /** The `herald-worker` header. */
  worker: string;
  receivedAt: number;
  data: Record<string, unknown>[];
}

export interface PushRecorder {
  /** `http://127.0.0.1:<port>`; subscriptions target `${origin}/<path>`. */
  origin: string;
  pushes: Push[];
  /** Pushes received and not answered yet. */
  open(): number;
  close(): Promise<void>;
}

/**
 * A loopback endpoint that answers 200 to every push, after `holdMs[path]` ms for the paths named
 * there (a slow endpoint), at once for the others; it keeps every push unless `keep` says no.
 */
export async function startPushRecorder(
  options: {
    holdMs?: Record<string, number>;
    keep?: (push: Push) => boolean;
    onPush?: (push: Push) => void;
  } = {},
): Promise<PushRecorder> {
  const pushes: Push[] = [];
  let open = 0;
  const timers = new Set<NodeJS.Timeout>();
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const path = (req.url ?? "/").split("?")[0]!;
      let data: Record<string, unknown>[] = [];
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { data?: unknown };
        data = (Array.isArray(body.data) ? body.data : [body.data]) as Record<string, unknown>[];
      } catch {
        // Not a push body: kept with no data objects.
      }
      const push: Push = {
        path,
        worker: String(req.headers["herald-worker"] ?? ""),
        receivedAt: Date.now(),
        data,
      };
      options.onPush?.(push);
      if (options.keep?.(push) ?? true) pushes.push(push);
      open++;
      res.on("close", () => open--);
      const hold = options.holdMs?.[path] ?? 0;
      if (hold === 0) {
        res.writeHead(200, { "content-length": "0" }).end();
        return;
      }
      const timer = setTimeout(() => {
        timers.delete(timer);
        if (!res.destroyed) res.writeHead(200, { "content-length": "0" }).end();
      }, hold);
      timers.add(timer);
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    pushes,
    open: () => open,
    close: async () => {
      for (const timer of timers) clearTimeout(timer);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Settings of a subscription inserted straight into the database (no API at hand). */
export function subscriptionSettings(
  targetUrl: string,
  overrides: Partial<SubscriptionSettings> = {},
): SubscriptionSettings {
  return {
    on: "PROFILE_TABLE",
    onElementId: "1",
    eventType: "UPDATE",
    onFields: [],
    targetUrl,
    headers: {},
    isActive: true,
    pushMode: "ONE_BY_ONE",
    maxBlockSize: SUBSCRIPTION_DEFAULTS.maxBlockSize,
    lingerMs: SUBSCRIPTION_DEFAULTS.lingerMs,
    maxWaitMs: SUBSCRIPTION_DEFAULTS.maxWaitMs,
    maxConcurrency: SUBSCRIPTION_DEFAULTS.maxConcurrency,
    includePrevious: false,
    conditions: null,
    secret: `whsec_${Buffer.alloc(32, 9).toString("base64")}`,
    ...overrides,
  };
}

// Measures ---------------------------------------------------------------------------------------

/** VmRSS of a process in MB, from /proc/<pid>/status; NaN when it cannot be read. */
export function vmRssMb(pid: number): number {
  try {
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** A line of the scenario's table: measure, value, target, verdict. */
export type ResultRow = [string, string, string, string];

export const verdict = (ok: boolean): string => (ok ? "ok" : "MISSED");
