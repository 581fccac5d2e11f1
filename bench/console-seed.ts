/**
 * The `console` bench's fixture (bench/console.ts measures on it): Herald as users run it
 * (`node bin/herald.mjs start`, every role in one process) on a fresh PostgreSQL database, one
 * profile table and one custom table, 100 subscriptions in every state the console shows, and a
 * million events in the change log.
 *
 * How the events are made, fastest real way first:
 * 1. a one-shot import of a generated profiles CSV through the API (CREATE events, an execution for
 *    the imports pages) and a small import with rejected rows;
 * 2. profile updates (v4 PUT) and custom-table records (v4 POST / PUT) through the API, in parallel;
 * 3. the rest, up to the million: copies of the real profile UPDATE events of step 2, written by SQL
 *    in bulk with a new `points` value, `updateMoment` and version each (every other column, origin
 *    included, is the API's own), left unstamped for Herald's sequencer to stamp as it stamps any
 *    write; the records then get the last version and value their events give. A 1,000,000-row
 *    import through the API takes 3 to 8 minutes on a 2-core machine (see `-- import`), too long
 *    for a bench meant to run in a few minutes.
 *
 * The subscriptions that should lag are made before the events: a few failing ones (their endpoint
 * answers 500, so the circuit opens and they turn FAILING with attempts and an error log), a few
 * paused ones and two healthy BULK ones that drain the whole log. The other subscriptions are made
 * after it (so they do not scan a million events they will never match), then a burst of API
 * writes of every kind gives each of them attempts.
 */
import { writeFileSync } from "node:fs";
import type { Server } from "node:http";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import pg from "pg";
import type { ReceiverProcess } from "./receiver-launch.js";
import { startReceiverProcess } from "./receiver-launch.js";
import { apiClient, fixed } from "./bench-support.js";
import type { HeraldProcess } from "./faults-support.js";
import { FAULTS_ADMIN_KEY, sleep, startHeraldProcess } from "./faults-support.js";
import {
  PROFILE_ATTRIBUTES,
  PROFILE_COLUMNS,
  uploadImport,
  writeProfilesCsv,
} from "./import-support.js";

export const CONSOLE_ENTITY = "bench";
export const CONSOLE_ADMIN_KEY = FAULTS_ADMIN_KEY;
const SECRET = `whsec_${Buffer.alloc(32, 5).toString("base64")}`;
const PROFILE_TABLE = "BenchCustomers";
const CUSTOM_TABLE = "BenchOrders";
const FINAL = ["SUCCESS", "WITH_ERROR", "ERROR", "CANCELLED"];

export interface SeedSettings {
  /** Events in the change log once seeded (before the burst of writes that follows). */
  events: number;
  /** Rows of the imported profiles CSV. */
  importRows: number;
  /** Profiles updated through the API (each update's event is a template of the SQL copies). */
  apiUpdates: number;
  /** Custom-table records created through the API. */
  customRecords: number;
  subscriptions: number;
}

export type SubscriptionRole = "healthy" | "failing" | "paused";

export interface SeededSubscription {
  id: number;
  role: SubscriptionRole;
  pushMode: "ONE_BY_ONE" | "BULK";
  on: "PROFILE_TABLE" | "CUSTOM_TABLE";
  eventType: "CREATE" | "UPDATE" | "DELETE";
  /** Made before the million events (so it lags, unless healthy). */
  early: boolean;
}

export interface Step {
  label: string;
  ms: number;
  events: number;
}

export interface ConsoleFixture {
  origin: string;
  /** The Herald process (every role), for its CPU time. */
  heraldPid: number;
  databaseUrl: string;
  sql: pg.Client;
  profileTable: { id: string; name: string };
  customTable: { id: string; name: string };
  subscriptions: SeededSubscription[];
  /** The large import's execution id, and the one with rejected rows. */
  imports: { large: string; rejected: string };
  /** The log position just before the SQL copies (an `after` far back, before most events). */
  positionBeforeCopies: number;
  steps: Step[];
  stop(): Promise<void>;
}

type Call = <T>(method: string, path: string, body?: unknown) => Promise<T>;

// Endpoints ----------------------------------------------------------------------------------------

/** An endpoint that answers 500 with a short JSON body to every push (in this process: it is
 * hit only until the circuits open, then by one probe per step of the retry schedule). */
