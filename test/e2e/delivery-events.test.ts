/**
 * Every event type through Herald as users run it (`node bin/herald.mjs start`, embedded database,
 * HERALD_ALLOW_INSECURE_TARGETS=true): written through the API, pushed to a loopback receiver,
 * checked field by field against SPEC §5, signatures verified as a receiver would with the
 * `standardwebhooks` package, and each subscription receiving exactly its events and no other.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Webhook } from "standardwebhooks";
import type { ReceivedRequest, WebhookReceiver } from "../helpers/webhook-receiver.js";
import { startWebhookReceiver } from "../helpers/webhook-receiver.js";
import type { HeraldProcess } from "./delivery-fixtures.js";
import { apiUrlOf, dataObjects, eventually, startHeraldProcess } from "./delivery-fixtures.js";

const ADMIN_KEY = "hk_delivery_tests_admin_key_0123456789";

const PROFILE_TABLE = {
  name: "Customers",
  attributes: [
    { name: "emailAddress", type: "EMAIL_ADDRESS", unique: true, mandatory: true },
    { name: "firstName", type: "FIRSTNAME" },
    { name: "age", type: "CUSTOM", valueType: "INTEGER" },
  ],
  subscriptions: [{ name: "newsletter" }],
  segmentations: [{ name: "Active", type: "SIMPLE" }],
};

const ORDERS = {
  name: "Orders",
  type: "INTERACTIONS",
  primaryKeyAttribute: "orderId",
  attributes: [
    { name: "orderId", valueType: "STRING", mandatory: true, unique: true },
    {
      name: "status",
      valueType: "STRING",
      valueRestriction: { acceptedValues: ["NEW", "SHIPPED"] },
    },
    { name: "amount", valueType: "NUMBER" },
  ],
  eventsToTrigger: [
    {
      name: "order-shipped",
      triggerRules: [
        {
          onOperation: "UPDATE",
          onAnyAttribute: ["status"],
          matchingConditions: {
            stateBeforeOperation: [{ attribute: "status", operator: "!=", value: "SHIPPED" }],
            stateAfterOperation: [{ attribute: "status", operator: "=", value: "SHIPPED" }],
          },
        },
      ],
    },
  ],
};

type Json = Record<string, unknown>;

describe("every event type reaches exactly its subscriptions (herald start subprocess)", () => {
  let herald: HeraldProcess;
  let receiver: WebhookReceiver;
  let api: string;
  let token: string;
  let dataDir: string;
  const secrets = new Map<string, string>();
  const subscriptionIds = new Map<string, number>();

  const call = async (method: string, path: string, body?: unknown): Promise<Json> => {
    const response = await fetch(`${api}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    assert.ok(response.ok, `${method} ${path} → ${response.status} ${text}`);
    return text ? (JSON.parse(text) as Json) : {};
  };
  const at = (name: string): ReceivedRequest[] =>
    receiver.requests.filter((q) => q.path === `/hook/${name}`);
  const events = (name: string): Json[] => at(name).flatMap((q) => dataObjects(q.json));

  before(async () => {
    receiver = await startWebhookReceiver();
    dataDir = mkdtempSync(join(tmpdir(), "herald-delivery-"));
    herald = startHeraldProcess("", "api,sequencer,worker", {
      DATABASE_URL: "",
      HERALD_DATA_DIR: dataDir,
      HERALD_LOG_LEVEL: "info",
    });
    api = await apiUrlOf(herald, 180_000);
    const auth = await fetch(`${api}/auth/token`, { headers: { authorization: ADMIN_KEY } });
    token = ((await auth.json()) as { accessToken: string }).accessToken;
  });

  after(async () => {
    if (herald && herald.child.exitCode === null) await herald.kill("SIGKILL");
    await receiver?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  test("profile and custom-table events, field by field, signed", { timeout: 60_000 }, async () => {
    const table = await call("POST", "/v5/entities/acme/profile-tables", PROFILE_TABLE);
    const orders = await call("POST", "/v5/entities/acme/custom-tables", ORDERS);
    const profileTable = String(table.id);
    const ordersTable = String(orders.id);
    const subscriptions: [string, Json][] = [
      ["p-create", { on: "PROFILE_TABLE", onElementId: profileTable, eventType: "CREATE" }],
      [
        "p-update",
        {
          on: "PROFILE_TABLE",
          onElementId: profileTable,
          eventType: "UPDATE",
          includePrevious: true,
        },
      ],
      [
        "p-update-first-name",
        {
          on: "PROFILE_TABLE",
          onElementId: profileTable,
          eventType: "UPDATE",
          onFields: ["firstName"],
        },
      ],
      ["p-delete", { on: "PROFILE_TABLE", onElementId: profileTable, eventType: "DELETE" }],
      [
        "p-subscription",
        { on: "PROFILE_TABLE", onElementId: profileTable, eventType: "UPDATED_SUBSCRIPTION" },
      ],
      [
        "p-segment",
        { on: "PROFILE_TABLE", onElementId: profileTable, eventType: "UPDATED_SEGMENT" },
      ],
      ["c-create", { on: "CUSTOM_TABLE", onElementId: ordersTable, eventType: "CREATE" }],
      ["c-update", { on: "CUSTOM_TABLE", onElementId: ordersTable, eventType: "UPDATE" }],
      ["c-delete", { on: "CUSTOM_TABLE", onElementId: ordersTable, eventType: "DELETE" }],
      [
        "c-create-bulk",
        {
          on: "CUSTOM_TABLE",
          onElementId: ordersTable,
          eventType: "CREATE",
          pushMode: "BULK",
          maxBlockSize: 2,
          lingerMs: 3000,
          maxWaitMs: 6000,
        },
      ],
    ];
    for (const [name, body] of subscriptions) {
      const created = await call("POST", "/v4/entity/acme/webhookSubscription", {
        ...body,
        targetUrl: `${receiver.url}/${name}`,
        isActive: true,
        headers: { "x-subscription": name },
      });
      secrets.set(name, String(created.secret));
      subscriptionIds.set(name, Number(created.id));
    }

    const profiles = `/v4/entity/acme/table/${profileTable}/profile`;
    const created = await call("POST", profiles, {
      attributes: [
        { name: "emailAddress", value: "ann@example.com" },
        { name: "firstName", value: "Ann" },
      ],
      subscriptions: [{ name: "newsletter", subscribe: true }],
      segmentations: [{ belongs: true, segmentation: { category: "Active", name: "Active" } }],
    });
    const profileId = String(created.profileId);
    await call("PUT", `${profiles}/${profileId}`, { attributes: [{ name: "age", value: "42" }] });
    await call("PUT", `${profiles}/${profileId}`, {
      attributes: [{ name: "firstName", value: "Anna" }],
    });
    await call("DELETE", `${profiles}/${profileId}`);
    const records = `/v4/entity/acme/customTable/${ordersTable}/record`;
    const property = (name: string, value: unknown) => ({ name, value });
    await call("POST", records, {
      properties: [property("orderId", "o1"), property("status", "NEW"), property("amount", 10)],
    });
    await call("PUT", `${records}/o1`, { properties: [property("amount", 20)] }); // no declared event
    await call("PUT", `${records}/o1`, { properties: [property("status", "SHIPPED")] });
    await call("POST", records, {
      properties: [property("orderId", "o2"), property("status", "NEW")],
    });
    await call("DELETE", `${records}/o1`);

    const expected: Record<string, number> = {
      "p-create": 1,
      "p-update": 2,
      "p-update-first-name": 1,
      "p-delete": 1,
      "p-subscription": 1,
      "p-segment": 1,
      "c-create": 2,
      "c-update": 1,
      "c-delete": 1,
      "c-create-bulk": 2,
    };
    await eventually(
      () => Object.entries(expected).every(([name, n]) => events(name).length >= n),
      30_000,
      "every subscription's events",
    );
    // Anything wrongly routed would have arrived with the rest; give stragglers a moment.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    for (const [name, n] of Object.entries(expected))
      assert.equal(events(name).length, n, `${name} receives exactly its ${n} event(s)`);
    assert.equal(receiver.requests.length, 12, "c-create-bulk sent its two creates as one block");
    assert.equal(at("c-create-bulk").length, 1);

    for (const q of receiver.requests) {
      const name = q.path.slice("/hook/".length);
      const envelope = q.json as Json;
      assert.deepEqual(Object.keys(envelope).sort(), ["_links", "data", "id"]);
      assert.equal(q.headers["webhook-id"], envelope.id);
      assert.equal(q.headers["x-subscription"], name);
      assert.equal(q.headers["content-type"], "application/json");
      assert.deepEqual(envelope._links, {
        webhook: {
          href: `/webhooks/v4/entity/acme/webhookSubscription/${subscriptionIds.get(name)}`,
        },
      });
      const verified = new Webhook(secrets.get(name)!).verify(q.body, {
        "webhook-id": String(q.headers["webhook-id"]),
        "webhook-timestamp": String(q.headers["webhook-timestamp"]),
        "webhook-signature": String(q.headers["webhook-signature"]),
      });
      assert.deepEqual(verified, envelope);
      assert.equal(Array.isArray(envelope.data), name === "c-create-bulk");
      for (const data of dataObjects(envelope)) {
        const block = data._event as Json;
        assert.match(String(block.id), /^evt_\d+$/);
        assert.equal(typeof block.position, "number");
        assert.ok(!Number.isNaN(Date.parse(String(block.occurredAt))));
        assert.equal((block.origin as Json).kind, "API_KEY");
      }
    }

    const profileHref = `/profiles/v4/entity/acme/table/${profileTable}/profile/${profileId}`;
    const [create] = events("p-create");
    assert.equal(create!.profileId, profileId);
    assert.equal(create!.emailAddress, "ann@example.com");
    assert.equal(create!.firstName, "Ann");
    assert.deepEqual(create!._links, { self: { href: profileHref } });
    const createBlock = create!._event as Json;
    assert.equal(createBlock.type, "CREATE");
    assert.equal(createBlock.version, 1);
    assert.deepEqual(createBlock.declaredEvents, []);

    const [ageUpdate, nameUpdate] = events("p-update");
    assert.equal(ageUpdate!.age, "42", "values are rendered as strings");
    assert.equal(ageUpdate!.firstName, undefined, "an UPDATE carries the changed attributes only");
    assert.deepEqual((ageUpdate!._event as Json).changedFields, ["age"]);
    assert.deepEqual((nameUpdate!._event as Json).previous, { firstName: "Ann" });
    assert.equal(nameUpdate!.firstName, "Anna");
    const [onlyName] = events("p-update-first-name");
    assert.equal(onlyName!.firstName, "Anna");
    assert.equal((onlyName!._event as Json).previous, undefined, "previous only when asked");
    assert.ok(
      ((ageUpdate!._event as Json).version as number) <
        ((nameUpdate!._event as Json).version as number),
    );

    const [subscription] = events("p-subscription");
    assert.equal(subscription!.subscriptionName, "newsletter");
    assert.equal(subscription!.subscribe, "true");
    assert.equal(subscription!.profileId, profileId);
    const [segment] = events("p-segment");
    assert.equal(segment!.segmentation, "Active");
    assert.equal(segment!.segment, "Active");
    assert.equal(segment!.belongs, "true");
    const [deleted] = events("p-delete");
    assert.equal(deleted!.profileId, profileId);
    assert.equal((deleted!._event as Json).type, "DELETE");

    const recordHref = (key: string) =>
      `/custom-data/v4/entity/acme/customTable/${ordersTable}/record/${key}`;
    const [o1, o2] = events("c-create");
    assert.equal(o1!.orderId, "o1");
    assert.equal(o1!.status, "NEW");
    assert.equal(o1!.amount, "10");
    assert.deepEqual(o1!._links, { self: { href: recordHref("o1") } });
    assert.equal(o2!.orderId, "o2");
    const [shipped] = events("c-update");
    assert.equal(shipped!.status, "SHIPPED");
    assert.deepEqual((shipped!._event as Json).declaredEvents, ["order-shipped"]);
    assert.deepEqual((shipped!._event as Json).changedFields, ["status"]);
    const [gone] = events("c-delete");
    assert.equal(gone!.orderId, "o1");
    assert.deepEqual(
      events("c-create-bulk").map((d) => d.orderId),
      ["o1", "o2"],
    );
  });

  test(
    "many records updated concurrently and repeatedly: each record's versions arrive in order",
    { timeout: 60_000 },
    async () => {
      const table = await call("POST", "/v5/entities/acme/profile-tables", {
        name: "Busy",
        attributes: [
          { name: "emailAddress", type: "EMAIL_ADDRESS", unique: true, mandatory: true },
          { name: "counter", type: "CUSTOM", valueType: "INTEGER" },
        ],
      });
      const tableId = String(table.id);
      await call("POST", "/v4/entity/acme/webhookSubscription", {
        on: "PROFILE_TABLE",
        onElementId: tableId,
        eventType: "UPDATE",
        targetUrl: `${receiver.url}/order`,
        isActive: true,
        maxConcurrency: 16,
      });
      // Answer times vary, so a push of a later version could overtake an earlier one if the engine let it.
      receiver.respondWith((q) =>
        q.path === "/hook/order" ? { delayMs: (q.index * 7) % 11 } : undefined,
      );
      const profiles = `/v4/entity/acme/table/${tableId}/profile`;
      const RECORDS = 20;
      const UPDATES = 15;
      const ids: string[] = [];
      for (let i = 0; i < RECORDS; i++) {
        const created = await call("POST", profiles, {
          attributes: [
            { name: "emailAddress", value: `busy${i}@example.com` },
            { name: "counter", value: "0" },
          ],
        });
        ids.push(String(created.profileId));
      }
      await Promise.all(
        ids.map(async (id) => {
          for (let n = 1; n <= UPDATES; n++)
            await call("PUT", `${profiles}/${id}`, {
              attributes: [{ name: "counter", value: String(n) }],
            });
        }),
      );
      await eventually(() => events("order").length >= RECORDS * UPDATES, 30_000, "all updates");
      const seen = new Map<string, number[]>();
      for (const data of events("order")) {
        const list = seen.get(String(data.profileId)) ?? [];
        list.push(Number(data.counter));
        seen.set(String(data.profileId), list);
      }
      const expected = Array.from({ length: UPDATES }, (_, i) => i + 1);
      for (const id of ids) assert.deepEqual(seen.get(id), expected, `profile ${id} in order`);

      assert.equal(await herald.kill("SIGTERM"), 0, "SIGTERM exits cleanly");
    },
  );
});
