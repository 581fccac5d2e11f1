/**
 * Secret rotation as a receiver sees it: after `POST …/rotate-secret`, the running delivery worker
 * signs real pushes with both secrets during the grace period, so a receiver still holding the old
 * secret and one already on the new secret both verify them (the standardwebhooks package).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Webhook } from "standardwebhooks";
import type { DeliveryWorker } from "../../src/delivery/delivery-worker.js";
import type { TestApp } from "../helpers/test-app.js";
import type { ApiWithEngine } from "./api-with-engine.js";
import { startApiWithEngine } from "./api-with-engine.js";
import { testBackends } from "../helpers/test-database.js";
import type { WebhookReceiver } from "../helpers/webhook-receiver.js";
import { append, profileUpdate, subscribe } from "./delivery-fixtures.js";

for (const { backend, skip } of await testBackends()) {
  describe(`secret rotation seen by a receiver (${backend})`, { skip }, () => {
    let engine: ApiWithEngine;
    let t: TestApp;
    let worker: DeliveryWorker;
    let receiver: WebhookReceiver;

    before(async () => {
      engine = await startApiWithEngine(backend, `rotation-${backend}`);
      ({ app: t, worker, receiver } = engine);
    });
    after(() => engine?.close());

    test("pushes verify under the old and the new secret during the grace period", async () => {
      const db = t.database.db;
      const { rows } = await db.query<{ id: number }>(
        "SELECT id FROM entities WHERE name = 'acme'",
      );
      const entity = rows[0]!.id;
      const subscription = await subscribe(db, entity, { targetUrl: receiver.url });
      worker.wake();
      const base = `/v4/entity/acme/webhookSubscription/${subscription.id}`;

      await append(db, [profileUpdate(entity, 1, 2)]);
      await receiver.waitFor((r) => r.length >= 1, 10_000, "the push before rotation");
      const first = receiver.requests[0]!;
      new Webhook(subscription.secret).verify(first.body, first.headers as Record<string, string>);

      const rotated = await t.request("POST", `${base}/rotate-secret`);
      assert.equal(rotated.statusCode, 200, rotated.body);
      const { secret: newSecret } = rotated.json() as { secret: string };
      // The worker re-reads its subscriptions at its next lease renewal (woken here, or within
      // 200 ms): push one event at a time until a push carries the rotated signatures.
      worker.wake();
      let second: (typeof receiver.requests)[number] | undefined;
      for (let profile = 2; profile < 40 && !second; profile++) {
        const before = receiver.requests.length;
        await append(db, [profileUpdate(entity, profile, 2)]);
        await receiver.waitFor((r) => r.length > before, 10_000, `the push of profile ${profile}`);
        const latest = receiver.requests.at(-1)!;
        if (String(latest.headers["webhook-signature"]).split(" ").length === 2) second = latest;
      }
      assert.ok(second, "no push was signed with two secrets");
      const headers = second.headers as Record<string, string>;
      new Webhook(newSecret).verify(second.body, headers);
      new Webhook(subscription.secret).verify(second.body, headers);
    });
  });
}
