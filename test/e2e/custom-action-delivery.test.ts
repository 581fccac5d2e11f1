/**
 * A custom action's TRIGGER as its receiver sees it (SPEC §7.4, §4): actions and subscriptions
 * made through the API, triggers through the trigger call, pushed by the real sequencer and
 * delivery worker to a real loopback receiver. A subscription naming one action (`onElementId`,
 * by name) receives that action's triggers only, in the order they were made; one without
 * `onElementId` receives every action's. Each push is signed, and its data object is the event the
 * trigger call answered, exactly as the change-events API shows it.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Webhook } from "standardwebhooks";
import type { DeliveryWorker } from "../../src/delivery/delivery-worker.js";
import type { TestApp } from "../helpers/test-app.js";
import { testBackends } from "../helpers/test-database.js";
import type { ReceivedRequest, WebhookReceiver } from "../helpers/webhook-receiver.js";
import type { ApiWithEngine } from "./api-with-engine.js";
import { startApiWithEngine } from "./api-with-engine.js";

const SUBSCRIPTIONS = "/v4/entity/acme/webhookSubscription";
const ACTIONS = "/v5/entities/acme/custom-actions";

interface Envelope {
  id: string;
  data: Record<string, unknown> & { _event: { id: string; type: string; position: number } };
  _links: { webhook: { href: string } };
}

for (const { backend, skip } of await testBackends()) {
  describe(`custom action triggers delivered to a receiver (${backend})`, { skip }, () => {
    let engine: ApiWithEngine;
    let t: TestApp;
    let worker: DeliveryWorker;
    let receiver: WebhookReceiver;
    let ann: number;
    let tableId: string;
    const secrets = new Map<string, string>();

    const subscribe = async (path: string, body: Record<string, unknown>) => {
      const response = await t.request("POST", SUBSCRIPTIONS, {
        targetUrl: `${receiver.url}/${path}`,
        on: "CUSTOM_ACTION",
        eventType: "TRIGGER",
        ...body,
      });
      assert.equal(response.statusCode, 201, response.body);
      const created = response.json<{ id: number; secret: string; onElementId: string | null }>();
      secrets.set(`/hook/${path}`, created.secret);
      return created;
    };
    const at = (path: string) => receiver.requests.filter((r) => r.path === `/hook/${path}`);
    const verified = (request: ReceivedRequest): Envelope => {
      const secret = secrets.get(request.path);
      assert.ok(secret, `no subscription posts to ${request.path}`);
      new Webhook(secret).verify(request.body, request.headers as Record<string, string>);
      return request.json as Envelope;
    };
    const trigger = async (action: string, parameters: Record<string, unknown>) => {
      const response = await t.request("POST", `${ACTIONS}/${action}/trigger`, {
        profileTable: "Customers",
        profileKey: "emailAddress=ann@example.com",
        parameters,
      });
      assert.equal(response.statusCode, 202, response.body);
      return response.json<{ eventId: string }>().eventId;
    };

    before(async () => {
      engine = await startApiWithEngine(backend, `custom-actions-${backend}`);
      ({ app: t, worker, receiver } = engine);
      const table = await t.request("POST", "/v5/entities/acme/profile-tables", {
        name: "Customers",
        attributes: [
          { name: "emailAddress", type: "EMAIL_ADDRESS", unique: true, mandatory: true },
          { name: "tier", type: "CUSTOM", valueType: "STRING" },
        ],
      });
      assert.equal(table.statusCode, 201, table.body);
      tableId = table.json<{ id: string }>().id;
      const written = await t.request(
        "PUT",
        "/v5/entities/acme/profile-tables/Customers/profiles",
        {
          key: { emailAddress: "ann@example.com" },
          attributes: { tier: "Gold" },
        },
      );
      assert.equal(written.statusCode, 201, written.body);
      ann = written.json<{ profileId: number }>().profileId;
      for (const body of [
        { name: "send-to-crm", parameters: [{ name: "campaignId", mandatory: true }] },
        { name: "notify-shop" },
      ]) {
        const created = await t.request("POST", ACTIONS, body);
        assert.equal(created.statusCode, 201, created.body);
      }
    });
    after(() => engine?.close());

    test("a subscription naming an action gets its TRIGGERs in order; one naming none gets all", async () => {
      const crm = (await t.request("GET", `${ACTIONS}/send-to-crm`)).json<{ id: string }>().id;
      const one = await subscribe("crm", { onElementId: "send-to-crm" });
      assert.equal(one.onElementId, crm, "stored by id");
      const all = await subscribe("all", {});
      assert.equal(all.onElementId, null);
      worker.wake();

      const first = await trigger("send-to-crm", { campaignId: "111" });
      const other = await trigger("notify-shop", {});
      const second = await trigger("send-to-crm", { campaignId: "222" });

      await receiver.waitFor(
        () => at("crm").length >= 2 && at("all").length >= 3,
        15_000,
        "every TRIGGER push",
      );
      const crmPushes = at("crm").map(verified);
      assert.equal(crmPushes.length, 2, "the other action's trigger is not this subscription's");
      // One profile's triggers of one action are pushed one after the other, in log order.
      assert.deepEqual(
        crmPushes.map((p) => [p.data._event.id, p.data["actionParameters.campaignId"]]),
        [
          [first, "111"],
          [second, "222"],
        ],
      );
      for (const push of crmPushes)
        assert.equal(push._links.webhook.href, `/webhooks${SUBSCRIPTIONS}/${one.id}`);
      assert.deepEqual(
        at("all")
          .map(verified)
          .map((p) => p.data._event.id)
          .sort(),
        [first, other, second].sort(),
      );

      // The pushed object is the event as the pull API shows it, with §7.4's keys.
      const pushed = crmPushes[0]!.data;
      const pulled = (
        await t.request(
          "GET",
          `/v5/entities/acme/change-events?on=CUSTOM_ACTION&onElementId=${crm}`,
        )
      ).json<{ events: Record<string, unknown>[] }>().events;
      // (The pull API adds `_event.previous`, which a push has only with includePrevious.)
      const { previous, ...pulledBlock } = pulled[0]!._event as Record<string, unknown>;
      assert.deepEqual(previous, {});
      assert.deepEqual(pushed, { ...pulled[0], _event: pulledBlock });
      assert.equal(pushed["customAction.id"], crm);
      assert.equal(pushed["customAction.name"], "send-to-crm");
      assert.equal(pushed["profileAttributes.profileId"], String(ann));
      assert.equal(pushed["profileAttributes.emailAddress"], "ann@example.com");
      assert.equal(pushed["profileAttributes.tier"], "Gold");
      assert.equal(pushed._event.type, "TRIGGER");
      assert.equal("scenario.id" in pushed, false);
      assert.deepEqual(pushed._links, {
        self: { href: `${ACTIONS}/${crm}` },
        profile: { href: `/profiles/v4/entity/acme/table/${tableId}/profile/${ann}` },
        customAction: { href: `${ACTIONS}/${crm}` },
      });
    });
  });
}
