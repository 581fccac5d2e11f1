import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { DataTable } from "../../src/domain/data-table.js";
import { toDataObject } from "../../src/domain/event-payload.js";
import { sampleEvent } from "../../src/domain/sample-event.js";

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
});
