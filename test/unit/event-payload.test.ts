import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import type { ChangeEvent, EventType } from "../../src/domain/change-event.js";
import { EVENT_SOURCES, EVENT_TYPES } from "../../src/domain/change-event.js";
import {
  buildEnvelope,
  DataTextWriter,
  envelopeText,
  namesJson,
  renderValue,
  toDataObject,
  toIso,
  TRIGGER_SOURCES,
} from "../../src/domain/event-payload.js";
import { sampleChangeEvent } from "../helpers/change-event-fixture.js";

/** One writer for every check here, as an encoder keeps one across pushes. */
const dataTexts = new DataTextWriter();

const event = sampleChangeEvent;

describe("toDataObject", () => {
  test("an UPDATE carries the keys and the changed attributes as strings, and its _event block", () => {
    const data = toDataObject(event(), { entityName: "acme", includePrevious: false });
    assert.deepEqual(data, {
      profileId: "7",
      emailAddress: "a@b.c",
      firstName: "Ann",
      age: "42",
      _links: { self: { href: "/profiles/v4/entity/acme/table/3/profile/7" } },
      _event: {
        id: "evt_41",
        type: "UPDATE",
        position: 1042,
        occurredAt: "2026-11-30T12:00:00.000Z",
        version: 7,
        changedFields: ["firstName", "age"],
        origin: { kind: "API_KEY", apiKeyId: 1, apiKeyName: "admin" },
        declaredEvents: [],
      },
    });
  });

  test("previous values appear only when asked for, rendered as strings", () => {
    const data = toDataObject(event(), { entityName: "acme", includePrevious: true });
    assert.deepEqual(data._event.previous, { firstName: "Anne", age: "41" });
  });

  test("booleans, multi-values and nulls: text, list of texts, null", () => {
    const data = toDataObject(event({ eventType: "CREATE", fields: ["vip", "tags", "nickname"] }), {
      entityName: "acme",
      includePrevious: false,
    });
    assert.equal(data.vip, "true");
    assert.deepEqual(data.tags, ["x", "2", "false"]);
    assert.equal(data.nickname, null);
  });

  test("UPDATED_SUBSCRIPTION and UPDATED_SEGMENT add their fields, nothing else of extra", () => {
    const sub = toDataObject(
      event({
        eventType: "UPDATED_SUBSCRIPTION",
        fields: [],
        extra: { subscriptionName: "newsletter", subscribe: false, internal: "no" },
      }),
      { entityName: "acme", includePrevious: false },
    );
    assert.equal(sub.subscriptionName, "newsletter");
    assert.equal(sub.subscribe, "false");
    assert.equal(sub.internal, undefined);
    const seg = toDataObject(
      event({
        eventType: "UPDATED_SEGMENT",
        fields: [],
        extra: { segmentation: "ClientType", segment: "Gold", belongs: true },
      }),
      { entityName: "acme", includePrevious: false },
    );
    assert.deepEqual(
      [seg.segmentation, seg.segment, seg.belongs, seg.profileId],
      ["ClientType", "Gold", "true", "7"],
    );
  });

  test("custom-table records link to the record by business key, URL-encoded", () => {
    const data = toDataObject(
      event({
        source: "CUSTOM_TABLE",
        sourceId: "5b0c-uuid",
        recordKey: "ord/1 2",
        keys: { orderId: "ord/1 2" },
        eventType: "CREATE",
        fields: ["orderId", "amount"],
        state: { orderId: "ord/1 2", amount: 12.5 },
        declaredEvents: ["order-created"],
      }),
      { entityName: "acme", includePrevious: false },
    );
    assert.equal(
      data._links.self.href,
      "/custom-data/v4/entity/acme/customTable/5b0c-uuid/record/ord%2F1%202",
    );
    assert.equal(data.amount, "12.5");
    assert.deepEqual(data._event.declaredEvents, ["order-created"]);
  });

  test("trigger events use dotted keys, flattening nested objects", () => {
    const data = toDataObject(
      event({
        source: "ETL",
        sourceId: "12",
        recordKey: "exec-9",
        eventType: "FINISHED",
        keys: {},
        fields: [],
        state: { "etl.id": "12", "etl.executionId": "exec-9", "etl.executionStatus": "SUCCESS" },
        extra: { etl: { counts: { inserted: 10, rejected: 0 } } },
      }),
      { entityName: "acme", includePrevious: false },
    );
    assert.equal(data["etl.id"], "12");
    assert.equal(data["etl.executionStatus"], "SUCCESS");
    assert.equal(data["etl.counts.inserted"], "10");
    assert.equal(data["etl.counts.rejected"], "0");
    assert.equal(data._links.self.href, "/mass-imports/v5/entities/acme/etl-executions/exec-9");
  });

  test("names beginning with _ never overwrite the blocks", () => {
    const data = toDataObject(
      event({
        keys: { _links: "x", profileId: 1 },
        fields: ["_event", "__proto__"],
        state: { _event: "boom" },
      }),
      { entityName: "acme", includePrevious: false },
    );
    assert.equal(typeof data._links, "object");
    assert.equal(data._event.id, "evt_41");
    assert.equal(Object.getPrototypeOf(data), Object.prototype);
  });
});

