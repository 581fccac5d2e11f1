import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { EVENT_SOURCES, EVENT_TYPES } from "../../src/domain/change-event.js";
import type { DataTable } from "../../src/domain/data-table.js";
import { PUSH_MODES } from "../../src/domain/subscription.js";
import type { SubscriptionRequest } from "../../src/domain/subscription-validation.js";
import {
  elementProblems,
  requestProblems,
  RESERVED_HEADERS,
  SUBSCRIPTION_LIMITS,
  toSubscriptionSettings,
  withoutReservedHeaders,
} from "../../src/domain/subscription-validation.js";
import {
  generateWebhookSecret,
  SECRET_PREFIX,
  webhookSecretProblem,
} from "../../src/domain/webhook-secret.js";

const SECURE = { allowInsecureTargets: false };

function request(overrides: SubscriptionRequest = {}): SubscriptionRequest {
  return {
    on: "PROFILE_TABLE",
    onElementId: "1",
    eventType: "UPDATE",
    targetUrl: "https://example.com/hook",
    ...overrides,
  };
}

function table(overrides: Partial<DataTable> = {}): DataTable {
  return {
    id: "1",
    entityId: 1,
    kind: "PROFILE_TABLE",
    name: "Customers",
    version: 1,
    attributes: [
      {
        name: "emailAddress",
        valueType: "STRING",
        unique: true,
        mandatory: true,
        multiValued: false,
      },
      { name: "city", valueType: "STRING", unique: false, mandatory: false, multiValued: false },
    ],
    subscriptions: [],
    segmentations: [],
    eventsToTrigger: [],
    ...overrides,
  };
}

const paths = (problems: { path: string }[]) => problems.map((p) => p.path);

describe("requestProblems (400)", () => {
  test("a minimal valid request has no problems", () => {
    assert.deepEqual(requestProblems(request(), SECURE), []);
  });

  test("on, eventType and pushMode must be known values", () => {
    const problems = requestProblems(
      request({ on: "TABLE", eventType: "CHANGE", pushMode: "BATCH" }),
      SECURE,
    );
    assert.deepEqual(paths(problems), ["on", "eventType", "pushMode"]);
    assert.match(problems[0]!.message, /PROFILE_TABLE, CUSTOM_TABLE, ETL/);
  });

  test("table sources need onElementId; trigger sources may omit it", () => {
    assert.deepEqual(paths(requestProblems(request({ onElementId: undefined }), SECURE)), [
      "onElementId",
    ]);
    assert.deepEqual(paths(requestProblems(request({ onElementId: "  " }), SECURE)), [
      "onElementId",
    ]);
    assert.deepEqual(
      requestProblems(request({ on: "ETL", eventType: "FINISHED", onElementId: null }), SECURE),
      [],
    );
  });

  test("targetUrl must be https unless the operator allows plain http", () => {
    const plain = request({ targetUrl: "http://example.com/hook" });
    assert.deepEqual(paths(requestProblems(plain, SECURE)), ["targetUrl"]);
    assert.deepEqual(requestProblems(plain, { allowInsecureTargets: true }), []);
    for (const bad of ["ftp://example.com", "not a url", "https://user:pw@example.com/", ""]) {
      assert.deepEqual(
        paths(requestProblems(request({ targetUrl: bad }), { allowInsecureTargets: true })),
        ["targetUrl"],
        bad,
      );
    }
    assert.deepEqual(paths(requestProblems(request({ targetUrl: undefined }), SECURE)), [
      "targetUrl",
    ]);
  });

  test("numeric settings are checked against their ranges", () => {
    const problems = requestProblems(
      request({ maxBlockSize: 1001, lingerMs: -1, maxWaitMs: 1.5, maxConcurrency: 65 }),
      SECURE,
    );
    assert.deepEqual(paths(problems), ["maxBlockSize", "lingerMs", "maxWaitMs", "maxConcurrency"]);
    assert.deepEqual(
      requestProblems(request({ maxBlockSize: 1, maxConcurrency: 64, lingerMs: 0 }), SECURE),
      [],
    );
  });

  test("header names must be tokens and values must not break lines", () => {
    const problems = requestProblems(
      request({ headers: { "Bad Name": "x", "X-Inject": "a\r\nX-Evil: 1", "X-Ok": "fine" } }),
      SECURE,
    );
    assert.deepEqual(paths(problems), ["headers.Bad Name", "headers.X-Inject"]);
  });

  test("unknown body fields are refused; read-only fields are ignored", () => {
    const problems = requestProblems(request(), {
      ...SECURE,
      bodyFields: ["on", "onField", "id", "status", "_links", "createdAt"],
    });
    assert.deepEqual(paths(problems), ["onField"]);
  });

  test("on the legacy paths, on and onElementId come from the path", () => {
    const problems = requestProblems(request(), {
      ...SECURE,
      legacyPath: true,
      bodyFields: ["onElementId", "eventType"],
    });
    assert.deepEqual(paths(problems), ["onElementId"]);
  });

  test("a given secret must be whsec_ with 24-64 bytes of standard base64", () => {
    const ok = `${SECRET_PREFIX}${Buffer.alloc(24, 7).toString("base64")}`;
    assert.deepEqual(requestProblems(request({ secret: ok }), SECURE), []);
    for (const bad of [
      "plain-secret",
      `${SECRET_PREFIX}${Buffer.alloc(16, 7).toString("base64")}`,
      `${SECRET_PREFIX}${Buffer.alloc(65, 7).toString("base64")}`,
      `${SECRET_PREFIX}not*base64`,
    ]) {
      assert.deepEqual(paths(requestProblems(request({ secret: bad }), SECURE)), ["secret"], bad);
    }
  });

  test("conditions with an unknown operator or a missing value are malformed", () => {
    const problems = requestProblems(
      request({
        conditions: {
          stateAfterOperation: [
            { attribute: "city", operator: "LIKE" as "=" },
            { attribute: "city", operator: "=" },
          ],
        },
      }),
      SECURE,
    );
    assert.ok(paths(problems).includes("conditions.stateAfterOperation[0].operator"));
    assert.ok(paths(problems).includes("conditions.stateAfterOperation[1].value"));
    assert.ok(problems.every((p) => !p.path.endsWith(".attribute")));
  });
});

