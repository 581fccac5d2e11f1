import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { NewChangeEvent } from "../../src/domain/change-event.js";
import { appendChangeEvents } from "../../src/storage/change-event-repository.js";
import { stampPendingEvents } from "../../src/storage/sequencer-repository.js";
import {
  findEntityByName,
  firstLicenceId,
  insertEntity,
} from "../../src/storage/tenancy-repository.js";
import type { TestApp } from "../helpers/test-app.js";
import { createTestApp, TEST_ENTITY } from "../helpers/test-app.js";
import { testBackends } from "../helpers/test-database.js";

interface Page {
  events: Record<string, unknown>[];
  next: number;
}

function event(entityId: number, overrides: Partial<NewChangeEvent> = {}): NewChangeEvent {
  return {
    entityId,
    source: "PROFILE_TABLE",
    sourceId: "1",
    eventType: "CREATE",
    recordKey: "7",
    keys: { profileId: 7 },
    state: { profileId: 7, emailAddress: "a@b.c", age: 30 },
    fields: ["emailAddress", "age"],
    previous: {},
    extra: {},
    version: 1,
    declaredEvents: [],
    origin: { kind: "SYSTEM" },
    ...overrides,
  };
}

for (const { backend, skip } of await testBackends()) {
  describe(`GET /v5/entities/{entity}/change-events on ${backend}`, { skip }, () => {
    let t: TestApp;
    let acmeId: number;
    before(async () => {
      t = await createTestApp(backend);
      const acme = await findEntityByName(
        t.database.db,
        await firstLicenceId(t.database.db),
        TEST_ENTITY,
      );
      acmeId = acme!.id;
      const otherId = (await insertEntity(t.database.db, acme!.licenceId, "other")).id;
      await t.database.db.transaction(async (tx) => {
        await appendChangeEvents(
          tx,
          [
            event(acmeId),
            event(otherId, { recordKey: "8", keys: { profileId: 8 } }),
            event(acmeId, {
              eventType: "UPDATE",
              fields: ["age"],
              state: { profileId: 7, emailAddress: "a@b.c", age: 31 },
              previous: { age: 30 },
              version: 2,
            }),
            event(acmeId, {
              source: "CUSTOM_TABLE",
              sourceId: "orders",
              recordKey: "o-1",
              keys: { orderId: "o-1" },
              state: { orderId: "o-1" },
              fields: ["orderId"],
            }),
          ],
          t.database.logSignals,
        );
      });
      // Committed but not stamped yet: must stay invisible.
      await stampPendingEvents(t.database.db);
      await t.database.db.transaction((tx) =>
        appendChangeEvents(tx, [event(acmeId)], t.database.logSignals),
      );
    });
    after(() => t?.close());

    test("lists the entity's stamped events in log order, shaped as data objects", async () => {
      const response = await t.request("GET", `/v5/entities/${TEST_ENTITY}/change-events`);
      assert.equal(response.statusCode, 200);
      const page = response.json<Page>();
      assert.deepEqual(
        page.events.map((e) => (e._event as { position: number }).position),
        [1, 3, 4],
      );
      assert.equal(page.next, 4);
      const [created, updated] = page.events;
      assert.deepEqual(created, {
        profileId: "7",
        emailAddress: "a@b.c",
        age: "30",
        _links: { self: { href: `/profiles/v4/entity/${TEST_ENTITY}/table/1/profile/7` } },
        _event: {
          id: (created!._event as { id: string }).id,
          type: "CREATE",
          position: 1,
          occurredAt: (created!._event as { occurredAt: string }).occurredAt,
          version: 1,
          changedFields: ["emailAddress", "age"],
          previous: {},
          origin: { kind: "SYSTEM" },
          declaredEvents: [],
        },
      });
      assert.match((created!._event as { id: string }).id, /^evt_\d+$/);
      assert.deepEqual((updated!._event as { previous: unknown }).previous, { age: "30" });
    });

    test("after and limit page through the log; next stays put at the end", async () => {
      const first = (
        await t.request("GET", `/v5/entities/${TEST_ENTITY}/change-events?limit=1`)
      ).json<Page>();
      assert.equal(first.events.length, 1);
      assert.equal(first.next, 1);
      const second = (
        await t.request(
          "GET",
          `/v5/entities/${TEST_ENTITY}/change-events?after=${first.next}&limit=2`,
        )
      ).json<Page>();
      assert.deepEqual(
        second.events.map((e) => (e._event as { position: number }).position),
        [3, 4],
      );
      const end = (
        await t.request("GET", `/v5/entities/${TEST_ENTITY}/change-events?after=${second.next}`)
      ).json<Page>();
      assert.deepEqual(end, { events: [], next: 4 });
    });

    test("filters by source, element and event type", async () => {
      const custom = (
        await t.request("GET", `/v5/entities/${TEST_ENTITY}/change-events?on=CUSTOM_TABLE`)
      ).json<Page>();
      assert.deepEqual(
        custom.events.map((e) => e.orderId),
        ["o-1"],
      );
      const updates = (
        await t.request(
          "GET",
          `/v5/entities/${TEST_ENTITY}/change-events?on=PROFILE_TABLE&onElementId=1&eventType=UPDATE`,
        )
      ).json<Page>();
      assert.deepEqual(
        updates.events.map((e) => (e._event as { position: number }).position),
        [3],
      );
      const none = (
        await t.request("GET", `/v5/entities/${TEST_ENTITY}/change-events?onElementId=nope`)
      ).json<Page>();
      assert.deepEqual(none, { events: [], next: 0 });
    });

    test("the service prefix answers too", async () => {
      const response = await t.request(
        "GET",
        `/profiles/v5/entities/${TEST_ENTITY}/change-events?limit=1`,
      );
      assert.equal(response.statusCode, 200);
    });

    for (const query of [
      "limit=0",
      "limit=1001",
      "limit=ten",
      "after=-1",
      "after=1.5",
      "on=TABLE",
      "eventType=MERGE",
    ]) {
      test(`?${query} is a 400 naming the parameter`, async () => {
        const response = await t.request(
          "GET",
          `/v5/entities/${TEST_ENTITY}/change-events?${query}`,
        );
        assert.equal(response.statusCode, 400);
        const body = response.json<{ code: string; details: { path: string }[] }>();
        assert.equal(body.code, "HERALD_VALIDATION");
        const parameter = query.split("=")[0]!;
        assert.ok(
          body.details.some((d) => d.path.includes(parameter)),
          JSON.stringify(body.details),
        );
      });
    }

    test("profile writes through the API come back through the log, in order, as strings", async () => {
      const created = await t.request("POST", `/v5/entities/${TEST_ENTITY}/profile-tables`, {
        name: "LogReaders",
        attributes: [
          { name: "emailAddress", type: "EMAIL_ADDRESS", unique: true, mandatory: true },
          { name: "age", type: "CUSTOM", valueType: "INTEGER" },
        ],
        subscriptions: [{ name: "newsletter" }],
      });
      assert.equal(created.statusCode, 201, created.body);
      const tableId = created.json<{ id: string }>().id;
      const profilePath = `/v4/entity/${TEST_ENTITY}/table/${tableId}/profile`;
      await stampPendingEvents(t.database.db);
      const head = (
        await t.request("GET", `/v5/entities/${TEST_ENTITY}/change-events?after=0&limit=1000`)
      ).json<Page>().next;
      const first = await t.request("POST", profilePath, {
        attributes: [
          { name: "emailAddress", value: "reader@example.test" },
          { name: "age", value: 40 },
        ],
      });
      assert.equal(first.statusCode, 200, first.body);
      const profileId = first.json<{ profileId: number }>().profileId;
      const second = await t.request("PUT", `${profilePath}/${profileId}`, {
        attributes: [{ name: "age", value: 41 }],
        subscriptions: [{ name: "newsletter", subscribe: true }],
      });
      assert.equal(second.statusCode, 200, second.body);
      await stampPendingEvents(t.database.db);

      const page = (
        await t.request(
          "GET",
          `/v5/entities/${TEST_ENTITY}/change-events?after=${head}&onElementId=${tableId}`,
        )
      ).json<Page>();
      const types = page.events.map((e) => (e._event as { type: string }).type);
      assert.deepEqual(types, ["CREATE", "UPDATE", "UPDATED_SUBSCRIPTION"]);
      const [create, update, subscription] = page.events;
      assert.equal(create!.profileId, String(profileId));
      assert.equal(create!.emailAddress, "reader@example.test");
      assert.equal(create!.age, "40");
      assert.equal(
        (create!._links as { self: { href: string } }).self.href,
        `/profiles/v4/entity/${TEST_ENTITY}/table/${tableId}/profile/${profileId}`,
      );
      assert.equal(update!.age, "41");
      assert.deepEqual((update!._event as { changedFields: string[] }).changedFields, ["age"]);
      assert.deepEqual((update!._event as { previous: unknown }).previous, { age: "40" });
      assert.equal(subscription!.subscriptionName, "newsletter");
      assert.equal(subscription!.subscribe, "true");
      const versions = page.events.map((e) => (e._event as { version: number }).version);
      assert.ok(versions[0]! < versions[1]!, `versions ${versions.join(",")}`);
      // The self link resolves against Herald's own API.
      const self = await t.request("GET", (create!._links as { self: { href: string } }).self.href);
      assert.equal(self.statusCode, 200, self.body);
    });

    test("an unknown entity is 404, a missing token 401", async () => {
      const missing = await t.request("GET", "/v5/entities/nowhere/change-events");
      assert.equal(missing.statusCode, 404);
      assert.equal(missing.json<{ code: string }>().code, "HERALD_ENTITY_NOT_FOUND");
      const anonymous = await t.request(
        "GET",
        `/v5/entities/${TEST_ENTITY}/change-events`,
        undefined,
        {
          authorization: "",
        },
      );
      assert.equal(anonymous.statusCode, 401);
    });
  });
}
