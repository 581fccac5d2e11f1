/**
 * Delivery workers' liveness locks (migration 018, worker-liveness.ts, docs/delivery.md "Workers,
 * leases and scale-out"): a lease whose holder's recorded lock is gone is orphaned and may be taken
 * over exactly as it was seen; a worker whose lock is gone can neither renew nor claim; the census
 * no longer counts it; and the worker side notices a killed lock session, cuts its pushes (the
 * signal), and comes back with a fresh key. On the embedded database the worker is always valid
 * with no key, and the statements still run.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startWorkerLiveness } from "../../src/delivery/worker-liveness.js";
import { createLogger } from "../../src/logger.js";
import type { AdvisoryLock, Database } from "../../src/storage/database.js";
import {
  claimLeases,
  claimOrphanedLeases,
  heartbeat,
  orphanedLeases,
  renewLeases,
} from "../../src/storage/subscription-lease-repository.js";
import { allocateLivenessKey, livenessKeyHeld } from "../../src/storage/liveness-locks.js";
import { entityId, subscribe } from "../e2e/delivery-fixtures.js";
import type { TestDatabase } from "../helpers/test-database.js";
import { createTestDatabase, testBackends } from "../helpers/test-database.js";

const TTL = 60_000;
const logger = createLogger("silent");

/** Waits until `check` holds (polling every 20 ms), or fails after `ms`. */
async function until(check: () => boolean | Promise<boolean>, ms: number, what: string) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Twenty abort listeners on `signal`, as twenty pushes in flight add: no MaxListenersExceededWarning. */
async function assertNoListenerWarning(signal: AbortSignal): Promise<void> {
  const warnings: Error[] = [];
  const onWarning = (warning: Error) => warnings.push(warning);
  process.on("warning", onWarning);
  const listeners = Array.from({ length: 20 }, () => () => {});
  try {
    for (const listener of listeners) signal.addEventListener("abort", listener);
    // Node emits its warnings on a later tick.
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(
      warnings.filter((w) => w.name === "MaxListenersExceededWarning").map((w) => w.message),
      [],
    );
  } finally {
    for (const listener of listeners) signal.removeEventListener("abort", listener);
    process.off("warning", onWarning);
  }
}

