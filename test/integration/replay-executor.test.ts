/**
 * The replay executor against the database and a real loopback receiver, on both backends, without
 * the subscription runner: events stamped by the real sequencer, a lease set by hand for a test
 * worker, replay requests inserted as the API inserts them, and a host built around a context of
 * real parts (HTTP sender, retry policy, scaled clock).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Webhook } from "standardwebhooks";
import type { Clock } from "../../src/delivery/clock.js";
import { scaledClock, systemClock } from "../../src/delivery/clock.js";
import { DEFAULT_DELIVERY_TUNING } from "../../src/delivery/delivery-tuning.js";
import type { HttpSender } from "../../src/delivery/http-sender.js";
import { createHttpSender } from "../../src/delivery/http-sender.js";
import type { ReplayContext, ReplayHost } from "../../src/delivery/replay-executor.js";
import { ReplayExecutor } from "../../src/delivery/replay-executor.js";
import type { NewChangeEvent } from "../../src/domain/change-event.js";
import { DEFAULT_RETRY_POLICY } from "../../src/domain/retry-policy.js";
import type { Subscription, SubscriptionSettings } from "../../src/domain/subscription.js";
import { createLogger } from "../../src/logger.js";
import type { Sequencer } from "../../src/sequencer/sequencer.js";
import { startSequencer } from "../../src/sequencer/sequencer.js";
import type { AttemptRecord } from "../../src/storage/attempt-repository.js";
import type { ReplayRequest } from "../../src/storage/replay-repository.js";
import { cancelReplay, insertReplay, listReplays } from "../../src/storage/replay-repository.js";
import {
  append,
  dataObjects,
  entityId,
  eventually,
  profileUpdate,
  subscribe,
} from "../e2e/delivery-fixtures.js";
import type { TestDatabase } from "../helpers/test-database.js";
import { createTestDatabase, testBackends } from "../helpers/test-database.js";
import type { ReceivedRequest, WebhookReceiver } from "../helpers/webhook-receiver.js";
import { startWebhookReceiver } from "../helpers/webhook-receiver.js";

const logger = createLogger("silent");
const WORKER = "replay-test-worker";
/** A stop() that never resolves fails its test instead of hanging the run. */
const LIMIT = { timeout: 60_000 };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

interface TestHost extends ReplayHost {
  attempts: AttemptRecord[];
  pushAllowed: boolean;
  gone: string[];
}

interface PushedEvent {
  pushId: string;
  eventId: string;
  position: number;
  profileId: unknown;
}

/** The events a receiver got, in arrival order, with the push that carried them. */
function pushedEvents(requests: readonly ReceivedRequest[]): PushedEvent[] {
  return requests.flatMap((q) =>
    dataObjects(q.json).map((data) => {
      const block = data._event as { id: string; position: number };
      return {
        pushId: String(q.headers["webhook-id"]),
        eventId: block.id,
        position: block.position,
        profileId: data.profileId,
      };
    }),
  );
}

