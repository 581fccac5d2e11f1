import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import type { ChangeEvent } from "../../src/domain/change-event.js";
import type { PrerenderedParts } from "../../src/domain/event-payload.js";
import { DataTextWriter, namesJson, toDataObject, toIso } from "../../src/domain/event-payload.js";
import { AttributeTextWriter, jsonValueJson, valueJson } from "../../src/domain/rendered-values.js";
import { sampleChangeEvent } from "../helpers/change-event-fixture.js";

/** One writer for every check here, as an encoder keeps one across pushes. */
const dataTexts = new DataTextWriter();

/** A JSON text the way jsonb writes an object: `{"a": 1, "b": "x"}`. */
function jsonbText(map: Record<string, unknown>): string {
  const members = Object.keys(map).map(
    (name) => `${JSON.stringify(name)}: ${JSON.stringify(map[name])}`,
  );
  return `{${members.join(", ")}}`;
}

const oddText = fc.oneof(
  fc.string(),
  fc.constantFrom("plain", "a\tb", 'quo"te', "back\\slash", "\\", '\\\\"', "ünï", "😀", ""),
);
const scalar = fc.oneof(
  oddText,
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(0, -0, 1e21, 123456789012345, 1234567890123456, true, false, null),
);
const value = fc.oneof(
  { weight: 6, arbitrary: scalar },
  { weight: 1, arbitrary: fc.array(scalar, { maxLength: 3 }) },
  { weight: 1, arbitrary: fc.dictionary(fc.string(), scalar, { maxKeys: 2 }) },
);
const name = fc.oneof(
  fc.constantFrom("profileId", "emailAddress", "firstName", "counter", "tier"),
  fc.constantFrom("_hidden", "__proto__", "0", "7a", "", 'a"b', "a\\b", "ü"),
  fc.string({ maxLength: 6 }),
);

function profileEvent(
  keys: Record<string, unknown>,
  state: Record<string, unknown>,
  fields: string[],
): ChangeEvent {
  return sampleChangeEvent({
    keys: keys as ChangeEvent["keys"],
    state: state as ChangeEvent["state"],
    fields,
    previous: {},
    origin: { kind: "SYSTEM" },
  });
}

/** The parts a lean log page gives an event: its keys' text and its changed values' texts. */
function leanParts(e: ChangeEvent, keysJson: string): PrerenderedParts {
  const state = e.state as Record<string, unknown>;
  return {
    occurredAtText: toIso(e.occurredAt),
    changedFieldNames: e.fields,
    changedFieldsJson: namesJson(e.fields),
    originJson: JSON.stringify(e.origin),
    declaredEventsJson: namesJson(e.declaredEvents),
    keysJson,
    changedValuesJson: e.fields
      .map((f) => (Object.prototype.hasOwnProperty.call(state, f) ? JSON.stringify(state[f]) : ""))
      .join("\u001f"),
  };
}

describe("rendered values from JSON text", () => {
  test("jsonValueJson is valueJson of the parsed text", () => {
    fc.assert(
      fc.property(value, (v) => {
        const text = JSON.stringify(v);
        assert.equal(jsonValueJson(text, "parse"), valueJson(JSON.parse(text)));
      }),
      { numRuns: 3000 },
    );
    // jsonb writes numbers as PostgreSQL's numeric does.
    for (const text of ["1.50", "0.0000001", "1000000000000000000000", "-0", "12345678901234567"])
      assert.equal(jsonValueJson(text, "refuse"), valueJson(JSON.parse(text)), text);
  });

  test("a data object written from the keys' and values' texts is the one written from objects", () => {
    fc.assert(
      fc.property(
        // A profile event's profileId key is its row id, a scalar; an object there (which a
        // generated map can hold, e.g. {"toString": 0}) is not a value the log can have.
        fc
          .dictionary(name, value, { maxKeys: 4 })
          .filter((keys) => typeof keys.profileId !== "object" || keys.profileId === null),
        fc.dictionary(name, value, { maxKeys: 4 }),
        fc.array(name, { minLength: 1, maxLength: 2 }),
        (keysMap, stateMap, fields) => {
          const keysJson = jsonbText(keysMap);
          // What the log reader's events hold: the keys as JSON.parse reads their text.
          const e = profileEvent(JSON.parse(keysJson) as Record<string, unknown>, stateMap, fields);
          const options = { entityName: "acme", includePrevious: false };
          assert.equal(
            dataTexts.dataText(e, options, leanParts(e, keysJson)),
            JSON.stringify(toDataObject(e, options)),
          );
        },
      ),
      { numRuns: 3000 },
    );
  });

  test("plain keys and values are written from their texts (the object path is not needed)", () => {
    const keysJson = '{"tier": null, "counter": 3, "profileId": 12, "emailAddress": "a\\"b@c.d"}';
    const attributes = new AttributeTextWriter();
    const members = attributes.recordAttributesFromJson(
      keysJson,
      ["firstName", "counter", "vip"],
      '"Ann"\u001f4\u001f',
    );
    assert.equal(
      members,
      '"tier":null,"counter":"3","profileId":"12","emailAddress":"a\\"b@c.d","firstName":"Ann","vip":null,',
    );
    // The profileId key's text, for the href, comes back beside the members.
    assert.equal(attributes.profileIdJson, "12");
    // Left to the object path: a nested key value, an escaped name, a name JavaScript puts first.
    assert.equal(attributes.recordAttributesFromJson('{"a": [1]}', [], ""), undefined);
    assert.equal(attributes.recordAttributesFromJson('{"a\\"b": 1}', [], ""), undefined);
    assert.equal(attributes.recordAttributesFromJson('{"7": 1}', [], ""), undefined);
    assert.equal(attributes.recordAttributesFromJson('{"a": 1}', ["7"], "1"), undefined);
  });
});
