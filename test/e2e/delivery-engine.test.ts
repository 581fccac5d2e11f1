/**
 * The delivery engine in-process against a real loopback receiver, on both backends: events written
 * as capture writes them, stamped by the real sequencer, pushed by the real worker.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Webhook } from "standardwebhooks";
import type { DeliveryWorker } from "../../src/delivery/delivery-worker.js";
import { startDeliveryWorker } from "../../src/delivery/delivery-worker.js";
import { DEFAULT_RETRY_POLICY } from "../../src/domain/retry-policy.js";
import { createLogger } from "../../src/logger.js";
import { renderMetrics } from "../../src/metrics.js";
import type { Sequencer } from "../../src/sequencer/sequencer.js";
import { startSequencer } from "../../src/sequencer/sequencer.js";
import { listSubscriptionAttempts } from "../../src/storage/attempt-repository.js";
import type { TestDatabase } from "../helpers/test-database.js";
import { createTestDatabase, testBackends } from "../helpers/test-database.js";
import type { WebhookReceiver } from "../helpers/webhook-receiver.js";
import { startWebhookReceiver } from "../helpers/webhook-receiver.js";
import {
  append,
  dataObjects,
  deliveryConfig,
  entityId,
  orderReport,
  profileUpdate,
  subscribe,
} from "./delivery-fixtures.js";

const logger = createLogger("silent");
/** Fast retries for tests: the same shape as SPEC §6, in milliseconds instead of minutes. */
const FAST_POLICY = {
  ...DEFAULT_RETRY_POLICY,
  scheduleMs: [0, 150, 300, 600, 1200],
  rules: Object.fromEntries(
    Object.entries(DEFAULT_RETRY_POLICY.rules).map(([k, rule]) => [k, { ...rule, minDelayMs: 0 }]),
  ) as typeof DEFAULT_RETRY_POLICY.rules,
};

async function watermarkOf(t: TestDatabase, id: number): Promise<number> {
  const { rows } = await t.db.query<{ watermark: number }>(
    "SELECT watermark FROM webhook_subscriptions WHERE id = $1",
    [id],
  );
  return rows[0]?.watermark ?? -1;
}

