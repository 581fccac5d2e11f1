/**
 * Client compatibility: the request sequences that existing Actito clients send, replayed over real
 * HTTP against Herald, each answer's shape checked as the client reads it. Two kinds of client:
 *
 * - a data-model SDK in TypeScript: bearer tokens on the plain `/v4/…` and `/v5/…` paths; profiles
 *   and custom-table records (with and without their key), the read-add-write of a number, search,
 *   webhook registration;
 * - legacy PHP clients: HTTP Basic on `/ActitoWebServices/ws/v4/…` and the service prefixes of
 *   Actito's hrefs; the v5 profile upsert and list, segmentation calls, webhook CRUD and the daily
 *   error log.
 *
 * The calls are written the way those clients write them (JSON bodies with string or typed values,
 * bodiless PUTs, matrix parameters), not the way Herald's own tests would.
 */
import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import type { TestApp } from "../helpers/test-app.js";
import { createTestApp, TEST_ADMIN_KEY, TEST_ENTITY } from "../helpers/test-app.js";
import { testBackends } from "../helpers/test-database.js";

const LEGACY = `/ActitoWebServices/ws/v4/entity/${TEST_ENTITY}`;
const BASIC = `Basic ${Buffer.from(`herald/admin:${TEST_ADMIN_KEY}`).toString("base64")}`;

const CUSTOMERS = {
  name: "Customers",
  attributes: [
    { name: "emailAddress", type: "EMAIL_ADDRESS", unique: true, mandatory: true },
    { name: "firstName", type: "FIRSTNAME" },
    { name: "birthDate", type: "BIRTHDATE" },
    { name: "points", type: "CUSTOM", valueType: "INTEGER" },
    { name: "balance", type: "CUSTOM", valueType: "NUMBER" },
    { name: "vip", type: "CUSTOM", valueType: "BOOLEAN" },
  ],
  subscriptions: [{ name: "newsletter" }],
  segmentations: [
    { name: "Active", type: "SIMPLE" },
    { name: "ClientType", type: "EXCLUSIVE", segments: ["Gold", "Silver", "Bronze"] },
  ],
};

/** A custom table with no primaryKeyAttribute: its records key on a generated `id`. */
const NOTES = {
  name: "Notes",
  type: "LINKED_DATA",
  attributes: [
    { name: "text", valueType: "STRING" },
    { name: "score", valueType: "NUMBER" },
    { name: "done", valueType: "BOOLEAN" },
  ],
};

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  json: <T = Record<string, unknown>>() => T;
}

type Named = { name: string; value?: unknown };

