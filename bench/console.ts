/**
 * `npm run bench -- console`: how fast each console page answers (issue 15: under 100 ms with 100
 * subscriptions and a million log events, on PostgreSQL). It prints; nothing fails on a miss.
 *
 * The fixture (bench/console-seed.ts, where it says how the events are made): Herald as users run
 * it (`bin/herald.mjs start`, every role in one process) on a fresh database, a profile table and
 * a custom table, 100 subscriptions (ONE_BY_ONE and BULK; healthy, FAILING against an endpoint that
 * answers 500, and paused) and a million events. Delivery then runs until the healthy subscriptions
 * made before the events have caught up (at most HERALD_BENCH_CONSOLE_DRAIN_S, default 120 s).
 * This PostgreSQL server runs without autovacuum, so the bench runs ANALYZE once, as autovacuum
 * would after so many rows.
 *
 * Then it signs in to the console (POST /ui/sign-in with the admin key, keeping the cookie) and
 * times each page over HTTP (undici, one keep-alive connection, one request at a time, from the
 * request to the last byte of the body): a warm-up of 3 requests per page, then
 * HERALD_BENCH_CONSOLE_REPEAT (default 30) rounds that each time every page once. The fragments a
 * page loads (its `hx-get` addresses under /ui, the first of each route) are timed too. Then each
 * page's CPU cost per view (the Herald process and its PostgreSQL backends, from /proc), which
 * moves much less than its time when other work shares the machine. Printed per page: p50, p95 and
 * max against the target (met when p95 < 100 ms), the CPU per view, and the machine's load average
 * at the start, around the timing and at the end. About 4 minutes, most of it seeding.
 *
 * HERALD_BENCH_CONSOLE_EVENTS (default 1,000,000) and HERALD_BENCH_CONSOLE_IMPORT_ROWS (20,000)
 * size the fixture; HERALD_BENCH_CONSOLE_KEEP=1 leaves the database behind (its name is printed)
 * for EXPLAIN after the run.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Agent, request } from "undici";
import type { BenchOptions } from "./bench-support.js";
import {
  cpuSecondsOf,
  createBenchDatabase,
  fixed,
  postgresUnavailable,
  printTable,
} from "./bench-support.js";
import { percentile } from "./closed-loop.js";
import type { ConsoleFixture } from "./console-seed.js";
import { CONSOLE_ADMIN_KEY, CONSOLE_ENTITY, seedConsole } from "./console-seed.js";
import { sleep } from "./faults-support.js";
import { BackendWatch } from "./import-support.js";

const TARGET_MS = 100;
const WARMUP = 3;

const loadAverage = () => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");

function setting(name: string, fallback: number): number {
  const raw = process.env[name];
  const value = raw === undefined ? fallback : Number(raw);
  if (!Number.isInteger(value) || value < 1)
    throw new Error(`${name} must be a whole number ≥ 1 (it is '${raw}')`);
  return value;
}

// Delivery before measuring -------------------------------------------------------------------------

interface SubscriptionFigures {
  id: string;
  state: string;
  is_active: boolean;
  behind: string;
  attempts: string;
  failed: string;
}

async function subscriptionFigures(fixture: ConsoleFixture): Promise<SubscriptionFigures[]> {
  const { rows } = await fixture.sql.query<SubscriptionFigures>(
    `SELECT s.id, s.state, s.is_active, (SELECT position FROM log_head) - s.watermark AS behind,
            count(a.id) AS attempts, count(a.id) FILTER (WHERE a.outcome <> 'DELIVERED') AS failed
       FROM webhook_subscriptions s LEFT JOIN delivery_attempts a ON a.subscription_id = s.id
      GROUP BY s.id ORDER BY s.id`,
  );
  return rows;
}

/** Lets delivery run until the healthy subscriptions made before the events are caught up. */
async function letDeliveryRun(fixture: ConsoleFixture, limitMs: number): Promise<number> {
  const started = performance.now();
  const draining = new Set(
    fixture.subscriptions.filter((s) => s.early && s.role === "healthy").map((s) => String(s.id)),
  );
  // At least a few seconds: the late subscriptions' first pushes and retries.
  await sleep(5_000);
  while (performance.now() - started < limitMs) {
    const figures = await subscriptionFigures(fixture);
    if (figures.every((f) => !draining.has(f.id) || Number(f.behind) === 0)) break;
    await sleep(1_000);
  }
  return performance.now() - started;
}

