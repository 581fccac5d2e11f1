import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { DataTable } from "../../src/domain/data-table.js";
import { toDataObject } from "../../src/domain/event-payload.js";
import { sampleEvent, testPushBody } from "../../src/domain/sample-event.js";

const now = new Date("2026-11-30T12:00:00Z");
const custom: DataTable = {
  id: "c0ffee",
  entityId: 1,
  kind: "CUSTOM_TABLE",
  name: "orders",
  version: 1,
  attributes: [
    { name: "orderId", valueType: "STRING", unique: true, mandatory: true, multiValued: false },
    { name: "total", valueType: "NUMBER", unique: false, mandatory: false, multiValued: false },
    { name: "paid", valueType: "BOOLEAN", unique: false, mandatory: false, multiValued: false },
    { name: "day", valueType: "DATE", unique: false, mandatory: false, multiValued: false },
    {
      name: "status",
      valueType: "STRING",
      unique: false,
      mandatory: false,
      multiValued: false,
      valueRestriction: { acceptedValues: ["NEW", "SHIPPED"] },
    },
  ],
  subscriptions: [],
  segmentations: [],
  primaryKeyAttribute: "orderId",
  eventsToTrigger: [{ name: "order-updated", triggerRules: [{ onOperation: "UPDATE" }] }],
};

