/**
 * Schedules (SPEC §7): a cron expression read in a time zone, `{"cron": "0 2 * * *", "timezone":
 * "Europe/Brussels"}`, for file synchronisations, ETLs (`launch` holds the same two keys) and
 * exports. Pure: checking a schedule from a request and computing its next due time. Storing
 * schedules and starting their runs exactly once is storage/schedule-repository.ts and
 * jobs/scheduler.ts.
 *
 * The rules (docs/files-and-exports.md "Schedules"):
 * - `cron` has five fields (minute hour day-of-month month day-of-week) or is a nickname
 *   (`@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`); `L`, `W` and `#` work as in croner;
 *   `?` (Quartz's "no specific value") means `*`. Day of month and day of week restricted together
 *   match either, as in Vixie cron.
 * - `timezone` is an IANA name (`Europe/Brussels`); absent means UTC. The cron's fields are wall
 *   clock times in that zone.
 * - A wall-clock time that a daylight saving change skips (02:30 on the night clocks go forward)
 *   runs at the same distance after the change (03:30 that night): a daily run is never lost. A
 *   wall-clock time that happens twice (02:30 on the night clocks go back) runs once, at its first
 *   occurrence; an every-30-minutes schedule therefore pauses during the repeated hour.
 */
import { Cron } from "croner";

export interface Schedule {
  cron: string;
  timezone: string;
}

/** The zone of a schedule that names none. */
export const DEFAULT_TIMEZONE = "UTC";

/**
 * Checks a schedule object from a request (or an ETL's `launch`, whose `type` is left to its
 * caller); each problem is reported through `add(path, message)` with `path` = `schedule.cron` or
 * `schedule.timezone` (under `path`), and the result is then undefined. Unknown keys are ignored.
 */
export function parseSchedule(
  raw: unknown,
  add: (path: string, message: string) => void,
  path = "schedule",
): Schedule | undefined {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    add(path, 'must be an object {"cron": "0 2 * * *", "timezone": "Europe/Brussels"}');
    return undefined;
  }
  const object = raw as Record<string, unknown>;
  let ok = true;
  const cron = object.cron;
  let cronText = "";
  if (typeof cron !== "string" || cron.trim() === "") {
    add(`${path}.cron`, 'must be a cron expression of five fields, such as "0 2 * * *"');
    ok = false;
  } else {
    cronText = cron.trim().split(/\s+/).join(" ");
  }
  const zone = object.timezone ?? object.timeZone;
  let timezone = DEFAULT_TIMEZONE;
  if (zone !== undefined && zone !== null) {
    const problem = typeof zone === "string" ? timeZoneProblem(zone.trim()) : "must be a string";
    if (problem) {
      add(`${path}.timezone`, problem);
      ok = false;
    } else {
      timezone = (zone as string).trim();
    }
  }
  // The expression is checked even when the zone is refused (in UTC then): both problems at once.
  const cronProblem = cronText === "" ? undefined : cronExpressionProblem(cronText, timezone);
  if (cronProblem) {
    add(`${path}.cron`, cronProblem);
    ok = false;
  }
  return ok ? { cron: cronText, timezone } : undefined;
}

/**
 * The schedule's first due time strictly after `after`. Throws for a schedule that never falls due
 * (parseSchedule refuses those).
 */
export function nextDueAfter(schedule: Schedule, after: Date): Date {
  const cron = cronOf(schedule.cron, schedule.timezone);
  let from = after;
  // croner answers a time after `from`; the loop only guards the answer against a time zone
  // change that would map it back onto or before `after`, so "strictly after" always holds.
  for (let attempt = 0; attempt < 4; attempt++) {
    const next = cron.nextRun(from);
    if (!next) break;
    if (next.getTime() > after.getTime()) return next;
    from = new Date(Math.max(next.getTime(), from.getTime()) + 60_000);
  }
  throw new Error(
    `schedule "${schedule.cron}" (${schedule.timezone}) has no due time after ${after.toISOString()}`,
  );
}

/** Why `zone` is not a time zone Herald can use, or undefined when it is one. */
function timeZoneProblem(zone: string): string | undefined {
  const hint = 'must be an IANA time zone name such as "Europe/Brussels" or "UTC"';
  if (zone === "") return hint;
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone });
    return undefined;
  } catch {
    return `${hint}; "${zone}" is not one`;
  }
}

function cronExpressionProblem(cron: string, timezone: string): string | undefined {
  if (!cron.startsWith("@") && cron.split(" ").length !== 5) {
    return `must have five fields (minute hour day-of-month month day-of-week), such as "0 2 * * *"; "${cron}" has ${cron.split(" ").length}`;
  }
  let parsed: Cron;
  try {
    parsed = cronOf(cron, timezone);
  } catch (error) {
    return `"${cron}" is not a valid cron expression: ${croneReason(error)}`;
  }
  // An impossible date (31 February) parses but never falls due.
  if (!parsed.nextRun(new Date())) return `"${cron}" never falls due (no such date)`;
  return undefined;
}

/** croner's message without its class prefix ("CronPattern: Invalid value for minute: 61"). */
function croneReason(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/^Cron\w*:\s*/, "");
}

function cronOf(cron: string, timezone: string): Cron {
  // `?` is Quartz's "any" for one of the two day fields; croner would read it otherwise.
  const pattern = cron
    .split(" ")
    .map((field) => (field === "?" ? "*" : field))
    .join(" ");
  return new Cron(pattern, { timezone, paused: true, mode: "5-part" });
}
