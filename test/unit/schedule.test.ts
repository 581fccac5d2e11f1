import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import type { Schedule } from "../../src/domain/schedule.js";
import { nextDueAfter, parseSchedule } from "../../src/domain/schedule.js";

function parse(raw: unknown, path?: string) {
  const problems: { path: string; message: string }[] = [];
  const schedule = parseSchedule(raw, (p, message) => problems.push({ path: p, message }), path);
  return { schedule, problems };
}

/** The due times of `schedule` after `from`, as ISO strings. */
function dueTimes(schedule: Schedule, from: string, count: number): string[] {
  const times: string[] = [];
  let at = new Date(from);
  for (let i = 0; i < count; i++) {
    at = nextDueAfter(schedule, at);
    times.push(at.toISOString());
  }
  return times;
}

const brussels = (cron: string): Schedule => ({ cron, timezone: "Europe/Brussels" });

describe("parseSchedule", () => {
  test("SPEC §7's example is kept as it is", () => {
    const { schedule, problems } = parse({ cron: "0 2 * * *", timezone: "Europe/Brussels" });
    assert.deepEqual(problems, []);
    assert.deepEqual(schedule, { cron: "0 2 * * *", timezone: "Europe/Brussels" });
  });

  test("without a time zone the schedule runs in UTC; timeZone is accepted as an alias", () => {
    assert.deepEqual(parse({ cron: "0 2 * * *" }).schedule, { cron: "0 2 * * *", timezone: "UTC" });
    assert.deepEqual(parse({ cron: "0 2 * * *", timeZone: "Asia/Tokyo" }).schedule, {
      cron: "0 2 * * *",
      timezone: "Asia/Tokyo",
    });
  });

  test("spaces are normalised, nicknames and croner's L, W and # are accepted", () => {
    assert.equal(parse({ cron: "  0   2 * *  MON-FRI " }).schedule?.cron, "0 2 * * MON-FRI");
    for (const cron of ["@daily", "@hourly", "0 2 L * *", "0 2 * * 1#2", "0 2 ? * MON"])
      assert.deepEqual(parse({ cron }).problems, [], cron);
  });

  test("an ETL's launch carries the same keys under its own path; its type is not looked at", () => {
    const { schedule, problems } = parse(
      { type: "SCHEDULED", cron: "30 6 * * 1", timezone: "Europe/Paris" },
      "launch",
    );
    assert.deepEqual(problems, []);
    assert.deepEqual(schedule, { cron: "30 6 * * 1", timezone: "Europe/Paris" });
    assert.deepEqual(
      parse({ type: "SCHEDULED", cron: "nope" }, "launch").problems.map((p) => p.path),
      ["launch.cron"],
    );
  });

  test("a bad cron expression says what is wrong with it", () => {
    const cases: [unknown, RegExp][] = [
      [undefined, /five fields/],
      ["", /five fields/],
      [42, /five fields/],
      ["0 2 * *", /five fields.*has 4/],
      ["0 0 2 * * *", /five fields.*has 6/],
      ["61 * * * *", /not a valid cron expression.*minute/],
      ["0 25 * * *", /not a valid cron expression.*hour/],
      ["0 2 * * FOO", /not a valid cron expression/],
      ["@reboot", /not a valid cron expression/],
      ["0 0 31 2 *", /never falls due/],
    ];
    for (const [cron, message] of cases) {
      const { schedule, problems } = parse({ cron, timezone: "UTC" });
      assert.equal(schedule, undefined, String(cron));
      assert.equal(problems.length, 1, String(cron));
      assert.equal(problems[0]!.path, "schedule.cron");
      assert.match(problems[0]!.message, message, String(cron));
    }
  });

  test("an unknown time zone is refused by name; a bad cron and a bad zone are both reported", () => {
    const zone = parse({ cron: "0 2 * * *", timezone: "Europe/Atlantis" });
    assert.equal(zone.schedule, undefined);
    assert.deepEqual(zone.problems, [
      {
        path: "schedule.timezone",
        message:
          'must be an IANA time zone name such as "Europe/Brussels" or "UTC"; "Europe/Atlantis" is not one',
      },
    ]);
    for (const timezone of ["", "+01:00", 1])
      assert.deepEqual(
        parse({ cron: "0 2 * * *", timezone }).problems.map((p) => p.path),
        ["schedule.timezone"],
        String(timezone),
      );
    assert.deepEqual(
      parse({ cron: "nope", timezone: "Nowhere/Land" })
        .problems.map((p) => p.path)
        .sort(),
      ["schedule.cron", "schedule.timezone"],
    );
  });

  test("something else than an object", () => {
    for (const raw of [null, "0 2 * * *", [], 3])
      assert.deepEqual(
        parse(raw, "schedule").problems.map((p) => p.path),
        ["schedule"],
      );
  });
});

