/**
 * ISO 8601 durations (src/domain/iso-duration.ts): what parses and what does not, and where a
 * duration after an instant falls: calendar units on the wall clock of a zone (across daylight
 * saving changes, month ends, leap days), elapsed units as elapsed time.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import type { IsoDuration } from "../../src/domain/iso-duration.js";
import {
  addIsoDuration,
  formatIsoDuration,
  isZeroDuration,
  parseIsoDuration,
  wallClockOf,
  zonedTime,
} from "../../src/domain/iso-duration.js";

const NONE: IsoDuration = {
  years: 0,
  months: 0,
  weeks: 0,
  days: 0,
  hours: 0,
  minutes: 0,
  seconds: 0,
};

/** Zones with one-hour DST (north and south), a 30-minute DST, none, and a zone that dropped it. */
const ZONES = [
  "UTC",
  "Europe/Brussels",
  "America/New_York",
  "Australia/Sydney",
  "Australia/Lord_Howe",
  "Asia/Kolkata",
  "America/Sao_Paulo",
];

const add = (iso: string, duration: string, zone?: string) =>
  addIsoDuration(new Date(iso), parseIsoDuration(duration)!, zone).toISOString();

/** Instants between 1970 and 2100, to the millisecond. */
const instant = fc.integer({ min: 0, max: Date.UTC(2100, 0, 1) }).map((ms) => new Date(ms));

const duration = fc.record({
  years: fc.integer({ min: 0, max: 50 }),
  months: fc.integer({ min: 0, max: 600 }),
  weeks: fc.integer({ min: 0, max: 500 }),
  days: fc.integer({ min: 0, max: 5000 }),
  hours: fc.integer({ min: 0, max: 100_000 }),
  minutes: fc.integer({ min: 0, max: 100_000 }),
  seconds: fc.integer({ min: 0, max: 10_000_000 }).map((ms) => ms / 1000),
});

describe("parseIsoDuration", () => {
  test("reads every designator, fractional seconds and weeks", () => {
    assert.deepEqual(parseIsoDuration("P1Y2M3DT4H5M6S"), {
      years: 1,
      months: 2,
      weeks: 0,
      days: 3,
      hours: 4,
      minutes: 5,
      seconds: 6,
    });
    assert.deepEqual(parseIsoDuration("PT0S"), NONE);
    assert.deepEqual(parseIsoDuration("P2W"), { ...NONE, weeks: 2 });
    assert.deepEqual(parseIsoDuration("PT1.5S"), { ...NONE, seconds: 1.5 });
    assert.deepEqual(parseIsoDuration("PT0,25S"), { ...NONE, seconds: 0.25 });
    assert.deepEqual(parseIsoDuration("PT36H"), { ...NONE, hours: 36 });
    assert.deepEqual(parseIsoDuration("P1M"), { ...NONE, months: 1 });
    assert.deepEqual(parseIsoDuration("PT1M"), { ...NONE, minutes: 1 });
    assert.deepEqual(parseIsoDuration(" p1dt2h "), { ...NONE, days: 1, hours: 2 });
  });

  test("refuses what is not a non-negative ISO 8601 duration", () => {
    for (const text of [
      "",
      "P",
      "PT",
      "P1DT",
      "1D",
      "PT1H ago",
      "-P1D",
      "P-1D",
      "+P1D",
      "P1.5D",
      "PT1.5H",
      "P1D1Y",
      "PT1S1M",
      "P1H",
      "PT1D",
      "P1Y2Y",
      "1 hour",
      "PT.5S",
      "P1001Y",
      "P9999999999D",
    ])
      assert.equal(parseIsoDuration(text), undefined, text);
  });

  test("MAX_DURATION_YEARS: a thousand years is the longest", () => {
    assert.ok(parseIsoDuration("P1000Y"));
    assert.ok(parseIsoDuration("P365000D"));
    assert.equal(parseIsoDuration("P1000Y1D"), undefined);
  });

  test("property: formatIsoDuration writes what parseIsoDuration reads back", () => {
    fc.assert(
      fc.property(duration, (d) => {
        assert.deepEqual(parseIsoDuration(formatIsoDuration(d)), { ...d });
      }),
    );
  });

  test("isZeroDuration", () => {
    assert.equal(isZeroDuration(parseIsoDuration("PT0S")!), true);
    assert.equal(isZeroDuration(parseIsoDuration("P0D")!), true);
    assert.equal(isZeroDuration(parseIsoDuration("P0Y0M0W0DT0H0M0.0001S")!), true);
    assert.equal(isZeroDuration(parseIsoDuration("PT0.001S")!), false);
    assert.equal(isZeroDuration(parseIsoDuration("P1D")!), false);
    assert.equal(isZeroDuration(parseIsoDuration("P1M")!), false);
  });
});

