/**
 * Delivery when endpoints misbehave (issue #4, SPEC §6, DESIGN §5), in-process on both backends:
 * profiles written through the API (`app.inject`), stamped by the real sequencer, pushed by the real
 * worker to scriptable loopback endpoints, with the REAL retry policy on a clock 10 000 times faster
 * than real time (5 s → 0.5 ms, 24 h → 8.6 s, 3 days → 26 s). HTTP timeouts and leases stay real.
 * (20 000x left too little real time on a loaded 2-core machine: an answer taking 0.5 s is 3 hours
 * of clock, and an outage meant to last hours could pass the 3-day deactivation.)
 *
 * Every scenario checks what the endpoint accepted (each committed event at least once, per-record
 * order strictly kept), how often it was tried (within what the schedule allows, not exact counts
 * where jitter makes them vary), what the subscription's status and attempt log say, and that
 * nothing committed is lost. Each scenario has its own profile table, subscription and endpoint, so
 * they run side by side and the file stays short.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { Clock } from "../../src/delivery/clock.js";
import { scaledClock } from "../../src/delivery/clock.js";
import type { DeliveryWorker } from "../../src/delivery/delivery-worker.js";
import { startDeliveryWorker } from "../../src/delivery/delivery-worker.js";
import { ENDPOINT_HEALTH_THRESHOLDS } from "../../src/domain/endpoint-health.js";
import { DEFAULT_RETRY_POLICY } from "../../src/domain/retry-policy.js";
import type { OperationsNotifier } from "../../src/delivery/operations-notifier.js";
import { createOperationsNotifier } from "../../src/delivery/operations-notifier.js";
import { createLogger } from "../../src/logger.js";
import type { Sequencer } from "../../src/sequencer/sequencer.js";
import { startSequencer } from "../../src/sequencer/sequencer.js";
import type { WebhookReceiver, ReceivedRequest } from "../helpers/webhook-receiver.js";
import { startWebhookReceiver } from "../helpers/webhook-receiver.js";
import type { TestApp } from "../helpers/test-app.js";
import { createTestApp } from "../helpers/test-app.js";
import { testBackends } from "../helpers/test-database.js";
import {
  append,
  dataObjects,
  deliveryConfig,
  eventually,
  profileUpdate,
} from "./delivery-fixtures.js";
import { findEntityByName, firstLicenceId } from "../../src/storage/tenancy-repository.js";

const logger = createLogger("silent");
/** Clock milliseconds per real millisecond. */
const FACTOR = 10_000;
/** The engine's defaults the bounds below are computed from (tuning circuitBreakerFailures). */
const CIRCUIT_BREAKER_FAILURES = 10;
const MAX_CONCURRENCY = 8;
const SCHEDULE = DEFAULT_RETRY_POLICY.scheduleMs;
const JITTER = DEFAULT_RETRY_POLICY.jitter;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/** Timers may fire up to a couple of real milliseconds off: that much clock time is tolerated. */
const TIMER_SLACK = 3 * FACTOR;

/**
 * Schedule steps (retries after the first attempt) whose cumulative delay, at its shortest (−20 %
 * jitter), fits in `clockMs`: the most retries one push can have made in that time.
 */
function stepsWithin(clockMs: number): number {
  let total = 0;
  let steps = 0;
  for (let i = 1; i < SCHEDULE.length; i++) {
    total += SCHEDULE[i]! * (1 - JITTER);
    if (total > clockMs) break;
    steps++;
  }
  return steps;
}

/** A small seeded generator (mulberry32), so the flaky endpoint fails the same way every run. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface EventSeen {
  position: number;
  record: string;
}

/** The single event of a ONE_BY_ONE push. */
function eventOf(request: ReceivedRequest): EventSeen {
  const data = dataObjects(request.json)[0]!;
  const event = data._event as { position: number };
  return { position: event.position, record: String(data.profileId) };
}

interface Committed {
  position: number;
  record: string;
  version: number;
}

interface Attempt {
  pushId: string;
  eventIds: string[];
  positions: { first: number; last: number };
  attempt: number;
  attemptedAt: string;
  durationMs: number;
  outcome: string;
  statusCode: number | null;
  errorClass: string | null;
  nextAttemptAt: string | null;
}

interface Status {
  isActive: boolean;
  state: string;
  reason: string | null;
  lag: number;
  parkedRecords: number | undefined;
}

interface OperationalEventBody {
  type: string;
  subscriptionId: number;
  entity: string;
  reason: string;
  at: string;
  herald: { version: string };
}

const PATH = "/v4/entity/acme";
/** Scenarios that run on PGlite too (see below). */
const PGLITE_SCENARIOS = new Set(["5a", "6", "7", "8"]);