const scalar = fc.oneof(
  fc.string(),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.boolean(),
  fc.constant(null),
);
const value = fc.oneof(scalar, fc.array(fc.oneof(fc.string(), fc.integer(), fc.boolean())));
const name = fc.oneof(
  fc.string({ minLength: 1, maxLength: 12 }),
  fc.constantFrom("constructor", "toString", "__proto__", "_links", "hasOwnProperty"),
);
const attributeMap = fc.dictionary(name, value, { maxKeys: 8 });

const arbitraryEvent = fc.record({
  id: fc.nat(),
  position: fc.nat(),
  occurredAt: fc.date({ noInvalidDate: false }),
  entityId: fc.nat(),
  source: fc.constantFrom(...EVENT_SOURCES),
  sourceId: fc.string(),
  eventType: fc.constantFrom(...EVENT_TYPES),
  recordKey: fc.string(),
  keys: attributeMap,
  state: attributeMap,
  fields: fc.array(name, { maxLength: 8 }),
  previous: attributeMap,
  extra: fc.dictionary(name, fc.oneof(value, attributeMap), { maxKeys: 6 }),
  version: fc.option(fc.nat()),
  declaredEvents: fc.array(fc.string(), { maxLength: 3 }),
  origin: fc.constant({ kind: "SYSTEM" as const }),
}) as fc.Arbitrary<ChangeEvent>;

function isRendered(v: unknown): boolean {
  return (
    v === null ||
    typeof v === "string" ||
    (Array.isArray(v) && v.every((i) => typeof i === "string"))
  );
}

describe("toDataObject properties", () => {
  test("never throws; every data value is a string, list of strings or null", () => {
    fc.assert(
      fc.property(arbitraryEvent, fc.boolean(), (e, includePrevious) => {
        const data = toDataObject(e, { entityName: "e", includePrevious });
        for (const [k, v] of Object.entries(data)) {
          if (k === "_links" || k === "_event") continue;
          assert.ok(!k.startsWith("_"), `data key ${k}`);
          assert.ok(isRendered(v), `value of ${k}: ${JSON.stringify(v)}`);
        }
        assert.ok(data._links.self.href.startsWith("/"));
        JSON.stringify(data);
      }),
    );
  });

  test("record events: every key and provided field appears, and nothing else leaks", () => {
    const recordEvent = arbitraryEvent.filter((e) => !TRIGGER_SOURCES.includes(e.source));
    fc.assert(
      fc.property(recordEvent, (e) => {
        const data = toDataObject(e, { entityName: "e", includePrevious: false });
        const extraKeys: Partial<Record<EventType, string[]>> = {
          UPDATED_SUBSCRIPTION: ["subscriptionName", "subscribe"],
          UPDATED_SEGMENT: ["segmentation", "segment", "belongs"],
        };
        const expected = new Set(
          [...Object.keys(e.keys), ...e.fields, ...(extraKeys[e.eventType] ?? [])].filter(
            (k) => k !== "" && !k.startsWith("_"),
          ),
        );
        const actual = new Set(Object.keys(data).filter((k) => k !== "_links" && k !== "_event"));
        assert.deepEqual(actual, expected);
        for (const [k, v] of Object.entries(e.keys)) {
          if (!k.startsWith("_") && k !== "") assert.deepEqual(data[k], renderValue(v));
        }
      }),
    );
  });

  test("the _event block mirrors the event", () => {
    fc.assert(
      fc.property(arbitraryEvent, fc.boolean(), (e, includePrevious) => {
        const block = toDataObject(e, { entityName: "e", includePrevious })._event;
        assert.equal(block.id, `evt_${e.id}`);
        assert.equal(block.type, e.eventType);
        assert.equal(block.position, e.position);
        assert.equal(block.version, e.version);
        assert.deepEqual(block.changedFields, e.fields);
        assert.deepEqual(block.declaredEvents, e.declaredEvents);
        assert.ok(!Number.isNaN(Date.parse(block.occurredAt)));
        assert.equal("previous" in block, includePrevious);
      }),
    );
  });
});

describe("buildEnvelope", () => {
  test("wraps one object or a block with the push id and the subscription link", () => {
    const one = toDataObject(event(), { entityName: "acme", includePrevious: false });
    const envelope = buildEnvelope("push-1", { id: 9, entityName: "acme" }, one);
    assert.deepEqual(envelope, {
      id: "push-1",
      data: one,
      _links: { webhook: { href: "/webhooks/v4/entity/acme/webhookSubscription/9" } },
    });
    assert.deepEqual(buildEnvelope("push-2", { id: 9, entityName: "acme" }, [one, one]).data, [
      one,
      one,
    ]);
  });
});