function describeSubscriptions(fixture: ConsoleFixture, figures: SubscriptionFigures[]): void {
  const byId = new Map(figures.map((f) => [f.id, f]));
  const rows = [
    ["subscriptions", "count", "state", "attempts (not delivered)", "positions behind"],
  ];
  for (const role of ["healthy", "failing", "paused"] as const) {
    for (const early of [true, false]) {
      const mine = fixture.subscriptions.filter((s) => s.role === role && s.early === early);
      if (mine.length === 0) continue;
      const f = mine.map((s) => byId.get(String(s.id))!).filter(Boolean);
      const states = [...new Set(f.map((x) => (x.is_active ? x.state : "paused")))].join(", ");
      const sum = (pick: (x: SubscriptionFigures) => string) =>
        f.reduce((total, x) => total + Number(pick(x)), 0);
      const behind = f.map((x) => Number(x.behind));
      rows.push([
        `${role}, made ${early ? "before" : "after"} the events`,
        String(mine.length),
        states,
        `${fixed(sum((x) => x.attempts))} (${fixed(sum((x) => x.failed))})`,
        `${fixed(Math.min(...behind))}–${fixed(Math.max(...behind))}`,
      ]);
    }
  }
  printTable(rows);
}

// Timing pages ---------------------------------------------------------------------------------------

interface Page {
  label: string;
  path: string;
}

interface Timed {
  page: Page;
  status: number;
  bytes: number;
  ms: number[];
  /** CPU ms per view: the Herald process and its PostgreSQL backends, background taken off. */
  cpuMs?: number;
}

class ConsoleClient {
  private readonly agent = new Agent({ connections: 1, keepAliveTimeout: 60_000 });
  private cookie = "";
  constructor(private readonly origin: string) {}

  async signIn(apiKey: string): Promise<void> {
    const response = await request(`${this.origin}/ui/sign-in`, {
      method: "POST",
      dispatcher: this.agent,
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ apiKey }).toString(),
    });
    await response.body.text();
    const setCookie = response.headers["set-cookie"];
    const first = Array.isArray(setCookie) ? setCookie[0] : setCookie;
    if (response.statusCode !== 303 || !first)
      throw new Error(`signing in to the console answered ${response.statusCode}, no cookie`);
    this.cookie = first.split(";")[0]!;
  }

  async get(path: string): Promise<{ status: number; body: string; ms: number }> {
    const started = performance.now();
    const response = await request(`${this.origin}${path}`, {
      dispatcher: this.agent,
      headers: { cookie: this.cookie },
    });
    const body = await response.body.text();
    return { status: response.statusCode, body, ms: performance.now() - started };
  }

  close(): Promise<void> {
    return this.agent.close();
  }
}

/** The first console link in `html` that starts with `prefix`, without query or fragment. */
function linkIn(html: string, prefix: string): string | undefined {
  for (const match of html.matchAll(/href="([^"]+)"/g)) {
    const href = match[1]!.replaceAll("&amp;", "&");
    if (href.startsWith(prefix) && href.length > prefix.length) return href.split(/[?#]/)[0];
  }
  return undefined;
}

/** A path with its ids (numbers, UUIDs) as `:id`: one route, whatever record it shows. */
const routeOf = (path: string) =>
  path
    .split("?")[0]!
    .split("/")
    .map((part) => (/^(\d+|[0-9a-f]{8}-[0-9a-f-]{27})$/i.test(part) ? ":id" : part))
    .join("/");

/**
 * The fragments a page loads: its `hx-get` addresses under /ui (server-sent events are not
 * `hx-get`), the first of each route only (a list of pushes links each push's detail).
 */
function fragmentsIn(html: string): string[] {
  const found = new Map<string, string>();
  for (const match of html.matchAll(/hx-get="([^"]+)"/g)) {
    const path = match[1]!.replaceAll("&amp;", "&");
    if (path.startsWith("/ui/") && !found.has(routeOf(path))) found.set(routeOf(path), path);
  }
  return [...found.values()];
}

