/**
 * Database faults (issue #19, PostgreSQL): Herald processes started as users start them
 * (`node bin/herald.mjs start`), one per role, each reaching PostgreSQL through its own TCP proxy
 * that the test controls (test/helpers/tcp-proxy.ts). While clients keep updating profiles with
 * `PUT`, the test cuts the API's database (transactional writes), the sequencer's (stamping), the
 * worker's (delivery, with pushes in flight), then all three at once, then black-holes the API's.
 * Each process must stay alive and recover by itself; every request must be answered in time with a
 * 2xx or a 503 in SPEC §2's shape with `Retry-After` (never a 500, never a hang); `/readyz` must say
 * 503 during a cut and 200 after; and in the end every write that got a 2xx must have been delivered
 * (duplicates allowed and counted, none lost, per-record order kept). Then: a start with the
 * database down waits for it and succeeds once it is up, and a start with a wrong database name
 * stops at once with a clear message.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ADMIN_URL, createTestDatabase, postgresUnavailable } from "../helpers/test-database.js";
import type { TcpProxy } from "../helpers/tcp-proxy.js";
import { startTcpProxy } from "../helpers/tcp-proxy.js";
import type { ReceivedRequest } from "../helpers/webhook-receiver.js";
import { startWebhookReceiver } from "../helpers/webhook-receiver.js";
import type { HeraldProcess } from "./delivery-fixtures.js";
import { apiUrlOf, dataObjects, eventually, startHeraldProcess } from "./delivery-fixtures.js";

const unavailable = await postgresUnavailable();
if (unavailable) console.log(`# SKIPPING database fault tests: ${unavailable}`);

const ADMIN_KEY = "hk_delivery_tests_admin_key_0123456789";
/**
 * Every request is answered within the adapter's limits (5 s for a connection, 15 s for a statement:
 * POSTGRES_TIME_LIMITS) plus a margin for a loaded machine. Longer is a hang.
 */
const ANSWER_BOUND_MS = 25_000;
/** Herald's goal is 2 s after the database is back; a loaded two-core machine gets a margin. */
const RECOVERY_BOUND_MS = 10_000;
const START_TIMEOUT_MS = 90_000;
/** Clients writing at once, and the profiles each of them updates in turn. */
const CLIENTS = 8;
const RECORDS_PER_CLIENT = 4;

const target = (() => {
  const url = new URL(ADMIN_URL);
  return { host: url.hostname || "127.0.0.1", port: Number(url.port || 5432) };
})();

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function tokenFor(url: string): Promise<string> {
  const response = await fetch(`${url}/auth/token`, { headers: { authorization: ADMIN_KEY } });
  assert.equal(response.status, 200, await response.clone().text());
  return ((await response.json()) as { accessToken: string }).accessToken;
}