describe("envelopeText", () => {
  test("is the text JSON.stringify gives the envelope, for one event and for a block", () => {
    fc.assert(
      fc.property(
        fc.array(arbitraryEvent, { minLength: 1, maxLength: 5 }),
        fc.boolean(),
        fc.string(),
        fc.string({ minLength: 1 }),
        (events, includePrevious, pushId, entityName) => {
          const sub = { id: 12, entityName };
          const data = events.map((e) => toDataObject(e, { entityName, includePrevious }));
          const texts = data.map((d) => JSON.stringify(d));
          assert.equal(
            envelopeText(pushId, sub, texts, true),
            JSON.stringify(buildEnvelope(pushId, sub, data)),
          );
          assert.equal(
            envelopeText(pushId, sub, texts.slice(0, 1), false),
            JSON.stringify(buildEnvelope(pushId, sub, data[0] as object)),
          );
        },
      ),
    );
  });
});

describe("dataText", () => {
  const origins = fc.constantFrom(
    { kind: "SYSTEM" as const },
    { kind: "API_KEY" as const, apiKeyId: 3, apiKeyName: 'ops "night"' },
    { kind: "ETL_EXECUTION" as const, type: "ETL_EXECUTION" as const, id: "x\u00e9", line: 7 },
  );
  // Beside the names above: names JavaScript orders first in an object, and the extra names of
  // UPDATED_* events, which toDataObject overwrites in place.
  const oddName = fc.oneof(
    name,
    fc.constantFrom("0", "7", "12", "1a", "segment", "belongs", "subscribe", "profileId"),
  );
  const oddMap = fc.dictionary(oddName, value, { maxKeys: 6 });
  const anyEvent = fc
    .tuple(
      arbitraryEvent,
      fc.record({
        keys: oddMap,
        state: oddMap,
        fields: fc.array(oddName, { maxLength: 8 }),
        extra: fc.dictionary(oddName, value, { maxKeys: 4 }),
      }),
      origins,
      fc.array(fc.oneof(fc.string(), fc.constant("a\nb")), { maxLength: 3 }),
      fc.option(fc.oneof(fc.nat(), fc.double())),
    )
    .map(([e, odd, origin, declaredEvents, version]) => ({
      ...e,
      ...(e.id % 2 === 0 ? odd : {}),
      origin,
      declaredEvents,
      version,
    }));

  test("is the text JSON.stringify gives the data object, with or without the reader's texts", () => {
    fc.assert(
      fc.property(
        anyEvent,
        fc.boolean(),
        fc.string({ minLength: 1 }),
        (e, includePrevious, entityName) => {
          const options = { entityName, includePrevious };
          const expected = JSON.stringify(toDataObject(e, options));
          assert.equal(dataTexts.dataText(e, options), expected);
          const parts = {
            occurredAtText: toIso(e.occurredAt),
            changedFieldNames: JSON.parse(namesJson(e.fields)) as string[],
            changedFieldsJson: namesJson(e.fields),
            originJson: JSON.stringify(e.origin),
            declaredEventsJson: namesJson(e.declaredEvents),
          };
          assert.equal(dataTexts.dataText(e, options, parts), expected);
        },
      ),
      { numRuns: 2000 },
    );
  });

  test("the record href of odd profile ids, source ids and business keys", () => {
    const options = { entityName: "a b", includePrevious: false };
    for (const profileId of [7, -5, 1.5, 1e21, -0, "a b/c", true, null, [1, 2]])
      for (const sourceId of ["3", "x/y?"]) {
        const profile = event({ keys: { profileId } as ChangeEvent["keys"], sourceId });
        assert.equal(
          dataTexts.dataText(profile, options),
          JSON.stringify(toDataObject(profile, options)),
        );
        const record = event({
          source: "CUSTOM_TABLE",
          sourceId,
          recordKey: `k ${String(profileId)}`,
        });
        assert.equal(
          dataTexts.dataText(record, options),
          JSON.stringify(toDataObject(record, options)),
        );
      }
  });

  test("a profile UPDATE as the BULK bench pushes it", () => {
    const e = event({ keys: { profileId: 7, emailAddress: "a@b.c" }, fields: ["age"] });
    const options = { entityName: "acme", includePrevious: false };
    assert.equal(dataTexts.dataText(e, options), JSON.stringify(toDataObject(e, options)));
    assert.ok(
      dataTexts
        .dataText(e, options)
        .startsWith('{"profileId":"7","emailAddress":"a@b.c","age":"42",'),
    );
  });
});
