/**
 * The circuit's health timers on a hand-driven clock, against a real database: the warning at 24 h
 * is announced once (and raised), the deactivation at 3 days happens at once when no probe is in
 * flight, waits for a probe in flight (its answer decides), and never comes once the circuit closed.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { bootstrap } from "../../src/api/bootstrap.js";
import type { Clock } from "../../src/delivery/clock.js";
import { DEFAULT_DELIVERY_TUNING } from "../../src/delivery/delivery-tuning.js";
import { EndpointCircuit } from "../../src/delivery/endpoint-circuit.js";
import { createHttpSender } from "../../src/delivery/http-sender.js";
import type { RunnerContext } from "../../src/delivery/subscription-runner.js";
import { ENDPOINT_HEALTH_THRESHOLDS } from "../../src/domain/endpoint-health.js";
import { DEFAULT_RETRY_POLICY } from "../../src/domain/retry-policy.js";
import type { Subscription } from "../../src/domain/subscription.js";
import type { OperationalEvent } from "../../src/delivery/operations-notifier.js";
import { createLogger } from "../../src/logger.js";
import type { Database } from "../../src/storage/database.js";
import type { TestDatabase } from "../helpers/test-database.js";
import { createTestDatabase, testBackends } from "../helpers/test-database.js";
import { entityId, subscribe } from "../e2e/delivery-fixtures.js";

const HOUR = 3_600_000;
const WORKER = "circuit-test-worker";

/**
 * A clock moved by hand. `advance` fires the timers due, in order, and after each waits for
 * `settled` (the circuit's database writes it started) before firing the next; it returns once the
 * writes started before it (the circuit records FAILING when it opens) are settled too. With `earlyMs`,
 * every timer longer than that fires that much before its time, as Node's timers may by the wall
 * clock.
 */
function manualClock(
  settled: () => Promise<void>,
  earlyMs = 0,
): Clock & { advance(ms: number): Promise<void> } {
  let now = Date.parse("2026-12-01T00:00:00Z");
  let next = 0;
  const timers = new Map<number, { at: number; fn: () => void }>();
  return {
    now: () => now,
    setTimer(fn, ms) {
      const id = ++next;
      timers.set(id, { at: now + Math.max(0, ms > earlyMs ? ms - earlyMs : ms), fn });
      return id as unknown as NodeJS.Timeout;
    },
    clearTimer(timer) {
      timers.delete(timer as unknown as number);
    },
    async advance(ms) {
      const until = now + ms;
      for (;;) {
        const due = [...timers.entries()]
          .filter(([, t]) => t.at <= until)
          .sort((a, b) => a[1].at - b[1].at)[0];
        if (!due) break;
        timers.delete(due[0]);
        now = due[1].at;
        due[1].fn();
        await settled();
      }
      now = until;
      await settled();
    },
  };
}

