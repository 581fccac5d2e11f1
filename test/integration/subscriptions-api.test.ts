import assert from "node:assert/strict";
import dns from "node:dns";
import { after, before, describe, mock, test } from "node:test";
import { buildApp } from "../../src/api/app.js";
import { bootstrap } from "../../src/api/bootstrap.js";
import { loadConfig } from "../../src/config/config.js";
import type { DataTable } from "../../src/domain/data-table.js";
import { createLogger } from "../../src/logger.js";
import { matchesSubscription } from "../../src/domain/subscription-matching.js";
import { readLog } from "../../src/storage/change-event-repository.js";
import type { Database } from "../../src/storage/database.js";
import { insertTable } from "../../src/storage/data-table-repository.js";
import { stampPendingEvents } from "../../src/storage/sequencer-repository.js";
import { loadSubscription } from "../../src/storage/subscription-repository.js";
import type { TestApp } from "../helpers/test-app.js";
import { createTestApp, TEST_ADMIN_KEY } from "../helpers/test-app.js";
import { createTestDatabase, testBackends } from "../helpers/test-database.js";

const BASE = "/v4/entity/acme/webhookSubscription";
const SECRET = `whsec_${Buffer.alloc(32, 9).toString("base64")}`;

async function entityId(db: Database, name: string): Promise<number> {
  const { rows } = await db.query<{ id: number }>("SELECT id FROM entities WHERE name = $1", [
    name,
  ]);
  return rows[0]!.id;
}

/** A second entity of the test licence (the admin key reaches it). */
async function addEntity(db: Database, name: string): Promise<number> {
  const { rows } = await db.query<{ id: number }>(
    `INSERT INTO entities (licence_id, name)
     SELECT licence_id, $1 FROM entities WHERE name = 'acme' RETURNING id`,
    [name],
  );
  return rows[0]!.id;
}

function attribute(name: string) {
  return {
    name,
    valueType: "STRING" as const,
    unique: false,
    mandatory: false,
    multiValued: false,
  };
}

async function addTable(
  db: Database,
  entity: number,
  kind: DataTable["kind"],
  name: string,
  extra: Partial<DataTable> = {},
): Promise<DataTable> {
  return insertTable(db, {
    entityId: entity,
    kind,
    name,
    attributes: [attribute("emailAddress"), attribute("city"), attribute("status")],
    subscriptions: [],
    segmentations: [],
    eventsToTrigger: [],
    ...extra,
  });
}

async function setLogHead(db: Database, position: number): Promise<void> {
  await db.query("UPDATE log_head SET position = $1", [position]);
}

async function watermarkOf(db: Database, id: number): Promise<number> {
  const { rows } = await db.query<{ watermark: number }>(
    "SELECT watermark FROM webhook_subscriptions WHERE id = $1",
    [id],
  );
  return rows[0]!.watermark;
}

type Json = Record<string, unknown> & { id: number };

