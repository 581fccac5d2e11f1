import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { checkValue, renderValue, typedValue } from "../../src/domain/attribute-values.js";
import type { AttributeValue } from "../../src/domain/change-event.js";
import type { AttributeDefinition, ValueType } from "../../src/domain/data-table.js";

function attr(valueType: ValueType, extra: Partial<AttributeDefinition> = {}): AttributeDefinition {
  return { name: "a", valueType, unique: false, mandatory: false, multiValued: false, ...extra };
}

function valid(attribute: AttributeDefinition, raw: unknown): unknown {
  const result = checkValue(attribute, raw);
  assert.equal(
    result.kind,
    "valid",
    `${JSON.stringify(raw)} should be valid: ${JSON.stringify(result)}`,
  );
  return result.kind === "valid" ? result.value : undefined;
}

function invalid(attribute: AttributeDefinition, raw: unknown): void {
  assert.equal(
    checkValue(attribute, raw).kind,
    "invalid",
    `${JSON.stringify(raw)} should be invalid`,
  );
}

const date = fc
  .date({
    min: new Date("0001-01-01T00:00:00Z"),
    max: new Date("9999-12-31T23:59:59Z"),
    noInvalidDate: true,
  })
  .map((d) => d.toISOString());

describe("attribute values", () => {
  test("integers: any int32 (number or string) is accepted and round-trips through rendering", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: -2147483648, max: 2147483647 }),
        fc.boolean(),
        (n, asString) => {
          const stored = valid(attr("INTEGER"), asString ? String(n) : n);
          assert.equal(stored, n === 0 ? 0 : n);
          assert.equal(renderValue(stored as number), String(n === 0 ? 0 : n));
          assert.equal(valid(attr("INTEGER"), renderValue(stored as number)), stored);
        },
      ),
    );
  });

  test("integers: out of range, fractions and words are refused", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.integer({ min: 2147483648, max: Number.MAX_SAFE_INTEGER }),
          fc.double({ noNaN: true }).filter((x) => !Number.isInteger(x)),
          fc.string().filter((s) => !/^\s*[-+]?\d+\s*$/.test(s) && s !== ""),
        ),
        (raw) => invalid(attr("INTEGER"), raw),
      ),
    );
    invalid(attr("LONG"), 2 ** 53);
    assert.equal(valid(attr("LONG"), "9007199254740991"), 9007199254740991);
  });

  test("numbers: finite doubles round-trip; NaN-like text is refused", () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (x) => {
        const stored = valid(attr("NUMBER"), x) as number;
        assert.equal(valid(attr("NUMBER"), renderValue(stored)), stored);
      }),
    );
    for (const bad of ["NaN", "Infinity", "1,5", "abc", "1e", true]) invalid(attr("NUMBER"), bad);
  });

  test("booleans", () => {
    assert.equal(valid(attr("BOOLEAN"), "TRUE"), true);
    assert.equal(valid(attr("BOOLEAN"), false), false);
    invalid(attr("BOOLEAN"), "yes");
    invalid(attr("BOOLEAN"), 1);
  });

  test("dates: every calendar date round-trips; impossible dates are refused", () => {
    fc.assert(
      fc.property(date, (iso) => {
        const day = iso.slice(0, 10);
        assert.equal(valid(attr("DATE"), day), day);
        const [y, m, d] = day.split("-");
        assert.equal(valid(attr("DATE"), `${d}/${m}/${y}`), day);
      }),
    );
    for (const bad of ["2024-02-30", "2023-02-29", "2024-13-01", "20240101", "tomorrow", 20240101])
      invalid(attr("DATE"), bad);
  });

  test("timestamps: normalised to ISO UTC; zones are honoured", () => {
    fc.assert(
      fc.property(date, (iso) => {
        assert.equal(valid(attr("TIMESTAMP"), iso), iso);
        assert.equal(valid(attr("TIMESTAMP"), Date.parse(iso)), iso);
      }),
    );
    assert.equal(valid(attr("TIMESTAMP"), "2024-05-01 10:00:00+02:00"), "2024-05-01T08:00:00.000Z");
    assert.equal(valid(attr("TIMESTAMP"), "2024-05-01"), "2024-05-01T00:00:00.000Z");
    for (const bad of ["2024-05-01T25:00:00Z", "yesterday", "2024-02-30T00:00:00Z"])
      invalid(attr("TIMESTAMP"), bad);
  });

  test("strings: restrictions on length and accepted values", () => {
    const restricted = attr("STRING", { valueRestriction: { minLength: 2, maxLength: 4 } });
    fc.assert(
      fc.property(fc.string({ minLength: 2, maxLength: 4, unit: "grapheme-ascii" }), (s) => {
        if (s.trim() === "" || s === "") return;
        assert.equal(valid(restricted, s), s);
      }),
    );
    invalid(restricted, "a");
    invalid(restricted, "abcde");
    const accepted = attr("STRING", { valueRestriction: { acceptedValues: ["NEW", "SHIPPED"] } });
    assert.equal(valid(accepted, "NEW"), "NEW");
    invalid(accepted, "new");
    assert.equal(valid(attr("STRING"), 12), "12");
    invalid(attr("STRING"), { a: 1 });
    invalid(attr("STRING"), ["x"]);
  });

  test("text PostgreSQL cannot store is refused; unique values must fit an index entry", () => {
    invalid(attr("STRING"), "a\u0000b");
    invalid(attr("STRING"), "\udc00");
    assert.equal(valid(attr("STRING"), "😀"), "😀");
    assert.equal(valid(attr("STRING", { unique: true }), "é".repeat(512)), "é".repeat(512));
    invalid(attr("STRING", { unique: true }), "é".repeat(513));
    assert.equal(valid(attr("STRING"), "é".repeat(5000)), "é".repeat(5000));
  });

  test("no value: null, empty string and empty list all mean none", () => {
    for (const type of ["STRING", "INTEGER", "DATE"] as const)
      for (const raw of [null, undefined, "", []]) assert.equal(valid(attr(type), raw), null);
  });

  test("multi-valued: a list of checked items; a single value becomes a list", () => {
    const multi = attr("INTEGER", { multiValued: true });
    assert.deepEqual(valid(multi, [1, "2"]), [1, 2]);
    assert.deepEqual(valid(multi, 3), [3]);
    invalid(multi, [1, "x"]);
    assert.deepEqual(renderValue([1, 2]), ["1", "2"]);
  });

  test("profile attribute types normalise their values", () => {
    const profile = (type: string, valueType: ValueType = "STRING") => attr(valueType, { type });
    assert.equal(valid(profile("EMAIL_ADDRESS"), " Ann@Example.COM "), "ann@example.com");
    invalid(profile("EMAIL_ADDRESS"), "ann@");
    assert.equal(valid(profile("PHONE_NUMBER"), "0032 (470) 12.34.56"), "+32470123456");
    invalid(profile("PHONE_NUMBER"), "12ab");
    assert.equal(valid(profile("SEX"), "f"), "F");
    invalid(profile("SEX"), "X");
    assert.equal(valid(profile("MOTHER_LANGUAGE"), "fr"), "FR");
    invalid(profile("MOTHER_LANGUAGE"), "French");
    assert.equal(valid(profile("BIRTHDATE", "DATE"), "1980-02-29"), "1980-02-29");
  });

  test("answers give the stored value typed: every number as a number, whatever its size", () => {
    const number = { name: "n", valueType: "NUMBER" } as AttributeDefinition;
    for (const raw of ["1e21", "-5", "0.25", 12.5]) {
      const stored = valid(number, raw) as AttributeValue;
      assert.equal(typedValue(stored), stored);
      assert.equal(typeof typedValue(stored), "number");
    }
    const long = { name: "l", valueType: "LONG" } as AttributeDefinition;
    assert.equal(
      typedValue(valid(long, String(Number.MAX_SAFE_INTEGER)) as AttributeValue),
      Number.MAX_SAFE_INTEGER,
    );
    invalid(long, "9007199254740993");
    assert.equal(
      typedValue(
        valid(
          { name: "b", valueType: "BOOLEAN" } as AttributeDefinition,
          "false",
        ) as AttributeValue,
      ),
      false,
    );
    assert.deepEqual(typedValue(["a", "b"]), ["a", "b"]);
    assert.equal(typedValue(null), undefined);
  });
});
