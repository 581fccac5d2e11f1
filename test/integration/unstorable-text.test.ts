/**
 * Issue #19 defect 5 (and the lone surrogate of defect 8): text PostgreSQL cannot store (a NUL, an
 * unpaired surrogate) answered 500 wherever it reached a query, or was stored as U+FFFD. Every such
 * request is now a 400 HERALD_VALIDATION naming where the text was, and writes nothing.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { TestApp } from "../helpers/test-app.js";
import { createTestApp } from "../helpers/test-app.js";
import { testBackends } from "../helpers/test-database.js";

const PEOPLE = {
  name: "People",
  attributes: [{ name: "emailAddress", type: "EMAIL_ADDRESS", unique: true }],
};

const SUBSCRIPTION = {
  on: "PROFILE_TABLE",
  eventType: "CREATE",
  targetUrl: "https://example.com/hook",
};

/** The rows any of these requests could write. */
async function counts(t: TestApp): Promise<string> {
  const { rows } = await t.database.db.query<Record<string, number>>(
    `SELECT (SELECT count(*)::int FROM webhook_subscriptions) AS subscriptions,
            (SELECT count(*)::int FROM api_keys) AS keys,
            (SELECT count(*)::int FROM entities) AS entities,
            (SELECT count(*)::int FROM change_events) AS events`,
  );
  return JSON.stringify(rows[0]);
}

for (const { backend, skip } of await testBackends()) {
  describe(`text PostgreSQL cannot store is a 400 on ${backend}`, { skip }, () => {
    let t: TestApp;
    let tableId: string;
    before(async () => {
      t = await createTestApp(backend);
      const created = await t.request("POST", "/v5/entities/acme/profile-tables", PEOPLE);
      assert.equal(created.statusCode, 201, created.body);
      tableId = (created.json() as { id: string }).id;
    });
    after(() => t?.close());

    const cases: [string, string, string, () => unknown, string][] = [
      [
        "entity of a subscription path",
        "GET",
        "/v4/entity/a%00b/webhookSubscription",
        () => undefined,
        "params.entity",
      ],
      ["entity path", "GET", "/v4/entity/a%00b", () => undefined, "params.entity"],
      [
        "entity of a change-events path",
        "GET",
        "/v5/entities/a%00/change-events",
        () => undefined,
        "params.entity",
      ],
      [
        "table of a legacy subscription path",
        "POST",
        "/v4/entity/acme/table/a%00/webhookSubscription",
        () => ({ eventType: "CREATE", targetUrl: "https://example.com/h" }),
        "params.table",
      ],
      [
        "custom table of a legacy subscription path",
        "POST",
        "/v4/entity/acme/customTable/%00/webhookSubscription",
        () => ({ eventType: "CREATE", targetUrl: "https://example.com/h" }),
        "params.table",
      ],
      [
        "onElementId of change-events",
        "GET",
        "/v5/entities/acme/change-events?onElementId=a%00",
        () => undefined,
        "querystring.onElementId",
      ],
      ["API key name", "POST", "/v4/api-keys", () => ({ name: "ops\u0000" }), "body.name"],
      [
        "API key name with a lone surrogate",
        "POST",
        "/v4/api-keys",
        () => ({ name: "ops\ud800" }),
        "body.name",
      ],
      [
        "targetUrl",
        "POST",
        "/v4/entity/acme/webhookSubscription",
        () => ({ ...SUBSCRIPTION, onElementId: tableId, targetUrl: "https://example.com/\u0000" }),
        "body.targetUrl",
      ],
      [
        "a trigger source's onElementId",
        "POST",
        "/v4/entity/acme/webhookSubscription",
        () => ({
          on: "ETL",
          onElementId: "1\u0000",
          eventType: "FINISHED",
          targetUrl: "https://example.com/h",
        }),
        "body.onElementId",
      ],
      [
        "a conditions value",
        "POST",
        "/v4/entity/acme/webhookSubscription",
        () => ({
          ...SUBSCRIPTION,
          onElementId: tableId,
          eventType: "UPDATE",
          conditions: {
            stateAfterOperation: [{ attribute: "emailAddress", operator: "=", value: "a\u0000" }],
          },
        }),
        "body.conditions.stateAfterOperation[0].value",
      ],
      [
        "a header value",
        "POST",
        "/v4/entity/acme/webhookSubscription",
        () => ({ ...SUBSCRIPTION, onElementId: tableId, headers: { "x-token": "\udc00" } }),
        "body.headers.x-token",
      ],
      ["an entity name", "POST", "/v4/entity", () => ({ name: "a\u0000" }), "body.name"],
    ];
    for (const [name, method, url, body, path] of cases)
      test(`${name}: 400 HERALD_VALIDATION naming ${path}, nothing written`, async () => {
        const before = await counts(t);
        const res = await t.request(method, url, body());
        assert.equal(res.statusCode, 400, res.body);
        const error = res.json() as {
          status: number;
          code: string;
          message: string;
          details: { path: string; message: string }[];
        };
        assert.equal(error.status, 400);
        assert.equal(error.code, "HERALD_VALIDATION");
        assert.deepEqual(error.details, [
          { path, message: "holds a NUL character or an unpaired surrogate" },
        ]);
        assert.equal(await counts(t), before);
      });

    test("the same requests without the bad character are accepted (the cases test the character, not the request)", async () => {
      const key = await t.request("POST", "/v4/api-keys", { name: "ops" });
      assert.equal(key.statusCode, 201, key.body);
      const subscription = await t.request("POST", "/v4/entity/acme/webhookSubscription", {
        ...SUBSCRIPTION,
        onElementId: tableId,
        eventType: "UPDATE",
        conditions: {
          stateAfterOperation: [{ attribute: "emailAddress", operator: "=", value: "a" }],
        },
      });
      assert.equal(subscription.statusCode, 201, subscription.body);
      const log = await t.request("GET", "/v5/entities/acme/change-events?onElementId=a");
      assert.equal(log.statusCode, 200, log.body);
    });
  });
}
