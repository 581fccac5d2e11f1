import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { ChangeEvent } from "../../src/domain/change-event.js";
import { buildEnvelope, toDataObject } from "../../src/domain/event-payload.js";
import { toEventObjectV1 } from "../../src/domain/event-payload-v1.js";
import type { Subscription } from "../../src/domain/subscription.js";
import { encodePushBody } from "../../src/delivery/push-body.js";

function event(position: number, overrides: Partial<ChangeEvent> = {}): ChangeEvent {
  return {
    id: position + 100,
    position,
    occurredAt: new Date("2026-11-30T12:00:00.123Z"),
    entityId: 1,
    source: "PROFILE_TABLE",
    sourceId: "3",
    eventType: "UPDATE",
    recordKey: String(position),
    keys: { profileId: position, emailAddress: `p${position}@b.c` },
    state: { profileId: position, firstName: 'Ann "A" é', counter: position },
    fields: ["firstName", "counter"],
    previous: { counter: position - 1 },
    extra: {},
    version: 2,
    declaredEvents: [],
    origin: { kind: "SYSTEM" },
    ...overrides,
  };
}

const subscription = {
  id: 9,
  entityName: "acme",
  includePrevious: false,
  payloadVersion: 2,
} as Subscription;

describe("encodePushBody", () => {
  test("is the UTF-8 of JSON.stringify(buildEnvelope(...)) for a block, one event, and no event", () => {
    const events = [
      event(1),
      event(2, {
        source: "ETL",
        eventType: "FINISHED",
        state: { etl: { id: 3 } } as unknown as ChangeEvent["state"],
      }),
      event(3, { keys: { "7": "x" } }),
    ];
    for (const includePrevious of [false, true]) {
      const sub = { ...subscription, includePrevious };
      const data = events.map((e) => toDataObject(e, { entityName: "acme", includePrevious }));
      assert.equal(
        encodePushBody("push-1", sub, events, true).toString("utf8"),
        JSON.stringify(buildEnvelope("push-1", sub, data)),
      );
      assert.equal(
        encodePushBody("push-2", sub, events.slice(0, 1), false).toString("utf8"),
        JSON.stringify(buildEnvelope("push-2", sub, data[0] as object)),
      );
    }
    assert.equal(
      encodePushBody("push-3", subscription, [], true).toString("utf8"),
      JSON.stringify(buildEnvelope("push-3", subscription, [])),
    );
  });

  test("payload version 1: the same envelope around version 1 event objects, one or a block", () => {
    const events = [
      event(1),
      event(2, { eventType: "CREATE", fields: ["firstName"] }),
      event(3, {
        source: "CUSTOM_TABLE",
        recordKey: "O-3",
        keys: { orderId: "O-3" },
        state: { orderId: "O-3", counter: 3 },
        fields: ["counter"],
      }),
    ];
    for (const includePrevious of [false, true]) {
      const sub = { ...subscription, includePrevious, payloadVersion: 1 as const };
      const objects = events.map((e) =>
        toEventObjectV1(e, { entityName: "acme", includePrevious }),
      );
      const block = JSON.parse(encodePushBody("push-1", sub, events, true).toString("utf8"));
      assert.equal(
        encodePushBody("push-1", sub, events, true).toString("utf8"),
        JSON.stringify(buildEnvelope("push-1", sub, objects)),
      );
      assert.equal(
        encodePushBody("push-2", sub, events.slice(0, 1), false).toString("utf8"),
        JSON.stringify(buildEnvelope("push-2", sub, objects[0] as object)),
      );
      assert.deepEqual(
        (block as { data: { tableId: string; data: { id: string } }[] }).data.map((o) => [
          o.tableId,
          o.data.id,
        ]),
        [
          ["3", "1"],
          ["3", "2"],
          ["3", "O-3"],
        ],
      );
    }
  });
});