for (const { backend, skip } of await testBackends()) {
  describe(`circuit health timers (${backend})`, { skip }, () => {
    let database: TestDatabase;
    let db: Database;
    let entity: number;

    before(async () => {
      database = await createTestDatabase(backend);
      db = database.db;
      await bootstrap(db, {
        defaultEntity: "acme",
        adminApiKey: "hk_circuit_test_key_0123456789ab",
      });
      entity = await entityId(db);
    });
    after(async () => {
      await database?.drop();
    });

    async function open(probeInMs = HOUR, earlyMs = 0) {
      const sub: Subscription = await subscribe(db, entity, { targetUrl: "https://example.com/h" });
      await db.query(
        "UPDATE webhook_subscriptions SET lease_owner = $2, lease_expires_at = now() + interval '1 hour' WHERE id = $1",
        [sub.id, WORKER],
      );
      let chain: Promise<unknown> = Promise.resolve();
      // Every write of the circuit goes through `serial` (below): settled once the chain stops growing.
      const settled = async () => {
        let seen: Promise<unknown>;
        do {
          seen = chain;
          await seen.catch(() => undefined);
          await new Promise((resolve) => setImmediate(resolve));
        } while (seen !== chain);
      };
      const clock = manualClock(settled, earlyMs);
      const raised: OperationalEvent[] = [];
      const deactivated: string[] = [];
      let probesDue = 0;
      const ctx = {
        db,
        sender: createHttpSender({
          timeoutMs: 1_000,
          allowInsecureTargets: true,
          workerId: WORKER,
        }),
        logger: createLogger("silent"),
        workerId: WORKER,
        tuning: DEFAULT_DELIVERY_TUNING,
        policy: DEFAULT_RETRY_POLICY,
        random: () => 0.5,
        clock,
        operations: {
          notify: (event: OperationalEvent) => {
            raised.push(event);
            return Promise.resolve({ kind: "logged-only" as const });
          },
          close: () => Promise.resolve(),
        },
        health: ENDPOINT_HEALTH_THRESHOLDS,
        leaseValid: () => true,
        onGiveUp: () => undefined,
      } satisfies RunnerContext;
      const circuit = new EndpointCircuit(
        {
          ctx,
          logger: ctx.logger,
          subscription: () => sub,
          serial: <T>(write: () => Promise<T>) => {
            const result = chain.then(write);
            chain = result.catch(() => undefined);
            return result;
          },
          probeDue: () => probesDue++,
          deactivate: (reason) => deactivated.push(reason),
        },
        clock.now(),
        "HTTP 503",
        probeInMs,
      );
      const state = async () =>
        (
          await db.query<{ state: string; health_announced: string | null; state_reason: string }>(
            "SELECT state, health_announced, state_reason FROM webhook_subscriptions WHERE id = $1",
            [sub.id],
          )
        ).rows[0]!;
      return { circuit, clock, raised, deactivated, probes: () => probesDue, state, ctx };
    }

    test("FAILING is recorded; the warning at 24 h is announced and raised once", async () => {
      const c = await open();
      await c.clock.advance(1);
      assert.equal((await c.state()).state, "FAILING");
      assert.equal(c.probes(), 0);
      await c.clock.advance(HOUR);
      assert.equal(c.probes(), 1, "the first probe is due after probeInMs");
      await c.clock.advance(23 * HOUR);
      const warned = await c.state();
      assert.equal(warned.health_announced, "warn");
      assert.match(warned.state_reason, /^warning: /);
      assert.deepEqual(
        c.raised.map((e) => e.type),
        ["SUBSCRIPTION_FAILING_WARNING"],
      );
      assert.deepEqual(c.deactivated, []);
      c.circuit.stop();
      await c.ctx.sender.close();
    });

    test("at 3 days with no probe in flight: deactivated at once", async () => {
      const c = await open();
      await c.clock.advance(72 * HOUR);
      assert.equal(c.deactivated.length, 1);
      assert.match(c.deactivated[0]!, /3 days/);
      c.circuit.stop();
      await c.ctx.sender.close();
    });

    test("health timers that fire early still warn at 24 h and deactivate at 3 days", async () => {
      const c = await open(HOUR, 5);
      await c.clock.advance(24 * HOUR - 10);
      assert.equal(c.raised.length, 0, "no warning before 24 h");
      await c.clock.advance(10);
      assert.deepEqual(
        c.raised.map((e) => e.type),
        ["SUBSCRIPTION_FAILING_WARNING"],
      );
      await c.clock.advance(48 * HOUR - 10);
      assert.deepEqual(c.deactivated, [], "not before 3 days");
      await c.clock.advance(10);
      assert.equal(c.deactivated.length, 1, "deactivated at 3 days");
      c.circuit.stop();
      await c.ctx.sender.close();
    });

    test("at 3 days with a probe in flight: its answer decides", async () => {
      const failed = await open();
      await failed.clock.advance(71 * HOUR);
      failed.circuit.probeSent(true);
      await failed.clock.advance(HOUR);
      assert.deepEqual(failed.deactivated, [], "not while the probe is in flight");
      failed.circuit.probeFailed(HOUR);
      assert.equal(failed.deactivated.length, 1, "the probe failed: deactivated");
      failed.circuit.stop();
      await failed.ctx.sender.close();

      const recovered = await open();
      await recovered.clock.advance(71 * HOUR);
      recovered.circuit.probeSent(true);
      await recovered.clock.advance(HOUR);
      recovered.circuit.close(); // the probe got through
      await recovered.clock.advance(10 * HOUR);
      assert.deepEqual(recovered.deactivated, []);
      await recovered.ctx.sender.close();
    });

    test("closed before the thresholds: no warning, no deactivation, ACTIVE again", async () => {
      const c = await open();
      await c.clock.advance(2 * HOUR);
      c.circuit.close();
      await c.clock.advance(100 * HOUR);
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal((await c.state()).state, "ACTIVE");
      assert.deepEqual(c.raised, []);
      assert.deepEqual(c.deactivated, []);
      await c.ctx.sender.close();
    });
  });
}