describe("payloadVersion", () => {
  test("1 and 2 are accepted and stored; absent is 2", () => {
    for (const payloadVersion of [1, 2] as const) {
      assert.deepEqual(requestProblems(request({ payloadVersion }), SECURE), []);
      const settings = toSubscriptionSettings(
        request({ payloadVersion }) as Parameters<typeof toSubscriptionSettings>[0],
        "1",
        "s",
      );
      assert.equal(settings.payloadVersion, payloadVersion);
    }
  });

  test("any other number is a 400 at payloadVersion", () => {
    for (const payloadVersion of [0, 3, -1, 1.5, 2.0000001, 10])
      assert.deepEqual(paths(requestProblems(request({ payloadVersion }), SECURE)), [
        "payloadVersion",
      ]);
  });

  test("version 1 is for table sources: a trigger source with it is a 422 at payloadVersion", () => {
    const trigger = request({
      on: "ETL",
      onElementId: null,
      eventType: "FINISHED",
      payloadVersion: 1,
    }) as Parameters<typeof elementProblems>[0];
    assert.deepEqual(paths(elementProblems(trigger, undefined)), ["payloadVersion"]);
    assert.deepEqual(elementProblems({ ...trigger, payloadVersion: 2 }, undefined), []);
    const onTable = request({ payloadVersion: 1 }) as Parameters<typeof elementProblems>[0];
    assert.deepEqual(elementProblems(onTable, table()), []);
  });
});

describe("requestProblems properties", () => {
  const limit = (min: number, max: number) =>
    fc.option(fc.integer({ min, max }), { nil: undefined });
  const validRequest = fc.record({
    on: fc.constantFrom(...EVENT_SOURCES),
    onElementId: fc.constantFrom("1", "t-9", 42),
    eventType: fc.constantFrom(...EVENT_TYPES),
    targetUrl: fc.webUrl({ validSchemes: ["https"] }),
    pushMode: fc.option(fc.constantFrom(...PUSH_MODES), { nil: undefined }),
    maxBlockSize: limit(SUBSCRIPTION_LIMITS.maxBlockSize.min, SUBSCRIPTION_LIMITS.maxBlockSize.max),
    lingerMs: limit(SUBSCRIPTION_LIMITS.lingerMs.min, SUBSCRIPTION_LIMITS.lingerMs.max),
    maxWaitMs: limit(SUBSCRIPTION_LIMITS.maxWaitMs.min, SUBSCRIPTION_LIMITS.maxWaitMs.max),
    maxConcurrency: limit(
      SUBSCRIPTION_LIMITS.maxConcurrency.min,
      SUBSCRIPTION_LIMITS.maxConcurrency.max,
    ),
    headers: fc.dictionary(
      fc.stringMatching(/^X-[A-Za-z0-9-]{1,20}$/),
      fc.stringMatching(/^[ -~]{0,40}$/),
      { maxKeys: 5 },
    ),
  });

  test("any request of known values, in-range numbers and an https URL passes, and its settings stay in range", () => {
    fc.assert(
      fc.property(validRequest, (r) => {
        assert.deepEqual(requestProblems(r, SECURE), []);
        const settings = toSubscriptionSettings(
          r as Parameters<typeof toSubscriptionSettings>[0],
          String(r.onElementId),
          "whsec_x",
        );
        for (const key of Object.keys(
          SUBSCRIPTION_LIMITS,
        ) as (keyof typeof SUBSCRIPTION_LIMITS)[]) {
          assert.ok(settings[key] >= SUBSCRIPTION_LIMITS[key].min, key);
          assert.ok(settings[key] <= SUBSCRIPTION_LIMITS[key].max, key);
        }
      }),
    );
  });

  test("one out-of-range number is reported at its own path", () => {
    fc.assert(
      fc.property(
        validRequest,
        fc.constantFrom(
          ...(Object.keys(SUBSCRIPTION_LIMITS) as (keyof typeof SUBSCRIPTION_LIMITS)[]),
        ),
        fc.boolean(),
        (r, key, above) => {
          const bad = above ? SUBSCRIPTION_LIMITS[key].max + 1 : SUBSCRIPTION_LIMITS[key].min - 1;
          assert.deepEqual(paths(requestProblems({ ...r, [key]: bad }, SECURE)), [key]);
        },
      ),
    );
  });
});

