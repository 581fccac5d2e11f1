/**
 * `payloadVersion: 1` as a receiver sees it (SPEC §4 [ext]): subscriptions created through the API,
 * data written through the API, pushed by the real sequencer and worker to a real loopback receiver.
 * Version 1 pushes carry the older Actito event objects (`tableType`, `tableId`, `eventType`,
 * `data.id`, `data.businessKey`) in the same signed envelope as version 2, one by one or in BULK
 * blocks; the `…/test` push of a version 1 subscription is shaped alike.
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

interface Envelope {
  id: string;
  data: unknown;
  _links: { webhook: { href: string } };
}

interface EventObjectV1 {
  tableType: string;
  tableId: string;
  eventType: string;
  data: Record<string, unknown> & { id: string; businessKey: string };
  _links: { self: { href: string } };
  _event: { id: string; type: string; position: number };
}

for (const { backend, skip } of await testBackends()) {
  describe(`payload version 1 delivered to a receiver (${backend})`, { skip }, () => {
    let engine: ApiWithEngine;
    let t: TestApp;
    let worker: DeliveryWorker;
    let receiver: WebhookReceiver;
    let customers: string;
    let orders: string;
    const secrets = new Map<string, string>();

    /** Creates a subscription posting to `<receiver>/<path>`; remembers its secret by path. */
    const subscribe = async (path: string, body: Record<string, unknown>) => {
      const response = await t.request("POST", SUBSCRIPTIONS, {
        targetUrl: `${receiver.url}/${path}`,
        ...body,
      });
      assert.equal(response.statusCode, 201, response.body);
      const created = response.json() as { id: number; secret: string; payloadVersion: number };
      secrets.set(`/hook/${path}`, created.secret);
      return created;
    };
    const at = (path: string) => receiver.requests.filter((r) => r.path === `/hook/${path}`);
    /** The envelope of a request, after checking its Standard Webhooks signature. */
    const verified = (request: ReceivedRequest): Envelope => {
      const secret = secrets.get(request.path);
      assert.ok(secret, `no subscription posts to ${request.path}`);
      new Webhook(secret).verify(request.body, request.headers as Record<string, string>);
      assert.equal(request.headers["webhook-id"], (request.json as Envelope).id);
      return request.json as Envelope;
    };

    before(async () => {
      engine = await startApiWithEngine(backend, `payload-v1-${backend}`);
      ({ app: t, worker, receiver } = engine);
      const profileTable = await t.request("POST", "/v5/entities/acme/profile-tables", {
        name: "Customers",
        attributes: [
          { name: "emailAddress", type: "EMAIL_ADDRESS", unique: true, mandatory: true },
          { name: "firstName", type: "FIRSTNAME" },
        ],
      });
      assert.equal(profileTable.statusCode, 201, profileTable.body);
      customers = (profileTable.json() as { id: string }).id;
      const customTable = await t.request("POST", "/v5/entities/acme/custom-tables", {
        name: "Orders",
        type: "INTERACTIONS",
        primaryKeyAttribute: "orderId",
        attributes: [
          { name: "orderId", valueType: "STRING", mandatory: true, unique: true },
          { name: "status", valueType: "STRING" },
        ],
      });
      assert.equal(customTable.statusCode, 201, customTable.body);
      orders = (customTable.json() as { id: string }).id;
    });
    after(() => engine?.close());

    test("ONE_BY_ONE and BULK pushes carry version 1 event objects in the signed envelope", async () => {
      const oneV1 = await subscribe("one-v1", {
        on: "PROFILE_TABLE",
        onElementId: "Customers",
        eventType: "CREATE",
        payloadVersion: 1,
      });
      assert.equal(oneV1.payloadVersion, 1);
      await subscribe("one-v2", {
        on: "PROFILE_TABLE",
        onElementId: customers,
        eventType: "CREATE",
      });
      await subscribe("update-v1", {
        on: "PROFILE_TABLE",
        onElementId: customers,
        eventType: "UPDATE",
        payloadVersion: 1,
      });
      const bulk = await subscribe("bulk-v1", {
        on: "CUSTOM_TABLE",
        onElementId: orders,
        eventType: "CREATE",
        payloadVersion: 1,
        pushMode: "BULK",
        maxBlockSize: 10,
        lingerMs: 200,
      });
      worker.wake();

      const profileIds: number[] = [];
      for (const [email, name] of [
        ["ann@example.com", "Ann"],
        ["bob@example.com", "Bob"],
      ]) {
        const written = await t.request("POST", "/v4/entity/acme/table/Customers/profile", {
          attributes: [
            { name: "emailAddress", value: email },
            { name: "firstName", value: name },
          ],
        });
        assert.equal(written.statusCode, 200, written.body);
        profileIds.push((written.json() as { profileId: number }).profileId);
      }
      const changed = await t.request(
        "PUT",
        `/v4/entity/acme/table/Customers/profile/${profileIds[0]}`,
        { attributes: [{ name: "firstName", value: "Anna" }] },
      );
      assert.equal(changed.statusCode, 200, changed.body);
      for (const orderId of ["O-1", "O-2", "O-3"]) {
        const written = await t.request("POST", "/v4/entity/acme/customTable/Orders/record", {
          properties: [
            { name: "orderId", value: orderId },
            { name: "status", value: "NEW" },
          ],
        });
        assert.equal(written.statusCode, 200, written.body);
      }

      await receiver.waitFor(
        () =>
          at("one-v1").length >= 2 &&
          at("one-v2").length >= 2 &&
          at("update-v1").length >= 1 &&
          at("bulk-v1").flatMap((r) => (r.json as { data: unknown[] }).data).length >= 3,
        15_000,
        "every push",
      );

      // ONE_BY_ONE: one version 1 object per push, in the version 2 envelope.
      const ones = at("one-v1").map(verified);
      for (const envelope of ones) {
        assert.deepEqual(Object.keys(envelope), ["id", "data", "_links"]);
        assert.equal(
          envelope._links.webhook.href,
          `/webhooks/v4/entity/acme/webhookSubscription/${oneV1.id}`,
        );
      }
      // Two records are pushed side by side, so they may arrive in either order: compare in log order.
      const objects = ones
        .map((e) => e.data as EventObjectV1)
        .sort((a, b) => a._event.position - b._event.position);
      assert.deepEqual(
        objects.map((o) => [o.tableType, o.tableId, o.eventType, o.data.id, o.data.businessKey]),
        profileIds.map((id) => ["PROFILE_TABLE", customers, "CREATE", String(id), String(id)]),
      );
      assert.deepEqual(objects[0]!.data, {
        id: String(profileIds[0]),
        businessKey: String(profileIds[0]),
        profileId: String(profileIds[0]),
        emailAddress: "ann@example.com",
        firstName: "Ann",
      });
      assert.equal(objects[0]!._event.type, "CREATE");

      // The same events, version 2: the flat object, whose attributes and blocks version 1 keeps.
      const flat = at("one-v2")
        .map((r) => verified(r).data as Record<string, unknown> & { _event: { position: number } })
        .sort((a, b) => a._event.position - b._event.position);
      assert.deepEqual(
        flat.map(({ _links, _event, ...attributes }) => ({ attributes, _links, _event })),
        objects.map(({ data: { id: _id, businessKey: _key, ...attributes }, _links, _event }) => ({
          attributes,
          _links,
          _event,
        })),
      );
      assert.equal("tableId" in flat[0]!, false);

      // UPDATE: the changed attribute and the keys.
      const update = verified(at("update-v1")[0]!).data as EventObjectV1;
      assert.equal(update.eventType, "UPDATE");
      assert.deepEqual(update.data, {
        id: String(profileIds[0]),
        businessKey: String(profileIds[0]),
        profileId: String(profileIds[0]),
        emailAddress: "ann@example.com",
        firstName: "Anna",
      });

      // BULK: the envelope's data is an array of version 1 objects, in log order.
      const blocks = at("bulk-v1").map(verified);
      const items = blocks
        .flatMap((b) => {
          assert.ok(Array.isArray(b.data), "a BULK push's data is an array");
          assert.equal(
            b._links.webhook.href,
            `/webhooks/v4/entity/acme/webhookSubscription/${bulk.id}`,
          );
          return b.data as EventObjectV1[];
        })
        .sort((a, b) => a._event.position - b._event.position);
      assert.deepEqual(
        items.map((o) => [o.tableType, o.tableId, o.eventType, o.data.id, o.data.businessKey]),
        ["O-1", "O-2", "O-3"].map((key) => ["CUSTOM_TABLE", orders, "CREATE", key, key]),
      );
      assert.deepEqual(items[0]!.data, {
        id: "O-1",
        businessKey: "O-1",
        orderId: "O-1",
        status: "NEW",
      });
    });

    test("the test push of a version 1 subscription is a version 1 object, in a block for BULK", async () => {
      for (const pushMode of ["ONE_BY_ONE", "BULK"]) {
        const path = `test-${pushMode}`;
        const created = await subscribe(path, {
          on: "CUSTOM_TABLE",
          onElementId: orders,
          eventType: "CREATE",
          payloadVersion: 1,
          pushMode,
          isActive: false,
        });
        const sent = await t.request("POST", `${SUBSCRIPTIONS}/${created.id}/test`);
        assert.equal(sent.statusCode, 200, sent.body);
        assert.equal((sent.json() as { delivered: boolean }).delivered, true, sent.body);
        const [request] = at(path);
        assert.ok(request, "the test push arrived");
        const envelope = verified(request) as Envelope & { test: boolean };
        assert.equal(envelope.test, true);
        const object = (
          pushMode === "BULK" ? (envelope.data as EventObjectV1[])[0] : envelope.data
        ) as EventObjectV1 & { _event: { test: boolean } };
        assert.equal(Array.isArray(envelope.data), pushMode === "BULK");
        assert.deepEqual(
          [object.tableType, object.tableId, object.eventType],
          ["CUSTOM_TABLE", orders, "CREATE"],
        );
        assert.equal(object.data.id, "sample orderId");
        assert.equal(object.data.businessKey, "sample orderId");
        assert.equal(object._event.test, true);
      }
    });
  });
}