for (const { backend, skip } of await testBackends()) {
  describe(`delivery engine on ${backend}`, { skip }, () => {
    let t: TestDatabase;
    let entity: number;
    let sequencer: Sequencer;
    let worker: DeliveryWorker;
    const receivers: WebhookReceiver[] = [];
    const receiver = async () => {
      const r = await startWebhookReceiver();
      receivers.push(r);
      return r;
    };

    before(async () => {
      t = await createTestDatabase(backend);
      entity = await entityId(t.db);
      sequencer = await startSequencer({ db: t.db, logSignals: t.logSignals, logger, pollMs: 200 });
      worker = await startDeliveryWorker({
        db: t.db,
        logSignals: t.logSignals,
        logger,
        secrets: t.secrets,
        config: deliveryConfig({ workerId: `test-${backend}` }),
        policy: FAST_POLICY,
        tuning: { leaseRenewMs: 300, pollMs: 300, watermarkFlushMs: 50 },
      });
    });
    after(async () => {
      await worker?.stop();
      await sequencer?.stop();
      for (const r of receivers) await r.close();
      await t?.drop();
    });

    test("ONE_BY_ONE: signed pushes, one event each, per-record order, watermark advances", async () => {
      const r = await receiver();
      const sub = await subscribe(t.db, entity, {
        targetUrl: r.url,
        headers: { "x-shared": "s3cret", "Content-Type": "text/plain" },
      });
      worker.wake();
      for (let v = 1; v <= 5; v++)
        await append(t.db, [profileUpdate(entity, 101, v), profileUpdate(entity, 102, v)]);
      await r.waitFor((reqs) => reqs.length >= 10, 15_000, "10 pushes");
      const report = orderReport(r.requests.map((q) => q.json));
      assert.deepEqual(report.outOfOrder, []);
      assert.equal(report.distinct, 10);
      for (const q of r.requests) {
        const body = q.json as { id: string; data: Record<string, unknown>; _links: unknown };
        assert.equal(q.headers["webhook-id"], body.id);
        assert.equal(q.headers["content-type"], "application/json");
        assert.equal(q.headers["x-shared"], "s3cret");
        assert.match(String(q.headers["user-agent"]), /^Herald\/\d+\.\d+\.\d+/);
        assert.ok(!Array.isArray(body.data), "ONE_BY_ONE data is one object");
        assert.deepEqual(body._links, {
          webhook: { href: `/webhooks/v4/entity/acme/webhookSubscription/${sub.id}` },
        });
        new Webhook(sub.secret).verify(q.body, {
          "webhook-id": String(q.headers["webhook-id"]),
          "webhook-timestamp": String(q.headers["webhook-timestamp"]),
          "webhook-signature": String(q.headers["webhook-signature"]),
        });
      }
      const lastPosition = Math.max(
        ...r.requests.map((q) => (dataObjects(q.json)[0]!._event as { position: number }).position),
      );
      const deadline = Date.now() + 5_000;
      while ((await watermarkOf(t, sub.id)) < lastPosition && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 50));
      assert.ok((await watermarkOf(t, sub.id)) >= lastPosition);
    });

    test("a failing record retries with the same webhook-id and holds only itself and the watermark", async () => {
      const r = await receiver();
      let failuresLeft = 3;
      r.respondWith((q) => {
        const data = dataObjects(q.json)[0]!;
        if (data.profileId === "201" && failuresLeft > 0) {
          failuresLeft--;
          return failuresLeft === 1
            ? { destroy: true }
            : { status: 503, body: "busy", headers: { "retry-after": "0" } };
        }
        return undefined;
      });
      const sub = await subscribe(t.db, entity, { targetUrl: r.url });
      worker.wake();
      await new Promise((resolve) => setTimeout(resolve, 400));
      await append(t.db, [profileUpdate(entity, 201, 1)]);
      await append(t.db, [profileUpdate(entity, 201, 2), profileUpdate(entity, 202, 1)]);
      await append(t.db, [profileUpdate(entity, 202, 2)]);
      // Record 202 flows while 201 is failing.
      await r.waitFor(
        (reqs) => reqs.filter((q) => dataObjects(q.json)[0]!.profileId === "202").length >= 2,
        10_000,
        "record 202",
      );
      await r.waitFor((reqs) => reqs.length >= 3 + 4, 10_000, "all pushes and retries");
      const of201 = r.requests.filter((q) => dataObjects(q.json)[0]!.profileId === "201");
      const versions = of201.map(
        (q) => (dataObjects(q.json)[0]!._event as { version: number }).version,
      );
      assert.deepEqual(versions, [1, 1, 1, 1, 2], "v1 three times failed, then v1, then v2");
      const ids = new Set(of201.slice(0, 4).map((q) => q.headers["webhook-id"]));
      assert.equal(ids.size, 1, "a push keeps its webhook-id across retries");
      const attempts = await (async () => {
        const deadline = Date.now() + 5_000;
        for (;;) {
          const { items: list } = await listSubscriptionAttempts(
            t.db,
            sub.id,
            {},
            { page: 0, pageSize: 100 },
          );
          if (list.length >= 7 || Date.now() > deadline) return list;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      })();
      const failed = attempts.filter((a) => a.outcome === "RETRY");
      assert.equal(failed.length, 3);
      assert.deepEqual(failed.map((a) => a.errorClass).sort(), [
        "connection_reset",
        "http_5xx",
        "http_5xx",
      ]);
      assert.ok(failed.some((a) => a.responseExcerpt === "busy"));
    });

    test("the watermark passes a failing event only once it is parked, and it is delivered later", async () => {
      const r = await receiver();
      let failing = true;
      r.respondWith((q) =>
        failing && dataObjects(q.json)[0]!.profileId === "301" ? { status: 500 } : undefined,
      );
      const sub = await subscribe(t.db, entity, { targetUrl: r.url });
      const start = await watermarkOf(t, sub.id);
      worker.wake();
      await new Promise((resolve) => setTimeout(resolve, 400));
      await append(t.db, [profileUpdate(entity, 301, 1)]);
      await append(t.db, [profileUpdate(entity, 302, 1), profileUpdate(entity, 303, 1)]);
      await r.waitFor((reqs) => reqs.length >= 4, 10_000, "302, 303 and retries of 301");
      await new Promise((resolve) => setTimeout(resolve, 300));
      const position301 = start + 1;
      const parkedPositions = async () =>
        (
          await t.db.query<{ position: number }>(
            "SELECT position FROM parked_events WHERE subscription_id = $1 ORDER BY position",
            [sub.id],
          )
        ).rows.map((row) => row.position);
      const held = await watermarkOf(t, sub.id);
      // Either still in memory (the watermark stays below it) or parked (written down first).
      if (held >= position301) assert.deepEqual(await parkedPositions(), [position301]);
      failing = false;
      await r.waitFor(
        (reqs) =>
          reqs.some((q) => q.index > 0 && dataObjects(q.json)[0]!.profileId === "301" && !failing),
        10_000,
        "301 delivered",
      );
      const deadline = Date.now() + 5_000;
      while ((await watermarkOf(t, sub.id)) < start + 3 && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 50));
      assert.ok((await watermarkOf(t, sub.id)) >= start + 3);
      while ((await parkedPositions()).length > 0 && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 50));
      assert.deepEqual(await parkedPositions(), [], "unparked once delivered");
    });

    test("metrics: every attempt is counted by outcome and error class; driven subscriptions are reported", async () => {
      const r = await receiver();
      let calls = 0;
      r.respondWith(() => (calls++ === 0 ? { status: 503 } : undefined));
      const sub = await subscribe(t.db, entity, { targetUrl: r.url });
      worker.wake();
      await new Promise((resolve) => setTimeout(resolve, 400));
      const metric = async (line: string) => {
        const { body } = await renderMetrics();
        const found = body.split("\n").find((l) => l.startsWith(line));
        return found ? Number(found.slice(line.length).trim()) : 0;
      };
      const retried = `herald_push_attempts_total{outcome="RETRY",error_class="http_5xx",service="herald"}`;
      const delivered = `herald_push_attempts_total{outcome="DELIVERED",error_class="",service="herald"}`;
      const [retriedBefore, deliveredBefore] = [await metric(retried), await metric(delivered)];
      await append(t.db, [profileUpdate(entity, 501, 1)]);
      await r.waitFor((reqs) => reqs.length >= 2, 10_000, "a failure, then the retry");
      await new Promise((resolve) => setTimeout(resolve, 100));
      // Earlier subscriptions of this suite match the event too: at least this one's attempts.
      assert.ok((await metric(retried)) - retriedBefore >= 1);
      assert.ok((await metric(delivered)) - deliveredBefore >= 1);
      assert.ok((await metric(`herald_delivery_subscriptions{service="herald"}`)) >= 1);
      assert.ok(worker.driving().includes(sub.id));
    });

    test("410 Gone disables the subscription with a reason", async () => {
      const r = await receiver();
      r.respondWith(() => ({ status: 410 }));
      const sub = await subscribe(t.db, entity, { targetUrl: r.url });
      worker.wake();
      await new Promise((resolve) => setTimeout(resolve, 400));
      await append(t.db, [profileUpdate(entity, 401, 1)]);
      await r.waitFor((reqs) => reqs.length >= 1, 10_000, "one push");
      const deadline = Date.now() + 5_000;
      let row: { is_active: boolean; state: string; state_reason: string | null } | undefined;
      while (Date.now() < deadline) {
        const { rows } = await t.db.query<{
          is_active: boolean;
          state: string;
          state_reason: string | null;
        }>("SELECT is_active, state, state_reason FROM webhook_subscriptions WHERE id = $1", [
          sub.id,
        ]);
        row = rows[0];
        if (row && !row.is_active) break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.equal(row?.is_active, false);
      assert.equal(row?.state, "DISABLED");
      assert.match(String(row?.state_reason), /410/);
      await append(t.db, [profileUpdate(entity, 401, 2)]);
      await new Promise((resolve) => setTimeout(resolve, 500));
      assert.equal(r.requests.length, 1, "nothing more is sent to a disabled subscription");
    });

    test("BULK: blocks of maxBlockSize, the rest after lingerMs", async () => {
      const r = await receiver();
      const sub = await subscribe(t.db, entity, {
        targetUrl: r.url,
        pushMode: "BULK",
        maxBlockSize: 5,
        lingerMs: 300,
        maxWaitMs: 3_000,
      });
      worker.wake();
      await new Promise((resolve) => setTimeout(resolve, 400));
      const events = Array.from({ length: 12 }, (_, i) => profileUpdate(entity, 500 + i, 1));
      const committedAt = Date.now();
      await append(t.db, events);
      await r.waitFor((reqs) => reqs.length >= 3, 10_000, "three blocks");
      const sizes = r.requests.map((q) => dataObjects(q.json).length);
      assert.deepEqual(sizes, [5, 5, 2]);
      const last = r.requests[2]!;
      assert.ok(
        last.receivedAt - committedAt >= 250,
        "the partial block waited for the linger time",
      );
      assert.ok(Array.isArray((last.json as { data: unknown }).data));
      new Webhook(sub.secret).verify(last.body, {
        "webhook-id": String(last.headers["webhook-id"]),
        "webhook-timestamp": String(last.headers["webhook-timestamp"]),
        "webhook-signature": String(last.headers["webhook-signature"]),
      });
    });

    test("BULK: a trickle is flushed by maxWaitMs even while events keep coming", async () => {
      const r = await receiver();
      await subscribe(t.db, entity, {
        targetUrl: r.url,
        pushMode: "BULK",
        maxBlockSize: 1000,
        lingerMs: 400,
        maxWaitMs: 800,
      });
      worker.wake();
      await new Promise((resolve) => setTimeout(resolve, 400));
      const started = Date.now();
      // A 3 s trickle, one event every 100 ms: lingerMs never passes, so only maxWaitMs can
      // send a block before the trickle ends.
      for (let i = 0; i < 30; i++) {
        await append(t.db, [profileUpdate(entity, 600 + i, 1)]);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const ended = Date.now();
      await r.waitFor((reqs) => reqs.length >= 1, 5_000, "a first block");
      const first = r.requests[0]!;
      const waited = first.receivedAt - started;
      assert.ok(waited >= 700, `first block after ${waited} ms, before maxWaitMs`);
      assert.ok(first.receivedAt < ended, `the first block waited for the trickle to end`);
      assert.ok(dataObjects(first.json).length < 30);
    });

    test("stop hands leases back at once", async () => {
      const r = await receiver();
      const sub = await subscribe(t.db, entity, { targetUrl: r.url });
      worker.wake();
      const deadline = Date.now() + 5_000;
      while (!worker.driving().includes(sub.id) && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 50));
      assert.ok(worker.driving().includes(sub.id));
      await worker.stop();
      const { rows } = await t.db.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM webhook_subscriptions WHERE lease_owner IS NOT NULL",
      );
      assert.equal(rows[0]?.n, 0);
    });
  });
}