describe("nextDueAfter", () => {
  test("the cron's times are wall-clock times of the zone", () => {
    // 02:00 in Brussels is 01:00 UTC in winter (CET) and 00:00 UTC in summer (CEST).
    assert.deepEqual(dueTimes(brussels("0 2 * * *"), "2026-01-10T12:00:00Z", 2), [
      "2026-01-11T01:00:00.000Z",
      "2026-01-12T01:00:00.000Z",
    ]);
    assert.deepEqual(dueTimes(brussels("0 2 * * *"), "2026-07-10T12:00:00Z", 1), [
      "2026-07-11T00:00:00.000Z",
    ]);
    assert.deepEqual(dueTimes({ cron: "0 2 * * *", timezone: "UTC" }, "2026-07-10T12:00:00Z", 1), [
      "2026-07-11T02:00:00.000Z",
    ]);
  });

  test("strictly after: a due time equal to `after` is not answered again", () => {
    const due = new Date("2026-01-11T01:00:00Z");
    assert.equal(
      nextDueAfter(brussels("0 2 * * *"), due).toISOString(),
      "2026-01-12T01:00:00.000Z",
    );
    assert.equal(
      nextDueAfter(brussels("0 2 * * *"), new Date(due.getTime() - 1)).toISOString(),
      due.toISOString(),
    );
  });

  test("a time the spring change skips runs an hour later that night, once", () => {
    // Brussels, 29 March 2026: 02:00 CET becomes 03:00 CEST; 02:30 does not exist that night.
    assert.deepEqual(dueTimes(brussels("30 2 * * *"), "2026-03-27T12:00:00Z", 3), [
      "2026-03-28T01:30:00.000Z", // 02:30 CET
      "2026-03-29T01:30:00.000Z", // 03:30 CEST, the skipped 02:30 an hour later
      "2026-03-30T00:30:00.000Z", // 02:30 CEST
    ]);
    // Every half hour: the times of the missing hour fall on 03:00 and 03:30, each run once.
    assert.deepEqual(dueTimes(brussels("*/30 * * * *"), "2026-03-28T23:50:00Z", 5), [
      "2026-03-29T00:00:00.000Z", // 01:00 CET
      "2026-03-29T00:30:00.000Z", // 01:30 CET
      "2026-03-29T01:00:00.000Z", // 03:00 CEST
      "2026-03-29T01:30:00.000Z", // 03:30 CEST
      "2026-03-29T02:00:00.000Z", // 04:00 CEST
    ]);
  });

  test("a time the autumn change repeats runs once, at its first occurrence", () => {
    // Brussels, 25 October 2026: 03:00 CEST becomes 02:00 CET; 02:30 happens twice.
    assert.deepEqual(dueTimes(brussels("30 2 * * *"), "2026-10-24T12:00:00Z", 3), [
      "2026-10-25T00:30:00.000Z", // 02:30 CEST, the first 02:30
      "2026-10-26T01:30:00.000Z", // 02:30 CET, the next day
      "2026-10-27T01:30:00.000Z",
    ]);
    // Every half hour: the repeated hour is not run twice, so there is a pause of an hour.
    assert.deepEqual(dueTimes(brussels("*/30 * * * *"), "2026-10-24T23:50:00Z", 4), [
      "2026-10-25T00:00:00.000Z", // 02:00 CEST
      "2026-10-25T00:30:00.000Z", // 02:30 CEST
      "2026-10-25T02:00:00.000Z", // 03:00 CET
      "2026-10-25T02:30:00.000Z",
    ]);
  });

  test("property: the next due time is after `after`, within the schedule's period, and a due time", () => {
    const zones = [
      "UTC",
      "Europe/Brussels",
      "America/New_York",
      "Australia/Lord_Howe",
      "Asia/Kolkata",
    ];
    const start = Date.parse("2025-01-01T00:00:00Z");
    const span = 4 * 365 * 24 * 60 * 60_000;
    fc.assert(
      fc.property(
        fc.constantFrom(...zones),
        fc.integer({ min: 0, max: 59 }),
        fc.integer({ min: 0, max: 23 }),
        fc.integer({ min: 0, max: span }),
        (timezone, minute, hour, offset) => {
          const schedule = { cron: `${minute} ${hour} * * *`, timezone };
          const after = new Date(start + offset);
          const next = nextDueAfter(schedule, after);
          assert.ok(next.getTime() > after.getTime());
          // A daily time comes back within a day, plus at most a DST shift.
          assert.ok(next.getTime() - after.getTime() <= 25 * 60 * 60_000);
          // Asking just before it gives it back: nothing is skipped in between.
          assert.equal(
            nextDueAfter(schedule, new Date(next.getTime() - 1)).getTime(),
            next.getTime(),
          );
        },
      ),
      { numRuns: 300 },
    );
  });
});