async function call(
  url: string,
  token: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<Record<string, unknown>> {
  const response = await fetch(`${url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const json = (await response.json()) as Record<string, unknown>;
  assert.ok(response.status < 300, `${method} ${path}: ${response.status} ${JSON.stringify(json)}`);
  return json;
}

async function readyz(
  url: string,
): Promise<{ status: number; ms: number; retryAfter: string | null }> {
  const startedAt = Date.now();
  const response = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(ANSWER_BOUND_MS) });
  await response.arrayBuffer();
  return {
    status: response.status,
    ms: Date.now() - startedAt,
    retryAfter: response.headers.get("retry-after"),
  };
}

/** One `PUT` of the load and how it was answered. */
interface Outcome {
  record: string;
  points: number;
  startedAt: number;
  ms: number;
  /** 0: no answer within the bound (or the connection failed). */
  status: number;
  retryAfter: string | null;
  body: unknown;
  phase: string;
}

/**
 * Clients that update profiles with `PUT` as fast as they are answered, each its own records in
 * turn, each write setting `points` one higher than the record's last.
 */
class WriteLoad {
  readonly outcomes: Outcome[] = [];
  /** Record → the `points` of every write that got a 2xx. */
  readonly committed = new Map<string, Set<number>>();
  private readonly nextPoints = new Map<string, number>();
  private readonly created = new Set<string>();
  private running = true;
  private readonly loops: Promise<void>[] = [];
  phase = "warm-up";

  constructor(
    private readonly url: string,
    private readonly token: string,
    private readonly tableId: string,
  ) {}

  start(records: string[][]): void {
    for (const own of records) this.loops.push(this.loop(own));
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  /** One write of `points` to `record`; counts it when it got a 2xx. */
  async write(record: string): Promise<Outcome> {
    const points = (this.nextPoints.get(record) ?? 0) + 1;
    this.nextPoints.set(record, points);
    const startedAt = Date.now();
    const outcome: Outcome = {
      record,
      points,
      startedAt,
      ms: 0,
      status: 0,
      retryAfter: null,
      body: undefined,
      phase: this.phase,
    };
    try {
      // The first write creates the profile (v5 upsert); the others update it with the v4 PUT,
      // one transaction of several statements each (lock, read, write, event).
      const response = this.created.has(record)
        ? await fetch(`${this.url}/v4/entity/acme/table/Customers/profile/customerId=${record}`, {
            method: "PUT",
            headers: { authorization: `Bearer ${this.token}`, "content-type": "application/json" },
            body: JSON.stringify({ attributes: [{ name: "points", value: points }] }),
            signal: AbortSignal.timeout(ANSWER_BOUND_MS),
          })
        : await fetch(`${this.url}/v5/entities/acme/profile-tables/${this.tableId}/profiles`, {
            method: "PUT",
            headers: { authorization: `Bearer ${this.token}`, "content-type": "application/json" },
            body: JSON.stringify({ key: { customerId: record }, attributes: { points } }),
            signal: AbortSignal.timeout(ANSWER_BOUND_MS),
          });
      const text = await response.text();
      outcome.status = response.status;
      outcome.retryAfter = response.headers.get("retry-after");
      try {
        outcome.body = JSON.parse(text);
      } catch {
        outcome.body = text;
      }
    } catch (error) {
      outcome.body = (error as Error).message;
    }
    outcome.ms = Date.now() - startedAt;
    this.outcomes.push(outcome);
    if (outcome.status === 201) this.created.add(record);
    if (outcome.status >= 200 && outcome.status < 300) {
      let set = this.committed.get(record);
      if (!set) this.committed.set(record, (set = new Set()));
      set.add(points);
    }
    return outcome;
  }

  private async loop(records: string[]): Promise<void> {
    for (let i = 0; this.running; i++) {
      const outcome = await this.write(records[i % records.length]!);
      // A 503 asks the client to come back later; the load only pauses a little.
      if (outcome.status !== 200) await sleep(100);
    }
  }
}

/** What the receiver got: every data object, in arrival order. */
interface Delivered {
  id: string;
  record: string;
  points: number;
  version: number;
}

describe(
  "database faults (PostgreSQL through a proxy)",
  { skip: unavailable ? `needs PostgreSQL: ${unavailable}` : false, concurrency: true },
  () => {
    test(
      "cuts during writes, stamping and delivery, then a black hole: every process lives, recovers, answers in time, and delivers every committed write",
      { timeout: 240_000 },
      async (t) => {
        const database = await createTestDatabase("postgres");
        const proxies: TcpProxy[] = [];
        const processes: HeraldProcess[] = [];
        const delivered: Delivered[] = [];
        const receiver = await startWebhookReceiver({
          keepRequests: false,
          onRequest: (request: ReceivedRequest) => {
            for (const data of dataObjects(request.json)) {
              const event = data._event as { id: string; version: number };
              delivered.push({
                id: event.id,
                record: String(data.customerId),
                points: Number(data.points),
                version: event.version,
              });
            }
          },
        });
        let load: WriteLoad | undefined;
        try {
          const proxy = async () => {
            const p = await startTcpProxy(target);
            proxies.push(p);
            return p;
          };
          const [apiDb, sequencerDb, workerDb] = [await proxy(), await proxy(), await proxy()];
          const start = (db: TcpProxy, role: string) => {
            const p = startHeraldProcess(db.urlFor(database.url!), role, {
              HERALD_LOG_LEVEL: "info",
            });
            processes.push(p);
            return p;
          };
          const api = start(apiDb, "api");
          const sequencer = start(sequencerDb, "sequencer");
          const worker = start(workerDb, "worker");
          const url = await apiUrlOf(api, START_TIMEOUT_MS);
          await eventually(
            () => /leads the sequencer/.test(sequencer.output()),
            START_TIMEOUT_MS,
            "the sequencer to lead",
          );
          await eventually(
            () => /delivery worker started/.test(worker.output()),
            START_TIMEOUT_MS,
            "the worker to start",
          );
          const alive = () => {
            for (const p of processes)
              assert.equal(p.child.exitCode, null, `a Herald process died:\n${p.output()}`);
          };
          /** /readyz of the API; when it cannot be reached, says whether the process died. */
          const ready = (url: string) =>
            readyz(url).catch((error: unknown) => {
              alive();
              throw error;
            });

          const token = await tokenFor(url);
          const table = await call(url, token, "POST", "/v5/entities/acme/profile-tables", {
            name: "Customers",
            attributes: [
              { name: "customerId", type: "CUSTOM", valueType: "STRING", unique: true },
              { name: "points", type: "CUSTOM", valueType: "INTEGER" },
            ],
          });
          const tableId = String(table.id);
          load = new WriteLoad(url, token, tableId);
          const records = Array.from({ length: CLIENTS }, (_, c) =>
            Array.from({ length: RECORDS_PER_CLIENT }, (_, r) => `c${c}r${r}`),
          );
          // Every profile exists before the subscription: each write of the load is an UPDATE.
          for (const record of [...records.flat(), "probe"]) {
            const created = await load.write(record);
            assert.equal(created.status, 201, JSON.stringify(created.body));
          }
          load.committed.clear();
          load.outcomes.length = 0;
          await call(url, token, "POST", "/v4/entity/acme/webhookSubscription", {
            on: "PROFILE_TABLE",
            onElementId: tableId,
            eventType: "UPDATE",
            targetUrl: `${receiver.url}/updates`,
            pushMode: "ONE_BY_ONE",
          });

          /** Writes the probe record once (retrying 503s) and waits until that write is delivered. */
          const probeDelivered = async (since: number, what: string): Promise<number> => {
            let outcome: Outcome;
            do {
              outcome = await load!.write("probe");
              if (outcome.status !== 200) await sleep(100);
            } while (outcome.status !== 200 && Date.now() - since < RECOVERY_BOUND_MS * 2);
            assert.equal(outcome.status, 200, `${what}: ${JSON.stringify(outcome.body)}`);
            await eventually(
              () => delivered.some((d) => d.record === "probe" && d.points === outcome.points),
              RECOVERY_BOUND_MS * 2,
              `${what}: a write after the restore to be delivered`,
            );
            return Date.now() - since;
          };
          const readyAgain = async (since: number): Promise<number> => {
            await eventually(
              async () => (await readyz(url)).status === 200,
              RECOVERY_BOUND_MS,
              "/readyz to answer 200 again",
            );
            return Date.now() - since;
          };
          const recovery: Record<string, number> = {};

          // Warm-up: writes are delivered.
          load.start(records);
          await probeDelivered(Date.now(), "warm-up");
          await sleep(1_000);

          // 1. The API's database is cut during transactional writes.
          load.phase = "api cut";
          apiDb.cut();
          await sleep(500);
          const cutReady = await ready(url);
          assert.equal(cutReady.status, 503, "/readyz during the cut");
          assert.ok(cutReady.retryAfter, "/readyz 503 has Retry-After");
          await sleep(2_500);
          alive();
          apiDb.restore();
          let restoredAt = Date.now();
          load.phase = "api restored";
          recovery.apiReady = await readyAgain(restoredAt);
          recovery.api = await probeDelivered(restoredAt, "after the API's cut");

          // 2. The sequencer's database is cut while writes go on: stamping stops, then resumes.
          load.phase = "sequencer cut";
          sequencerDb.cut();
          await sleep(3_000);
          alive();
          sequencerDb.restore();
          restoredAt = Date.now();
          load.phase = "sequencer restored";
          recovery.sequencer = await probeDelivered(restoredAt, "after the sequencer's cut");

          // 3. The worker's database is cut with pushes in flight (the endpoint is slow).
          receiver.respondWith(() => ({ delayMs: 150 }));
          await sleep(1_000);
          load.phase = "worker cut";
          workerDb.cut();
          await sleep(3_000);
          alive();
          workerDb.restore();
          restoredAt = Date.now();
          load.phase = "worker restored";
          receiver.respondWith(() => undefined);
          recovery.worker = await probeDelivered(restoredAt, "after the worker's cut");

          // 4. All three at once for 5 s (the reproduction).
          load.phase = "all cut";
          for (const p of [apiDb, sequencerDb, workerDb]) p.cut();
          await sleep(5_000);
          alive();
          for (const p of [apiDb, sequencerDb, workerDb]) p.restore();
          restoredAt = Date.now();
          load.phase = "all restored";
          recovery.allReady = await readyAgain(restoredAt);
          recovery.all = await probeDelivered(restoredAt, "after the cut of all three");

          // 5. The API's database becomes a black hole for longer than a statement may take:
          // requests are answered 503 within the limits instead of hanging.
          load.phase = "api black hole";
          const holeAt = Date.now();
          apiDb.blackHole();
          await sleep(1_000);
          const holeReady = await ready(url);
          assert.equal(holeReady.status, 503, "/readyz during the black hole");
          assert.ok(holeReady.ms < 10_000, `/readyz took ${holeReady.ms} ms in the black hole`);
          // Past the statement limit (15 s) plus a connection's (5 s): requests made during the
          // black hole have had their answer by then.
          await sleep(Math.max(0, holeAt + 21_000 - Date.now()));
          alive();
          apiDb.restore();
          restoredAt = Date.now();
          load.phase = "api black hole restored";
          recovery.blackHoleReady = await readyAgain(restoredAt);
          recovery.blackHole = await probeDelivered(restoredAt, "after the black hole");

          load.phase = "cool-down";
          await sleep(1_000);
          await load.stop();
          alive();

          // Every request was answered in time, with a 2xx or a 503 in SPEC §2's shape.
          const byPhase = new Map<string, Record<string, number>>();
          for (const o of load.outcomes) {
            const counts = byPhase.get(o.phase) ?? {};
            counts[o.status] = (counts[o.status] ?? 0) + 1;
            byPhase.set(o.phase, counts);
            assert.ok(
              o.status === 200 || o.status === 503,
              `${o.phase}: PUT ${o.record} answered ${o.status} after ${o.ms} ms: ${JSON.stringify(o.body)}`,
            );
            assert.ok(o.ms < ANSWER_BOUND_MS, `${o.phase}: PUT took ${o.ms} ms`);
            if (o.status === 503) {
              assert.ok(o.retryAfter && Number(o.retryAfter) > 0, "503 has Retry-After");
              const body = o.body as Record<string, unknown>;
              assert.deepEqual(Object.keys(body).sort(), ["code", "details", "message", "status"]);
              assert.equal(body.status, 503);
              assert.equal(body.code, "HERALD_DATABASE_UNAVAILABLE", JSON.stringify(body));
            }
          }
          t.diagnostic(`answers by phase: ${JSON.stringify(Object.fromEntries(byPhase))}`);
          const answered503 = (phase: string) =>
            load!.outcomes.filter((o) => o.phase === phase && o.status === 503).length;
          for (const phase of ["api cut", "all cut", "api black hole"])
            assert.ok(answered503(phase) > 0, `${phase}: requests met the outage`);
          const unavailableAnswers = load.outcomes.filter((o) => o.status === 503).length;
          assert.ok(
            unavailableAnswers > 0,
            "some requests met the outage (else it tested nothing)",
          );

          // Every committed write is delivered: none lost, duplicates counted, per-record order.
          const committed = [...load.committed].flatMap(([record, points]) =>
            [...points].map((p) => `${record}:${p}`),
          );
          const isDelivered = () => {
            const got = new Set(delivered.map((d) => `${d.record}:${d.points}`));
            return committed.filter((c) => !got.has(c));
          };
          await eventually(
            () => isDelivered().length === 0,
            60_000,
            "every committed write to be delivered",
          ).catch(() => {
            assert.deepEqual(isDelivered().slice(0, 20), [], "committed writes not delivered");
          });
          const seen = new Set<string>();
          const highest = new Map<string, number>();
          for (const d of delivered) {
            if (seen.has(d.id)) continue;
            seen.add(d.id);
            const top = highest.get(d.record) ?? 0;
            assert.ok(d.version > top, `${d.record}: version ${d.version} delivered after ${top}`);
            highest.set(d.record, d.version);
          }
          t.diagnostic(
            `committed ${committed.length}, delivered ${delivered.length} (${seen.size} distinct, ${delivered.length - seen.size} duplicates); recovery ms ${JSON.stringify(recovery)}`,
          );
          for (const [what, ms] of Object.entries(recovery))
            assert.ok(ms < RECOVERY_BOUND_MS * 2, `${what}: recovered after ${ms} ms`);

          // Each outage is told to the operator once per loop, not once per attempt.
          const told = (p: HeraldProcess) =>
            (p.output().match(/paused until it is back/g) ?? []).length;
          assert.ok(told(sequencer) >= 1 && told(sequencer) <= 4, sequencer.output());
          // The worker runs several loops (delivery, each subscription, every kind of job, the
          // scheduler): each tells an outage once, so no loop's line comes more than twice.
          const toldPerLoop = new Map<string, number>();
          for (const line of worker.output().match(/; [^;"]* paused until it is back/g) ?? [])
            toldPerLoop.set(line, (toldPerLoop.get(line) ?? 0) + 1);
          assert.ok(told(worker) >= 1, worker.output());
          for (const [line, count] of toldPerLoop) assert.ok(count <= 2, `${count}× ${line}`);
          assert.match(
            api.output(),
            /is not available: .*; Herald keeps running and reconnects by itself/,
          );
          assert.match(api.output(), /the database is back after/);
          for (const p of processes)
            assert.doesNotMatch(p.output(), /Unhandled|uncaught|ERR_UNHANDLED/i, p.output());
        } finally {
          await load?.stop();
          await Promise.all(processes.map((p) => p.kill("SIGKILL")));
          await receiver.close();
          for (const p of proxies) await p.close();
          await database.drop();
        }
      },
    );

    test(
      "a start with the database down waits for it and succeeds once it is up; a wrong database name stops the start at once",
      { timeout: 180_000 },
      async () => {
        const database = await createTestDatabase("postgres");
        const proxy = await startTcpProxy(target);
        const processes: HeraldProcess[] = [];
        try {
          proxy.cut();
          const herald = startHeraldProcess(proxy.urlFor(database.url!), "api,sequencer,worker", {
            HERALD_LOG_LEVEL: "info",
          });
          processes.push(herald);
          await eventually(
            () => /is not available: .*retrying in/.test(herald.output()),
            START_TIMEOUT_MS,
            "Herald to say it waits for the database",
          );
          await sleep(3_000);
          assert.equal(herald.child.exitCode, null, `Herald gave up:\n${herald.output()}`);
          assert.doesNotMatch(herald.output(), /Herald API listening/);
          proxy.restore();
          const url = await apiUrlOf(herald, START_TIMEOUT_MS);
          assert.equal((await readyz(url)).status, 200);
          const token = await tokenFor(url);
          await call(url, token, "GET", "/v5/entities/acme/profile-tables");

          // Not a database that is away but one that does not exist: a setting to fix, no waiting.
          const wrong = new URL(database.url!);
          wrong.pathname = "/herald_no_such_database";
          const stopped = startHeraldProcess(wrong.toString(), "api");
          processes.push(stopped);
          const timer = setTimeout(() => stopped.child.kill("SIGKILL"), START_TIMEOUT_MS);
          const code = await stopped.exited;
          clearTimeout(timer);
          assert.equal(code, 1, stopped.output());
          assert.match(stopped.output(), /cannot use the database at .*does not exist/);
          assert.match(stopped.output(), /Check DATABASE_URL/);
        } finally {
          await Promise.all(processes.map((p) => p.kill("SIGKILL")));
          await proxy.close();
          await database.drop();
        }
      },
    );
  },
);
