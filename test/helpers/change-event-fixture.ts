/**
 * A profile UPDATE change event for unit tests of payload shaping, with `overrides` applied.
 */
import type { ChangeEvent } from "../../src/domain/change-event.js";

export function sampleChangeEvent(overrides: Partial<ChangeEvent> = {}): ChangeEvent {
  return {
    id: 41,
    position: 1042,
    occurredAt: new Date("2026-11-30T12:00:00.000Z"),
    entityId: 1,
    source: "PROFILE_TABLE",
    sourceId: "3",
    eventType: "UPDATE",
    recordKey: "7",
    keys: { profileId: 7, emailAddress: "a@b.c" },
    state: {
      profileId: 7,
      emailAddress: "a@b.c",
      firstName: "Ann",
      age: 42,
      vip: true,
      tags: ["x", 2, false],
      nickname: null,
    },
    fields: ["firstName", "age"],
    previous: { firstName: "Anne", age: 41 },
    extra: {},
    version: 7,
    declaredEvents: [],
    origin: { kind: "API_KEY", apiKeyId: 1, apiKeyName: "admin" },
    ...overrides,
  };
}
