/**
 * Replay as a user drives it and a receiver sees it: events delivered live by the running worker,
 * then `POST …/replay` through the API; the same worker re-sends the matching events of the range as
 * new signed pushes (checked with the standardwebhooks package), the replay's progress shows in
 * `GET …/replays`, its pushes in `…/attempts`, and the subscription's watermark does not move.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Webhook } from "standardwebhooks";
import type { DeliveryWorker } from "../../src/delivery/delivery-worker.js";
import type { TestApp } from "../helpers/test-app.js";
import type { ApiWithEngine } from "./api-with-engine.js";
import { startApiWithEngine } from "./api-with-engine.js";
import { testBackends } from "../helpers/test-database.js";
import type { ReceivedRequest, WebhookReceiver } from "../helpers/webhook-receiver.js";
import { startWebhookReceiver } from "../helpers/webhook-receiver.js";
import { append, dataObjects, eventually, profileUpdate, subscribe } from "./delivery-fixtures.js";

interface Replay {
  id: number;
  status: string;
  cursor: number;
  toPosition: number;
  eventsSent: number;
}

/** `[_event.id, position]` of every event a request carried. */
function eventsOf(request: ReceivedRequest): [string, number][] {
  return dataObjects(request.json).map((data) => {
    const block = data._event as { id: string; position: number };
    return [block.id, block.position];
  });
}

for (const { backend, skip } of await testBackends()) {
  describe(`replay seen by a receiver (${backend})`, { skip }, () => {
    let engine: ApiWithEngine;
    let t: TestApp;
    let worker: DeliveryWorker;
    let receiver: WebhookReceiver;

    before(async () => {
      engine = await startApiWithEngine(backend, `replay-${backend}`);
      ({ app: t, worker, receiver } = engine);
    });
    after(() => engine?.close());

    test("POST …/replay re-sends the range's matching events as new signed pushes; the watermark stays", async () => {
      const db = t.database.db;
      const { rows } = await db.query<{ id: number }>(
        "SELECT id FROM entities WHERE name = 'acme'",
      );
      const entity = rows[0]!.id;
      const subscription = await subscribe(db, entity, {
        targetUrl: receiver.url,
        onFields: ["counter"],
      });
      worker.wake();
      const base = `/v4/entity/acme/webhookSubscription/${subscription.id}`;

      // Live: 6 matching events of two records, and one the subscription does not want.
      for (let v = 1; v <= 3; v++) {
        await append(db, [profileUpdate(entity, 1, v), profileUpdate(entity, 2, v)]);
        if (v === 2)
          await append(db, [{ ...profileUpdate(entity, 3, 1), fields: ["emailAddress"] }]);
      }
      await receiver.waitFor((r) => r.length >= 6, 15_000, "the six live pushes");
      const live = receiver.requests.slice(0, 6);
      const livePushIds = new Set(live.map((q) => String(q.headers["webhook-id"])));
      const liveEvents = live.flatMap(eventsOf).sort((a, b) => a[1] - b[1]);
      const watermark = async () =>
        (
          await db.query<{ watermark: number }>(
            "SELECT watermark FROM webhook_subscriptions WHERE id = $1",
            [subscription.id],
          )
        ).rows[0]!.watermark;
      const head = liveEvents.at(-1)![1];
      await eventually(async () => (await watermark()) >= head, 10_000, "the watermark");
      const watermarkBefore = await watermark();

      // Replay from the third matching event to the head.
      const from = liveEvents[2]![1];
      const posted = await t.request("POST", `${base}/replay`, { fromPosition: from });
      assert.equal(posted.statusCode, 202, posted.body);
      const replay = posted.json() as Replay;
      let done: Replay | undefined;
      await eventually(
        async () => {
          const list = (await t.request("GET", `${base}/replays`)).json() as { replays: Replay[] };
          done = list.replays.find((r) => r.id === replay.id && r.status === "DONE");
          return done !== undefined;
        },
        15_000,
        "the replay to finish",
      );
      assert.equal(done!.eventsSent, 4);
      assert.equal(done!.cursor, done!.toPosition);

      const replayed = receiver.requests.slice(6);
      assert.equal(replayed.length, 4, "one new push per replayed event, nothing else");
      assert.deepEqual(replayed.flatMap(eventsOf), liveEvents.slice(2), "same events, log order");
      for (const q of replayed) {
        const pushId = String(q.headers["webhook-id"]);
        assert.ok(!livePushIds.has(pushId), "a replay push has a new push id");
        assert.equal((q.json as { id: string }).id, pushId);
        new Webhook(subscription.secret).verify(q.body, q.headers as Record<string, string>);
      }
      assert.equal(await watermark(), watermarkBefore, "a replay does not move the watermark");

      // Its pushes are in the attempts log, delivered.
      await eventually(
        async () => {
          const attempts = (
            (await t.request("GET", `${base}/attempts?pageSize=100`)).json() as {
              attempts: { pushId: string; outcome: string }[];
            }
          ).attempts;
          return replayed.every((q) =>
            attempts.some((a) => a.pushId === q.headers["webhook-id"] && a.outcome === "DELIVERED"),
          );
        },
        5_000,
        "the replay attempts in …/attempts",
      );
    });

    test("a 410 Gone answer to a replay push switches the subscription off; the replay waits at its cursor", async () => {
      const db = t.database.db;
      const { rows } = await db.query<{ id: number }>(
        "SELECT id FROM entities WHERE name = 'acme'",
      );
      const entity = rows[0]!.id;
      const gone = await startWebhookReceiver();
      try {
        const subscription = await subscribe(db, entity, { targetUrl: gone.url });
        worker.wake();
        const base = `/v4/entity/acme/webhookSubscription/${subscription.id}`;
        await append(db, [profileUpdate(entity, 40, 1)]);
        await append(db, [profileUpdate(entity, 41, 1)]);
        await gone.waitFor((r) => r.length >= 2, 15_000, "the two live pushes");
        const first = eventsOf(gone.requests[0]!)[0]![1];

        gone.respondWith(() => ({ status: 410, body: "gone" }));
        const posted = await t.request("POST", `${base}/replay`, { fromPosition: first });
        assert.equal(posted.statusCode, 202, posted.body);
        const replay = posted.json() as Replay;
        await eventually(
          async () => {
            const sub = (await t.request("GET", base)).json() as { status: { state: string } };
            return sub.status.state === "DISABLED";
          },
          15_000,
          "the subscription to be disabled",
        );
        assert.equal(gone.requests.length, 3, "one replay push, then nothing");
        const list = (await t.request("GET", `${base}/replays`)).json() as { replays: Replay[] };
        const row = list.replays.find((r) => r.id === replay.id)!;
        assert.equal(row.status, "RUNNING", "open, to resume after a re-activation");
        assert.equal(row.cursor, first - 1);
        assert.equal(row.eventsSent, 0);
      } finally {
        await gone.close();
      }
    });
  });
}
