import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { ChangeEvent } from "../../src/domain/change-event.js";
import { buildEnvelope, toDataObject } from "../../src/domain/event-payload.js";
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

const subscription = { id: 9, entityName: "acme", includePrevious: false } as Subscription;

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
});
