/**
 * What `herald import` and `herald export` share once an execution is started: following it until
 * it ends (a poll every 300 ms; a Herald that stops answering is waited for up to a minute, then
 * given up on, the execution going on without us), and how sizes and durations are written.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { HeraldClient } from "./api-client.js";
import { HeraldUnreachableError } from "./api-client.js";
import { isTransient } from "./cli-support.js";

const POLL_INTERVAL_MS = 300;
const FOLLOW_PATIENCE_MS = 60_000;

export interface FollowOptions<T> {
  /** "import" or "export", in the message when Herald is given up on. */
  what: string;
  /** Called with every answer (to redraw a progress bar); true when the execution has ended. */
  ended: (execution: T) => boolean;
  signal: AbortSignal;
}

/** Polls the execution at `path` until it ends, or until Ctrl-C ("interrupted"). */
export async function followExecution<T>(
  client: HeraldClient,
  path: string,
  options: FollowOptions<T>,
): Promise<T | "interrupted"> {
  const { signal } = options;
  let lostSince: number | undefined;
  for (;;) {
    try {
      const execution = (await client.getJson<T>(path, signal)).json;
      lostSince = undefined;
      if (options.ended(execution)) return execution;
    } catch (error) {
      if (signal.aborted) return "interrupted";
      if (!isTransient(error)) throw error;
      if (lostSince === undefined) {
        lostSince = Date.now();
        console.error(
          `herald: ${(error as Error).message}; retrying for up to ${FOLLOW_PATIENCE_MS / 1000} s`,
        );
      } else if (Date.now() - lostSince > FOLLOW_PATIENCE_MS) {
        throw new HeraldUnreachableError(
          `gave up following after ${FOLLOW_PATIENCE_MS / 1000} s without an answer ` +
            `(${(error as Error).message}); the ${options.what} may still run: GET ${client.url(path)}`,
        );
      }
    }
    try {
      await sleep(POLL_INTERVAL_MS, undefined, { signal });
    } catch {
      return "interrupted";
    }
  }
}

export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** How long from `start` to `end` ("850 ms", "12.3 s"); undefined when either is missing. */
export function duration(start?: string | null, end?: string | null): string | undefined {
  if (!start || !end) return undefined;
  const ms = Date.parse(end) - Date.parse(start);
  if (!Number.isFinite(ms) || ms < 0) return undefined;
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}