for (const { backend, skip } of await testBackends()) {
  describe(`webhook subscriptions API on ${backend}`, { skip }, () => {
    let t: TestApp;
    let db: Database;
    let acme: number;
    let customers: DataTable;
    let orders: DataTable;
    let shipments: DataTable;

    const post = async (body: unknown, url = BASE) => t.request("POST", url, body);
    const minimal = (extra: Record<string, unknown> = {}) => ({
      on: "PROFILE_TABLE",
      onElementId: customers.id,
      eventType: "UPDATE",
      targetUrl: "https://example.com/hook",
      ...extra,
    });
    const created = async (extra: Record<string, unknown> = {}, url = BASE): Promise<Json> => {
      const response = await post(minimal(extra), url);
      assert.equal(response.statusCode, 201, response.body);
      return response.json() as Json;
    };
    const expectError = async (
      body: unknown,
      status: number,
      code: string,
      path?: string,
      url = BASE,
    ) => {
      const response = await post(body, url);
      assert.equal(response.statusCode, status, response.body);
      const error = response.json() as { code: string; details: { path: string }[] };
      assert.equal(error.code, code);
      if (path !== undefined)
        assert.ok(
          error.details.some((d) => d.path === path),
          `expected a detail at ${path}: ${response.body}`,
        );
    };

    before(async () => {
      t = await createTestApp(backend);
      db = t.database.db;
      acme = await entityId(db, "acme");
      customers = await addTable(db, acme, "PROFILE_TABLE", "Customers");
      orders = await addTable(db, acme, "CUSTOM_TABLE", "Orders", {
        eventsToTrigger: [
          {
            name: "order-shipped",
            triggerRules: [{ onOperation: "UPDATE", onAnyAttribute: ["status"] }],
          },
        ],
      });
      shipments = await addTable(db, acme, "CUSTOM_TABLE", "Shipments");
    });
    after(() => t?.close());

    describe("create", () => {
      test("201 with Location, the stored subscription, defaults and a generated secret", async () => {
        const response = await post(minimal());
        assert.equal(response.statusCode, 201, response.body);
        const body = response.json() as Json;
        assert.equal(response.headers.location, `/webhooks${BASE}/${body.id}`);
        assert.match(String(body.secret), /^whsec_[A-Za-z0-9+/]{43}=$/);
        assert.deepEqual(
          { ...body, id: 0, secret: "", createdAt: "", updatedAt: "" },
          {
            id: 0,
            on: "PROFILE_TABLE",
            onElementId: customers.id,
            eventType: "UPDATE",
            onFields: [],
            targetUrl: "https://example.com/hook",
            headers: {},
            isActive: true,
            pushMode: "ONE_BY_ONE",
            maxBlockSize: 100,
            lingerMs: 1000,
            maxWaitMs: 5000,
            maxConcurrency: 8,
            includePrevious: false,
            conditions: null,
            payloadVersion: 2,
            expiresAt: null,
            secret: "",
            status: { state: "ACTIVE", reason: null, lag: 0, parkedRecords: 0 },
            createdAt: "",
            updatedAt: "",
            _links: { self: { href: `/webhooks${BASE}/${body.id}` } },
          },
        );
      });

      test("every [ext] field is stored as given", async () => {
        const body = await created({
          onFields: ["city", "emailAddress"],
          headers: { "X-Token": "abc" },
          isActive: false,
          pushMode: "BULK",
          maxBlockSize: 1000,
          lingerMs: 0,
          maxWaitMs: 250,
          maxConcurrency: 64,
          includePrevious: true,
          secret: SECRET,
          conditions: {
            stateAfterOperation: [{ attribute: "city", operator: "IN", value: ["Liège", "Namur"] }],
          },
        });
        assert.equal(body.secret, SECRET);
        const read = (await t.request("GET", `${BASE}/${body.id}`)).json() as Json;
        assert.deepEqual(
          {
            onFields: read.onFields,
            headers: read.headers,
            isActive: read.isActive,
            pushMode: read.pushMode,
            maxBlockSize: read.maxBlockSize,
            lingerMs: read.lingerMs,
            maxWaitMs: read.maxWaitMs,
            maxConcurrency: read.maxConcurrency,
            includePrevious: read.includePrevious,
            conditions: read.conditions,
            status: read.status,
          },
          {
            onFields: ["city", "emailAddress"],
            headers: { "X-Token": "abc" },
            isActive: false,
            pushMode: "BULK",
            maxBlockSize: 1000,
            lingerMs: 0,
            maxWaitMs: 250,
            maxConcurrency: 64,
            includePrevious: true,
            conditions: {
              stateAfterOperation: [
                { attribute: "city", operator: "IN", value: ["Liège", "Namur"] },
              ],
            },
            status: {
              state: "DISABLED",
              reason: "deactivated (isActive is false)",
              lag: 0,
              parkedRecords: 0,
            },
          },
        );
      });

      test("the watermark starts at the log head, and lag counts what came after", async () => {
        await setLogHead(db, 40);
        const body = await created();
        assert.equal(await watermarkOf(db, body.id), 40);
        await setLogHead(db, 47);
        const read = (await t.request("GET", `${BASE}/${body.id}`)).json() as Json;
        assert.deepEqual(read.status, { state: "ACTIVE", reason: null, lag: 7, parkedRecords: 0 });
      });

      test("a table may be named by its name; the stored onElementId is its id", async () => {
        const body = await created({ onElementId: "Customers" });
        assert.equal(body.onElementId, customers.id);
      });

      test("reserved headers are dropped, others kept", async () => {
        const body = await created({
          headers: {
            "Content-Type": "text/plain",
            "webhook-signature": "v1,forged",
            "User-Agent": "x",
            Host: "evil.test",
            "X-Shared-Secret": "s3cret",
          },
        });
        assert.deepEqual(body.headers, { "X-Shared-Secret": "s3cret" });
      });

      test("trigger sources without onElementId listen to every element of their kind", async () => {
        for (const [on, eventType] of [
          ["ETL", "FINISHED"],
          ["EXPORT", "FINISHED"],
          ["CUSTOM_ACTION", "TRIGGER"],
          ["FILE_SYNCHRONIZATION", "STARTED"],
        ]) {
          const all = await created({ on, onElementId: undefined, eventType });
          assert.equal(all.onElementId, null, on);
          const blank = await created({ on, onElementId: null, eventType });
          assert.equal(blank.onElementId, null, on);
        }
      });

      test("a custom-table UPDATE is accepted when the table declares an UPDATE event", async () => {
        const body = await created({ on: "CUSTOM_TABLE", onElementId: orders.id });
        assert.equal(body.eventType, "UPDATE");
      });
    });

    describe("validation", () => {
      test("400: on must be a known source", async () => {
        await expectError(minimal({ on: "TABLE" }), 400, "HERALD_VALIDATION", "on");
      });
      test("400: eventType must be a known type", async () => {
        await expectError(minimal({ eventType: "UPSERT" }), 400, "HERALD_VALIDATION", "eventType");
      });
      test("400: a table source needs onElementId", async () => {
        await expectError(
          minimal({ onElementId: undefined }),
          400,
          "HERALD_VALIDATION",
          "onElementId",
        );
      });
      test("400: targetUrl must be a URL without credentials", async () => {
        await expectError(minimal({ targetUrl: "nope" }), 400, "HERALD_VALIDATION", "targetUrl");
        await expectError(
          minimal({ targetUrl: "https://u:p@example.com/" }),
          400,
          "HERALD_VALIDATION",
          "targetUrl",
        );
      });
      test("400: pushMode, maxBlockSize, maxConcurrency out of their sets and ranges", async () => {
        await expectError(minimal({ pushMode: "BATCH" }), 400, "HERALD_VALIDATION", "pushMode");
        await expectError(minimal({ maxBlockSize: 0 }), 400, "HERALD_VALIDATION");
        await expectError(minimal({ maxBlockSize: 1001 }), 400, "HERALD_VALIDATION");
        await expectError(minimal({ maxConcurrency: 65 }), 400, "HERALD_VALIDATION");
      });
      test("400: wrong JSON types and missing required fields", async () => {
        await expectError(minimal({ isActive: "yes" }), 400, "HERALD_VALIDATION");
        await expectError({ on: "PROFILE_TABLE" }, 400, "HERALD_VALIDATION");
      });
      test("400: unknown body fields (a typo must not silently drop a filter)", async () => {
        await expectError(minimal({ onField: ["city"] }), 400, "HERALD_VALIDATION", "onField");
      });
      test("400: a malformed secret", async () => {
        await expectError(minimal({ secret: "hunter2" }), 400, "HERALD_VALIDATION", "secret");
      });
      test("400: header injection", async () => {
        await expectError(
          minimal({ headers: { "X-A": "1\r\nX-B: 2" } }),
          400,
          "HERALD_VALIDATION",
          "headers.X-A",
        );
      });
      test("404: an unknown trigger-source id, with its kind's own code; nothing is stored", async () => {
        const before = await db.query("SELECT count(*)::int AS n FROM webhook_subscriptions");
        await expectError(
          minimal({ on: "ETL", onElementId: "424242", eventType: "FINISHED" }),
          404,
          "HERALD_ETL_NOT_FOUND",
          "onElementId",
        );
        await expectError(
          minimal({ on: "CUSTOM_ACTION", onElementId: 12, eventType: "TRIGGER" }),
          404,
          "HERALD_CUSTOM_ACTION_NOT_FOUND",
          "onElementId",
        );
        await expectError(
          minimal({ on: "FILE_SYNCHRONIZATION", onElementId: "424242", eventType: "FINISHED" }),
          404,
          "HERALD_FILE_REFERENCE_NOT_FOUND",
          "onElementId",
        );
        await expectError(
          minimal({ on: "EXPORT", onElementId: "424242", eventType: "FINISHED" }),
          404,
          "HERALD_EXPORT_NOT_FOUND",
          "onElementId",
        );
        const after = await db.query("SELECT count(*)::int AS n FROM webhook_subscriptions");
        assert.deepEqual(after.rows, before.rows);
      });

      test("a stored trigger-source id a PUT keeps is not checked again (the subscription can be paused)", async () => {
        // Stored before ids of kinds Herald has no elements of were refused.
        const created = await post(
          minimal({ on: "EXPORT", onElementId: undefined, eventType: "FINISHED" }),
        );
        assert.equal(created.statusCode, 201, created.body);
        const id = (created.json() as { id: number }).id;
        await db.query("UPDATE webhook_subscriptions SET element_id = '12' WHERE id = $1", [id]);
        const kept = minimal({ on: "EXPORT", onElementId: "12", eventType: "FINISHED" });
        const paused = await t.request("PUT", `${BASE}/${id}`, { ...kept, isActive: false });
        assert.equal(paused.statusCode, 200, paused.body);
        assert.equal((paused.json() as { isActive: boolean }).isActive, false);
        const moved = await t.request("PUT", `${BASE}/${id}`, { ...kept, onElementId: "13" });
        assert.equal(moved.statusCode, 404, moved.body);
        assert.equal((moved.json() as { code: string }).code, "HERALD_EXPORT_NOT_FOUND");
      });

      test("404: the table does not exist in the entity", async () => {
        await expectError(
          minimal({ onElementId: "9999" }),
          404,
          "HERALD_TABLE_NOT_FOUND",
          "onElementId",
        );
        // A profile table id is not a custom table.
        await expectError(
          minimal({ on: "CUSTOM_TABLE", onElementId: customers.id, eventType: "CREATE" }),
          404,
          "HERALD_TABLE_NOT_FOUND",
        );
      });
      test("422: eventType does not fit on", async () => {
        await expectError(
          minimal({ eventType: "STARTED" }),
          422,
          "HERALD_UNPROCESSABLE",
          "eventType",
        );
        await expectError(
          minimal({ on: "CUSTOM_TABLE", onElementId: orders.id, eventType: "UPDATED_SEGMENT" }),
          422,
          "HERALD_UNPROCESSABLE",
          "eventType",
        );
      });
      test("422: onFields must be attributes of the table", async () => {
        await expectError(
          minimal({ onFields: ["city", "shoeSize"] }),
          422,
          "HERALD_UNPROCESSABLE",
          "onFields[1]",
        );
      });
      test("422: a custom-table UPDATE needs a declared UPDATE event", async () => {
        await expectError(
          minimal({ on: "CUSTOM_TABLE", onElementId: shipments.id }),
          422,
          "HERALD_UNPROCESSABLE",
          "eventType",
        );
      });
      test("422: condition attributes must exist; trigger sources take no filters", async () => {
        await expectError(
          minimal({
            conditions: { stateBeforeOperation: [{ attribute: "x", operator: "IS_NULL" }] },
          }),
          422,
          "HERALD_UNPROCESSABLE",
          "conditions.stateBeforeOperation[0].attribute",
        );
        await expectError(
          minimal({ on: "EXPORT", onElementId: undefined, eventType: "FINISHED", onFields: ["a"] }),
          422,
          "HERALD_UNPROCESSABLE",
          "onFields",
        );
      });
    });

    describe("payloadVersion [ext]", () => {
      test("1 is stored and read back; absent is 2, on create and on PUT", async () => {
        const v1 = await created({ payloadVersion: 1, pushMode: "BULK" });
        assert.equal(v1.payloadVersion, 1);
        const read = (await t.request("GET", `${BASE}/${v1.id}`)).json() as Json;
        assert.equal(read.payloadVersion, 1);
        const listed = (await t.request("GET", BASE)).json() as { webhookSubscriptions: Json[] };
        assert.equal(listed.webhookSubscriptions.find((s) => s.id === v1.id)?.payloadVersion, 1);
        const put = await t.request("PUT", `${BASE}/${v1.id}`, minimal());
        assert.equal((put.json() as Json).payloadVersion, 2);
        const back = await t.request("PUT", `${BASE}/${v1.id}`, minimal({ payloadVersion: 1 }));
        assert.equal((back.json() as Json).payloadVersion, 1);
        const legacy = await post(
          { eventType: "CREATE", targetUrl: "https://example.com/l", payloadVersion: 1 },
          "/v4/entity/acme/customTable/Orders/webhookSubscription",
        );
        assert.equal(legacy.statusCode, 201, legacy.body);
        assert.equal((legacy.json() as Json).payloadVersion, 1);
      });

      test("400: anything but 1 or 2; 422: version 1 on a trigger source; nothing is stored", async () => {
        const before = await db.query("SELECT count(*)::int AS n FROM webhook_subscriptions");
        for (const payloadVersion of [0, 3, -1, 20]) {
          await expectError(
            minimal({ payloadVersion }),
            400,
            "HERALD_VALIDATION",
            "payloadVersion",
          );
        }
        for (const payloadVersion of ["1", 1.5, null, true])
          await expectError(minimal({ payloadVersion }), 400, "HERALD_VALIDATION");
        await expectError(
          minimal({ on: "ETL", onElementId: undefined, eventType: "FINISHED", payloadVersion: 1 }),
          422,
          "HERALD_UNPROCESSABLE",
          "payloadVersion",
        );
        const after = await db.query("SELECT count(*)::int AS n FROM webhook_subscriptions");
        assert.deepEqual(after.rows, before.rows);
      });
    });

    describe("targets when the operator allows insecure ones", () => {
      test("loopback, private and link-local targets in any spelling are accepted", async () => {
        for (const targetUrl of [
          "http://127.0.0.1:9/h",
          "https://2130706433/h",
          "https://[::ffff:7f00:1]/h",
          "https://localhost./h",
          "https://169.254.169.254/h",
        ]) {
          const body = await created({ targetUrl });
          assert.equal(body.targetUrl, targetUrl);
        }
      });
    });

    describe("read, replace, delete, secret", () => {
      test("GET one never shows the secret; /secret does", async () => {
        const body = await created({ secret: SECRET });
        const read = await t.request("GET", `${BASE}/${body.id}`);
        assert.equal(read.statusCode, 200);
        assert.equal((read.json() as Json).secret, undefined);
        const secret = await t.request("GET", `${BASE}/${body.id}/secret`);
        assert.equal(secret.statusCode, 200);
        assert.deepEqual(secret.json(), { secret: SECRET });
      });

      test("unknown and malformed ids are 404", async () => {
        for (const id of ["999999", "abc", "0", "-1", "99999999999999999999"]) {
          for (const [method, url] of [
            ["GET", `${BASE}/${id}`],
            ["DELETE", `${BASE}/${id}`],
            ["GET", `${BASE}/${id}/secret`],
          ] as const) {
            const response = await t.request(method, url);
            assert.equal(response.statusCode, 404, `${method} ${url}`);
            assert.equal(
              (response.json() as { code: string }).code,
              "HERALD_SUBSCRIPTION_NOT_FOUND",
            );
          }
          const put = await t.request("PUT", `${BASE}/${id}`, minimal());
          assert.equal(put.statusCode, 404);
        }
      });

      test("PUT replaces every setting, keeps the watermark and, without a secret, the secret", async () => {
        const body = await created({
          onFields: ["city"],
          headers: { "X-A": "1" },
          pushMode: "BULK",
          secret: SECRET,
        });
        await db.query("UPDATE webhook_subscriptions SET watermark = 3 WHERE id = $1", [body.id]);
        const put = await t.request("PUT", `${BASE}/${body.id}`, {
          on: "PROFILE_TABLE",
          onElementId: "Customers",
          eventType: "CREATE",
          targetUrl: "https://example.org/new",
        });
        assert.equal(put.statusCode, 200, put.body);
        const replaced = put.json() as Json;
        assert.equal(replaced.secret, undefined);
        assert.equal(replaced.eventType, "CREATE");
        assert.equal(replaced.targetUrl, "https://example.org/new");
        assert.deepEqual(replaced.onFields, []);
        assert.deepEqual(replaced.headers, {});
        assert.equal(replaced.pushMode, "ONE_BY_ONE");
        assert.equal(await watermarkOf(db, body.id), 3);
        const secret = (await t.request("GET", `${BASE}/${body.id}/secret`)).json();
        assert.deepEqual(secret, { secret: SECRET });
      });

      test("PUT with a new secret keeps the old one valid for a grace period", async () => {
        const body = await created({ secret: SECRET });
        const next = `whsec_${Buffer.alloc(32, 1).toString("base64")}`;
        const put = await t.request("PUT", `${BASE}/${body.id}`, minimal({ secret: next }));
        assert.equal(put.statusCode, 200, put.body);
        const secret = (await t.request("GET", `${BASE}/${body.id}/secret`)).json() as {
          secret: string;
          previousSecret: string;
          previousSecretExpiresAt: string;
        };
        assert.equal(secret.secret, next);
        assert.equal(secret.previousSecret, SECRET);
        assert.ok(Date.parse(secret.previousSecretExpiresAt) > Date.now());
      });

      test("resuming a paused FAILING subscription starts a fresh episode (the 3-day count restarts)", async () => {
        const body = await created();
        await db.query(
          `UPDATE webhook_subscriptions
              SET is_active = false, state = 'FAILING', state_reason = 'HTTP 503',
                  failing_since = now() - interval '2 days'
            WHERE id = $1`,
          [body.id],
        );
        const put = await t.request("PUT", `${BASE}/${body.id}`, minimal({ isActive: true }));
        assert.equal(put.statusCode, 200, put.body);
        const { state, reason } = (put.json() as Json).status as { state: string; reason: null };
        assert.deepEqual({ state, reason }, { state: "ACTIVE", reason: null });
        const { rows } = await db.query<{ failing_since: Date | null }>(
          "SELECT failing_since FROM webhook_subscriptions WHERE id = $1",
          [body.id],
        );
        assert.equal(rows[0]?.failing_since, null);
      });

      test("re-activating keeps the watermark (nothing committed meanwhile is skipped) and clears DISABLED", async () => {
        await setLogHead(db, 100);
        const body = await created();
        await db.query(
          `UPDATE webhook_subscriptions
              SET is_active = false, state = 'DISABLED', state_reason = '410 Gone', failing_since = now()
            WHERE id = $1`,
          [body.id],
        );
        await setLogHead(db, 130);
        const off = (await t.request("GET", `${BASE}/${body.id}`)).json() as Json;
        assert.deepEqual(off.status, {
          state: "DISABLED",
          reason: "410 Gone",
          lag: 30,
          parkedRecords: 0,
        });
        const put = await t.request("PUT", `${BASE}/${body.id}`, minimal({ isActive: true }));
        assert.equal(put.statusCode, 200, put.body);
        assert.deepEqual((put.json() as Json).status, {
          state: "ACTIVE",
          reason: null,
          lag: 30,
          parkedRecords: 0,
        });
        assert.equal(await watermarkOf(db, body.id), 100);
      });

      test("PUT validates like POST", async () => {
        const body = await created();
        const put = await t.request("PUT", `${BASE}/${body.id}`, minimal({ onFields: ["nope"] }));
        assert.equal(put.statusCode, 422);
      });

      test("GET → edit → PUT round trip works (read-only fields are ignored)", async () => {
        const body = await created();
        const read = (await t.request("GET", `${BASE}/${body.id}`)).json() as Json;
        const put = await t.request("PUT", `${BASE}/${body.id}`, { ...read, isActive: false });
        assert.equal(put.statusCode, 200, put.body);
        assert.equal((put.json() as Json).isActive, false);
      });

      test("DELETE answers 204, then the subscription is gone", async () => {
        const body = await created();
        const deleted = await t.request("DELETE", `${BASE}/${body.id}`);
        assert.equal(deleted.statusCode, 204);
        assert.equal(deleted.body, "");
        assert.equal((await t.request("GET", `${BASE}/${body.id}`)).statusCode, 404);
        assert.equal((await t.request("DELETE", `${BASE}/${body.id}`)).statusCode, 404);
      });
    });

    describe("list", () => {
      const LIST = "/v4/entity/listing/webhookSubscription";
      let people: DataTable;
      let ids: number[];

      before(async () => {
        const listing = await addEntity(db, "listing");
        people = await addTable(db, listing, "PROFILE_TABLE", "People");
        const items = await addTable(db, listing, "CUSTOM_TABLE", "Items");
        const make = async (body: Record<string, unknown>) => {
          const response = await t.request("POST", LIST, {
            targetUrl: "https://example.com/l",
            ...body,
          });
          assert.equal(response.statusCode, 201, response.body);
          return (response.json() as Json).id;
        };
        ids = [
          await make({ on: "PROFILE_TABLE", onElementId: people.id, eventType: "CREATE" }),
          await make({ on: "PROFILE_TABLE", onElementId: people.id, eventType: "UPDATE" }),
          await make({
            on: "PROFILE_TABLE",
            onElementId: people.id,
            eventType: "DELETE",
            isActive: false,
          }),
          await make({ on: "CUSTOM_TABLE", onElementId: items.id, eventType: "CREATE" }),
          await make({ on: "ETL", eventType: "FINISHED", isActive: false }),
        ];
      });

      const list = async (query: string) => {
        const response = await t.request("GET", `${LIST}${query}`);
        assert.equal(response.statusCode, 200, response.body);
        return response.json() as {
          webhookSubscriptions: Json[];
          page: number;
          pageSize: number;
          totalElements: number;
        };
      };

      test("everything, in id order, without secrets", async () => {
        const all = await list("");
        assert.deepEqual(
          all.webhookSubscriptions.map((s) => s.id),
          ids,
        );
        assert.equal(all.totalElements, 5);
        assert.equal(all.page, 0);
        assert.equal(all.pageSize, 100);
        assert.ok(all.webhookSubscriptions.every((s) => !("secret" in s)));
      });

      test("filters: tableType, tableId (id or name), eventType, isActif / isActive", async () => {
        const idsOf = async (q: string) => (await list(q)).webhookSubscriptions.map((s) => s.id);
        assert.deepEqual(await idsOf("?tableType=PROFILE_TABLE"), ids.slice(0, 3));
        assert.deepEqual(await idsOf(`?tableId=${people.id}`), ids.slice(0, 3));
        assert.deepEqual(await idsOf("?tableType=PROFILE_TABLE&tableId=People"), ids.slice(0, 3));
        assert.deepEqual(await idsOf("?eventType=CREATE"), [ids[0], ids[3]]);
        assert.deepEqual(await idsOf("?isActif=false"), [ids[2], ids[4]]);
        assert.deepEqual(await idsOf("?isActive=true"), [ids[0], ids[1], ids[3]]);
        assert.deepEqual(await idsOf("?tableType=PROFILE_TABLE&eventType=UPDATE&isActive=true"), [
          ids[1],
        ]);
        assert.deepEqual(await idsOf("?tableType=EXPORT"), []);
      });

      test("paging: page and pageSize slice; totalElements counts every match", async () => {
        const first = await list("?pageSize=2");
        const third = await list("?page=2&pageSize=2");
        const beyond = await list("?page=9&pageSize=2");
        assert.deepEqual(
          first.webhookSubscriptions.map((s) => s.id),
          ids.slice(0, 2),
        );
        assert.deepEqual(
          third.webhookSubscriptions.map((s) => s.id),
          ids.slice(4),
        );
        assert.equal(beyond.webhookSubscriptions.length, 0);
        assert.deepEqual([first.totalElements, third.page, third.pageSize], [5, 2, 2]);
      });

      test("400 on bad query values", async () => {
        for (const q of [
          "?tableType=TABLE",
          "?eventType=NOPE",
          "?isActive=true&isActif=false",
          "?pageSize=0",
          "?pageSize=1001",
          "?page=-1",
          "?isActive=maybe",
        ]) {
          const response = await t.request("GET", `${LIST}${q}`);
          assert.equal(response.statusCode, 400, q);
        }
      });
    });

    describe("legacy table paths", () => {
      test("POST …/table/{table}/webhookSubscription by id or by name", async () => {
        for (const ref of [customers.id, "Customers"]) {
          const response = await post(
            {
              eventType: "CREATE",
              isActive: true,
              targetUrl: "https://example.com/p",
              onFields: ["city"],
              headers: { "X-K": "v" },
            },
            `/v4/entity/acme/table/${ref}/webhookSubscription`,
          );
          assert.equal(response.statusCode, 201, response.body);
          const body = response.json() as Json;
          assert.equal(body.on, "PROFILE_TABLE");
          assert.equal(body.onElementId, customers.id);
          assert.deepEqual(body.onFields, ["city"]);
          assert.deepEqual(body.headers, { "X-K": "v" });
          assert.ok(String(body.secret).startsWith("whsec_"));
          assert.equal(response.headers.location, `/webhooks${BASE}/${body.id}`);
        }
      });

      test("POST …/customTable/{table}/webhookSubscription", async () => {
        const response = await post(
          { eventType: "UPDATE", isActive: true, targetUrl: "https://example.com/c" },
          `/v4/entity/acme/customTable/Orders/webhookSubscription`,
        );
        assert.equal(response.statusCode, 201, response.body);
        const body = response.json() as Json;
        assert.equal(body.on, "CUSTOM_TABLE");
        assert.equal(body.onElementId, orders.id);
      });

      test("the legacy paths validate too, and refuse on/onElementId in the body", async () => {
        const url = "/v4/entity/acme/customTable/Shipments/webhookSubscription";
        await expectError(
          { eventType: "UPDATE", targetUrl: "https://example.com/c" },
          422,
          "HERALD_UNPROCESSABLE",
          "eventType",
          url,
        );
        await expectError(
          { eventType: "CREATE", targetUrl: "https://example.com/c", on: "ETL" },
          400,
          "HERALD_VALIDATION",
          "on",
          url,
        );
        await expectError(
          { eventType: "CREATE", targetUrl: "https://example.com/c" },
          404,
          "HERALD_TABLE_NOT_FOUND",
          "table",
          "/v4/entity/acme/table/Nope/webhookSubscription",
        );
        await expectError(
          { eventType: "CREATE", targetUrl: "https://example.com/c" },
          404,
          "HERALD_TABLE_NOT_FOUND",
          undefined,
          "/v4/entity/acme/customTable/Customers/webhookSubscription",
        );
      });
    });

    describe("prefixes, auth and entity isolation", () => {
      test("service prefixes /webhooks and /ActitoWebServices/ws answer the same", async () => {
        const body = await created({}, `/webhooks${BASE}`);
        for (const prefix of ["/webhooks", "/ActitoWebServices/ws"]) {
          const read = await t.request("GET", `${prefix}${BASE}/${body.id}`);
          assert.equal(read.statusCode, 200, prefix);
          assert.equal((read.json() as Json).id, body.id);
        }
        // Legacy v4 clients authenticate with HTTP Basic; an empty user part names no key.
        const basic = Buffer.from(`:${TEST_ADMIN_KEY}`).toString("base64");
        const legacy = await t.request(
          "GET",
          `/ActitoWebServices/ws${BASE}/${body.id}`,
          undefined,
          {
            authorization: `Basic ${basic}`,
          },
        );
        assert.equal(legacy.statusCode, 200, legacy.body);
      });

      test("no token is 401", async () => {
        const response = await t.app.inject({ method: "GET", url: BASE });
        assert.equal(response.statusCode, 401);
      });

      test("a subscription of another entity is 404 through this entity, and not listed", async () => {
        const other = await addEntity(db, "isolated");
        const table = await addTable(db, other, "PROFILE_TABLE", "Theirs");
        const response = await t.request("POST", "/v4/entity/isolated/webhookSubscription", {
          ...minimal(),
          onElementId: table.id,
        });
        assert.equal(response.statusCode, 201, response.body);
        const theirs = response.json() as Json;
        for (const [method, url] of [
          ["GET", `${BASE}/${theirs.id}`],
          ["GET", `${BASE}/${theirs.id}/secret`],
          ["DELETE", `${BASE}/${theirs.id}`],
        ] as const) {
          assert.equal((await t.request(method, url)).statusCode, 404, `${method} ${url}`);
        }
        assert.equal((await t.request("PUT", `${BASE}/${theirs.id}`, minimal())).statusCode, 404);
        const listed = (await t.request("GET", `${BASE}?pageSize=1000`)).json() as {
          webhookSubscriptions: Json[];
        };
        assert.ok(listed.webhookSubscriptions.every((s) => s.id !== theirs.id));
        // The other entity's table is not an element of this one.
        await expectError(minimal({ onElementId: table.id }), 404, "HERALD_TABLE_NOT_FOUND");
        // It still exists in its own entity.
        assert.equal(
          (await t.request("GET", `/v4/entity/isolated/webhookSubscription/${theirs.id}`))
            .statusCode,
          200,
        );
      });

      test("an entity of another licence is 404", async () => {
        await db.query("INSERT INTO licences (name) VALUES ('elsewhere')");
        await db.query(
          "INSERT INTO entities (licence_id, name) SELECT id, 'foreign' FROM licences WHERE name = 'elsewhere'",
        );
        const response = await t.request("GET", "/v4/entity/foreign/webhookSubscription");
        assert.equal(response.statusCode, 404);
        assert.equal((response.json() as { code: string }).code, "HERALD_ENTITY_NOT_FOUND");
      });
    });
  });

  describe(`webhook subscriptions on ${backend}: target addresses`, { skip }, () => {
    let t: TestApp;
    let table: DataTable;
    // Names a test resolver answers (the others go to the system resolver, where `.invalid` never resolves).
    const NAMES: Record<string, string[]> = {
      "loopback.example.test": ["127.0.0.1"],
      "v6-loopback.example.test": ["::1"],
      "internal.example.test": ["10.0.0.5"],
      "half-internal.example.test": ["93.184.216.34", "192.168.7.7"],
      "hooks.example.test": ["93.184.216.34"],
    };

    before(async () => {
      t = await createTestApp(backend, { allowInsecureTargets: false });
      table = await addTable(
        t.database.db,
        await entityId(t.database.db, "acme"),
        "PROFILE_TABLE",
        "T",
      );
      const system = dns.lookup;
      type Callback = (error: Error | null, addresses: dns.LookupAddress[]) => void;
      mock.method(dns, "lookup", (hostname: string, options: unknown, callback: Callback) => {
        const addresses = NAMES[hostname];
        if (!addresses)
          return (system as (...args: unknown[]) => void)(hostname, options, callback);
        const all = addresses.map((address) => ({
          address,
          family: address.includes(":") ? 6 : 4,
        }));
        process.nextTick(() => callback(null, all));
      });
    });
    after(async () => {
      mock.restoreAll();
      await t?.close();
    });

    const body = (targetUrl: string) => ({
      on: "PROFILE_TABLE",
      onElementId: table.id,
      eventType: "CREATE",
      targetUrl,
    });
    const stored = async () =>
      (
        await t.database.db.query<{ target_url: string }>(
          "SELECT target_url FROM webhook_subscriptions ORDER BY id",
        )
      ).rows.map((r) => r.target_url);
    const expectRefused = async (method: string, url: string, payload: unknown, why: RegExp) => {
      const response = await t.request(method, url, payload);
      assert.equal(response.statusCode, 422, `${JSON.stringify(payload)}: ${response.body}`);
      const error = response.json() as {
        code: string;
        message: string;
        details: { path: string; message: string }[];
      };
      assert.equal(error.code, "HERALD_BLOCKED_TARGET");
      assert.match(error.message, why);
      assert.match(error.message, /HERALD_ALLOW_INSECURE_TARGETS/);
      assert.match(error.message, /--allow-insecure-targets/);
      assert.equal(error.details[0]?.path, "targetUrl");
    };

    test("subscription-time refusal for each address spelling (decimal, octal, hex, IPv4-mapped IPv6, trailing dot, names resolving to loopback)", async () => {
      const spellings: [string, RegExp][] = [
        ["https://127.0.0.1/hook", /127\.0\.0\.1 is a loopback address/],
        ["https://2130706433/hook", /127\.0\.0\.1 is a loopback address/], // decimal
        ["https://0177.0.0.1/hook", /127\.0\.0\.1 is a loopback address/], // octal
        ["https://017700000001/hook", /127\.0\.0\.1 is a loopback address/], // octal, one number
        ["https://0x7f.0.0.1/hook", /127\.0\.0\.1 is a loopback address/], // hex
        ["https://0x7F000001/hook", /127\.0\.0\.1 is a loopback address/], // hex, one number
        ["https://0x7f.1/hook", /127\.0\.0\.1 is a loopback address/], // hex, short form
        ["https://127.1/hook", /127\.0\.0\.1 is a loopback address/], // short form
        ["https://127.0.0.1./hook", /127\.0\.0\.1 is a loopback address/], // trailing dot
        ["https://[::ffff:127.0.0.1]/hook", /\[::ffff:7f00:1\] is a loopback address/], // IPv4-mapped
        ["https://[::ffff:7f00:1]/hook", /\[::ffff:7f00:1\] is a loopback address/], // mapped, hex
        ["https://[::1]/hook", /\[::1\] is a loopback address/],
        ["https://[::]/hook", /\[::\] is the unspecified address/],
        ["https://0.0.0.0/hook", /0\.0\.0\.0 is the unspecified/],
        ["https://169.254.169.254/latest/meta-data", /link-local \(metadata\)/],
        ["https://10.0.0.1/hook", /10\.0\.0\.1 is a private address/],
        ["https://0xc0.0xa8.1.1/hook", /192\.168\.1\.1 is a private address/],
        ["https://[fd00:ec2::254]/hook", /unique-local/],
        ["https://localhost/hook", /localhost name/],
        ["https://LOCALHOST:8443/hook", /localhost name/], // upper case
        ["https://localhost./hook", /localhost name/], // trailing dot
        ["https://loopback.example.test/hook", /resolves to 127\.0\.0\.1, a loopback address/],
        ["https://LOOPBACK.example.test./hook", /resolves to 127\.0\.0\.1/], // trailing dot, case
        ["https://v6-loopback.example.test/hook", /resolves to ::1, a loopback address/],
        ["https://internal.example.test/hook", /resolves to 10\.0\.0\.5, a private address/],
        ["https://half-internal.example.test/hook", /resolves to 192\.168\.7\.7/],
      ];
      for (const [targetUrl, why] of spellings) {
        await expectRefused("POST", BASE, body(targetUrl), why);
        await expectRefused(
          "POST",
          `/v4/entity/acme/table/${table.id}/webhookSubscription`,
          { eventType: "CREATE", targetUrl },
          why,
        );
      }
      assert.deepEqual(await stored(), []);
    });

    test("a public address or name is accepted; so is a name that does not resolve (its pushes fail until it does)", async () => {
      for (const targetUrl of [
        "https://93.184.216.34/hook",
        "https://hooks.example.test/hook",
        "https://nowhere.invalid/hook",
      ]) {
        const response = await t.request("POST", BASE, body(targetUrl));
        assert.equal(response.statusCode, 201, `${targetUrl}: ${response.body}`);
      }
      assert.deepEqual((await stored()).slice(-3), [
        "https://93.184.216.34/hook",
        "https://hooks.example.test/hook",
        "https://nowhere.invalid/hook",
      ]);
    });

    test("PUT: a new refused target is 422 and changes nothing; an unchanged target is not checked again", async () => {
      const created = await t.request("POST", BASE, body("https://hooks.example.test/a"));
      const id = (created.json() as Json).id;
      await expectRefused("PUT", `${BASE}/${id}`, body("https://0x7f.1/a"), /loopback/);
      await expectRefused(
        "PUT",
        `${BASE}/${id}`,
        body("https://internal.example.test/a"),
        /private/,
      );
      const read = (await t.request("GET", `${BASE}/${id}`)).json() as Json;
      assert.equal(read.targetUrl, "https://hooks.example.test/a");
      assert.equal(read.isActive, true);
      // A target stored while the operator allowed insecure targets can still be paused or edited.
      await t.database.db.query("UPDATE webhook_subscriptions SET target_url = $2 WHERE id = $1", [
        id,
        "https://127.0.0.1/old",
      ]);
      const paused = await t.request("PUT", `${BASE}/${id}`, {
        ...body("https://127.0.0.1/old"),
        isActive: false,
      });
      assert.equal(paused.statusCode, 200, paused.body);
      assert.equal((paused.json() as Json).isActive, false);
      await expectRefused("PUT", `${BASE}/${id}`, body("https://127.0.0.2/new"), /loopback/);
    });

    test("plain http is a 400 before any address check", async () => {
      const response = await t.request("POST", BASE, body("http://2130706433/hook"));
      assert.equal(response.statusCode, 400, response.body);
      assert.match(response.body, /--allow-insecure-targets/);
    });
  });

  describe(`webhook subscriptions on ${backend}: operator settings and hooks`, { skip }, () => {
    test("plain http targets are refused unless the operator allows them", async () => {
      const t = await createTestApp(backend, { allowInsecureTargets: false });
      try {
        const db = t.database.db;
        const table = await addTable(db, await entityId(db, "acme"), "PROFILE_TABLE", "T");
        const body = {
          on: "PROFILE_TABLE",
          onElementId: table.id,
          eventType: "CREATE",
          targetUrl: "http://example.com/hook",
        };
        const refused = await t.request("POST", BASE, body);
        assert.equal(refused.statusCode, 400, refused.body);
        assert.match(refused.body, /https/);
        const ok = await t.request("POST", BASE, { ...body, targetUrl: "https://example.com/h" });
        assert.equal(ok.statusCode, 201);
      } finally {
        await t.close();
      }
    });

    test("every change calls hooks.subscriptionsChanged; reads and refusals do not", async () => {
      const database = await createTestDatabase(backend);
      const config = {
        ...loadConfig({ env: {} }),
        defaultEntity: "acme",
        adminApiKey: TEST_ADMIN_KEY,
        allowInsecureTargets: true,
      };
      await bootstrap(database.db, { defaultEntity: "acme", adminApiKey: TEST_ADMIN_KEY });
      let changes = 0;
      const app = await buildApp({
        db: database.db,
        config,
        logger: createLogger("silent"),
        hooks: { subscriptionsChanged: () => void changes++ },
      });
      try {
        const table = await addTable(
          database.db,
          await entityId(database.db, "acme"),
          "PROFILE_TABLE",
          "T",
        );
        const token = (
          (
            await app.inject({
              method: "GET",
              url: "/auth/token",
              headers: { authorization: TEST_ADMIN_KEY },
            })
          ).json() as { accessToken: string }
        ).accessToken;
        const call = (method: string, url: string, body?: unknown) =>
          app.inject({
            method: method as "GET",
            url,
            headers: { authorization: `Bearer ${token}` },
            ...(body === undefined ? {} : { payload: body as object }),
          });
        const body = {
          on: "PROFILE_TABLE",
          onElementId: table.id,
          eventType: "CREATE",
          targetUrl: "https://example.com/h",
        };
        const created = (await call("POST", BASE, body)).json() as Json;
        assert.equal(changes, 1);
        await call("POST", BASE, { ...body, eventType: "STARTED" });
        await call("GET", `${BASE}/${created.id}`);
        await call("GET", BASE);
        assert.equal(changes, 1);
        await call("PUT", `${BASE}/${created.id}`, { ...body, isActive: false });
        assert.equal(changes, 2);
        await call("POST", `/v4/entity/acme/table/${table.id}/webhookSubscription`, {
          eventType: "DELETE",
          targetUrl: "https://example.com/h",
        });
        assert.equal(changes, 3);
        await call("DELETE", `${BASE}/${created.id}`);
        assert.equal(changes, 4);
      } finally {
        await app.close();
        await database.drop();
      }
    });
  });
}