describe("addIsoDuration", () => {
  test("calendar units in UTC by default: month ends clamp, leap days count", () => {
    assert.equal(add("2024-01-31T12:00:00Z", "P1M"), "2024-02-29T12:00:00.000Z");
    assert.equal(add("2023-01-31T12:00:00Z", "P1M"), "2023-02-28T12:00:00.000Z");
    assert.equal(add("2024-02-29T00:00:00Z", "P1Y"), "2025-02-28T00:00:00.000Z");
    assert.equal(add("2024-12-15T08:00:00Z", "P1M"), "2025-01-15T08:00:00.000Z");
    assert.equal(add("2024-01-31T00:00:00Z", "P1M1D"), "2024-03-01T00:00:00.000Z");
    assert.equal(add("2024-01-01T00:00:00Z", "P2W"), "2024-01-15T00:00:00.000Z");
    assert.equal(add("2024-01-01T00:00:00Z", "P1Y2M3DT4H5M6.5S"), "2025-03-04T04:05:06.500Z");
    assert.equal(add("2024-05-05T10:00:00.250Z", "PT0S"), "2024-05-05T10:00:00.250Z");
  });

  test("P1D across a daylight saving change keeps the wall-clock time; PT24H does not", () => {
    // Brussels goes from +01:00 to +02:00 on 31 March 2024 and back on 27 October.
    assert.equal(
      add("2024-03-30T08:00:00Z", "P1D", "Europe/Brussels"),
      "2024-03-31T07:00:00.000Z", // 09:00 both days
    );
    assert.equal(
      add("2024-03-30T08:00:00Z", "PT24H", "Europe/Brussels"),
      "2024-03-31T08:00:00.000Z",
    );
    assert.equal(
      add("2024-10-26T07:00:00Z", "P1D", "Europe/Brussels"),
      "2024-10-27T08:00:00.000Z", // 09:00 both days, 25 hours apart
    );
    assert.equal(
      add("2024-03-01T14:00:00Z", "P1M", "America/New_York"),
      "2024-04-01T13:00:00.000Z", // 09:00 EST, then 09:00 EDT
    );
  });

  test("a wall-clock time a change skips moves forward by the gap; a repeated one is the first", () => {
    // 02:30 on 31 March 2024 does not exist in Brussels: 03:30 CEST.
    assert.equal(add("2024-03-30T01:30:00Z", "P1D", "Europe/Brussels"), "2024-03-31T01:30:00.000Z");
    // 02:30 on 27 October 2024 happens twice in Brussels: the first, at +02:00.
    assert.equal(add("2024-10-26T00:30:00Z", "P1D", "Europe/Brussels"), "2024-10-27T00:30:00.000Z");
    // Lord Howe moves 30 minutes: 02:15 on 6 October 2024 is 02:45 (+11:00).
    assert.equal(
      add("2024-10-04T15:45:00Z", "P1D", "Australia/Lord_Howe"),
      "2024-10-05T15:45:00.000Z",
    );
    // Samoa skipped 30 December 2011 whole: noon that day is noon on the 31st.
    assert.equal(
      zonedTime(
        { year: 2011, month: 12, day: 30, hour: 12, minute: 0 },
        "Pacific/Apia",
      ).toISOString(),
      "2011-12-30T22:00:00.000Z",
    );
  });

  test("an unknown zone is a RangeError", () => {
    assert.throws(
      () => addIsoDuration(new Date(), parseIsoDuration("P1D")!, "Mars/Olympus"),
      RangeError,
    );
  });

  test("property: hours, minutes and seconds are elapsed time in every zone", () => {
    fc.assert(
      fc.property(
        instant,
        fc.constantFrom(...ZONES),
        duration.map((d) => ({ ...d, years: 0, months: 0, weeks: 0, days: 0 })),
        (at, zone, d) => {
          const expected =
            at.getTime() + d.hours * 3_600_000 + d.minutes * 60_000 + Math.round(d.seconds * 1000);
          assert.equal(addIsoDuration(at, d, zone).getTime(), expected);
        },
      ),
    );
  });

  test("property: in UTC a day is 86,400 seconds and a week seven days", () => {
    fc.assert(
      fc.property(
        instant,
        fc.integer({ min: 0, max: 3000 }),
        fc.integer({ min: 0, max: 300 }),
        (at, days, weeks) => {
          const later = addIsoDuration(at, { ...NONE, days, weeks });
          assert.equal(later.getTime() - at.getTime(), (days + weeks * 7) * 86_400_000);
        },
      ),
    );
  });

  test("property: P<n>D lands n calendar days later at the same wall-clock time, or just past a gap", () => {
    fc.assert(
      fc.property(
        instant,
        fc.constantFrom(...ZONES),
        fc.integer({ min: 1, max: 400 }),
        (at, zone, days) => {
          const before = wallClockOf(at, zone);
          const later = addIsoDuration(at, { ...NONE, days }, zone);
          const after = wallClockOf(later, zone);
          const target = new Date(Date.UTC(before.year, before.month - 1, before.day + days));
          assert.deepEqual(
            [after.year, after.month, after.day],
            [target.getUTCFullYear(), target.getUTCMonth() + 1, target.getUTCDate()],
          );
          const minutes = (w: typeof before) => w.hour * 60 + w.minute;
          const shift = minutes(after) - minutes(before);
          // Unchanged, or moved forward by a DST gap (one hour, or Lord Howe's thirty minutes).
          assert.ok([0, 30, 60].includes(shift), `moved ${shift} minutes`);
          assert.equal(after.second, before.second);
          assert.equal(after.millisecond, before.millisecond);
          assert.ok(later.getTime() > at.getTime());
        },
      ),
    );
  });

  test("property: the wall clock of an instant leads back to it, or to the first of two identical times", () => {
    fc.assert(
      fc.property(instant, fc.constantFrom(...ZONES), (at, zone) => {
        const back = zonedTime(wallClockOf(at, zone), zone).getTime();
        assert.ok(back === at.getTime() || at.getTime() - back <= 3_600_000);
        assert.deepEqual(wallClockOf(new Date(back), zone), wallClockOf(at, zone));
      }),
    );
  });

  test("property: a duration never moves an instant back, and adding more never lands earlier", () => {
    fc.assert(
      fc.property(instant, fc.constantFrom(...ZONES), duration, (at, zone, d) => {
        const later = addIsoDuration(at, d, zone);
        assert.ok(later.getTime() >= at.getTime());
        const more = addIsoDuration(at, { ...d, days: d.days + 1 }, zone);
        assert.ok(more.getTime() > later.getTime());
      }),
    );
  });
});