async function pagesToTime(
  client: ConsoleClient,
  fixture: ConsoleFixture,
  sizes: { events: number; importRows: number },
): Promise<Page[]> {
  const e = `/ui/e/${CONSOLE_ENTITY}`;
  const tables = (await client.get(`${e}/tables`)).body;
  const tablePath = (kind: "profile" | "custom", table: { id: string; name: string }) =>
    linkIn(tables, `${e}/tables/${kind}/`) ?? `${e}/tables/${kind}/${encodeURIComponent(table.id)}`;
  const failing = fixture.subscriptions.find((s) => s.early && s.role === "failing")!;
  const healthy = fixture.subscriptions.find((s) => s.early && s.role === "healthy")!;
  const paused = fixture.subscriptions.find((s) => s.early && s.role === "paused")!;
  const profileSource = encodeURIComponent(`PROFILE_TABLE:${fixture.profileTable.id}`);
  const customSource = encodeURIComponent(`CUSTOM_TABLE:${fixture.customTable.id}`);
  return [
    { label: "entities", path: "/ui" },
    { label: "tables", path: `${e}/tables` },
    { label: "profile table", path: tablePath("profile", fixture.profileTable) },
    { label: "custom table", path: tablePath("custom", fixture.customTable) },
    { label: "subscriptions", path: `${e}/subscriptions` },
    { label: "subscriptions, page 2", path: `${e}/subscriptions?page=2` },
    { label: "new subscription form", path: `${e}/subscriptions/new` },
    {
      label: `subscription, FAILING (${failing.pushMode}), ${fixed(sizes.events)} behind`,
      path: `${e}/subscriptions/${failing.id}`,
    },
    {
      label: `subscription, healthy (${healthy.pushMode}, pushed ${fixed(sizes.events)} events)`,
      path: `${e}/subscriptions/${healthy.id}`,
    },
    {
      label: `subscription, paused (${paused.pushMode}), ${fixed(sizes.events)} behind`,
      path: `${e}/subscriptions/${paused.id}`,
    },
    { label: "  its attempts, page 5", path: `${e}/subscriptions/${healthy.id}/attempts?page=5` },
    { label: "  its edit form", path: `${e}/subscriptions/${healthy.id}/edit` },
    { label: "  its delete confirmation", path: `${e}/subscriptions/${healthy.id}/delete` },
    { label: "imports", path: `${e}/imports` },
    {
      label: `import (${fixed(sizes.importRows)} rows)`,
      path: `${e}/imports/${encodeURIComponent(fixture.imports.large)}`,
    },
    {
      label: "import with rejected rows",
      path: `${e}/imports/${encodeURIComponent(fixture.imports.rejected)}`,
    },
    {
      label: "  its rejected rows (CSV download)",
      path: `${e}/imports/${encodeURIComponent(fixture.imports.rejected)}/rejected-rows.csv`,
    },
    {
      // Server-sent events: for a finished import, its block and `done`, then the stream ends.
      label: "  its progress stream (finished: one block)",
      path: `${e}/imports/${encodeURIComponent(fixture.imports.rejected)}/progress`,
    },
    { label: "change log (newest)", path: `${e}/change-log` },
    { label: "change log, profile table", path: `${e}/change-log?source=${profileSource}` },
    { label: "change log, custom table (rare)", path: `${e}/change-log?source=${customSource}` },
    { label: "change log, after=1", path: `${e}/change-log?after=1` },
    {
      label: "change log, custom table, after the early events",
      path: `${e}/change-log?source=${customSource}&after=${fixture.positionBeforeCopies}`,
    },
    {
      label: "change log, UPDATE events before the copies",
      path: `${e}/change-log?eventType=UPDATE&before=${fixture.positionBeforeCopies}`,
    },
  ];
}