for (const { backend, skip } of await testBackends()) {
  describe(`worker liveness on ${backend}`, { skip }, () => {
    let t: TestDatabase;
    let db: Database;
    let entity: number;
    before(async () => {
      t = await createTestDatabase(backend);
      db = t.db;
      entity = await entityId(db);
    });
    after(async () => {
      await t.drop();
    });

    /** A fresh subscription leased by `owner`. */
    async function leasedTo(owner: string): Promise<number> {
      await db.query("UPDATE webhook_subscriptions SET is_active = false");
      const sub = await subscribe(db, entity, { targetUrl: "http://127.0.0.1:9/hook" });
      const claimed = await claimLeases(db, t.secrets, owner, TTL, 10);
      assert.deepEqual(
        claimed.map((l) => l.subscription.id),
        [sub.id],
      );
      return sub.id;
    }

    if (backend === "pglite") {
      test("the embedded database: always valid, no key, leases renew and nothing is orphaned", async () => {
        let valid = 0;
        const liveness = startWorkerLiveness({
          db,
          logger,
          timing: { confirmMs: 50, graceMs: 200 },
          onInvalid: () => assert.fail("never invalid on the embedded database"),
          onValid: () => valid++,
        });
        assert.equal(liveness.valid(), true);
        assert.equal(liveness.key, null);
        await heartbeat(db, "solo", TTL, liveness.key);
        const id = await leasedTo("solo");
        assert.deepEqual(
          (await renewLeases(db, t.secrets, "solo", TTL)).map((l) => l.subscription.id),
          [id],
        );
        assert.deepEqual(await orphanedLeases(db, "other", TTL), []);
        const census = await heartbeat(db, "solo", TTL, null);
        assert.equal(census.liveWorkers, 1);
        await liveness.stop();
      });
      return;
    }

    test("a lease is orphaned once its holder's lock is released, and taken over only as it was seen", async () => {
      const key = await allocateLivenessKey(db);
      const lock = (await db.tryAdvisoryLock(key)) as AdvisoryLock;
      assert.ok(lock, "the fresh key is free");
      assert.equal(await livenessKeyHeld(db, key), true);
      await heartbeat(db, "a", TTL, key);
      await heartbeat(db, "b", TTL, null);
      const id = await leasedTo("a");
      assert.deepEqual(
        await orphanedLeases(db, "b", TTL),
        [],
        "a live holder's lease is not orphaned",
      );
      assert.equal((await heartbeat(db, "b", TTL, null)).liveWorkers, 2);

      await lock.release();
      assert.equal(await livenessKeyHeld(db, key), false);
      const orphans = await orphanedLeases(db, "b", TTL);
      assert.deepEqual(
        orphans.map((o) => [o.subscriptionId, o.owner, o.key]),
        [[id, "a", key]],
      );
      assert.deepEqual(
        await orphanedLeases(db, "a", TTL),
        [],
        "nobody sees its own lease orphaned",
      );
      assert.equal(
        (await heartbeat(db, "b", TTL, null)).liveWorkers,
        1,
        "a worker whose lock is gone is not counted live",
      );

      // The holder renewed meanwhile (another expiry): that holding was not the one seen.
      const stale = orphans.map((o) => ({ ...o, expiresAt: "2000-01-01 00:00:00+00" }));
      assert.deepEqual(await claimOrphanedLeases(db, t.secrets, "b", TTL, stale, 10), []);
      // The holder took a new key meanwhile: not the one seen either.
      const rekeyed = orphans.map((o) => ({ ...o, key: o.key + 1 }));
      assert.deepEqual(await claimOrphanedLeases(db, t.secrets, "b", TTL, rekeyed, 10), []);
      // As seen: taken over, with its cursor.
      const taken = await claimOrphanedLeases(db, t.secrets, "b", TTL, orphans, 10);
      assert.deepEqual(
        taken.map((l) => l.subscription.id),
        [id],
      );
      const { rows } = await db.query<{ lease_owner: string }>(
        "SELECT lease_owner FROM webhook_subscriptions WHERE id = $1",
        [id],
      );
      assert.equal(rows[0]?.lease_owner, "b");
      assert.deepEqual(
        await orphanedLeases(db, "c", TTL),
        [],
        "b holds no recorded key: never orphaned",
      );
    });

    test("a worker whose recorded lock is gone can neither renew nor claim; with a held key it can", async () => {
      const key = await allocateLivenessKey(db);
      const lock = (await db.tryAdvisoryLock(key)) as AdvisoryLock;
      await heartbeat(db, "d", TTL, key);
      const id = await leasedTo("d");
      await lock.release();
      assert.deepEqual(
        await renewLeases(db, t.secrets, "d", TTL),
        [],
        "no renewal without the lock",
      );
      await db.query("UPDATE webhook_subscriptions SET lease_owner = NULL WHERE id = $1", [id]);
      assert.deepEqual(
        await claimLeases(db, t.secrets, "d", TTL, 10),
        [],
        "no claim without the lock",
      );

      const next = await allocateLivenessKey(db);
      assert.notEqual(next, key, "every acquisition takes a fresh key");
      const again = (await db.tryAdvisoryLock(next)) as AdvisoryLock;
      await heartbeat(db, "d", TTL, next);
      assert.deepEqual(
        (await claimLeases(db, t.secrets, "d", TTL, 10)).map((l) => l.subscription.id),
        [id],
      );
      assert.deepEqual(
        (await renewLeases(db, t.secrets, "d", TTL)).map((l) => l.subscription.id),
        [id],
      );
      await again.release();
    });

    test("the worker side: valid once confirmed; a killed lock session cuts pushes and a fresh key follows", async () => {
      const events: string[] = [];
      const liveness = startWorkerLiveness({
        db,
        logger,
        timing: { confirmMs: 50, graceMs: 400 },
        onInvalid: (why) => events.push(`invalid: ${why}`),
        onValid: () => events.push("valid"),
      });
      try {
        await until(() => liveness.valid(), 5_000, "the first confirmation");
        const first = liveness.key as number;
        assert.equal(await livenessKeyHeld(db, first), true);
        const signal = liveness.signal as AbortSignal;
        assert.equal(signal.aborted, false);
        // Every push in flight listens to the signal: many at once are no leak to warn about.
        await assertNoListenerWarning(signal);
        const epoch = liveness.epoch;

        // The server ends the lock's session (an administrator, a dropped connection).
        await db.query(
          `SELECT pg_terminate_backend(l.pid) FROM pg_locks l
            WHERE l.locktype = 'advisory' AND l.objsubid = 1
              AND l.classid::bigint * 4294967296 + l.objid::bigint = $1`,
          [first],
        );
        await until(() => signal.aborted, 2_000, "the pushes' signal to be aborted");
        assert.match(String((signal.reason as Error).message), /cut short/);
        await until(() => liveness.valid() && liveness.key !== first, 5_000, "a fresh lock");
        await assertNoListenerWarning(liveness.signal as AbortSignal);
        assert.ok(liveness.epoch > epoch, "a new epoch: leases read before are not trusted");
        assert.equal(await livenessKeyHeld(db, liveness.key as number), true);
        assert.equal(events[0], "valid");
        assert.match(events[1] ?? "", /^invalid: /);
        assert.equal(events[2], "valid");
      } finally {
        await liveness.stop();
      }
      assert.equal(liveness.valid(), false);
    });

    test("confirmations that stop coming back make the worker invalid within the grace", async () => {
      let invalidAt = 0;
      // A database whose pool stops answering when told to (a black hole on the pool's side only):
      // each query then fails after a second, as the driver's own query time limit makes it.
      let hang = false;
      const hanging: Database = Object.create(db, {
        query: {
          value: (...args: Parameters<Database["query"]>) =>
            hang
              ? new Promise((_, reject) =>
                  setTimeout(() => reject(new Error("Query read timeout")), 1_000),
                )
              : db.query(...args),
        },
      }) as Database;
      const liveness = startWorkerLiveness({
        db: hanging,
        logger,
        timing: { confirmMs: 50, graceMs: 400 },
        onInvalid: () => (invalidAt = performance.now()),
        onValid: () => {},
      });
      try {
        await until(() => liveness.valid(), 5_000, "the first confirmation");
        hang = true;
        const from = performance.now();
        await until(() => invalidAt > 0, 2_000, "the grace to run out");
        assert.ok(
          invalidAt - from <= 400 + 200,
          `invalid ${Math.round(invalidAt - from)} ms after`,
        );
        assert.equal(liveness.valid(), false);
        hang = false;
        await until(() => liveness.valid(), 5_000, "confirmations again");
      } finally {
        await liveness.stop();
      }
    });
  });
}