for (const { backend, skip } of await testBackends()) {
  // On PostgreSQL every scenario runs, side by side. PGlite runs in this process's own thread, so
  // under ten concurrent scenarios it starves the loopback endpoints of the event loop (they answer
  // after the push's timeout); there a subset runs one at a time: what parks records, opens the
  // circuit, disables and re-activates, i.e. the SQL of parking and endpoint health.
  const concurrency = backend === "postgres";
  /**
   * Real HTTP timeout of a push (config deliveryTimeoutMs): short, so that a hanging endpoint costs
   * little real time, but long enough that a loaded 2-core machine does not time out an endpoint
   * that answers at once (PGlite's work blocks this process's event loop, endpoints included).
   */
  const TIMEOUT_MS = backend === "postgres" ? 2_000 : 3_000;
  const onlyOnPostgres = (id: string): string | false =>
    backend === "pglite" && !PGLITE_SCENARIOS.has(id)
      ? "covered on PostgreSQL (PGlite runs the parking, circuit and endpoint-health subset)"
      : false;
  describe(`delivery under failure on ${backend}`, { skip, concurrency }, () => {
    let t: TestApp;
    let sequencer: Sequencer;
    let worker: DeliveryWorker;
    let operations: OperationsNotifier;
    let ops: WebhookReceiver;
    let clock: Clock;
    const origin = Date.now();
    /** The worker's clock time at a real time (the scaled clock is linear from `origin`). */
    const clockAt = (real: number) => origin + (real - origin) * FACTOR;
    const receivers: WebhookReceiver[] = [];
    let tables = 0;
    /** Status watchers and write streams still running (a failed test leaves them): stopped in after(). */
    const background = new Set<() => Promise<void>>();
    let entity: number;

    before(async () => {
      t = await createTestApp(backend);
      const db = t.database.db;
      entity = (await findEntityByName(db, await firstLicenceId(db), "acme"))!.id;
      sequencer = await startSequencer({
        db,
        logSignals: t.database.logSignals,
        logger,
        pollMs: 100,
      });
      ops = await startWebhookReceiver();
      operations = createOperationsNotifier({
        config: { operationsWebhookUrl: ops.url },
        logger,
      });
      clock = scaledClock(FACTOR, origin);
      worker = await startDeliveryWorker({
        db,
        logSignals: t.database.logSignals,
        logger,
        secrets: t.database.secrets,
        config: deliveryConfig({
          workerId: `failures-${backend}`,
          deliveryTimeoutMs: TIMEOUT_MS,
        }),
        clock,
        operations,
        tuning: { leaseRenewMs: 300, pollMs: 300, watermarkFlushMs: 50 },
      });
    });
    after(async () => {
      for (const stop of background) await stop();
      await worker?.stop();
      await operations?.close();
      await sequencer?.stop();
      for (const r of receivers) await r.close();
      await ops?.close();
      await t?.close();
    });

    const call = async <T>(method: string, url: string, body?: unknown): Promise<T> => {
      const res = await t.request(method, url, body);
      assert.ok(res.statusCode < 300, `${method} ${url} → ${res.statusCode} ${res.body}`);
      return (res.body ? res.json() : undefined) as T;
    };

    /**
     * One scenario's world: its own profile table with `records` profiles, a subscription to their
     * UPDATEs pointing at its own endpoint, and helpers to write, look and check.
     */
    async function scenario(
      records: number,
      options: { subscription?: Record<string, unknown>; synthetic?: boolean } = {},
    ) {
      const name = `Failures${++tables}`;
      const table = await call<{ id: number }>("POST", "/v5/entities/acme/profile-tables", {
        name,
        attributes: [
          { name: "emailAddress", type: "EMAIL_ADDRESS", unique: true, mandatory: true },
          { name: "counter", type: "CUSTOM", valueType: "INTEGER" },
        ],
      });
      const tableId = String(table.id);
      const profiles: string[] = [];
      // Synthetic records: events appended as capture writes them (one transaction per batch), for
      // batches that must reach the log together; their profiles need not exist.
      if (options.synthetic)
        for (let i = 0; i < records; i++) profiles.push(String(900_000 + tables * 100 + i));
      for (let i = 0; i < records && !options.synthetic; i++) {
        const created = await call<{ profileId: number | string }>(
          "POST",
          `${PATH}/table/${tableId}/profile`,
          {
            attributes: [
              { name: "emailAddress", value: `${name.toLowerCase()}-${i}@example.com` },
              { name: "counter", value: "0" },
            ],
          },
        );
        profiles.push(String(created.profileId));
      }
      const receiver = await startWebhookReceiver({ acceptWithinMs: TIMEOUT_MS });
      receivers.push(receiver);
      const definition = {
        on: "PROFILE_TABLE",
        onElementId: tableId,
        eventType: "UPDATE",
        targetUrl: receiver.url,
        isActive: true,
        ...options.subscription,
      };
      const sub = await call<{ id: number }>("POST", `${PATH}/webhookSubscription`, definition);
      worker.wake();
      await eventually(
        () => worker.driving().includes(sub.id),
        10_000,
        `the worker to drive ${name}`,
      );
      const counters = profiles.map(() => 0);
      let written = 0;

      /** Appends one UPDATE event per listed record, all in one transaction (synthetic records). */
      const appendUpdates = async (list: number[]) => {
        const events = list.map((record) => {
          counters[record]!++;
          const profileId = Number(profiles[record]);
          return {
            ...profileUpdate(entity, profileId, counters[record]!),
            sourceId: tableId,
          };
        });
        written += list.length;
        await append(t.database.db, events);
      };

      /** One profile update through the API (or appended, for synthetic records): one UPDATE event. */
      const update = async (record: number) => {
        if (options.synthetic) return appendUpdates([record]);
        counters[record]!++;
        written++;
        await call("PUT", `${PATH}/table/${tableId}/profile/${profiles[record]}`, {
          attributes: [{ name: "counter", value: String(counters[record]) }],
        });
      };

      /** The UPDATE events committed on this table, once the sequencer has stamped all of them. */
      const committed = async (): Promise<Committed[]> => {
        let rows: Committed[] = [];
        await eventually(
          async () => {
            const result = await t.database.db.query<{
              position: string | null;
              record_key: string;
              version: number;
            }>(
              `SELECT position, record_key, version FROM change_events
                WHERE source = 'PROFILE_TABLE' AND source_id = $1 AND event_type = 'UPDATE'
                ORDER BY id`,
              [tableId],
            );
            rows = result.rows.map((r) => ({
              position: Number(r.position),
              record: r.record_key,
              version: r.version,
            }));
            return result.rows.length === written && result.rows.every((r) => r.position !== null);
          },
          10_000,
          `${written} stamped events of ${name}`,
        );
        return rows;
      };

      /** Accepted pushes, in arrival order. */
      const accepted = () => receiver.requests.filter((q) => q.accepted);

      /**
       * What is missing and what came out of order: over the accepted pushes in arrival order, the
       * first delivery of each event must come after the first delivery of every earlier event of
       * its record (positions strictly increasing per record).
       */
      const check = (expected: Committed[]) => {
        const highest = new Map<string, number>();
        const first = new Set<number>();
        const outOfOrder: string[] = [];
        for (const q of accepted()) {
          const { position, record } = eventOf(q);
          if (first.has(position)) continue;
          first.add(position);
          const top = highest.get(record) ?? 0;
          if (position <= top)
            outOfOrder.push(`record ${record}: position ${position} after ${top}`);
          highest.set(record, Math.max(top, position));
        }
        // Order by log position is order by version for one record; check the versions agree.
        const byRecord = new Map<string, Committed[]>();
        for (const c of expected) byRecord.set(c.record, [...(byRecord.get(c.record) ?? []), c]);
        for (const [record, events] of byRecord)
          for (let i = 1; i < events.length; i++)
            if (events[i]!.version <= events[i - 1]!.version)
              outOfOrder.push(`record ${record}: committed versions not increasing`);
        const missing = expected.filter((c) => !first.has(c.position)).map((c) => c.position);
        return { missing, outOfOrder, delivered: first.size };
      };

      /** Waits until every committed event was accepted, then asserts order and completeness. */
      const allDelivered = async (timeoutMs: number) => {
        const expected = await committed();
        try {
          await receiver.waitFor(
            () => check(expected).missing.length === 0,
            timeoutMs,
            `all ${expected.length} events of ${name} accepted`,
          );
        } catch (error) {
          // What the engine was doing, for whoever reads the failure.
          const latest = (await attempts()).slice(-3);
          const { rows } = await t.database.db.query<Record<string, unknown>>(
            `SELECT state, state_reason, failing_since, lease_owner, lease_expires_at, watermark
               FROM webhook_subscriptions WHERE id = $1`,
            [sub.id],
          );
          throw new Error(
            `${(error as Error).message}; worker drives it: ${worker.driving().includes(sub.id)}; ` +
              `row: ${JSON.stringify(rows[0])}; last attempts: ${JSON.stringify(latest)}; ` +
              `now (clock): ${new Date(clock.now()).toISOString()}`,
            { cause: error },
          );
        }
        const report = check(expected);
        assert.deepEqual(report.missing, [], "every committed event was delivered");
        assert.deepEqual(report.outOfOrder, [], "per-record order kept");
        return expected;
      };

      const status = async (): Promise<Status> => {
        const body = await call<{ isActive: boolean; status: Omit<Status, "isActive"> }>(
          "GET",
          `${PATH}/webhookSubscription/${sub.id}`,
        );
        return { isActive: body.isActive, ...body.status };
      };

      /** Every attempt row, oldest first (the attempts API pages newest first). */
      const attempts = async (): Promise<Attempt[]> => {
        const all: Attempt[] = [];
        for (let page = 0; ; page++) {
          const body = await call<{ attempts: Attempt[] }>(
            "GET",
            `${PATH}/webhookSubscription/${sub.id}/attempts?pageSize=1000&page=${page}`,
          );
          all.push(...body.attempts);
          if (body.attempts.length < 1000) break;
        }
        return all.sort(
          (a, b) =>
            Date.parse(a.attemptedAt) - Date.parse(b.attemptedAt) ||
            (a.pushId === b.pushId ? a.attempt - b.attempt : 0),
        );
      };

      /** Attempts once the log has caught up with what the endpoint saw (rows are written in batches). */
      const attemptsMatchingRequests = async (): Promise<Attempt[]> => {
        let rows: Attempt[] = [];
        await eventually(
          async () => {
            rows = await attempts();
            return rows.length >= receiver.counts.received;
          },
          5_000,
          `one attempt row per request of ${name}`,
        );
        return rows;
      };

      /** Samples the status every 100 ms until stopped: states seen in order, highest parked count. */
      const watch = () => {
        const states: string[] = [];
        const reasons: (string | null)[] = [];
        let maxParked = 0;
        let running = true;
        const loop = (async () => {
          while (running) {
            const s = await status().catch(() => undefined);
            if (!s) break;
            if (states.at(-1) !== s.state) {
              states.push(s.state);
              reasons.push(s.reason);
            }
            maxParked = Math.max(maxParked, s.parkedRecords ?? 0);
            await sleep(100);
          }
        })();
        const stop = async () => {
          running = false;
          await loop;
          background.delete(stop);
        };
        background.add(stop);
        return { states, reasons, maxParked: () => maxParked, stop };
      };

      /** Keeps one healthy record's updates flowing (a live stream beside a failing record). */
      const trickle = (record: number, everyMs: number) => {
        let running = true;
        const loop = (async () => {
          while (running) {
            await update(record);
            await sleep(everyMs);
          }
        })().catch(() => undefined);
        const stop = async () => {
          running = false;
          await loop;
          background.delete(stop);
        };
        background.add(stop);
        return stop;
      };

      return {
        name,
        tableId,
        profiles,
        sub,
        definition,
        receiver,
        update,
        appendUpdates,
        committed,
        check,
        allDelivered,
        status,
        attempts,
        attemptsMatchingRequests,
        watch,
        trickle,
        /** The record index of a profileId seen in a push. */
        recordOf: (profileId: string) => profiles.indexOf(profileId),
      };
    }

    const opsEvents = (subscriptionId: number): OperationalEventBody[] =>
      ops.requests
        .map((q) => q.json as OperationalEventBody)
        .filter((e) => e?.subscriptionId === subscriptionId);

    /** Retry rows: the next attempt never sooner than the schedule step allows (−20 %). */
    function assertScheduled(rows: Attempt[]) {
      // A push that failed while the circuit was open waits for it to close: no known time (null).
      for (const row of rows.filter((a) => a.outcome === "RETRY" && a.nextAttemptAt !== null)) {
        assert.ok(row.nextAttemptAt);
        const delay = Date.parse(row.nextAttemptAt) - Date.parse(row.attemptedAt);
        const step = SCHEDULE[row.attempt] ?? SCHEDULE.at(-1)!;
        assert.ok(
          delay >= step * (1 - JITTER) - 1,
          `attempt ${row.attempt} of ${row.pushId}: next attempt ${delay} ms later, schedule says ≥ ${step * (1 - JITTER)}`,
        );
      }
      // The next attempt of a push really came no sooner than the row said.
      const byPush = new Map<string, Attempt[]>();
      for (const row of rows) byPush.set(row.pushId, [...(byPush.get(row.pushId) ?? []), row]);
      for (const [pushId, list] of byPush) {
        list.sort((a, b) => a.attempt - b.attempt);
        list.forEach((row, i) =>
          assert.equal(row.attempt, i + 1, `${pushId}: attempts numbered 1…n`),
        );
        for (let i = 1; i < list.length; i++) {
          if (list[i - 1]!.outcome === "RETRY" && list[i - 1]!.nextAttemptAt === null) continue;
          const due = Date.parse(list[i - 1]!.nextAttemptAt ?? list[i - 1]!.attemptedAt);
          assert.ok(
            Date.parse(list[i]!.attemptedAt) >= due - TIMER_SLACK,
            `${pushId}: attempt ${i + 1} at ${list[i]!.attemptedAt}, due ${list[i - 1]!.nextAttemptAt}`,
          );
        }
      }
    }

    /** Every request of one push carried the same body: a retry re-sends the push as it was. */
    function assertStablePushes(requests: readonly ReceivedRequest[]) {
      const bodies = new Map<string, string>();
      for (const q of requests) {
        assert.ok(q.pushId, "every push carries webhook-id");
        const body = bodies.get(q.pushId);
        if (body === undefined) bodies.set(q.pushId, q.body);
        else assert.equal(q.body, body, `push ${q.pushId} re-sent with another body`);
        assert.equal((q.json as { id: string }).id, q.pushId, "webhook-id is the envelope id");
      }
    }

    test(
      "(1) a flaky endpoint (30 % random 500s, seeded): everything arrives, in order, each failure retried on the schedule",
      { skip: onlyOnPostgres("1") },
      async () => {
        const s = await scenario(12);
        const random = seeded(4_242);
        s.receiver.respondWith(() => (random() < 0.3 ? { status: 500, body: "flaky" } : undefined));
        const watch = s.watch();
        for (let round = 0; round < 4; round++)
          for (let record = 0; record < 12; record++) await s.update(record);
        const expected = await s.allDelivered(20_000);
        await eventually(async () => (await s.status()).state === "ACTIVE", 5_000, "ACTIVE again");
        const rows = await s.attemptsMatchingRequests();
        await watch.stop();
        const failedRequests = s.receiver.requests.filter((q) => q.answer === 500).length;
        assert.ok(failedRequests > 0, "the seeded endpoint did fail some pushes");
        assert.equal(rows.length, s.receiver.counts.received, "one attempt row per request");
        assert.equal(
          rows.filter((a) => a.outcome === "DELIVERED").length,
          s.receiver.counts.accepted,
        );
        const retries = rows.filter((a) => a.outcome === "RETRY");
        assert.equal(retries.length, failedRequests);
        for (const row of retries) {
          assert.equal(row.statusCode, 500);
          assert.equal(row.errorClass, "http_5xx");
        }
        assert.equal(rows.filter((a) => a.outcome === "FAILED").length, 0, "nothing given up");
        assertScheduled(rows);
        assertStablePushes(s.receiver.requests);
        // Each event went out as its own push, retried under its own id until accepted.
        const pushesPerPosition = new Map<number, Set<string>>();
        for (const q of s.receiver.requests) {
          const { position } = eventOf(q);
          pushesPerPosition.set(
            position,
            (pushesPerPosition.get(position) ?? new Set()).add(q.pushId),
          );
        }
        assert.equal(pushesPerPosition.size, expected.length);
        const final = await s.status();
        assert.equal(final.state, "ACTIVE");
        assert.equal(final.parkedRecords, 0, "nothing left parked");
        await eventually(
          async () => (await s.status()).lag === 0,
          5_000,
          "the watermark at the head",
        );
      },
    );

    test(
      "(2) an endpoint that times out for a while: each timeout retried no sooner than 60 s after the sender gave up, then everything arrives",
      { skip: onlyOnPostgres("2") },
      async () => {
        const s = await scenario(6);
        // The endpoint hangs past the timeout on the first two attempts of every push, then answers.
        const tries = new Map<string, number>();
        s.receiver.respondWith((q) => {
          const n = (tries.get(q.pushId) ?? 0) + 1;
          tries.set(q.pushId, n);
          return n <= 2 ? { delayMs: 3 * TIMEOUT_MS } : undefined;
        });
        const watch = s.watch();
        for (let record = 0; record < 6; record++) await s.update(record);
        const expected = await s.allDelivered(30_000);
        await eventually(async () => (await s.status()).state === "ACTIVE", 5_000, "ACTIVE again");
        const rows = await s.attemptsMatchingRequests();
        await watch.stop();
        assert.equal(
          s.receiver.counts.received,
          3 * expected.length,
          "each push: two timeouts, then accepted",
        );
        const timeouts = rows.filter((a) => a.errorClass === "timeout");
        assert.equal(timeouts.length, 2 * expected.length);
        for (const row of timeouts) {
          assert.equal(row.outcome, "RETRY");
          assert.equal(row.statusCode, null);
          assert.ok(row.durationMs >= TIMEOUT_MS * 0.9, `gave up after ${row.durationMs} ms`);
          // Null: held while the circuit was open (sent again when it closes).
          if (row.nextAttemptAt === null) continue;
          const delay = Date.parse(row.nextAttemptAt) - Date.parse(row.attemptedAt);
          assert.ok(
            delay >= 60_000,
            `a timeout is retried no sooner than 60 s (got ${delay} ms): ${JSON.stringify(row)}`,
          );
        }
        assertScheduled(rows);
        assertStablePushes(s.receiver.requests);
        // A push's next attempt started no sooner than 60 s (clock) after the sender gave up on the
        // timed-out one (its start + its duration, real milliseconds × the clock's factor).
        const byPush = new Map<string, Attempt[]>();
        for (const row of rows) byPush.set(row.pushId, [...(byPush.get(row.pushId) ?? []), row]);
        for (const [pushId, list] of byPush) {
          list.sort((x, y) => x.attempt - y.attempt);
          for (let i = 1; i < list.length; i++) {
            const gaveUp = Date.parse(list[i - 1]!.attemptedAt) + list[i - 1]!.durationMs * FACTOR;
            const next = Date.parse(list[i]!.attemptedAt);
            assert.ok(
              next - gaveUp >= 60_000 - TIMER_SLACK,
              `${pushId}: attempt ${i + 1} ${next - gaveUp} clock ms after the timeout`,
            );
          }
        }
        // Pushes that time out while others (whose third attempt went through) are delivered may be
        // parked meanwhile; once all are delivered nothing is left parked.
        await eventually(
          async () => (await s.status()).parkedRecords === 0,
          5_000,
          "nothing parked",
        );
      },
    );

    test(
      "(3) 429 with Retry-After (seconds, HTTP date, clamped to 6 h): honoured, never sooner than 60 s",
      { skip: onlyOnPostgres("3") },
      async () => {
        const s = await scenario(3);
        // Per record: the Retry-After it answers, and when (clock ms) the retry may come at the soonest.
        const asks: {
          header: (answerClock: number) => string;
          notBefore: (answerClock: number, header: string) => number;
          maxDelayMs?: number;
        }[] = [
          { header: () => "600", notBefore: (at) => at + 600_000, maxDelayMs: 600_000 },
          {
            header: (at) => new Date(at + 1_200_000).toUTCString(),
            notBefore: (_at, header) => Date.parse(header),
          },
          // 24 h asked, clamped to 6 h.
          { header: () => "86400", notBefore: (at) => at + 6 * HOUR, maxDelayMs: 6 * HOUR },
        ];
        const seenPushes = new Map<string, number>();
        const headers = new Map<number, string>();
        s.receiver.respondWith((q) => {
          const n = seenPushes.get(q.pushId) ?? 0;
          seenPushes.set(q.pushId, n + 1);
          if (n >= 2) return undefined;
          const header = asks[s.recordOf(eventOf(q).record)]!.header(clockAt(Date.now()));
          headers.set(q.index, header);
          return { status: 429, headers: { "retry-after": header }, body: "slow down" };
        });
        await s.update(0);
        await s.update(1);
        await s.update(2);
        await s.update(0);
        await s.update(1);
        await s.allDelivered(20_000);
        const rows = await s.attemptsMatchingRequests();
        assert.equal(
          s.receiver.counts.received,
          15,
          "each of the 5 pushes: two 429s, then accepted",
        );
        assertStablePushes(s.receiver.requests);
        const byPush = new Map<string, ReceivedRequest[]>();
        for (const q of s.receiver.requests)
          byPush.set(q.pushId, [...(byPush.get(q.pushId) ?? []), q]);
        const rowsOf = (pushId: string) =>
          rows.filter((a) => a.pushId === pushId).sort((a, b) => a.attempt - b.attempt);
        assert.equal(rows.filter((a) => a.outcome === "RETRY").length, 10);
        for (const [pushId, list] of byPush) {
          const ask = asks[s.recordOf(eventOf(list[0]!).record)]!;
          const pushRows = rowsOf(pushId);
          assert.equal(pushRows.length, 3, `${pushId}: three attempt rows`);
          for (let i = 0; i < 2; i++) {
            const answered = clockAt(list[i]!.answeredAt!);
            const notBefore = Math.max(
              answered + 60_000,
              ask.notBefore(answered, headers.get(list[i]!.index)!),
            );
            // At the endpoint: the retry really came no sooner (the 60 s floor, the asked delay or date).
            const next = clockAt(list[i + 1]!.receivedAt);
            assert.ok(
              next >= notBefore - TIMER_SLACK,
              `${pushId}: retried at ${new Date(next).toISOString()}, asked not before ${new Date(notBefore).toISOString()}`,
            );
            // In the attempt log: a RETRY of class http_429 whose nextAttemptAt says the same.
            const row = pushRows[i]!;
            assert.equal(row.outcome, "RETRY");
            assert.equal(row.statusCode, 429);
            assert.equal(row.errorClass, "http_429");
            const slack = (row.durationMs + 5) * FACTOR;
            assert.ok(
              Date.parse(row.nextAttemptAt!) >= notBefore - slack,
              `${pushId}: nextAttemptAt ${row.nextAttemptAt} before ${new Date(notBefore).toISOString()}`,
            );
            if (ask.maxDelayMs !== undefined) {
              const delay = Date.parse(row.nextAttemptAt!) - Date.parse(row.attemptedAt);
              assert.ok(
                delay <= ask.maxDelayMs + slack,
                `${pushId}: delay ${delay} ms, clamp ${ask.maxDelayMs}`,
              );
            }
          }
          assert.equal(pushRows[2]!.outcome, "DELIVERED");
        }
      },
    );

    test(
      "(4) an endpoint that closes the socket: connection_reset, retried with the same webhook-id",
      { skip: onlyOnPostgres("4") },
      async () => {
        const s = await scenario(8);
        const seenPushes = new Set<string>();
        // Even records' pushes lose their first attempt; odd records' pushes go through.
        s.receiver.respondWith((q) => {
          const first = !seenPushes.has(q.pushId);
          seenPushes.add(q.pushId);
          return first && s.recordOf(eventOf(q).record) % 2 === 0 ? { destroy: true } : undefined;
        });
        for (let round = 0; round < 2; round++)
          for (let record = 0; record < 8; record++) await s.update(record);
        const expected = await s.allDelivered(20_000);
        const rows = await s.attemptsMatchingRequests();
        assert.equal(
          s.receiver.counts.received,
          expected.length + 8,
          "one lost attempt per even push",
        );
        assert.equal(rows.length, s.receiver.counts.received);
        const retries = rows.filter((a) => a.outcome === "RETRY");
        assert.equal(retries.length, 8);
        for (const row of retries) {
          assert.equal(row.errorClass, "connection_reset");
          assert.equal(row.statusCode, null);
        }
        assertScheduled(rows);
        assertStablePushes(s.receiver.requests);
        const status = await s.status();
        assert.equal(status.state, "ACTIVE");
      },
    );

    /**
     * The rejected record's first event sits in the middle of a batch of other records' events, and
     * a live stream of another record keeps flowing: the endpoint visibly delivers other pushes
     * while that record fails (on the scaled clock the first retries come within milliseconds, so a
     * lone failing record with nothing else in flight would look like an endpoint that is down).
     */
    const busyBatch = (others: number[], rounds: number, rejected: number) => {
      const list: number[] = [];
      for (let round = 0; round < rounds; round++) {
        if (round === Math.floor(rounds / 2)) list.push(rejected);
        list.push(...others);
      }
      return list;
    };

    test(
      "(5a) an endpoint that rejects one record: the rest flows, the record is parked, then delivered in order",
      { skip: onlyOnPostgres("5a") },
      async () => {
        const s = await scenario(8, { synthetic: true });
        const X = 0;
        let rejecting = true;
        s.receiver.respondWith((q) =>
          rejecting && s.recordOf(eventOf(q).record) === X
            ? { status: 500, body: "no" }
            : undefined,
        );
        const watch = s.watch();
        const stopTrickle = s.trickle(7, 100);
        await s.appendUpdates(busyBatch([1, 2, 3, 4, 5, 6], 10, X));
        await s.appendUpdates([X, 1, 2, X, 3]);
        const expected = await s.committed();
        const others = expected.filter((c) => c.record !== s.profiles[X]);
        const ofX = expected.filter((c) => c.record === s.profiles[X]);
        const acceptedPositions = () =>
          new Set(s.receiver.requests.filter((q) => q.accepted).map((q) => eventOf(q).position));
        await s.receiver.waitFor(
          () => {
            const got = acceptedPositions();
            return others.every((c) => got.has(c.position));
          },
          8_000,
          "every other record's events delivered while one record fails",
        );
        await eventually(
          async () => (await s.status()).parkedRecords === 1,
          10_000,
          "parkedRecords 1",
        );
        // The watermark passed the parked record's first event.
        const lastOther = Math.max(...others.map((c) => c.position));
        await eventually(
          async () => {
            const { rows } = await t.database.db.query<{ watermark: string }>(
              "SELECT watermark FROM webhook_subscriptions WHERE id = $1",
              [s.sub.id],
            );
            return Number(rows[0]!.watermark) >= lastOther;
          },
          5_000,
          `the watermark past ${lastOther}, beyond the parked record's first event ${ofX[0]!.position}`,
        );
        const xRequests = () =>
          s.receiver.requests.filter((q) => eventOf(q).record === s.profiles[X]);
        assert.ok(
          xRequests().every((q) => eventOf(q).position === ofX[0]!.position),
          "the parked record's later events wait behind it",
        );
        // Tried on the schedule: no more attempts than its steps allow in the time it has failed.
        const firstX = xRequests()[0]!.receivedAt;
        const failedFor = (Date.now() - firstX) * FACTOR;
        assert.ok(xRequests().length >= 2, "the record was retried before it was parked");
        assert.ok(
          xRequests().length <= 1 + stepsWithin(failedFor),
          `${xRequests().length} attempts in ${failedFor} clock ms; the schedule allows ${1 + stepsWithin(failedFor)}`,
        );
        assert.equal(
          new Set(xRequests().map((q) => q.pushId)).size,
          1,
          "one push id across retries",
        );
        rejecting = false;
        await s.receiver.waitFor(
          () => {
            const got = acceptedPositions();
            return ofX.every((c) => got.has(c.position));
          },
          10_000,
          "the parked record's events once it is accepted",
        );
        await stopTrickle();
        await s.allDelivered(10_000);
        await eventually(async () => (await s.status()).parkedRecords === 0, 5_000, "unparked");
        await watch.stop();
        assert.deepEqual(
          watch.states,
          ["ACTIVE"],
          `one bad record does not open the circuit (reasons: ${JSON.stringify(watch.reasons)})`,
        );
        const rows = await s.attemptsMatchingRequests();
        const xRows = rows.filter((a) => a.positions.first === ofX[0]!.position);
        assert.ok(
          xRows.filter((a) => a.outcome === "RETRY").every((a) => a.statusCode === 500),
          `the rejected record's failures are its 500s: ${JSON.stringify(xRows)}`,
        );
        assert.equal(xRows.at(-1)!.outcome, "DELIVERED");
        assert.equal(rows.filter((a) => a.outcome === "FAILED").length, 0);
        assertScheduled(rows);
      },
    );

    test(
      "(5b) a record rejected for good: its push is FAILED after the ~3-day schedule, then its next event is tried",
      { skip: onlyOnPostgres("5b") },
      async () => {
        const s = await scenario(6, { synthetic: true });
        const X = 0;
        let rejecting = true;
        s.receiver.respondWith((q) =>
          rejecting && s.recordOf(eventOf(q).record) === X
            ? { status: 422, body: "never" }
            : undefined,
        );
        const watch = s.watch();
        const stopTrickle = s.trickle(5, 200);
        await s.appendUpdates(busyBatch([1, 2, 3, 4], 10, X));
        await s.appendUpdates([1, X, 2]);
        const [first, second] = (await s.committed()).filter((c) => c.record === s.profiles[X]);
        await eventually(
          async () => (await s.attempts()).some((a) => a.outcome === "FAILED"),
          60_000,
          "the rejected push to be given up (FAILED)",
        );
        // The second event of the record is tried only after the first was given up.
        await s.receiver.waitFor(
          (reqs) => reqs.some((q) => eventOf(q).position === second!.position),
          10_000,
          "the record's next event to be tried",
        );
        const firstRows = (await s.attempts()).filter((a) => a.positions.first === first!.position);
        assert.equal(firstRows.length, SCHEDULE.length, "tried once per schedule step");
        assert.deepEqual(
          firstRows.map((a) => a.outcome),
          [...Array<string>(SCHEDULE.length - 1).fill("RETRY"), "FAILED"],
        );
        assert.ok(
          firstRows.every((a) => a.statusCode === 422 && a.errorClass === "http_4xx"),
          JSON.stringify(firstRows),
        );
        const span =
          Date.parse(firstRows.at(-1)!.attemptedAt) - Date.parse(firstRows[0]!.attemptedAt);
        const total = SCHEDULE.reduce((sum, step) => sum + step, 0);
        assert.ok(span >= total * (1 - JITTER), `given up after ${span / DAY} days of clock time`);
        assertScheduled(firstRows);
        const secondTried = s.receiver.requests.find(
          (q) => eventOf(q).position === second!.position,
        )!;
        const lastOfFirst = s.receiver.requests
          .filter((q) => eventOf(q).position === first!.position)
          .at(-1)!;
        assert.ok(
          secondTried.receivedAt >= lastOfFirst.answeredAt!,
          "the next event after the failed one",
        );
        // The daily error log of the day it was given up lists it.
        const failedRow = firstRows.at(-1)!;
        const day = failedRow.attemptedAt.slice(0, 10);
        const log = await call<{ failures: { outcome: string; pushId: string }[] }>(
          "GET",
          `${PATH}/webhookSubscription/${s.sub.id}/${day}?pageSize=1000`,
        );
        assert.ok(
          log.failures.some((f) => f.outcome === "FAILED" && f.pushId === failedRow.pushId),
        );
        rejecting = false;
        await s.receiver.waitFor(
          (reqs) => reqs.some((q) => q.accepted && eventOf(q).position === second!.position),
          10_000,
          "the record's next event delivered once accepted",
        );
        await stopTrickle();
        await eventually(async () => (await s.status()).parkedRecords === 0, 5_000, "unparked");
        await watch.stop();
        assert.deepEqual(
          watch.states,
          ["ACTIVE"],
          `one bad record does not open the circuit (reasons: ${JSON.stringify(watch.reasons)})`,
        );
        // Everything but the given-up event arrived, in order.
        const expected = (await s.committed()).filter((c) => c.position !== first!.position);
        await s.receiver.waitFor(() => s.check(expected).missing.length === 0, 10_000, "the rest");
        assert.deepEqual(s.check(expected).outOfOrder, []);
      },
    );

    for (const how of ["connection refused", "503 for everything"] as const) {
      test(
        `(6) an endpoint down (${how}) then back: FAILING, bounded probes, then ACTIVE with nothing lost and nothing parked`,
        { skip: onlyOnPostgres(how === "503 for everything" ? "6" : "6r") },
        async () => {
          const s = await scenario(6);
          const watch = s.watch();
          if (how === "connection refused") await s.receiver.down();
          else s.receiver.respondWith(() => ({ status: 503, body: "down for maintenance" }));
          const downAt = Date.now();
          for (let record = 0; record < 6; record++) await s.update(record);
          await eventually(async () => (await s.status()).state === "FAILING", 10_000, "FAILING");
          const failing = await s.status();
          assert.ok(failing.reason && failing.reason.length > 0, "FAILING says why");
          // Writes during the outage are not lost either.
          for (let record = 0; record < 6; record++) await s.update(record);
          await sleep(2_000 - (Date.now() - downAt));
          const outageClockMs = (Date.now() - downAt) * FACTOR;
          if (how === "connection refused") await s.receiver.up();
          else s.receiver.respondWith(() => undefined);
          const upAt = Date.now();
          await s.allDelivered(20_000);
          await eventually(
            async () => (await s.status()).state === "ACTIVE",
            5_000,
            "ACTIVE again",
          );
          await watch.stop();
          const rows = await s.attemptsMatchingRequests();
          const during = rows.filter((a) => a.outcome !== "DELIVERED");
          const errorClass = how === "connection refused" ? "connection_refused" : "http_5xx";
          assert.ok(during.length > 0);
          assert.ok(
            during.every((a) => a.errorClass === errorClass && a.outcome === "RETRY"),
            `all RETRY ${errorClass}: ${JSON.stringify(during.filter((a) => a.errorClass !== errorClass || a.outcome !== "RETRY"))}`,
          );
          const allowed =
            CIRCUIT_BREAKER_FAILURES + MAX_CONCURRENCY + stepsWithin(outageClockMs) + 1;
          assert.ok(
            during.length <= allowed,
            `${during.length} attempts during a ${outageClockMs / HOUR} h outage; allowed ${allowed}`,
          );
          if (how === "503 for everything") {
            const downRequests = s.receiver.requests.filter((q) => q.receivedAt < upAt);
            assert.equal(downRequests.length, during.length, "every request is in the attempt log");
          }
          assert.ok(watch.states.includes("FAILING"), `states: ${watch.states}`);
          assert.equal(watch.maxParked(), 0, "the outage parked no record");
          assert.equal(rows.filter((a) => a.outcome === "FAILED").length, 0);
          const final = await s.status();
          assert.equal(final.state, "ACTIVE");
          assert.equal(final.parkedRecords, 0);
          await eventually(
            async () => (await s.status()).lag === 0,
            5_000,
            "the watermark at the head",
          );
        },
      );
    }

    /**
     * An endpoint that fails everything while the stream goes on: 16 records in one transaction
     * (8 in flight, the rest queued when the circuit opens), then 3 s real (8.3 h of clock: the
     * steps from 10 min to 6 h, below the 24 h warning) of FAILING. Returns the requests that came
     * while it was FAILING.
     */
    const probesWhileFailing = async () => {
      const s = await scenario(16, { synthetic: true });
      s.receiver.respondWith(() => ({ status: 503, body: "down" }));
      await s.appendUpdates([...Array(16).keys()]);
      await eventually(async () => (await s.status()).state === "FAILING", 10_000, "FAILING");
      const openedAt = Date.now();
      for (let i = 0; i < 6; i++) {
        await sleep(500);
        await s.update(i);
      }
      const probes = s.receiver.requests.filter((q) => q.receivedAt > openedAt);
      const upAt = Date.now();
      s.receiver.respondWith(() => undefined);
      await s.allDelivered(20_000);
      assert.ok(probes.length >= 1, "probed while FAILING");
      // The attempts sent while FAILING (all probes), in clock time, with the delay the engine chose.
      const rows = (await s.attempts()).filter(
        (a) =>
          Date.parse(a.attemptedAt) > clockAt(openedAt) &&
          Date.parse(a.attemptedAt) < clockAt(upAt),
      );
      return { probes, rows, windowClockMs: (upAt - openedAt) * FACTOR };
    };

    test("(6b) while FAILING: one probe at a time", { skip: onlyOnPostgres("6b") }, async () => {
      const { probes } = await probesWhileFailing();
      assert.ok(
        probes.every((q) => q.concurrent === 1),
        "one probe at a time: no other request in progress",
      );
    });

    test(
      "(6c) while FAILING: one probe per step of the retry schedule",
      { skip: onlyOnPostgres("6c") },
      async () => {
        const { rows, windowClockMs } = await probesWhileFailing();
        // The delay the engine chose after each failed probe follows the schedule: each at least
        // about as long as the one before (±20 % jitter), never a short one after a long one, which
        // a second probe per step would show. (Measured from the attempt log, not from arrival
        // times, which a loaded machine's event-loop lag distorts by hours of clock.)
        const delays = rows
          .filter((a) => a.nextAttemptAt !== null)
          .map((a) => Date.parse(a.nextAttemptAt!) - Date.parse(a.attemptedAt));
        for (let i = 1; i < delays.length; i++)
          assert.ok(
            delays[i]! >= delays[i - 1]! * 0.6,
            `probe delays (clock minutes): ${delays.map((g) => Math.round(g / 60_000)).join(", ")}`,
          );
        // And no more probes than schedule steps fit in the window (plus the one due at its start).
        assert.ok(
          rows.length <= stepsWithin(windowClockMs) + 2,
          `${rows.length} probes in ${Math.round(windowClockMs / HOUR)} h of clock`,
        );
      },
    );

    test(
      "(7) 410 Gone: the subscription is disabled at once and nothing more is sent",
      { skip: onlyOnPostgres("7") },
      async () => {
        const s = await scenario(2);
        s.receiver.respondWith(() => ({ status: 410, body: "gone" }));
        await s.update(0);
        await eventually(async () => !(await s.status()).isActive, 10_000, "deactivation");
        const status = await s.status();
        assert.equal(status.state, "DISABLED");
        assert.match(String(status.reason), /410/);
        await s.update(0);
        await s.update(1);
        await sleep(800);
        assert.equal(
          s.receiver.counts.received,
          1,
          `nothing more is sent: ${JSON.stringify(s.receiver.requests.map((q) => ({ push: q.pushId, at: q.receivedAt, answer: q.answer, event: eventOf(q) })))}`,
        );
        const rows = await s.attemptsMatchingRequests();
        assert.equal(rows.length, 1);
        assert.equal(rows[0]!.outcome, "DISABLED");
        assert.equal(rows[0]!.statusCode, 410);
        assert.equal(rows[0]!.errorClass, "http_410");
      },
    );

    test(
      "(8) down past the disable threshold: warning at 24 h, DISABLED at 3 days, silence, then re-activation resumes with nothing lost",
      { skip: onlyOnPostgres("8") },
      async () => {
        const s = await scenario(4);
        s.receiver.respondWith(() => ({ status: 503, body: "down" }));
        const watch = s.watch();
        for (let record = 0; record < 4; record++) await s.update(record);
        await s.receiver.waitFor((reqs) => reqs.length > 0, 10_000, "the first push");
        const firstFailure = s.receiver.requests[0]!.receivedAt;
        for (let record = 0; record < 4; record++) await s.update(record);

        await eventually(
          () => opsEvents(s.sub.id).some((e) => e.type === "SUBSCRIPTION_FAILING_WARNING"),
          30_000,
          "SUBSCRIPTION_FAILING_WARNING",
        );
        const warnedAt = Date.now();
        const warned = await s.status();
        assert.equal(warned.state, "FAILING");
        assert.equal(warned.isActive, true);
        assert.match(
          String(warned.reason),
          /deactivat|24 hours|warn/i,
          "the status reason says a deactivation is coming",
        );
        // Measured on the worker's clock: from the first failed attempt to the event's `at`.
        const firstFailed = async () =>
          Math.min(
            ...(await s.attempts())
              .filter((a) => a.outcome !== "DELIVERED")
              .map((a) => Date.parse(a.attemptedAt)),
          );
        const warning = opsEvents(s.sub.id).find((e) => e.type === "SUBSCRIPTION_FAILING_WARNING")!;
        const warnedAfter = Date.parse(warning.at) - (await firstFailed());
        assert.ok(
          warnedAfter >= ENDPOINT_HEALTH_THRESHOLDS.warnAfterMs &&
            warnedAfter < ENDPOINT_HEALTH_THRESHOLDS.disableAfterMs,
          `warned ${warnedAfter / HOUR} h after the first failure`,
        );

        await eventually(async () => !(await s.status()).isActive, 60_000, "deactivation");
        const disabledAt = Date.now();
        const disabled = await s.status();
        assert.equal(disabled.state, "DISABLED");
        assert.ok(disabled.reason && disabled.reason.length > 0, "DISABLED with a reason");
        await eventually(
          () => opsEvents(s.sub.id).some((e) => e.type === "SUBSCRIPTION_DISABLED"),
          10_000,
          "SUBSCRIPTION_DISABLED",
        );
        const disabling = opsEvents(s.sub.id).find((e) => e.type === "SUBSCRIPTION_DISABLED")!;
        const disabledAfter = Date.parse(disabling.at) - (await firstFailed());
        // At 3 days, or at the first probe after it (the last steps of the schedule are 24 h).
        assert.ok(
          disabledAfter >= ENDPOINT_HEALTH_THRESHOLDS.disableAfterMs &&
            disabledAfter <= ENDPOINT_HEALTH_THRESHOLDS.disableAfterMs + DAY * (1 + JITTER),
          `disabled ${disabledAfter / DAY} days after the first failure`,
        );
        assert.ok(
          (disabledAt - firstFailure) * FACTOR >=
            ENDPOINT_HEALTH_THRESHOLDS.disableAfterMs - 6 * HOUR,
          `disabled ${((disabledAt - firstFailure) * FACTOR) / DAY} days (real time × ${FACTOR}) after the first failure`,
        );
        const requestsAtDisable = s.receiver.counts.received;
        const allowed = CIRCUIT_BREAKER_FAILURES + MAX_CONCURRENCY + stepsWithin(4 * DAY) + 1;
        assert.ok(
          requestsAtDisable <= allowed,
          `${requestsAtDisable} requests over 3 days of outage; the schedule allows ${allowed}`,
        );
        // Disabled: silence, even with new writes.
        await s.update(0);
        await s.update(3);
        await sleep(1_000);
        assert.equal(
          s.receiver.counts.received,
          requestsAtDisable,
          "no request after deactivation",
        );

        // The endpoint is fixed; the owner re-activates through the API.
        s.receiver.respondWith(() => undefined);
        await call("PUT", `${PATH}/webhookSubscription/${s.sub.id}`, {
          ...s.definition,
          isActive: true,
        });
        worker.wake();
        await s.update(1);
        await s.allDelivered(20_000);
        await eventually(
          () => opsEvents(s.sub.id).some((e) => e.type === "SUBSCRIPTION_RECOVERED"),
          10_000,
          "SUBSCRIPTION_RECOVERED",
        );
        await eventually(async () => (await s.status()).state === "ACTIVE", 5_000, "ACTIVE again");
        await watch.stop();
        assert.equal(watch.maxParked(), 0, "the outage parked no record");

        const events = opsEvents(s.sub.id);
        assert.deepEqual(
          events.map((e) => e.type),
          ["SUBSCRIPTION_FAILING_WARNING", "SUBSCRIPTION_DISABLED", "SUBSCRIPTION_RECOVERED"],
          "each raised once, in that order",
        );
        for (const e of events) {
          assert.equal(e.entity, "acme");
          assert.ok(e.reason.length > 0);
          assert.ok(Number.isFinite(Date.parse(e.at)));
          assert.match(e.herald.version, /^\d+\.\d+\.\d+/);
        }
        assert.ok(warnedAt < disabledAt);
        const rows = await s.attempts();
        assert.equal(
          rows.filter((a) => a.outcome === "FAILED").length,
          0,
          "nothing given up: resumed",
        );
      },
    );
  });
}
