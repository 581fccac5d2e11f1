/**
 * Herald as the README starts it (`node bin/herald.mjs start` on a fresh embedded database, in a
 * process of its own) and the `herald` CLI as a subprocess, for the CLI's end-to-end tests: one-shot
 * runs with their exit code and output, long-running ones (`listen`, `tail --follow`) that a test
 * reads while they run and then signals, and the JSON API with the admin key.
 */
import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Generous: two cores shared by parallel test files make a cold start slow. */
export const START_TIMEOUT_MS = 120_000;
const STOP_TIMEOUT_MS = 30_000;
const CLI_TIMEOUT_MS = 50_000;

/** The test's environment without HERALD_*, DATABASE_URL and NO_COLOR: each child gets only what is set. */
export function outerEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(process.env).filter(
      ([k]) => !k.startsWith("HERALD_") && k !== "DATABASE_URL" && k !== "NO_COLOR",
    ),
  );
}

export interface HeraldServer {
  url: string;
  adminKey: string;
  /** Everything Herald wrote so far (its JSON log lines). */
  output(): string;
  /** An API call with the admin key's token; the answer's status and parsed body. */
  api<T = unknown>(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; json: T }>;
  /** SIGTERM, then the exit code; removes the data directory. */
  stop(): Promise<number | null>;
}

/**
 * The URL of the "Herald API listening" line in the JSON log of `herald start` so far; undefined
 * before it. Complete lines only: a chunk may end in the middle of a JSON line.
 */
export function listeningUrl(output: string): string | undefined {
  for (const line of output.slice(0, output.lastIndexOf("\n")).split("\n")) {
    if (!line.startsWith("{")) continue;
    const entry = JSON.parse(line) as { msg?: string; url?: string };
    if (entry.msg === "Herald API listening" && entry.url) return entry.url;
  }
  return undefined;
}

/** A `herald start` process that has logged that it listens. */
export interface StartedHerald {
  child: ChildProcess;
  /** The URL of its "Herald API listening" line. */
  url: string;
  /** When it was spawned (Date.now()). */
  startedAt: number;
  stdout(): string;
  stderr(): string;
  /** Both streams so far, in the order they came. */
  output(): string;
}

/**
 * `node bin/herald.mjs start [args]` with the test's environment less Herald's settings (outerEnv),
 * on a free loopback port, logging at info: resolved once it logs that it listens; rejected with
 * everything it printed when it exits first, or when it has not listened within START_TIMEOUT_MS
 * (then it is killed).
 */
export function spawnHeraldStart(
  env: Record<string, string>,
  args: string[] = [],
): Promise<StartedHerald> {
  const startedAt = Date.now();
  const child = spawn(process.execPath, ["bin/herald.mjs", "start", ...args], {
    env: {
      ...outerEnv(),
      HERALD_PORT: "0",
      HERALD_HOST: "127.0.0.1",
      HERALD_LOG_LEVEL: "info",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  let all = "";
  child.stderr!.on("data", (chunk: Buffer) => {
    err += chunk.toString();
    all += chunk.toString();
  });
  return new Promise<StartedHerald>((resolve, reject) => {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, START_TIMEOUT_MS);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(
        new Error(
          timedOut
            ? `Herald did not start within ${START_TIMEOUT_MS} ms:\n${all}`
            : `Herald exited with ${code} before listening:\n${all}`,
        ),
      );
    });
    let listening = false;
    child.stdout!.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      all += chunk.toString();
      if (listening) return;
      const url = listeningUrl(out);
      if (url === undefined) return;
      listening = true;
      clearTimeout(timer);
      child.removeAllListeners("exit");
      resolve({ child, url, startedAt, stdout: () => out, stderr: () => err, output: () => all });
    });
  });
}

export async function startHerald(env: Record<string, string> = {}): Promise<HeraldServer> {
  const dataDir = mkdtempSync(join(tmpdir(), "herald-e2e-cli-"));
  const adminKey = `hk_e2e_cli_${randomBytes(12).toString("hex")}`;
  let started: StartedHerald;
  try {
    started = await spawnHeraldStart({
      HERALD_DATA_DIR: dataDir,
      HERALD_ADMIN_API_KEY: adminKey,
      HERALD_DEFAULT_ENTITY: "default",
      ...env,
    });
  } catch (error) {
    // Whatever stopped it, a start that failed leaves no data directory behind.
    rmSync(dataDir, { recursive: true, force: true });
    throw error;
  }
  const { child, url } = started;

  let token: string | undefined;
  const api = async <T>(method: string, path: string, body?: unknown) => {
    token ??= await fetch(`${url}/auth/token`, { headers: { authorization: adminKey } })
      .then((r) => r.json() as Promise<{ accessToken: string }>)
      .then((j) => j.accessToken);
    const response = await fetch(`${url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    return { status: response.status, json: (text ? JSON.parse(text) : undefined) as T };
  };

  return {
    url,
    adminKey,
    output: started.output,
    api,
    stop: async () => {
      const code = await stopChild(child);
      rmSync(dataDir, { recursive: true, force: true });
      return code;
    },
  };
}

/** Stops a Herald process (SIGTERM, SIGKILL after 30 s); its exit code, null when killed. */
export function stopChild(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve(code);
    });
    child.kill("SIGTERM");
  });
}

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A `herald` command line to its end: exit code and output. */
export async function runCli(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  const cli = spawnCli(args, env);
  const timer = setTimeout(() => cli.child.kill("SIGKILL"), CLI_TIMEOUT_MS);
  const code = await cli.exited;
  clearTimeout(timer);
  return { code, stdout: cli.stdout(), stderr: cli.stderr() };
}

export interface RunningCli {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the first match of `pattern` in the stream's output so far or to come. */
  waitFor(
    stream: "stdout" | "stderr",
    pattern: RegExp,
    timeoutMs?: number,
  ): Promise<RegExpMatchArray>;
  /** The exit code (null when killed by a signal), once the output is all read. */
  exited: Promise<number | null>;
}

/** A `herald` command that keeps running (`listen`, `tail --follow`) until the test signals it. */
export function spawnCli(args: string[], env: Record<string, string> = {}): RunningCli {
  const child = spawn(process.execPath, ["bin/herald.mjs", ...args], {
    env: { ...outerEnv(), ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const output = { stdout: "", stderr: "" };
  const waiters = new Set<() => void>();
  let closed = false;
  for (const stream of ["stdout", "stderr"] as const)
    child[stream].on("data", (chunk: Buffer) => {
      output[stream] += chunk.toString();
      for (const wake of waiters) wake();
    });
  const exited = new Promise<number | null>((resolve) => {
    child.once("close", (code) => {
      closed = true;
      for (const wake of waiters) wake();
      resolve(code);
    });
  });
  return {
    child,
    stdout: () => output.stdout,
    stderr: () => output.stderr,
    exited,
    waitFor: (stream, pattern, timeoutMs = 30_000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const match = pattern.exec(output[stream]);
          if (match) {
            done();
            resolve(match);
          } else if (closed) {
            done();
            reject(
              new Error(`herald ${args[0]} ended before printing ${pattern}:\n${shown(output)}`),
            );
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`no ${pattern} on ${stream} within ${timeoutMs} ms:\n${shown(output)}`));
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      }),
  };
}

/** Everything a failed assertion needs to explain itself. */
export function shown(run: { code?: number | null; stdout: string; stderr: string }): string {
  return `exit ${run.code ?? "-"}\n--- stdout\n${run.stdout}--- stderr\n${run.stderr}`;
}

/** Resolves once `check` holds (polled), or rejects after `timeoutMs` with `what`. */
export async function eventually(
  check: () => Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