/**
 * Matching on events that capture really wrote: tables and records made through the API, the log
 * stamped, subscriptions loaded as delivery loads them. Catches drift between what capture puts in
 * an event (sourceId, fields, declaredEvents) and what matching reads.
 */
for (const { backend, skip } of await testBackends()) {
  describe(`matching captured events on ${backend}`, { skip }, () => {
    let t: TestApp;
    before(async () => {
      t = await createTestApp(backend);
    });
    after(() => t?.close());

    const ok = async (method: string, url: string, body?: unknown) => {
      const response = await t.request(method, url, body);
      assert.ok(
        response.statusCode < 300,
        `${method} ${url}: ${response.statusCode} ${response.body}`,
      );
      return response.json() as Record<string, unknown>;
    };
    const subscribe = async (body: Record<string, unknown>) =>
      (await ok("POST", BASE, { targetUrl: "https://example.com/m", ...body })).id as number;

    /** Stamps what capture appended, then lists which of `ids` match each new event. */
    const matchedAfter = async (head: number, ids: number[]) => {
      await stampPendingEvents(t.database.db);
      const events = await readLog(t.database.db, head, 1000);
      const subscriptions = await Promise.all(
        ids.map((id) => loadSubscription(t.database.db, t.database.secrets, id)),
      );
      return events.map((e) => ({
        type: `${e.source}/${e.eventType}`,
        matched: subscriptions.filter((s) => s && matchesSubscription(s, e)).map((s) => s!.id),
      }));
    };

    test("profile table: onFields select by provided / changed attributes; the watermark excludes older events", async () => {
      const table = await ok("POST", "/v5/entities/acme/profile-tables", {
        name: "Members",
        attributes: [
          { name: "emailAddress", type: "EMAIL_ADDRESS", unique: true, mandatory: true },
          { name: "firstName", type: "FIRSTNAME" },
          { name: "city", type: "CUSTOM", valueType: "STRING" },
        ],
      });
      const tableId = String(table.id);
      const profiles = `/v4/entity/acme/table/${tableId}/profile`;
      await ok("POST", profiles, { attributes: [{ name: "emailAddress", value: "old@x.be" }] });
      await stampPendingEvents(t.database.db);

      const anyUpdate = await subscribe({
        on: "PROFILE_TABLE",
        onElementId: "Members",
        eventType: "UPDATE",
      });
      const cityUpdate = await subscribe({
        on: "PROFILE_TABLE",
        onElementId: tableId,
        eventType: "UPDATE",
        onFields: ["city"],
      });
      const creates = await subscribe({
        on: "PROFILE_TABLE",
        onElementId: tableId,
        eventType: "CREATE",
      });
      const sub = await loadSubscription(t.database.db, t.database.secrets, creates);
      const head = sub!.watermark;

      await ok("POST", profiles, {
        attributes: [
          { name: "emailAddress", value: "a@x.be" },
          { name: "firstName", value: "Ann" },
        ],
      });
      await ok("PUT", `${profiles}/emailAddress=a@x.be`, {
        attributes: [{ name: "firstName", value: "Anna" }],
      });
      await ok("PUT", `${profiles}/emailAddress=a@x.be`, {
        attributes: [{ name: "city", value: "Liège" }],
      });
      const ids = [anyUpdate, cityUpdate, creates];
      assert.deepEqual(await matchedAfter(head, ids), [
        { type: "PROFILE_TABLE/CREATE", matched: [creates] },
        { type: "PROFILE_TABLE/UPDATE", matched: [anyUpdate] },
        { type: "PROFILE_TABLE/UPDATE", matched: [anyUpdate, cityUpdate] },
      ]);
    });

    test("custom table: an UPDATE subscription receives only updates that fire a declared event; conditions filter", async () => {
      const table = await ok("POST", "/v5/entities/acme/custom-tables", {
        name: "Parcels",
        type: "INTERACTIONS",
        primaryKeyAttribute: "parcelId",
        attributes: [
          { name: "parcelId", valueType: "STRING", mandatory: true, unique: true },
          { name: "status", valueType: "STRING" },
          { name: "weight", valueType: "NUMBER" },
        ],
        eventsToTrigger: [
          {
            name: "parcel-shipped",
            triggerRules: [
              {
                onOperation: "UPDATE",
                onAnyAttribute: ["status"],
                matchingConditions: {
                  stateAfterOperation: [{ attribute: "status", operator: "=", value: "SHIPPED" }],
                },
              },
            ],
          },
        ],
      });
      const updates = await subscribe({
        on: "CUSTOM_TABLE",
        onElementId: "Parcels",
        eventType: "UPDATE",
      });
      const heavyCreates = await subscribe({
        on: "CUSTOM_TABLE",
        onElementId: String(table.id),
        eventType: "CREATE",
        conditions: { stateAfterOperation: [{ attribute: "weight", operator: ">", value: 10 }] },
      });
      const head = (await loadSubscription(t.database.db, t.database.secrets, updates))!.watermark;
      const records = "/v4/entity/acme/customTable/Parcels/record";
      const record = (parcelId: string, status: string, weight: number) => ({
        properties: [
          { name: "parcelId", value: parcelId },
          { name: "status", value: status },
          { name: "weight", value: weight },
        ],
      });
      await ok("POST", records, record("p1", "NEW", 2));
      await ok("POST", records, record("p2", "NEW", 20));
      await ok("PUT", `${records}/p1`, { properties: [{ name: "weight", value: 3 }] });
      await ok("PUT", `${records}/p1`, { properties: [{ name: "status", value: "SHIPPED" }] });
      assert.deepEqual(await matchedAfter(head, [updates, heavyCreates]), [
        { type: "CUSTOM_TABLE/CREATE", matched: [] },
        { type: "CUSTOM_TABLE/CREATE", matched: [heavyCreates] },
        { type: "CUSTOM_TABLE/UPDATE", matched: [] },
        { type: "CUSTOM_TABLE/UPDATE", matched: [updates] },
      ]);
    });
  });
}
