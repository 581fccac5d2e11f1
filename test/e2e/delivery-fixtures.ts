/** Shared setup of the delivery tests: an entity, subscriptions, and change events written as capture does. */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { bootstrap } from "../../src/api/bootstrap.js";
import type { HeraldConfig } from "../../src/config/config.js";
import { loadConfig } from "../../src/config/config.js";
import type { NewChangeEvent } from "../../src/domain/change-event.js";
import type { Subscription, SubscriptionSettings } from "../../src/domain/subscription.js";
import { SUBSCRIPTION_DEFAULTS } from "../../src/domain/subscription.js";
import { appendChangeEvents } from "../../src/storage/change-event-repository.js";
import type { Database, Queryable } from "../../src/storage/database.js";
import { LogSignals } from "../../src/storage/log-signals.js";
import { insertSubscription } from "../../src/storage/subscription-repository.js";
import { findEntityByName, firstLicenceId } from "../../src/storage/tenancy-repository.js";
import { listeningUrl } from "../helpers/cli-herald.js";
import { TEST_SECRET_KEY, testSecrets } from "../helpers/test-database.js";

export const ENTITY = "acme";

export function newSecret(): string {
  return `whsec_${randomBytes(24).toString("base64")}`;
}

export function deliveryConfig(overrides: Partial<HeraldConfig> = {}): HeraldConfig {
  return {
    ...loadConfig({ env: {} }),
    defaultEntity: ENTITY,
    allowInsecureTargets: true,
    deliveryTimeoutMs: 5_000,
    ...overrides,
  };
}

export async function entityId(db: Database): Promise<number> {
  await bootstrap(db, {
    defaultEntity: ENTITY,
    adminApiKey: "hk_delivery_tests_admin_key_0123456789",
  });
  const entity = await findEntityByName(db, await firstLicenceId(db), ENTITY);
  if (!entity) throw new Error("no entity");
  return entity.id;
}

export async function subscribe(
  db: Queryable,
  entity: number,
  settings: Partial<SubscriptionSettings> & Pick<SubscriptionSettings, "targetUrl">,
): Promise<Subscription> {
  return insertSubscription(db, testSecrets(), entity, {
    on: "PROFILE_TABLE",
    onElementId: "1",
    eventType: "UPDATE",
    onFields: [],
    headers: {},
    isActive: true,
    pushMode: SUBSCRIPTION_DEFAULTS.pushMode,
    maxBlockSize: SUBSCRIPTION_DEFAULTS.maxBlockSize,
    lingerMs: SUBSCRIPTION_DEFAULTS.lingerMs,
    maxWaitMs: SUBSCRIPTION_DEFAULTS.maxWaitMs,
    maxConcurrency: SUBSCRIPTION_DEFAULTS.maxConcurrency,
    includePrevious: false,
    conditions: null,
    secret: newSecret(),
    ...settings,
  });
}

/** A profile UPDATE event of `profileId` at `version` (table "1"). */
export function profileUpdate(entity: number, profileId: number, version: number): NewChangeEvent {
  return {
    entityId: entity,
    source: "PROFILE_TABLE",
    sourceId: "1",
    eventType: "UPDATE",
    recordKey: String(profileId),
    keys: { profileId, emailAddress: `p${profileId}@example.com` },
    state: { profileId, emailAddress: `p${profileId}@example.com`, counter: version },
    fields: ["counter"],
    previous: { counter: version - 1 },
    extra: {},
    version,
    declaredEvents: [],
    origin: { kind: "SYSTEM" },
  };
}

/** How often appends NOTIFY the inbox: as one writer process's would. */
const appendNotifyTurns = new LogSignals();

/** Appends events in one transaction, as capture would. */
export async function append(db: Database, events: NewChangeEvent[]): Promise<void> {
  await db.transaction((tx) => appendChangeEvents(tx, events, appendNotifyTurns));
}

/** Data objects of every request a receiver got (a BULK body holds several). */
export function dataObjects(json: unknown): Record<string, unknown>[] {
  const data = (json as { data: unknown }).data;
  return (Array.isArray(data) ? data : [data]) as Record<string, unknown>[];
}

