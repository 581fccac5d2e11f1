import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import type { ChangeEvent } from "../../src/domain/change-event.js";
import { EVENT_TYPES_BY_SOURCE } from "../../src/domain/change-event.js";
import { toDataObject } from "../../src/domain/event-payload.js";
import { toEventObjectV1 } from "../../src/domain/event-payload-v1.js";
import { sampleChangeEvent } from "../helpers/change-event-fixture.js";

const options = { entityName: "acme", includePrevious: false };

describe("payload version 1 event objects", () => {
  test("a profile UPDATE: tableType, tableId, eventType, and data with id and businessKey first", () => {
    const object = toEventObjectV1(sampleChangeEvent(), options);
    const v2 = toDataObject(sampleChangeEvent(), options);
    assert.deepEqual(object, {
      tableType: "PROFILE_TABLE",
      tableId: "3",
      eventType: "UPDATE",
      data: {
        id: "7",
        businessKey: "7",
        profileId: "7",
        emailAddress: "a@b.c",
        firstName: "Ann",
        age: "42",
      },
      _links: v2._links,
      _event: v2._event,
    });
    assert.deepEqual(Object.keys(object.data).slice(0, 2), ["id", "businessKey"]);
  });

  test("a custom-table record: businessKey is its key; id is its generated id when it has one", () => {
    const order = sampleChangeEvent({
      source: "CUSTOM_TABLE",
      sourceId: "c0ffee",
      eventType: "CREATE",
      recordKey: "O-1",
      keys: { orderId: "O-1" },
      state: { orderId: "O-1", total: 3.5 },
      fields: ["orderId", "total"],
    });
    assert.deepEqual(toEventObjectV1(order, options).data, {
      id: "O-1",
      businessKey: "O-1",
      orderId: "O-1",
      total: "3.5",
    });
    const generated = sampleChangeEvent({
      source: "CUSTOM_TABLE",
      sourceId: "c0ffee",
      eventType: "DELETE",
      recordKey: "6f1c0b1e-0000-4000-8000-000000000001",
      keys: { id: "6f1c0b1e-0000-4000-8000-000000000001" },
      state: { id: "6f1c0b1e-0000-4000-8000-000000000001", total: 1 },
      fields: ["total"],
    });
    const object = toEventObjectV1(generated, options);
    assert.equal(object.tableType, "CUSTOM_TABLE");
    assert.equal(object.eventType, "DELETE");
    assert.deepEqual(object.data, {
      id: "6f1c0b1e-0000-4000-8000-000000000001",
      businessKey: "6f1c0b1e-0000-4000-8000-000000000001",
      total: "1",
    });
  });

  test("UPDATED_SEGMENT and UPDATED_SUBSCRIPTION keep their fields in data; previous values stay in _event", () => {
    const segment = toEventObjectV1(
      sampleChangeEvent({
        eventType: "UPDATED_SEGMENT",
        fields: [],
        extra: { segmentation: "ClientType", segment: "Gold", belongs: true },
      }),
      { entityName: "acme", includePrevious: true },
    );
    assert.deepEqual(segment.data, {
      id: "7",
      businessKey: "7",
      profileId: "7",
      emailAddress: "a@b.c",
      segmentation: "ClientType",
      segment: "Gold",
      belongs: "true",
    });
    assert.deepEqual(segment._event.previous, { firstName: "Anne", age: "41" });
  });

  test("Herald's id and businessKey win over attributes of those names", () => {
    const object = toEventObjectV1(
      sampleChangeEvent({
        state: { profileId: 7, id: "theirs", businessKey: "theirs too" },
        fields: ["id", "businessKey"],
      }),
      options,
    );
    assert.equal(object.data.id, "7");
    assert.equal(object.data.businessKey, "7");
  });

  test("data holds exactly version 2's attributes plus id and businessKey, for any table event", () => {
    const name = fc.constantFrom("profileId", "emailAddress", "city", "total", "7", "a b");
    const value = fc.oneof(fc.string(), fc.integer(), fc.boolean(), fc.constant(null));
    const map = fc.dictionary(name, value, { maxKeys: 5 });
    const source = fc.constantFrom("PROFILE_TABLE" as const, "CUSTOM_TABLE" as const);
    const arbitrary = fc
      .record({ source, keys: map, state: map, fields: fc.array(name, { maxLength: 5 }) })
      .chain((e) =>
        fc.record({
          event: fc.constant(e),
          eventType: fc.constantFrom(...EVENT_TYPES_BY_SOURCE[e.source]),
          recordKey: fc.string({ minLength: 1 }),
        }),
      );
    fc.assert(
      fc.property(arbitrary, ({ event, eventType, recordKey }) => {
        const e = sampleChangeEvent({ ...event, eventType, recordKey } as Partial<ChangeEvent>);
        const v2 = toDataObject(e, options);
        const v1 = toEventObjectV1(e, options);
        const { _links, _event, ...attributes } = v2;
        const { id, businessKey, ...rest } = v1.data;
        delete attributes.id;
        delete attributes.businessKey;
        assert.deepEqual(rest, attributes);
        assert.equal(typeof businessKey, "string");
        assert.equal(typeof id, "string");
        assert.deepEqual(
          [v1.tableType, v1.tableId, v1.eventType],
          [e.source, e.sourceId, eventType],
        );
        assert.deepEqual([v1._links, v1._event], [_links, _event]);
      }),
      { numRuns: 500 },
    );
  });
});