describe("sample event of a test push", () => {
  test("a custom-table CREATE carries every attribute, typed values rendered as strings", () => {
    const subject = {
      entityId: 1,
      on: "CUSTOM_TABLE" as const,
      onElementId: "c0ffee",
      eventType: "CREATE" as const,
      onFields: [],
    };
    const data = toDataObject(sampleEvent(subject, custom, now), {
      entityName: "acme",
      includePrevious: false,
    });
    assert.equal(data.orderId, "sample orderId");
    assert.equal(data.total, "3.5");
    assert.equal(data.paid, "true");
    assert.equal(data.day, "2026-11-30");
    assert.equal(data.status, "NEW");
    assert.equal(data._event.type, "CREATE");
    assert.equal(data._event.id, "evt_0");
    assert.equal(data._event.position, 0);
    assert.deepEqual(data._event.declaredEvents, []);
    assert.match(data._links.self.href, /customTable\/c0ffee\/record\/sample%20orderId$/);
  });

  test("an UPDATE changes the subscription's onFields and names the declared UPDATE events", () => {
    const subject = {
      entityId: 1,
      on: "CUSTOM_TABLE" as const,
      onElementId: "c0ffee",
      eventType: "UPDATE" as const,
      onFields: ["paid", "nope"],
    };
    const event = sampleEvent(subject, custom, now);
    assert.deepEqual(event.fields, ["paid"]);
    assert.deepEqual(event.declaredEvents, ["order-updated"]);
    const data = toDataObject(event, { entityName: "acme", includePrevious: true });
    assert.deepEqual(data._event.previous, { paid: null });
  });

  test("trigger sources get dotted trigger fields", () => {
    const subject = {
      entityId: 1,
      on: "ETL" as const,
      onElementId: null,
      eventType: "FINISHED" as const,
      onFields: [],
    };
    const data = toDataObject(sampleEvent(subject, undefined, now), {
      entityName: "acme",
      includePrevious: false,
    });
    assert.equal(data["etl.executionStatus"], "SUCCESS");
    assert.equal(data["etl.id"], "sample");
    assert.equal(data._event.type, "FINISHED");
  });

  test("a trigger source's sample carries the keys and links of SPEC §7's real event", () => {
    const expected = {
      ETL: {
        keys: [
          "etl.id",
          "etl.name",
          "etl.executionId",
          "etl.executionStatus",
          "etl.rowsRead",
          "etl.rowsCreated",
          "etl.rowsUpdated",
          "etl.rowsUnchanged",
          "etl.rowsRejected",
        ],
        links: ["self", "etlExecution", "etl"],
      },
      EXPORT: {
        keys: [
          "export.id",
          "export.name",
          "export.executionId",
          "export.executionStatus",
          "export.rowCount",
          "export.bytes",
        ],
        links: ["self", "exportExecution", "file"],
      },
      FILE_SYNCHRONIZATION: {
        keys: [
          "fileSynchronization.id",
          "fileSynchronization.fileReferenceId",
          "fileSynchronization.status",
          "fileSynchronization.fileName",
          "fileSynchronization.bytes",
          "fileSynchronization.sha256",
        ],
        links: ["self", "fileSynchronization", "fileReference"],
      },
    } as const;
    for (const [on, shape] of Object.entries(expected)) {
      const subject = {
        entityId: 1,
        entityName: "acme",
        on: on as keyof typeof expected,
        onElementId: "7",
        eventType: "FINISHED" as const,
        onFields: [],
      };
      const data = toDataObject(sampleEvent(subject, undefined, now), {
        entityName: "acme",
        includePrevious: false,
      }) as Record<string, unknown>;
      const keys = Object.keys(data).filter((key) => !key.startsWith("_"));
      assert.deepEqual(keys.sort(), [...shape.keys].sort(), on);
      for (const key of keys) assert.equal(typeof data[key], "string", `${on} ${key}`);
      const links = data._links as Record<string, { href: string }>;
      assert.deepEqual(Object.keys(links).sort(), [...shape.links].sort(), on);
      for (const link of Object.values(links)) assert.match(link.href, /^\/[^ ]*acme/, on);
    }
    const sync = toDataObject(
      sampleEvent(
        {
          entityId: 1,
          entityName: "acme",
          on: "FILE_SYNCHRONIZATION",
          onElementId: "7",
          eventType: "STARTED",
          onFields: [],
        },
        undefined,
        now,
      ),
      { entityName: "acme", includePrevious: false },
    );
    assert.equal(sync["fileSynchronization.fileReferenceId"], "7");
    assert.equal(
      sync._links.self.href,
      "/v5/entities/acme/file-references/7/synchronizations/sample",
      "the self link names the synchronisation, under its reference",
    );
  });

  test("a custom action's sample is shaped as its real TRIGGER event (SPEC §7.4)", () => {
    const event = sampleEvent(
      {
        entityId: 1,
        entityName: "acme",
        on: "CUSTOM_ACTION",
        onElementId: "12",
        eventType: "TRIGGER",
        onFields: [],
      },
      undefined,
      now,
    );
    const data = toDataObject(event, { entityName: "acme", includePrevious: false }) as Record<
      string,
      unknown
    >;
    const keys = Object.keys(data).filter((key) => !key.startsWith("_"));
    assert.deepEqual(keys.sort(), [
      "actionParameters.sample",
      "customAction.id",
      "customAction.name",
      "profileAttributes.creationMoment",
      "profileAttributes.profileId",
      "profileAttributes.updateMoment",
    ]);
    for (const key of keys) assert.equal(typeof data[key], "string", key);
    assert.equal(data["customAction.id"], "12");
    assert.equal(data["profileAttributes.profileId"], "0");
    assert.equal("scenario.id" in data, false, "no scenario: the trigger call's shape");
    const links = data._links as Record<string, { href: string }>;
    assert.deepEqual(Object.keys(links).sort(), ["customAction", "profile", "self"]);
    assert.equal(links.customAction!.href, "/v5/entities/acme/custom-actions/12");
    assert.equal(links.self!.href, "/v5/entities/acme/custom-actions/12");
    assert.match(links.profile!.href, /^\/profiles\/v4\/entity\/acme\/table\/[^/]+\/profile\/0$/);
  });

  test("the test push body follows the push mode and the payload version, marked test", () => {
    const subject = {
      entityId: 1,
      on: "CUSTOM_TABLE" as const,
      onElementId: "c0ffee",
      eventType: "CREATE" as const,
      onFields: [],
    };
    const event = sampleEvent(subject, custom, now);
    const base = { id: 5, entityName: "acme", includePrevious: false };
    type Body = { id: string; test: boolean; data: unknown; _links: { webhook: { href: string } } };
    const body = (pushMode: "ONE_BY_ONE" | "BULK", payloadVersion: 1 | 2) =>
      JSON.parse(testPushBody({ ...base, pushMode, payloadVersion }, event, "push-9")) as Body;

    const v2 = body("ONE_BY_ONE", 2);
    assert.equal(v2.id, "push-9");
    assert.equal(v2.test, true);
    assert.equal(v2._links.webhook.href, "/webhooks/v4/entity/acme/webhookSubscription/5");
    const data = v2.data as Record<string, unknown> & { _event: { test: boolean } };
    assert.equal(data.orderId, "sample orderId");
    assert.equal(data._event.test, true);
    assert.equal("tableId" in data, false);

    const v1 = body("ONE_BY_ONE", 1);
    const object = v1.data as {
      tableType: string;
      tableId: string;
      eventType: string;
      data: Record<string, unknown>;
      _event: { test: boolean; id: string };
    };
    assert.deepEqual(
      [object.tableType, object.tableId, object.eventType],
      ["CUSTOM_TABLE", "c0ffee", "CREATE"],
    );
    assert.equal(object.data.id, "sample orderId");
    assert.equal(object.data.businessKey, "sample orderId");
    assert.equal(object.data.total, "3.5");
    assert.equal(object._event.test, true);
    assert.equal(v1.test, true);

    const bulk = body("BULK", 1);
    assert.ok(Array.isArray(bulk.data));
    assert.deepEqual(bulk.data, [object]);
    assert.deepEqual(body("BULK", 2).data, [data]);
  });
});