async function startFailingEndpoint(): Promise<{ url: string; server: Server }> {
  const server = createServer((request, response) => {
    request.resume();
    request.on("end", () => {
      const body = '{"error":"the bench endpoint fails every push on purpose"}';
      response.writeHead(500, { "content-type": "application/json" });
      response.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/fails`, server };
}

// Helpers ------------------------------------------------------------------------------------------

/** Runs `task(i)` for i in [0, count) with at most `concurrency` at once. */
async function inParallel(
  count: number,
  concurrency: number,
  task: (i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}

async function eventCount(sql: pg.Client): Promise<number> {
  const { rows } = await sql.query<{ n: string }>("SELECT count(*) AS n FROM change_events");
  return Number(rows[0]!.n);
}

/** Waits until the sequencer has stamped every event written so far. */
async function stamped(sql: pg.Client, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { rows } = await sql.query<{ pending: boolean }>(
      "SELECT EXISTS (SELECT 1 FROM change_events WHERE position IS NULL) AS pending",
    );
    if (!rows[0]!.pending) return;
    if (Date.now() > deadline)
      throw new Error(`the sequencer did not stamp every event within ${timeoutMs / 1000} s`);
    await sleep(100);
  }
}

async function importAndWait(
  origin: string,
  token: string,
  call: Call,
  file: string,
  timeoutMs: number,
): Promise<{ id: string; status: string; counts: Record<string, number> }> {
  const base = `/mass-imports/v5/entities/${CONSOLE_ENTITY}/etl-executions`;
  const upload = await uploadImport(
    `${origin}${base}`,
    token,
    {
      target: { tableType: "PROFILE_TABLE", table: PROFILE_TABLE },
      mode: "CREATE_UPDATE",
      keyAttribute: "customerId",
      file: { format: "CSV", separator: "," },
    },
    file,
  );
  if (upload.status !== 202)
    throw new Error(`the import upload answered ${upload.status}: ${upload.body.slice(0, 500)}`);
  const { executionId } = JSON.parse(upload.body) as { executionId: string };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const execution = await call<{ id: string; status: string; counts: Record<string, number> }>(
      "GET",
      `${base}/${encodeURIComponent(executionId)}`,
    );
    if (FINAL.includes(execution.status)) return { ...execution, id: executionId };
    if (Date.now() > deadline)
      throw new Error(`the import did not finish in ${timeoutMs / 1000} s: ${execution.status}`);
    await sleep(250);
  }
}

/** A profiles CSV of `rows` rows where every tenth row's `points` is not a number (rejected). */
function writeRejectingCsv(path: string, rows: number): void {
  const lines = [PROFILE_COLUMNS.join(",")];
  for (let i = 1; i <= rows; i++)
    lines.push(
      [
        `RJ-${i}`,
        `rejects.${i}@example.com`,
        "Ann",
        "Peeters",
        "Ghent",
        "BE",
        i % 10 === 0 ? "many" : String(i),
        "1.5",
        "false",
        "1980-01-01",
      ].join(","),
    );
  writeFileSync(path, `${lines.join("\n")}\n`);
}

// Subscriptions ------------------------------------------------------------------------------------

interface Targets {
  healthy: string;
  failing: string;
}

async function subscribe(
  call: Call,
  tables: { profile: string; custom: string },
  targets: Targets,
  spec: Omit<SeededSubscription, "id">,
): Promise<SeededSubscription> {
  const created = await call<{ id: number }>(
    "POST",
    `/v4/entity/${CONSOLE_ENTITY}/webhookSubscription`,
    {
      on: spec.on,
      onElementId: spec.on === "PROFILE_TABLE" ? tables.profile : tables.custom,
      eventType: spec.eventType,
      targetUrl: spec.role === "failing" ? targets.failing : targets.healthy,
      pushMode: spec.pushMode,
      ...(spec.pushMode === "BULK" ? { maxBlockSize: 500 } : {}),
      isActive: spec.role !== "paused",
      secret: SECRET,
    },
  );
  return { ...spec, id: Number(created.id) };
}

/** The writes made once every subscription exists, so that each gets attempts. */
const LIVE_WRITES = {
  profileCreates: 100,
  profileUpdates: 300,
  profileDeletes: 50,
  customCreates: 200,
  customUpdates: 100,
  customDeletes: 50,
};

/** The subscriptions made before the million events: the ones meant to lag, and two that drain it. */
const EARLY: Omit<SeededSubscription, "id">[] = [
  ...(["BULK", "BULK"] as const).map((pushMode) => ({ pushMode, role: "healthy" as const })),
  ...(["ONE_BY_ONE", "ONE_BY_ONE", "BULK", "BULK"] as const).map((pushMode) => ({
    pushMode,
    role: "failing" as const,
  })),
  ...(["ONE_BY_ONE", "ONE_BY_ONE", "BULK", "BULK"] as const).map((pushMode) => ({
    pushMode,
    role: "paused" as const,
  })),
].map((spec) => ({ ...spec, on: "PROFILE_TABLE", eventType: "UPDATE", early: true }));

/**
 * The i-th subscription made after the events: every mode, source and event type in turn (cycles
 * of 2, 4 and 12), and every seventh one failing and another paused (7 is prime to those cycles,
 * so failing and paused ones come in every combination).
 */
function lateSpec(i: number): Omit<SeededSubscription, "id"> {
  const role: SubscriptionRole = i % 7 === 3 ? "failing" : i % 7 === 5 ? "paused" : "healthy";
  return {
    role,
    pushMode: i % 2 === 0 ? "ONE_BY_ONE" : "BULK",
    on: Math.floor(i / 2) % 2 === 0 ? "PROFILE_TABLE" : "CUSTOM_TABLE",
    eventType: (["CREATE", "UPDATE", "DELETE"] as const)[Math.floor(i / 4) % 3]!,
    early: false,
  };
}

// The fixture --------------------------------------------------------------------------------------

export async function seedConsole(
  databaseUrl: string,
  dir: string,
  settings: SeedSettings,
  log: (line: string) => void,
): Promise<ConsoleFixture> {
  const steps: Step[] = [];
  const closers: (() => Promise<unknown>)[] = [];
  const stop = async () => {
    for (const close of closers.reverse()) await close().catch(() => {});
  };
  try {
    const sql = new pg.Client({ connectionString: databaseUrl, application_name: "herald-bench" });
    await sql.connect();
    closers.push(() => sql.end());
    const failing = await startFailingEndpoint();
    closers.push(() => new Promise((resolve) => failing.server.close(resolve)));
    const receiver: ReceiverProcess = await startReceiverProcess(SECRET);
    closers.push(() => receiver.close());
    const herald: HeraldProcess = startHeraldProcess({
      roles: "api,sequencer,worker",
      databaseUrl,
      env: { HERALD_DEFAULT_ENTITY: CONSOLE_ENTITY },
    });
    closers.push(() => herald.stop());
    const origin = await herald.listening();
    const { call, token } = await apiClient(origin, CONSOLE_ADMIN_KEY);
    const targets = { healthy: receiver.url, failing: failing.url };

    let mark = performance.now();
    const step = async (label: string) => {
      const now = performance.now();
      const events = await eventCount(sql);
      steps.push({ label, ms: now - mark, events });
      log(`  ${label}: ${fixed(now - mark)} ms (${fixed(events)} events in the log)`);
      mark = performance.now();
    };

    const profile = await call<{ id: string; name: string }>(
      "POST",
      `/v5/entities/${CONSOLE_ENTITY}/profile-tables`,
      { name: PROFILE_TABLE, attributes: PROFILE_ATTRIBUTES },
    );
    const custom = await call<{ id: string; name: string }>(
      "POST",
      `/v5/entities/${CONSOLE_ENTITY}/custom-tables`,
      {
        name: CUSTOM_TABLE,
        type: "REPOSITORY",
        primaryKeyAttribute: "orderId",
        attributes: [
          { name: "orderId", valueType: "STRING" },
          { name: "status", valueType: "STRING" },
          { name: "amount", valueType: "NUMBER" },
          { name: "customerId", valueType: "STRING" },
        ],
        // Custom tables emit UPDATE events only for a declared event.
        eventsToTrigger: [
          {
            name: "order-shipped",
            triggerRules: [
              {
                onOperation: "UPDATE",
                matchingConditions: {
                  stateAfterOperation: [{ attribute: "status", operator: "=", value: "SHIPPED" }],
                },
              },
            ],
          },
        ],
      },
    );
    const tables = { profile: profile.id, custom: custom.id };
    const subscriptions: SeededSubscription[] = [];
    for (const spec of EARLY) subscriptions.push(await subscribe(call, tables, targets, spec));
    await step(`2 tables and ${subscriptions.length} subscriptions (the ones meant to lag)`);

    // 1. Imports through the API.
    const csv = join(dir, "profiles.csv");
    await writeProfilesCsv(csv, settings.importRows);
    const large = await importAndWait(origin, token, call, csv, 600_000);
    if (large.status !== "SUCCESS")
      throw new Error(`the import ended ${large.status}: ${JSON.stringify(large.counts)}`);
    const rejectingCsv = join(dir, "rejects.csv");
    writeRejectingCsv(rejectingCsv, 200);
    const rejected = await importAndWait(origin, token, call, rejectingCsv, 120_000);
    await step(
      `imports through the API: ${fixed(settings.importRows)} rows (${large.status}) and 200 rows, ` +
        `${rejected.counts.rejected ?? 0} rejected (${rejected.status})`,
    );

    // 2. Writes through the API.
    const { rows: records } = await sql.query<{ record_id: string }>(
      "SELECT record_id FROM records WHERE table_id = $1 ORDER BY record_id LIMIT $2",
      [profile.id, settings.apiUpdates],
    );
    const profilePath = `/v4/entity/${CONSOLE_ENTITY}/table/${encodeURIComponent(profile.id)}/profile`;
    await inParallel(records.length, 8, async (i) => {
      await call("PUT", `${profilePath}/${records[i]!.record_id}`, {
        attributes: [{ name: "points", value: 1_000_000 + i }],
      });
    });
    await step(`${fixed(records.length)} profile updates through the API`);
    const recordPath = `/v4/entity/${CONSOLE_ENTITY}/customTable/${CUSTOM_TABLE}/record`;
    const order = (i: number, status: string) => ({
      properties: [
        { name: "orderId", value: `ORD-${i}` },
        { name: "status", value: status },
        { name: "amount", value: (i % 500) + 0.99 },
        { name: "customerId", value: `CU-${i}` },
      ],
    });
    await inParallel(settings.customRecords, 8, async (i) => {
      await call("POST", recordPath, order(i, "NEW"));
    });
    await stamped(sql, 120_000);
    await step(`${fixed(settings.customRecords)} custom records created through the API`);

    // 3. Copies of the API's UPDATE events, by SQL, stamped by Herald's sequencer.
    const { rows: head } = await sql.query<{ position: string }>("SELECT position FROM log_head");
    const positionBeforeCopies = Number(head[0]!.position);
    const { rows: templateRows } = await sql.query<{ id: string }>(
      `SELECT id FROM change_events
        WHERE source = 'PROFILE_TABLE' AND source_id = $1 AND event_type = 'UPDATE'
        ORDER BY id`,
      [profile.id],
    );
    const templates = templateRows.map((row) => row.id);
    const copies = Math.max(0, settings.events - (await eventCount(sql)));
    if (templates.length === 0 && copies > 0)
      throw new Error("no profile UPDATE event was written through the API to copy");
    const chunk = 50_000;
    for (let start = 0; start < copies; start += chunk) {
      await sql.query(COPY_EVENTS_SQL, [
        templates,
        start,
        Math.min(copies, start + chunk),
        templates.length,
      ]);
      // The sequencer listens for this (writers send it after their commit).
      await sql.query("SELECT pg_notify('herald_inbox', '')");
    }
    await sql.query(SYNC_RECORDS_SQL, [templates, copies]);
    const written = performance.now();
    await stamped(sql, 600_000);
    const stampWaitMs = performance.now() - written;
    await step(
      `${fixed(copies)} copies of those UPDATE events by SQL, stamped by Herald's sequencer ` +
        `(${fixed(stampWaitMs)} ms of it waiting for the last stamps)`,
    );
    const shape = await sql.query<{ same: boolean }>(SHAPE_CHECK_SQL, [templates]);
    if (copies > 0 && !shape.rows[0]?.same)
      throw new Error("a copied event does not have the shape of the API's event it copies");

    // The other subscriptions, then writes of every kind so that each gets attempts.
    for (let i = 0; subscriptions.length < settings.subscriptions; i++)
      subscriptions.push(await subscribe(call, tables, targets, lateSpec(i)));
    await step(`${subscriptions.length - EARLY.length} more subscriptions`);
    const live = LIVE_WRITES;
    await inParallel(live.profileCreates, 8, async (i) => {
      await call("POST", profilePath, {
        attributes: [
          { name: "customerId", value: `LIVE-${i}` },
          { name: "emailAddress", value: `live.${i}@example.com` },
          { name: "firstName", value: "Live" },
          { name: "points", value: i },
        ],
      });
    });
    await inParallel(live.profileUpdates, 8, async (i) => {
      await call("PUT", `${profilePath}/${records[i % records.length]!.record_id}`, {
        attributes: [{ name: "city", value: `Town ${i}` }],
      });
    });
    const { rows: created } = await sql.query<{ record_id: string }>(
      `SELECT record_id FROM record_keys
        WHERE table_id = $1 AND attribute = 'customerId' AND value LIKE 'LIVE-%' LIMIT $2`,
      [profile.id, live.profileDeletes],
    );
    await inParallel(created.length, 8, async (i) => {
      await call("DELETE", `${profilePath}/${created[i]!.record_id}`);
    });
    const base = settings.customRecords;
    await inParallel(live.customCreates, 8, async (i) => {
      await call("POST", recordPath, order(base + i, "NEW"));
    });
    await inParallel(live.customUpdates, 8, async (i) => {
      await call("PUT", `${recordPath}/ORD-${base + i}`, order(base + i, "SHIPPED"));
    });
    await inParallel(live.customDeletes, 8, async (i) => {
      await call("DELETE", `${recordPath}/ORD-${base + live.customCreates - 1 - i}`);
    });
    await stamped(sql, 120_000);
    await step(
      `then API writes of every kind: ${live.profileCreates} profile creates, ${live.profileUpdates} updates, ` +
        `${created.length} deletes; ${live.customCreates} custom records created, ${live.customUpdates} updated, ${live.customDeletes} deleted`,
    );

    return {
      origin,
      heraldPid: herald.pid,
      databaseUrl,
      sql,
      profileTable: { id: profile.id, name: profile.name },
      customTable: { id: custom.id, name: custom.name },
      subscriptions,
      imports: { large: large.id, rejected: rejected.id },
      positionBeforeCopies,
      steps,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * Copy n ($2 ≤ n < $3) of the T ($4) template events ($1, ids of profile UPDATE events written by
 * the API): template n mod T, round n / T + 1. Each copy is the next update of the same profile:
 * `points` one more than the round before, `previous.points` its value before, the version one
 * more; the other columns are the template's. `occurred_at` is the insert time, as a write's is;
 * position NULL until the sequencer stamps it.
 */
const COPY_EVENTS_SQL = `
  WITH t AS MATERIALIZED (
    SELECT e.*, (e.state->>'points')::bigint AS points, row_number() OVER (ORDER BY e.id) - 1 AS n
      FROM change_events e WHERE e.id = ANY($1::bigint[])
  )
  INSERT INTO change_events
    (entity_id, source, source_id, event_type, record_key, keys, state, fields, previous, extra,
     version, declared_events, origin)
  SELECT t.entity_id, t.source, t.source_id, t.event_type, t.record_key, t.keys,
         t.state || jsonb_build_object(
           'points', t.points + i / $4::bigint + 1,
           'updateMoment', to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')),
         t.fields,
         t.previous || jsonb_build_object('points', t.points + i / $4::bigint),
         t.extra, t.version + (i / $4::bigint)::integer + 1, t.declared_events, t.origin
    FROM generate_series($2::bigint, $3::bigint - 1) AS i
    JOIN t ON t.n = i % $4::bigint
   ORDER BY i`;

/** The records end as their last copied event says (its version and points). */
const SYNC_RECORDS_SQL = `
  WITH t AS (
    SELECT e.record_key, e.version, (e.state->>'points')::bigint AS points,
           row_number() OVER (ORDER BY e.id) - 1 AS n, count(*) OVER () AS total
      FROM change_events e WHERE e.id = ANY($1::bigint[])
  ), last AS (
    SELECT record_key, (($2::bigint - 1 - n) / total + 1)::integer AS rounds, version, points
      FROM t WHERE n < $2::bigint
  )
  UPDATE records r
     SET version = last.version + last.rounds,
         attributes = r.attributes || jsonb_build_object('points', last.points + last.rounds),
         updated_at = now()
    FROM last
   WHERE r.record_id = last.record_key::bigint`;

/** Whether the last copy of the first template has the template's keys in every JSON column. */
const SHAPE_CHECK_SQL = `
  WITH t AS (SELECT * FROM change_events WHERE id = ($1::bigint[])[1]),
       c AS (SELECT * FROM change_events
              WHERE source_id = (SELECT source_id FROM t) AND record_key = (SELECT record_key FROM t)
              ORDER BY id DESC LIMIT 1),
       k AS (SELECT (SELECT array_agg(x ORDER BY x) FROM jsonb_object_keys(j) x) AS names, which
               FROM (SELECT keys, state, previous, extra, origin, 't' AS which FROM t
                     UNION ALL SELECT keys, state, previous, extra, origin, 'c' FROM c) s,
                    LATERAL (VALUES (s.keys), (s.state), (s.previous), (s.extra), (s.origin)) v(j))
  SELECT (SELECT array_agg(names::text ORDER BY names::text) FROM k WHERE which = 't')
         IS NOT DISTINCT FROM
         (SELECT array_agg(names::text ORDER BY names::text) FROM k WHERE which = 'c')
     AND (SELECT fields FROM t) = (SELECT fields FROM c)
     AND (SELECT origin FROM t) = (SELECT origin FROM c) AS same`;