export interface OrderReport {
  delivered: number;
  distinct: number;
  duplicates: number;
  outOfOrder: string[];
}

/**
 * Checks per-record order over the pushes in arrival order: a record's versions may repeat (an
 * at-least-once re-send restarts from the watermark) but a first-time version never comes before a
 * lower one that was not seen yet.
 */
export function orderReport(bodies: unknown[]): OrderReport {
  const seen = new Set<string>();
  const highest = new Map<string, number>();
  const outOfOrder: string[] = [];
  let delivered = 0;
  for (const body of bodies) {
    for (const data of dataObjects(body)) {
      delivered++;
      const event = data._event as { id: string; version: number };
      const record = String(data.profileId);
      if (seen.has(event.id)) continue;
      seen.add(event.id);
      const top = highest.get(record) ?? 0;
      if (event.version !== top + 1) outOfOrder.push(`${record}: v${event.version} after v${top}`);
      highest.set(record, Math.max(top, event.version));
    }
  }
  return { delivered, distinct: seen.size, duplicates: delivered - seen.size, outOfOrder };
}

export interface HeraldProcess {
  child: ChildProcess;
  pid: number;
  /** The worker id Herald derives by default (hostname:pid) unless HERALD_WORKER_ID is set. */
  workerId: string;
  output(): string;
  exited: Promise<number | null>;
  kill(signal: NodeJS.Signals): Promise<number | null>;
}

/** Runs `node bin/herald.mjs start --role <roles>` as users do, on the PostgreSQL database `url`. */
export function startHeraldProcess(
  url: string,
  roles: string,
  env: Record<string, string> = {},
): HeraldProcess {
  const child = spawn(process.execPath, ["bin/herald.mjs", "start", "--role", roles], {
    cwd: new URL("../..", import.meta.url).pathname,
    env: {
      ...process.env,
      DATABASE_URL: url,
      HERALD_SECRET_KEY: TEST_SECRET_KEY,
      HERALD_ALLOW_INSECURE_TARGETS: "true",
      HERALD_DEFAULT_ENTITY: ENTITY,
      HERALD_ADMIN_API_KEY: "hk_delivery_tests_admin_key_0123456789",
      HERALD_LOG_LEVEL: process.env.HERALD_E2E_LOG_LEVEL ?? "warn",
      HERALD_PORT: "0",
      HERALD_HOST: "127.0.0.1",
      // Leases last the delivery timeout + 5 s: keep both short so a killed worker's share moves in ~10 s.
      HERALD_DELIVERY_TIMEOUT_MS: "5000",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout?.on("data", (chunk: Buffer) => (out += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (out += chunk.toString()));
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => resolve(code)),
  );
  const pid = child.pid ?? 0;
  return {
    child,
    pid,
    workerId: env.HERALD_WORKER_ID ?? `${hostname()}:${pid}`,
    output: () => out,
    exited,
    kill: (signal) => {
      child.kill(signal);
      return exited;
    },
  };
}

/** Polls `check` every 100 ms until it returns true; throws after `timeoutMs`. */
export async function eventually(
  check: () => Promise<boolean> | boolean,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * The URL a started process's API listens on, from its "Herald API listening" log line; fails with
 * the process's output when it exits before, or says nothing within `timeoutMs`.
 */
export async function apiUrlOf(herald: HeraldProcess, timeoutMs = 60_000): Promise<string> {
  let url: string | undefined;
  await eventually(
    () => (url = listeningUrl(herald.output())) !== undefined || herald.child.exitCode !== null,
    timeoutMs,
    "Herald to listen",
  );
  assert.ok(url, herald.output());
  return url;
}

/** Lease owners of the subscriptions, by id. */
export async function leaseOwners(db: Queryable): Promise<Map<number, string | null>> {
  const { rows } = await db.query<{ id: number; lease_owner: string | null }>(
    "SELECT id, lease_owner FROM webhook_subscriptions WHERE lease_expires_at > now() OR lease_owner IS NULL ORDER BY id",
  );
  return new Map(rows.map((r) => [r.id, r.lease_owner]));
}