for (const { backend, skip } of await testBackends()) {
  describe(`replay executor on ${backend}`, { skip }, () => {
    let t: TestDatabase;
    let entity: number;
    let sequencer: Sequencer;
    let sender: HttpSender;
    const receivers: WebhookReceiver[] = [];
    const executors: ReplayExecutor[] = [];
    let nextProfile = 1000;

    before(async () => {
      t = await createTestDatabase(backend);
      entity = await entityId(t.db);
      sequencer = await startSequencer({ db: t.db, logSignals: t.logSignals, logger, pollMs: 100 });
      sender = createHttpSender({ timeoutMs: 5_000, allowInsecureTargets: true, workerId: WORKER });
    });
    after(async () => {
      const bounded = (p: Promise<void>) =>
        Promise.race([p, new Promise<void>((resolve) => setTimeout(resolve, 5_000).unref())]);
      for (const executor of executors) await bounded(executor.stop());
      await sequencer?.stop();
      await sender?.close();
      for (const r of receivers) await r.close();
      await t?.drop();
    });

    const receiver = async () => {
      const r = await startWebhookReceiver();
      receivers.push(r);
      return r;
    };

    function context(clock: Clock, readBatchSize = 1_000): ReplayContext {
      return {
        db: t.db,
        sender,
        logger,
        workerId: WORKER,
        tuning: { ...DEFAULT_DELIVERY_TUNING, readBatchSize },
        policy: DEFAULT_RETRY_POLICY,
        random: () => 0.5,
        clock,
      };
    }

    function host(subscription: Subscription, ctx: ReplayContext): TestHost {
      const h: TestHost = {
        ctx,
        attempts: [],
        pushAllowed: true,
        gone: [],
        subscription: () => subscription,
        mayPush: () => h.pushAllowed,
        recordAttempt: (attempt) => h.attempts.push(attempt),
        endpointGone: (reason) => h.gone.push(reason),
      };
      return h;
    }

    function executorFor(h: ReplayHost): ReplayExecutor {
      const executor = new ReplayExecutor(h);
      executors.push(executor);
      return executor;
    }

    /** A subscription whose lease the test worker holds. */
    async function leasedSubscription(
      settings: Partial<SubscriptionSettings> & Pick<SubscriptionSettings, "targetUrl">,
    ): Promise<Subscription> {
      const sub = await subscribe(t.db, entity, settings);
      await t.db.query(
        `UPDATE webhook_subscriptions SET lease_owner = $2, lease_expires_at = now() + interval '10 minutes'
          WHERE id = $1`,
        [sub.id, WORKER],
      );
      return sub;
    }

    /** Appends events one transaction each and waits until the sequencer stamped them; their positions. */
    async function stamped(events: NewChangeEvent[]): Promise<{ id: number; position: number }[]> {
      const keys = [...new Set(events.map((e) => e.recordKey))];
      for (const event of events) await append(t.db, [event]);
      sequencer.wake();
      const read = () =>
        t.db.query<{ id: number; position: number | null }>(
          `SELECT id, position FROM change_events WHERE entity_id = $1 AND record_key = ANY ($2::text[])
            ORDER BY id`,
          [entity, keys],
        );
      await eventually(
        async () => (await read()).rows.every((row) => row.position !== null),
        10_000,
        "the sequencer to stamp the test events",
      );
      return (await read()).rows.map((row) => ({ id: row.id, position: row.position as number }));
    }

    async function replayRow(subscriptionId: number, id: number): Promise<ReplayRequest> {
      const row = (await listReplays(t.db, subscriptionId)).find((r) => r.id === id);
      assert.ok(row, `replay ${id} exists`);
      return row;
    }

    async function until(subscriptionId: number, id: number, status: string, timeoutMs = 15_000) {
      await eventually(
        async () => (await replayRow(subscriptionId, id)).status === status,
        timeoutMs,
        `replay ${id} to be ${status}`,
      );
      return replayRow(subscriptionId, id);
    }

    async function watermarkOf(id: number): Promise<number> {
      const { rows } = await t.db.query<{ watermark: number }>(
        "SELECT watermark FROM webhook_subscriptions WHERE id = $1",
        [id],
      );
      return rows[0]?.watermark ?? -1;
    }

    test(
      "ONE_BY_ONE: only matching events of the range, in order, as new signed pushes; watermark untouched",
      LIMIT,
      async () => {
        const r = await receiver();
        const sub = await leasedSubscription({
          targetUrl: r.url,
          onFields: ["counter"],
          // Only the engine applies conditions (the SQL pre-filter does not): the executor must too.
          conditions: { stateAfterOperation: [{ attribute: "counter", operator: "<", value: 5 }] },
        });
        const a = nextProfile++;
        const b = nextProfile++;
        const otherField = { ...profileUpdate(entity, a, 3), fields: ["emailAddress"] };
        const otherTable = { ...profileUpdate(entity, b, 9), sourceId: "2" };
        const events = [
          profileUpdate(entity, a, 1), // before the range
          profileUpdate(entity, a, 2),
          profileUpdate(entity, b, 1),
          otherField, // onFields does not match
          otherTable, // another table
          profileUpdate(entity, b, 7), // conditions do not hold
          profileUpdate(entity, b, 2),
          profileUpdate(entity, a, 4), // after the range
        ];
        const log = await stamped(events);
        const from = log[1]!.position;
        const to = log[6]!.position;
        const replay = (await insertReplay(t.db, {
          subscriptionId: sub.id,
          fromPosition: from,
          toPosition: to,
          fromTime: null,
        }))!;
        const h = host(sub, context(scaledClock(1_000)));
        executorFor(h).kick();
        const done = await until(sub.id, replay.id, "DONE");

        const expected = [log[1]!, log[2]!, log[6]!];
        const pushed = pushedEvents(r.requests);
        assert.deepEqual(
          pushed.map((p) => [p.eventId, p.position]),
          expected.map((e) => [`evt_${e.id}`, e.position]),
        );
        assert.deepEqual(
          pushed.map((p) => p.profileId),
          [String(a), String(b), String(b)],
        );
        const pushIds = r.requests.map((q) => String(q.headers["webhook-id"]));
        assert.equal(new Set(pushIds).size, 3, "one new push id per event");
        for (const q of r.requests) {
          const body = q.json as { id: string; data: unknown };
          assert.match(body.id, UUID);
          assert.equal(q.headers["webhook-id"], body.id);
          assert.ok(!Array.isArray(body.data), "ONE_BY_ONE data is one object");
          new Webhook(sub.secret).verify(q.body, {
            "webhook-id": String(q.headers["webhook-id"]),
            "webhook-timestamp": String(q.headers["webhook-timestamp"]),
            "webhook-signature": String(q.headers["webhook-signature"]),
          });
        }
        assert.equal(done.cursor, to);
        assert.equal(done.eventsSent, 3);
        assert.equal(done.workerId, WORKER);
        assert.ok(done.startedAt && done.finishedAt);
        assert.deepEqual(
          h.attempts.map((x) => [x.pushId, x.attempt, x.outcome, x.eventIds, x.firstPosition]),
          expected.map((e, i) => [pushIds[i], 1, "DELIVERED", [e.id], e.position]),
        );
        assert.equal(await watermarkOf(sub.id), 0, "a replay never moves the watermark");
      },
    );

    test("BULK: blocks of up to maxBlockSize in log order, across read pages", LIMIT, async () => {
      const r = await receiver();
      const sub = await leasedSubscription({
        targetUrl: r.url,
        pushMode: "BULK",
        maxBlockSize: 3,
      });
      const first = nextProfile++;
      const events: NewChangeEvent[] = [];
      for (let v = 1; v <= 8; v++) events.push(profileUpdate(entity, first + (v % 2), v));
      nextProfile++;
      const log = await stamped(events);
      const replay = (await insertReplay(t.db, {
        subscriptionId: sub.id,
        fromPosition: log[0]!.position,
        toPosition: log.at(-1)!.position,
        fromTime: null,
      }))!;
      // Pages of 2 events: blocks of 3 are filled from several pages.
      const h = host(sub, context(scaledClock(1_000), 2));
      executorFor(h).kick();
      const done = await until(sub.id, replay.id, "DONE");
      assert.deepEqual(
        r.requests.map((q) => (q.json as { data: unknown[] }).data.length),
        [3, 3, 2],
      );
      assert.deepEqual(
        pushedEvents(r.requests).map((p) => p.position),
        log.map((e) => e.position),
      );
      for (const q of r.requests)
        new Webhook(sub.secret).verify(q.body, {
          "webhook-id": String(q.headers["webhook-id"]),
          "webhook-timestamp": String(q.headers["webhook-timestamp"]),
          "webhook-signature": String(q.headers["webhook-signature"]),
        });
      assert.equal(done.eventsSent, 8);
      assert.equal(done.cursor, log.at(-1)!.position);
      assert.deepEqual(
        h.attempts.map((x) => x.eventIds.length),
        [3, 3, 2],
      );
    });

    test(
      "BULK: a block still filling from the next page holds the cursor below it",
      LIMIT,
      async () => {
        const r = await receiver();
        const sub = await leasedSubscription({
          targetUrl: r.url,
          pushMode: "BULK",
          maxBlockSize: 3,
        });
        const p = nextProfile++;
        const events: NewChangeEvent[] = [];
        for (let v = 1; v <= 8; v++) events.push(profileUpdate(entity, p, v));
        const log = await stamped(events);
        const replay = (await insertReplay(t.db, {
          subscriptionId: sub.id,
          fromPosition: log[0]!.position,
          toPosition: log.at(-1)!.position,
          fromTime: null,
        }))!;
        // Pages of 2 events: after the first block (events 1-3) the second has event 4 and waits.
        const h = host(sub, context(scaledClock(1_000), 2));
        r.respondWith(() => {
          h.pushAllowed = false;
          return undefined;
        });
        const executor = executorFor(h);
        executor.kick();
        await r.waitFor((reqs) => reqs.length >= 1, 10_000, "the first block");
        await eventually(
          async () => (await replayRow(sub.id, replay.id)).eventsSent === 3,
          5_000,
          "the first block's progress",
        );
        const paused = await replayRow(sub.id, replay.id);
        assert.equal(paused.cursor, log[2]!.position, "not past event 4, which is not sent yet");
        await executor.stop();
        assert.equal((await replayRow(sub.id, replay.id)).cursor, log[2]!.position);

        r.respondWith(() => undefined);
        const h2 = host(sub, context(scaledClock(1_000), 2));
        executorFor(h2).kick();
        const done = await until(sub.id, replay.id, "DONE");
        assert.equal(done.eventsSent, 8);
        assert.deepEqual(
          pushedEvents(r.requests).map((e) => e.position),
          log.map((e) => e.position),
          "every event once, in order, across the hand-over",
        );
      },
    );

    test(
      "a failing push is retried with the same push id on the retry schedule, then the replay goes on",
      LIMIT,
      async () => {
        const r = await receiver();
        let failures = 0;
        r.respondWith(() => {
          if (failures >= 3) return undefined;
          failures++;
          return failures === 2 ? { destroy: true } : { status: 503, body: "busy" };
        });
        const sub = await leasedSubscription({ targetUrl: r.url });
        const p = nextProfile++;
        const log = await stamped([profileUpdate(entity, p, 1), profileUpdate(entity, p, 2)]);
        const replay = (await insertReplay(t.db, {
          subscriptionId: sub.id,
          fromPosition: log[0]!.position,
          toPosition: log[1]!.position,
          fromTime: null,
        }))!;
        // 5 s, 30 s, 2 min of retry schedule pass in 5, 30 and 120 ms.
        const h = host(sub, context(scaledClock(1_000)));
        executorFor(h).kick();
        const done = await until(sub.id, replay.id, "DONE");
        const ids = r.requests.map((q) => String(q.headers["webhook-id"]));
        assert.equal(ids.length, 5);
        assert.equal(new Set(ids.slice(0, 4)).size, 1, "retries keep the push id");
        assert.notEqual(ids[4], ids[0]);
        assert.deepEqual(
          pushedEvents(r.requests).map((e) => e.position),
          [
            log[0]!.position,
            log[0]!.position,
            log[0]!.position,
            log[0]!.position,
            log[1]!.position,
          ],
        );
        assert.deepEqual(
          h.attempts.map((x) => [x.attempt, x.outcome, x.errorClass, x.statusCode]),
          [
            [1, "RETRY", "http_5xx", 503],
            [2, "RETRY", "connection_reset", null],
            [3, "RETRY", "http_5xx", 503],
            [4, "DELIVERED", null, 200],
            [1, "DELIVERED", null, 200],
          ],
        );
        assert.equal(h.attempts[0]!.responseExcerpt, "busy");
        assert.ok(h.attempts[0]!.nextAttemptAt);
        assert.equal(done.eventsSent, 2);
      },
    );

    test(
      "an exhausted push is recorded FAILED and the replay moves on; eventsSent counts delivered events",
      LIMIT,
      async () => {
        const r = await receiver();
        const sub = await leasedSubscription({ targetUrl: r.url });
        const bad = nextProfile++;
        const good = nextProfile++;
        r.respondWith((q) =>
          dataObjects(q.json)[0]!.profileId === String(bad) ? { status: 500 } : undefined,
        );
        const log = await stamped([profileUpdate(entity, bad, 1), profileUpdate(entity, good, 1)]);
        const replay = (await insertReplay(t.db, {
          subscriptionId: sub.id,
          fromPosition: log[0]!.position,
          toPosition: log[1]!.position,
          fromTime: null,
        }))!;
        // The whole schedule (about 3 days) in about 2.7 s.
        const h = host(sub, context(scaledClock(100_000)));
        executorFor(h).kick();
        const done = await until(sub.id, replay.id, "DONE", 30_000);
        const failed = h.attempts.filter((x) => x.firstPosition === log[0]!.position);
        assert.equal(failed.length, DEFAULT_RETRY_POLICY.scheduleMs.length);
        assert.equal(failed.at(-1)!.outcome, "FAILED");
        assert.ok(failed.slice(0, -1).every((x) => x.outcome === "RETRY"));
        assert.equal(h.attempts.at(-1)!.outcome, "DELIVERED");
        assert.equal(h.attempts.at(-1)!.firstPosition, log[1]!.position);
        assert.equal(done.eventsSent, 1);
        assert.equal(done.cursor, log[1]!.position);
      },
    );

    test(
      "cancelling (DELETE …/replays/{id}) stops it within about a second; what was sent stays sent",
      LIMIT,
      async () => {
        const r = await receiver();
        r.respondWith(() => ({ delayMs: 150 }));
        const sub = await leasedSubscription({ targetUrl: r.url });
        const p = nextProfile++;
        const events: NewChangeEvent[] = [];
        for (let v = 1; v <= 40; v++) events.push(profileUpdate(entity, p, v));
        const log = await stamped(events);
        const replay = (await insertReplay(t.db, {
          subscriptionId: sub.id,
          fromPosition: log[0]!.position,
          toPosition: log.at(-1)!.position,
          fromTime: null,
        }))!;
        const h = host(sub, context(systemClock));
        const executor = executorFor(h);
        executor.kick();
        await r.waitFor((reqs) => reqs.length >= 3, 10_000, "three replay pushes");
        await cancelReplay(t.db, sub.id, replay.id);
        const atCancel = r.requests.length;
        await new Promise((resolve) => setTimeout(resolve, 1_800));
        const settled = r.requests.length;
        await new Promise((resolve) => setTimeout(resolve, 800));
        assert.equal(r.requests.length, settled, "no push after the cancel was noticed");
        assert.ok(
          settled < 40,
          `stopped early (${settled} of 40 pushed, ${atCancel} at the cancel)`,
        );
        const row = await replayRow(sub.id, replay.id);
        assert.equal(row.status, "CANCELLED");
        assert.ok(row.cursor < log.at(-1)!.position);
        await executor.stop();
      },
    );

    test("a RUNNING replay left by another worker resumes at its cursor", LIMIT, async () => {
      const r = await receiver();
      const sub = await leasedSubscription({ targetUrl: r.url });
      const p = nextProfile++;
      const events: NewChangeEvent[] = [];
      for (let v = 1; v <= 5; v++) events.push(profileUpdate(entity, p, v));
      const log = await stamped(events);
      const replay = (await insertReplay(t.db, {
        subscriptionId: sub.id,
        fromPosition: log[0]!.position,
        toPosition: log[4]!.position,
        fromTime: null,
      }))!;
      await t.db.query(
        `UPDATE subscription_replays
            SET status = 'RUNNING', worker_id = 'gone-worker', cursor = $2, events_sent = 2,
                started_at = now() - interval '1 hour'
          WHERE id = $1`,
        [replay.id, log[1]!.position],
      );
      const h = host(sub, context(scaledClock(1_000)));
      executorFor(h).kick();
      const done = await until(sub.id, replay.id, "DONE");
      assert.deepEqual(
        pushedEvents(r.requests).map((e) => e.position),
        log.slice(2).map((e) => e.position),
      );
      assert.equal(done.eventsSent, 5);
      assert.equal(done.workerId, WORKER);
      assert.ok(Date.now() - done.startedAt!.getTime() > 30 * 60_000, "started_at is kept");
    });

    test(
      "no lease, no replay; a paused runner (mayPush false) pauses the replay without losing its place",
      LIMIT,
      async () => {
        const r = await receiver();
        const sub = await subscribe(t.db, entity, { targetUrl: r.url });
        const p = nextProfile++;
        const events: NewChangeEvent[] = [];
        for (let v = 1; v <= 4; v++) events.push(profileUpdate(entity, p, v));
        const log = await stamped(events);
        const replay = (await insertReplay(t.db, {
          subscriptionId: sub.id,
          fromPosition: log[0]!.position,
          toPosition: log[3]!.position,
          fromTime: null,
        }))!;
        const h = host(sub, context(scaledClock(1_000)));
        const executor = executorFor(h);
        executor.kick();
        await new Promise((resolve) => setTimeout(resolve, 300));
        assert.equal((await replayRow(sub.id, replay.id)).status, "PENDING", "not claimed");
        assert.equal(r.requests.length, 0);

        await t.db.query(
          `UPDATE webhook_subscriptions SET lease_owner = $2, lease_expires_at = now() + interval '10 minutes'
          WHERE id = $1`,
          [sub.id, WORKER],
        );
        h.pushAllowed = false;
        executor.kick();
        await new Promise((resolve) => setTimeout(resolve, 300));
        assert.equal(
          (await replayRow(sub.id, replay.id)).status,
          "PENDING",
          "no claim while paused",
        );

        // Pause after the second push: nothing more goes out until mayPush() is true again.
        h.pushAllowed = true;
        r.respondWith((q) => {
          if (q.index === 1) h.pushAllowed = false;
          return undefined;
        });
        executor.kick();
        await r.waitFor((reqs) => reqs.length >= 2, 10_000, "two pushes");
        await new Promise((resolve) => setTimeout(resolve, 1_500));
        assert.equal(r.requests.length, 2, "paused");
        const paused = await replayRow(sub.id, replay.id);
        assert.equal(paused.status, "RUNNING");
        assert.equal(paused.cursor, log[1]!.position, "progress is written while paused");
        assert.equal(paused.eventsSent, 2);
        h.pushAllowed = true;
        const done = await until(sub.id, replay.id, "DONE");
        assert.equal(done.eventsSent, 4);
        assert.deepEqual(
          pushedEvents(r.requests).map((e) => e.position),
          log.map((e) => e.position),
        );
      },
    );

    test(
      "stop() ends a retry wait at once and keeps the progress in the cursor; a new executor resumes",
      LIMIT,
      async () => {
        const r = await receiver();
        const sub = await leasedSubscription({ targetUrl: r.url });
        const p = nextProfile++;
        const events: NewChangeEvent[] = [];
        for (let v = 1; v <= 4; v++) events.push(profileUpdate(entity, p, v));
        const log = await stamped(events);
        let failing = true;
        r.respondWith((q) =>
          failing && q.index === 2
            ? { status: 503, headers: { "retry-after": "3600" } }
            : undefined,
        );
        const replay = (await insertReplay(t.db, {
          subscriptionId: sub.id,
          fromPosition: log[0]!.position,
          toPosition: log[3]!.position,
          fromTime: null,
        }))!;
        // Real time: the third push waits an hour for its retry.
        const h = host(sub, context(systemClock));
        const executor = executorFor(h);
        executor.kick();
        await eventually(() => h.attempts.length >= 3, 10_000, "the third attempt");
        const started = Date.now();
        await executor.stop();
        assert.ok(Date.now() - started < 1_000, "stop() does not wait for the retry");
        const row = await replayRow(sub.id, replay.id);
        assert.equal(row.status, "RUNNING");
        assert.equal(row.cursor, log[1]!.position);
        assert.equal(row.eventsSent, 2);
        executor.kick(); // a stopped executor starts nothing
        await new Promise((resolve) => setTimeout(resolve, 200));
        assert.equal(r.requests.length, 3);

        failing = false;
        const h2 = host(sub, context(systemClock));
        executorFor(h2).kick();
        const done = await until(sub.id, replay.id, "DONE");
        assert.equal(done.eventsSent, 4);
        assert.deepEqual(
          pushedEvents(r.requests).map((e) => e.position),
          [log[0], log[1], log[2], log[2], log[3]].map((e) => e!.position),
        );
      },
    );

    test(
      "410 Gone stops the replay at its cursor and tells the host; the executor runs nothing more",
      LIMIT,
      async () => {
        const r = await receiver();
        r.respondWith((q) => (q.index === 1 ? { status: 410, body: "gone" } : undefined));
        const sub = await leasedSubscription({ targetUrl: r.url });
        const p = nextProfile++;
        const log = await stamped([1, 2, 3].map((v) => profileUpdate(entity, p, v)));
        const replay = (await insertReplay(t.db, {
          subscriptionId: sub.id,
          fromPosition: log[0]!.position,
          toPosition: log[2]!.position,
          fromTime: null,
        }))!;
        const h = host(sub, context(scaledClock(1_000)));
        const executor = executorFor(h);
        executor.kick();
        await eventually(() => h.gone.length > 0, 10_000, "the endpoint-gone call");
        await new Promise((resolve) => setTimeout(resolve, 300));
        executor.kick();
        await new Promise((resolve) => setTimeout(resolve, 300));
        assert.equal(r.requests.length, 2, "nothing after the 410");
        assert.deepEqual(
          h.attempts.map((x) => [x.outcome, x.errorClass]),
          [
            ["DELIVERED", null],
            ["DISABLED", "http_410"],
          ],
        );
        await executor.stop();
        const row = await replayRow(sub.id, replay.id);
        assert.equal(row.status, "RUNNING", "stays open for after a re-activation");
        assert.equal(row.cursor, log[0]!.position);
      },
    );

    test("open replays run one after the other, oldest first", LIMIT, async () => {
      const r = await receiver();
      const sub = await leasedSubscription({ targetUrl: r.url });
      const p = nextProfile++;
      const log = await stamped([1, 2, 3].map((v) => profileUpdate(entity, p, v)));
      const first = (await insertReplay(t.db, {
        subscriptionId: sub.id,
        fromPosition: log[1]!.position,
        toPosition: log[2]!.position,
        fromTime: null,
      }))!;
      const second = (await insertReplay(t.db, {
        subscriptionId: sub.id,
        fromPosition: log[0]!.position,
        toPosition: log[0]!.position,
        fromTime: null,
      }))!;
      const h = host(sub, context(scaledClock(1_000)));
      executorFor(h).kick();
      await until(sub.id, second.id, "DONE");
      assert.equal((await replayRow(sub.id, first.id)).status, "DONE");
      assert.deepEqual(
        pushedEvents(r.requests).map((e) => e.position),
        [log[1]!.position, log[2]!.position, log[0]!.position],
      );
    });
  });
}