describe("elementProblems (422)", () => {
  const checked = (overrides: SubscriptionRequest = {}) =>
    request(overrides) as Parameters<typeof elementProblems>[0];

  test("eventType must fit on", () => {
    assert.deepEqual(paths(elementProblems(checked({ eventType: "STARTED" }), table())), [
      "eventType",
    ]);
    assert.deepEqual(
      paths(
        elementProblems(
          checked({ on: "CUSTOM_TABLE", eventType: "UPDATED_SEGMENT" }),
          table({ kind: "CUSTOM_TABLE" }),
        ),
      ),
      ["eventType"],
    );
    assert.deepEqual(
      elementProblems(checked({ on: "EXPORT", eventType: "FINISHED" }), undefined),
      [],
    );
  });

  test("onFields must be attributes of the table; technical attributes count on profile tables", () => {
    const problems = elementProblems(
      checked({ onFields: ["emailAddress", "profileId", "nope"] }),
      table(),
    );
    assert.deepEqual(paths(problems), ["onFields[2]"]);
    assert.match(problems[0]!.message, /'nope' is not an attribute of table 'Customers'/);
  });

  test("condition attributes must be attributes of the table", () => {
    const problems = elementProblems(
      checked({
        conditions: { stateBeforeOperation: [{ attribute: "zip", operator: "IS_NULL" }] },
      }),
      table(),
    );
    assert.deepEqual(paths(problems), ["conditions.stateBeforeOperation[0].attribute"]);
  });

  test("a custom-table UPDATE needs a declared UPDATE event", () => {
    const custom = table({ kind: "CUSTOM_TABLE", id: "c-1", name: "Orders" });
    const update = checked({ on: "CUSTOM_TABLE", onElementId: "c-1", eventType: "UPDATE" });
    assert.deepEqual(paths(elementProblems(update, custom)), ["eventType"]);
    const declared = {
      ...custom,
      eventsToTrigger: [{ name: "shipped", triggerRules: [{ onOperation: "UPDATE" as const }] }],
    };
    assert.deepEqual(elementProblems(update, declared), []);
    const onlyCreate = {
      ...custom,
      eventsToTrigger: [{ name: "new", triggerRules: [{ onOperation: "CREATE" as const }] }],
    };
    assert.deepEqual(paths(elementProblems(update, onlyCreate)), ["eventType"]);
  });

  test("trigger sources take neither onFields nor conditions", () => {
    const problems = elementProblems(
      checked({
        on: "CUSTOM_ACTION",
        eventType: "TRIGGER",
        onFields: ["x"],
        conditions: { stateAfterOperation: [{ attribute: "x", operator: "IS_NULL" }] },
      }),
      undefined,
    );
    assert.deepEqual(paths(problems), ["onFields", "conditions"]);
  });
});

describe("toSubscriptionSettings", () => {
  test("fills the SPEC defaults and keeps the given secret", () => {
    const settings = toSubscriptionSettings(
      request() as Parameters<typeof toSubscriptionSettings>[0],
      "1",
      "whsec_kept",
    );
    assert.deepEqual(settings, {
      on: "PROFILE_TABLE",
      onElementId: "1",
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
      secret: "whsec_kept",
    });
  });

  test("empty conditions are stored as null; duplicate onFields collapse", () => {
    const settings = toSubscriptionSettings(
      request({
        onFields: ["city", "city"],
        conditions: { stateBeforeOperation: [] },
      }) as Parameters<typeof toSubscriptionSettings>[0],
      "1",
      "s",
    );
    assert.equal(settings.conditions, null);
    assert.deepEqual(settings.onFields, ["city"]);
  });

  test("reserved headers are dropped whatever their case; others are kept as given", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...RESERVED_HEADERS),
        fc.boolean(),
        fc.string({ maxLength: 20 }),
        (name, upper, value) => {
          const headers = { [upper ? name.toUpperCase() : name]: value, "X-Token": "t" };
          assert.deepEqual(withoutReservedHeaders(headers), { "X-Token": "t" });
        },
      ),
    );
  });
});

describe("webhook secrets", () => {
  test("generated secrets are valid, 32 bytes, and different every time", () => {
    const a = generateWebhookSecret();
    const b = generateWebhookSecret();
    assert.equal(webhookSecretProblem(a), undefined);
    assert.notEqual(a, b);
    assert.equal(Buffer.from(a.slice(SECRET_PREFIX.length), "base64").length, 32);
  });

  test("any 24-64 byte key in whsec_ form is accepted; other lengths are not", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 80 }), (bytes) => {
        const secret = `${SECRET_PREFIX}${Buffer.from(bytes).toString("base64")}`;
        const ok = bytes.length >= 24 && bytes.length <= 64;
        assert.equal(webhookSecretProblem(secret) === undefined, ok);
      }),
    );
  });
});