/**
 * Every page and the fragments its HTML loads, each warmed up; then `repeat` rounds, each timing
 * every page once in turn, so that a burst of other work on the machine spreads over all pages
 * instead of landing on one.
 */
async function timeEverything(
  client: ConsoleClient,
  pages: Page[],
  repeat: number,
): Promise<Timed[]> {
  const results: Timed[] = [];
  const seen = new Set(pages.map((p) => p.path));
  const routes = new Set<string>();
  const warm = async (page: Page) => {
    let answer = await client.get(page.path);
    for (let i = 1; i < WARMUP; i++) answer = await client.get(page.path);
    results.push({ page, status: answer.status, bytes: Buffer.byteLength(answer.body), ms: [] });
    return answer.body;
  };
  for (const page of pages) {
    const html = await warm(page);
    for (const path of fragmentsIn(html)) {
      if (seen.has(path) || routes.has(routeOf(path))) continue;
      seen.add(path);
      routes.add(routeOf(path));
      await warm({ label: `  fragment of ${page.label}`, path });
    }
  }
  for (let round = 0; round < repeat; round++) {
    for (const result of results) {
      const answer = await client.get(result.page.path);
      result.ms.push(answer.ms);
      if (answer.status !== 200) result.status = answer.status;
    }
  }
  return results;
}

/** CPU seconds so far of the Herald process and of the bench database's backends. */
async function cpuSeconds(fixture: ConsoleFixture, watch: BackendWatch): Promise<number> {
  await watch.sample();
  return cpuSecondsOf(fixture.heraldPid) + watch.seconds();
}

/**
 * What a view of each page costs in CPU, which moves much less than its time with the machine's
 * load: each page asked `repeat` times in a row, the CPU time the Herald process and the
 * PostgreSQL backends used meanwhile (from /proc, in 10 ms ticks, hence the blocks), less what
 * they use when nobody asks anything (delivery's polls, measured beforehand for 5 s).
 */
async function measureCpu(
  client: ConsoleClient,
  fixture: ConsoleFixture,
  results: Timed[],
  repeat: number,
): Promise<number> {
  const watch = await BackendWatch.open(fixture.databaseUrl);
  watch.tally = false;
  try {
    const idleFrom = performance.now();
    const idleCpu = await cpuSeconds(fixture, watch);
    await sleep(5_000);
    const idleRate =
      ((await cpuSeconds(fixture, watch)) - idleCpu) / ((performance.now() - idleFrom) / 1000);
    for (const result of results) {
      const from = performance.now();
      const cpu = await cpuSeconds(fixture, watch);
      for (let i = 0; i < repeat; i++) await client.get(result.page.path);
      const used = (await cpuSeconds(fixture, watch)) - cpu;
      const background = (idleRate * (performance.now() - from)) / 1000;
      result.cpuMs = (Math.max(0, used - background) * 1000) / repeat;
    }
    return idleRate;
  } finally {
    await watch.close();
  }
}

function printTimings(results: Timed[]): void {
  const rows = [
    ["page", "path", "status", "KiB", "p50 ms", "p95 ms", "max ms", "CPU ms", "target", ""],
  ];
  for (const r of results) {
    const p95 = percentile(r.ms, 95);
    const verdict = r.status !== 200 ? `answered ${r.status}` : p95 < TARGET_MS ? "met" : "NOT met";
    rows.push([
      r.page.label,
      r.page.path.length > 50 ? `${r.page.path.slice(0, 47)}...` : r.page.path,
      String(r.status),
      fixed(r.bytes / 1024, 1),
      fixed(percentile(r.ms, 50), 1),
      fixed(p95, 1),
      fixed(Math.max(...r.ms), 1),
      r.cpuMs === undefined ? "-" : fixed(r.cpuMs, 1),
      `< ${TARGET_MS}`,
      verdict,
    ]);
  }
  printTable(rows);
}

// The run ---------------------------------------------------------------------------------------------