for (const { backend, skip } of await testBackends()) {
  describe(`Actito clients against Herald on ${backend}`, { skip }, () => {
    let t: TestApp;
    let base: string;
    let token: string;

    /** One HTTP call as a client makes it: real sockets, its own headers. */
    async function call(
      method: string,
      path: string,
      options: { auth?: string; body?: unknown; rawBody?: string } = {},
    ): Promise<Answer> {
      const headers: Record<string, string> = {
        authorization: options.auth ?? `Bearer ${token}`,
        accept: "application/json",
      };
      let body: string | undefined;
      if (options.rawBody !== undefined) body = options.rawBody;
      else if (options.body !== undefined) body = JSON.stringify(options.body);
      if (body !== undefined) headers["content-type"] = "application/json";
      const response = await fetch(`${base}${path}`, { method, headers, body });
      const text = await response.text();
      return {
        status: response.status,
        headers: response.headers,
        text,
        json: <T>() => JSON.parse(text) as T,
      };
    }

    function valueOf(list: Named[], name: string): unknown {
      return list.find((item) => item.name === name)?.value;
    }

    before(async () => {
      t = await createTestApp(backend);
      await t.app.listen({ port: 0, host: "127.0.0.1" });
      base = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
      // The SDK's first call: trade the raw key for a bearer token.
      const auth = await fetch(`${base}/auth/token`, {
        headers: { authorization: TEST_ADMIN_KEY },
      });
      assert.equal(auth.status, 200);
      token = ((await auth.json()) as { accessToken: string }).accessToken;
      const customers = await call("POST", `/v5/entities/${TEST_ENTITY}/profile-tables`, {
        body: CUSTOMERS,
      });
      assert.equal(customers.status, 201, customers.text);
      const notes = await call("POST", `/v5/entities/${TEST_ENTITY}/custom-tables`, {
        body: NOTES,
      });
      assert.equal(notes.status, 201, notes.text);
    });
    after(() => t?.close());

    describe("the data-model SDK (bearer, plain paths)", () => {
      const profiles = `/v4/entity/${TEST_ENTITY}/table/Customers/profile`;

      test("a profile is created, read back with typed values, and incremented", async () => {
        const created = await call("POST", profiles, {
          body: {
            attributes: [
              { name: "emailAddress", value: "ann@example.com" },
              { name: "firstName", value: "Ann" },
              { name: "birthDate", value: "1990-04-01" },
              { name: "points", value: "5" },
              { name: "balance", value: 12.5 },
              { name: "vip", value: "false" },
            ],
            subscriptions: [{ name: "newsletter", subscribe: true }],
          },
        });
        assert.ok([200, 201].includes(created.status), created.text);
        const { profileId } = created.json<{ profileId: number }>();
        assert.equal(typeof profileId, "number");

        const read = await call("GET", `${profiles}/emailAddress=ann@example.com`);
        assert.equal(read.status, 200, read.text);
        const profile = read.json<{ attributes: Named[]; subscriptions: unknown[] }>();
        assert.equal(valueOf(profile.attributes, "profileId"), profileId);
        assert.equal(valueOf(profile.attributes, "points"), 5);
        assert.equal(valueOf(profile.attributes, "balance"), 12.5);
        assert.equal(valueOf(profile.attributes, "vip"), false);
        assert.equal(valueOf(profile.attributes, "birthDate"), "1990-04-01");
        assert.equal(typeof valueOf(profile.attributes, "creationMoment"), "string");
        assert.deepEqual(profile.subscriptions, [{ name: "newsletter", subscribe: true }]);

        // The SDK's read-add-write: with "5" it would write "51"; with 5 it writes 6.
        const points = valueOf(profile.attributes, "points") as number;
        const updated = await call("PUT", `${profiles}/${profileId}`, {
          body: { attributes: [{ name: "points", value: points + 1 }] },
        });
        assert.equal(updated.status, 200, updated.text);
        const again = await call("GET", `${profiles}/${profileId}`);
        assert.equal(valueOf(again.json<{ attributes: Named[] }>().attributes, "points"), 6);
      });

      test("a search answers typed profiles; a value of the wrong type is a 400", async () => {
        const search = await call(
          "GET",
          `${profiles}?search=emailAddress=ann@example.com&number=10`,
        );
        assert.equal(search.status, 200, search.text);
        const found = search.json<{ profiles: { attributes: Named[] }[] }>().profiles;
        assert.equal(found.length, 1);
        assert.equal(valueOf(found[0]!.attributes, "points"), 6);

        const wrong = await call("PUT", `${profiles}/emailAddress=ann@example.com`, {
          body: { attributes: [{ name: "points", value: "51x" }] },
        });
        assert.equal(wrong.status, 400, wrong.text);
        assert.match(wrong.json<{ code: string }>().code, /^HERALD_/);
        const unchanged = await call("GET", `${profiles}/emailAddress=ann@example.com`);
        assert.equal(valueOf(unchanged.json<{ attributes: Named[] }>().attributes, "points"), 6);
      });

      test("a record written without a key gets a generated id, usable in every call", async () => {
        const records = `/v4/entity/${TEST_ENTITY}/customTable/Notes/record`;
        const created = await call("POST", records, {
          body: {
            properties: [
              { name: "text", value: "call back" },
              { name: "score", value: "3" },
              { name: "done", value: false },
            ],
          },
        });
        assert.ok([200, 201].includes(created.status), created.text);
        const { businessKey } = created.json<{ businessKey: string }>();
        assert.match(businessKey, /^[0-9a-f-]{36}$/);

        const read = await call("GET", `${records}/${businessKey}`);
        assert.equal(read.status, 200, read.text);
        const properties = read.json<{ properties: Named[] }>().properties;
        assert.equal(valueOf(properties, "id"), businessKey);
        assert.equal(valueOf(properties, "score"), 3);
        assert.equal(valueOf(properties, "done"), false);

        const score = valueOf(properties, "score") as number;
        const put = await call("PUT", `${records}/${businessKey}`, {
          body: { properties: [{ name: "score", value: score + 1 }] },
        });
        assert.ok([200, 204].includes(put.status), put.text);
        const search = await call(
          "GET",
          `${records}?searchField=text&searchValue=call%20back&number=10`,
        );
        assert.equal(search.status, 200, search.text);
        const found = search.json<{ records: { properties: Named[] }[] }>().records;
        assert.equal(found.length, 1);
        assert.equal(valueOf(found[0]!.properties, "score"), 4);
        assert.equal(valueOf(found[0]!.properties, "id"), businessKey);

        assert.equal((await call("DELETE", `${records}/${businessKey}`)).status, 204);
        assert.equal((await call("GET", `${records}/${businessKey}`)).status, 404);
      });

      test("webhook registration: a subscription on the table, read back", async () => {
        const table = await call("GET", `/v5/entities/${TEST_ENTITY}/custom-tables/Notes`);
        const tableId = table.json<{ id: string }>().id;
        const created = await call("POST", `/v4/entity/${TEST_ENTITY}/webhookSubscription`, {
          body: {
            on: "CUSTOM_TABLE",
            onElementId: tableId,
            eventType: "CREATE",
            targetUrl: "http://127.0.0.1:9/hooks/notes",
            isActive: true,
          },
        });
        assert.equal(created.status, 201, created.text);
        const location = created.headers.get("location");
        assert.ok(location, "a Location header");
        const subscription = created.json<{ id: number; secret?: string }>();
        assert.equal(typeof subscription.id, "number");
        assert.match(subscription.secret ?? "", /^whsec_/);
        const read = await call(
          "GET",
          `/v4/entity/${TEST_ENTITY}/webhookSubscription/${subscription.id}`,
        );
        assert.equal(read.status, 200, read.text);
        assert.equal(read.json<{ onElementId: string }>().onElementId, tableId);
      });
    });

    describe("the PHP clients (HTTP Basic on /ActitoWebServices/ws/v4, service prefixes)", () => {
      let annId: number;

      test("v5 profile upsert: 201 created, then 200 updated; the list pages", async () => {
        const path = `/profiles/v5/entities/${TEST_ENTITY}/profile-tables/Customers/profiles`;
        const body = {
          key: { emailAddress: "bob@example.com" },
          attributes: { firstName: "Bob", points: 7, vip: true },
          subscriptions: { newsletter: true },
          segmentations: { ClientType: "Gold", Active: true },
        };
        const created = await call("PUT", path, { body });
        assert.equal(created.status, 201, created.text);
        const first = created.json<{ profileId: number; created: boolean }>();
        assert.equal(first.created, true);
        const updated = await call("PUT", path, {
          body: { key: body.key, attributes: { points: 8 } },
        });
        assert.equal(updated.status, 200, updated.text);
        assert.deepEqual(updated.json(), { profileId: first.profileId, created: false });

        const list = await call("GET", `${path}?page=0&pageSize=1`);
        assert.equal(list.status, 200, list.text);
        const page = list.json<{
          profiles: { profileId: number; attributes: Record<string, unknown> }[];
          page: number;
          pageSize: number;
          totalElements: number;
        }>();
        assert.equal(page.page, 0);
        assert.equal(page.pageSize, 1);
        assert.equal(page.totalElements, 2);
        assert.equal(page.profiles.length, 1);

        const search = await call("GET", `${path}?search=emailAddress=bob@example.com`);
        const [bob] = search.json<{
          profiles: {
            profileId: number;
            attributes: Record<string, unknown>;
            subscriptions: Record<string, boolean>;
            segmentations: Record<string, unknown>;
          }[];
        }>().profiles;
        assert.ok(bob, search.text);
        assert.equal(bob.profileId, first.profileId);
        assert.equal(bob.attributes.points, 8);
        assert.equal(bob.attributes.vip, true);
        assert.equal(bob.subscriptions.newsletter, true);
        assert.equal(bob.segmentations.ClientType, "Gold");
        annId = (
          await call("GET", `${path}/emailAddress=ann@example.com`).then((r) =>
            r.json<{ profileId: number }>(),
          )
        ).profileId;
        assert.equal(typeof annId, "number");
      });

      test("segmentation calls: bodiless, matrix parameter, query, belongs false", async () => {
        const profile = `${LEGACY}/table/Customers/profile/${annId}`;
        const auth = BASIC;
        const put = (path: string, rawBody?: string) =>
          call("PUT", `${profile}/segmentation/${path}`, {
            auth,
            ...(rawBody === undefined ? {} : { rawBody }),
          });
        const read = async () => {
          const answer = await call("GET", `${profile}/segmentation`, { auth });
          assert.equal(answer.status, 200, answer.text);
          const body = answer.json<{ segmentations: unknown[]; segmentation: unknown[] }>();
          assert.deepEqual(body.segmentation, body.segmentations, "both keys, one list");
          return body.segmentations as {
            belongs: boolean;
            segmentation: { category: string; name: string };
          }[];
        };

        assert.ok([200, 204].includes((await put("Active")).status), "a SIMPLE one needs no body");
        assert.ok([200, 204].includes((await put("ClientType;category=Gold")).status));
        let list = await read();
        assert.deepEqual(
          list.map((s) => `${s.segmentation.category}/${s.segmentation.name}`).sort(),
          ["Active/Active", "ClientType/Gold"],
        );
        assert.ok([200, 204].includes((await put("ClientType?segment=Silver")).status));
        list = await read();
        assert.ok(list.some((s) => s.segmentation.name === "Silver"));
        assert.ok(!list.some((s) => s.segmentation.name === "Gold"), "EXCLUSIVE: one segment");

        assert.ok([200, 204].includes((await put("Active", '{"belongs": false}')).status));
        list = await read();
        assert.ok(!list.some((s) => s.segmentation.category === "Active"), "belongs false leaves");

        const unknown = await put("ClientType;category=Platinum");
        assert.ok(unknown.status >= 400 && unknown.status < 500, unknown.text);
        assert.match(unknown.json<{ code: string }>().code, /^HERALD_/);
      });

      test("dataCollectionInformation is kept, and empty bodies are empty writes", async () => {
        const profile = `${LEGACY}/table/Customers/profile/${annId}`;
        const info = { date: "2026-12-01", source: "shop", way: "web form" };
        const write = await call("PUT", profile, {
          auth: BASIC,
          body: { attributes: [], dataCollectionInformation: info },
        });
        assert.equal(write.status, 200, write.text);
        const read = await call("GET", profile, { auth: BASIC });
        assert.deepEqual(
          read.json<{ dataCollectionInformation?: unknown }>().dataCollectionInformation,
          info,
        );
        for (const rawBody of ["{}", "[]"]) {
          const empty = await call("PUT", profile, { auth: BASIC, rawBody });
          assert.equal(empty.status, 200, `${rawBody}: ${empty.text}`);
        }
      });

      test("structure reads as Actito's sample request files make them", async () => {
        const tables = await call("GET", `${LEGACY}/customTable`, { auth: BASIC });
        assert.equal(tables.status, 200, tables.text);
        assert.ok(tables.text.includes('"Notes"'), tables.text);
        const structure = await call("GET", `${LEGACY}/table/Customers`, { auth: BASIC });
        assert.equal(structure.status, 200, structure.text);
        assert.ok(structure.text.includes('"emailAddress"'), structure.text);
      });

      test("webhook CRUD on the legacy paths, and the daily error log", async () => {
        const created = await call("POST", `${LEGACY}/table/Customers/webhookSubscription`, {
          auth: BASIC,
          body: {
            eventType: "UPDATE",
            isActive: true,
            targetUrl: "http://127.0.0.1:9/hooks/customers",
            onFields: ["points"],
          },
        });
        assert.equal(created.status, 201, created.text);
        const { id } = created.json<{ id: number }>();
        const one = `${LEGACY}/webhookSubscription/${id}`;

        const list = await call(
          "GET",
          `${LEGACY}/webhookSubscription?tableType=PROFILE_TABLE&page=0&pageSize=100`,
          {
            auth: BASIC,
          },
        );
        assert.equal(list.status, 200, list.text);
        const listed = list.json<{
          webhookSubscriptions: { id: number; secret?: string }[];
          totalElements: number;
        }>();
        assert.ok(listed.webhookSubscriptions.some((s) => s.id === id));
        assert.ok(
          listed.webhookSubscriptions.every((s) => s.secret === undefined),
          "no secrets",
        );

        const current = (await call("GET", one, { auth: BASIC })).json<Record<string, unknown>>();
        const replaced = await call("PUT", one, {
          auth: BASIC,
          body: { ...current, isActive: false },
        });
        assert.equal(replaced.status, 200, replaced.text);
        assert.equal(replaced.json<{ isActive: boolean }>().isActive, false);

        const today = new Date().toISOString().slice(0, 10);
        const errors = await call("GET", `${one}/${today}`, { auth: BASIC });
        assert.equal(errors.status, 200, errors.text);

        assert.equal((await call("DELETE", one, { auth: BASIC })).status, 204);
        assert.equal((await call("GET", one, { auth: BASIC })).status, 404);
      });
    });
  });
}