export async function run(options: BenchOptions): Promise<void> {
  const settings = {
    events: setting("HERALD_BENCH_CONSOLE_EVENTS", 1_000_000),
    importRows: setting("HERALD_BENCH_CONSOLE_IMPORT_ROWS", 20_000),
    apiUpdates: 1_000,
    customRecords: 500,
    subscriptions: 100,
  };
  const repeat = setting("HERALD_BENCH_CONSOLE_REPEAT", 30);
  const drainMs = setting("HERALD_BENCH_CONSOLE_DRAIN_S", 120) * 1000;
  const keep = process.env.HERALD_BENCH_CONSOLE_KEEP === "1";
  const loadAtStart = loadAverage();
  console.log(`console: ${new Date().toISOString()}, load average ${loadAtStart}`);
  const unavailable = await postgresUnavailable(options.adminUrl);
  if (unavailable) {
    console.log(`  skipped: PostgreSQL is needed (${unavailable})`);
    return;
  }
  const database = await createBenchDatabase(options.adminUrl);
  const dir = mkdtempSync(join(tmpdir(), "herald-bench-console-"));
  let fixture: ConsoleFixture | undefined;
  try {
    console.log(
      `  seeding ${fixed(settings.events)} events and ${settings.subscriptions} subscriptions`,
    );
    const seeding = performance.now();
    fixture = await seedConsole(database.url, dir, settings, (line) => console.log(line));
    const seedMs = performance.now() - seeding;
    console.log(`  seeded in ${fixed(seedMs / 1000, 1)} s (load average ${loadAverage()})`);

    const ranMs = await letDeliveryRun(fixture, drainMs);
    console.log(`  delivery ran ${fixed(ranMs / 1000, 1)} s more; the subscriptions then:`);
    describeSubscriptions(fixture, await subscriptionFigures(fixture));
    const { rows: autovacuum } = await fixture.sql.query<{ autovacuum: string }>("SHOW autovacuum");
    const analyzing = performance.now();
    await fixture.sql.query("ANALYZE");
    console.log(
      `  autovacuum is ${autovacuum[0]?.autovacuum} on this server: ANALYZE once (${fixed(performance.now() - analyzing)} ms)`,
    );
    const { rows: sizes } = await fixture.sql.query<{ events: string; attempts: string }>(
      `SELECT (SELECT count(*) FROM change_events) AS events,
              (SELECT count(*) FROM delivery_attempts) AS attempts`,
    );
    console.log(
      `  measuring with ${fixed(Number(sizes[0]!.events))} events in the log and ${fixed(Number(sizes[0]!.attempts))} delivery attempts; ` +
        `${WARMUP} warm-up requests per page, then ${repeat} rounds timing each page once, one request at a time`,
    );

    const client = new ConsoleClient(fixture.origin);
    try {
      await client.signIn(CONSOLE_ADMIN_KEY);
      const loadBefore = loadAverage();
      const results = await timeEverything(
        client,
        await pagesToTime(client, fixture, settings),
        repeat,
      );
      const loadTimed = loadAverage();
      const idleRate = await measureCpu(client, fixture, results, repeat);
      console.log("");
      printTimings(results);
      console.log(
        `\n  CPU ms: per view, of the Herald process and its PostgreSQL backends, from ${repeat} views in a row ` +
          `less the ${fixed(idleRate * 1000, 1)} ms/s they use idle; with two cores, a page well under ` +
          `${TARGET_MS} ms of CPU answers in time when the machine is not busy with other work`,
      );
      console.log(
        `  load average: ${loadAtStart} at the start, ${loadBefore} before timing, ${loadTimed} after it, ${loadAverage()} at the end`,
      );
      const missed = results.filter((r) => r.status !== 200 || percentile(r.ms, 95) >= TARGET_MS);
      console.log(
        missed.length === 0
          ? `  every page met the target (p95 < ${TARGET_MS} ms)`
          : `  ${missed.length} of ${results.length} pages missed the target: ${missed.map((r) => r.page.label.trim()).join("; ")}`,
      );
    } finally {
      await client.close();
    }
  } finally {
    await fixture?.stop();
    rmSync(dir, { recursive: true, force: true });
    if (keep) console.log(`  database kept: ${database.url}`);
    else await database.drop();
  }
}
