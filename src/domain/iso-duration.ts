/**
 * ISO 8601 durations (`P1Y2M3DT4H5M6S`, `PT0S`, `P2W`, `PT1.5S`) as a scenario's WAIT block gives
 * them (SPEC §7.4, docs/scenarios.md), and the time a duration after an instant falls in a zone.
 *
 * Years, months, weeks and days are calendar units read on the wall clock of a time zone: P1D
 * from 09:00 is 09:00 the next day, 23 or 25 hours later across a daylight saving change, and
 * P1M from 31 January is the last day of February. Hours, minutes and seconds are elapsed time:
 * PT24H is always 86,400 seconds. The calendar part is added first, then the elapsed part, as
 * java.time and Temporal do. Pure: the zone arithmetic uses Intl, nothing is cached.
 */

export interface IsoDuration {
  years: number;
  months: number;
  weeks: number;
  days: number;
  hours: number;
  minutes: number;
  /** May have a fraction (milliseconds count; finer digits are rounded). */
  seconds: number;
}

/** The wall clock of an instant in a time zone (month 1–12). */
export interface WallClock {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
  millisecond: number;
}

/** The longest duration a WAIT may ask for: past it, a date is no longer a date a run can reach. */
export const MAX_DURATION_YEARS = 1000;

const DURATION =
  /^P(?:(\d{1,9})Y)?(?:(\d{1,9})M)?(?:(\d{1,9})W)?(?:(\d{1,9})D)?(?:T(?:(\d{1,9})H)?(?:(\d{1,9})M)?(?:(\d{1,12}(?:[.,]\d{1,9})?)S)?)?$/;

const MS_PER_DAY = 86_400_000;

/**
 * Reads an ISO 8601 duration; undefined when `text` is not one Herald takes: designators in the
 * order Y M W D T H M S (case-insensitive), at least one of them, `T` only before a time part,
 * whole numbers except the seconds (`.` or `,` before the fraction), no sign, at most
 * MAX_DURATION_YEARS in all.
 */
export function parseIsoDuration(text: string): IsoDuration | undefined {
  const match = DURATION.exec(text.trim().toUpperCase());
  if (!match) return undefined;
  const [, y, mo, w, d, h, mi, s] = match;
  // "P", "PT" and a "T" with no time after it match the pattern but are not durations.
  if ([y, mo, w, d, h, mi, s].every((part) => part === undefined)) return undefined;
  if (match[0].includes("T") && [h, mi, s].every((part) => part === undefined)) return undefined;
  const duration: IsoDuration = {
    years: Number(y ?? 0),
    months: Number(mo ?? 0),
    weeks: Number(w ?? 0),
    days: Number(d ?? 0),
    hours: Number(h ?? 0),
    minutes: Number(mi ?? 0),
    seconds: Number((s ?? "0").replace(",", ".")),
  };
  return longestSpanMs(duration) <= MAX_DURATION_YEARS * 366 * MS_PER_DAY ? duration : undefined;
}

/** The duration written back in ISO 8601 (`PT0S` for nothing), its parts in the canonical order. */
export function formatIsoDuration(duration: IsoDuration): string {
  const date = [
    [duration.years, "Y"],
    [duration.months, "M"],
    [duration.weeks, "W"],
    [duration.days, "D"],
  ] as const;
  const time = [
    [duration.hours, "H"],
    [duration.minutes, "M"],
    [duration.seconds, "S"],
  ] as const;
  const part = (list: readonly (readonly [number, string])[]) =>
    list
      .filter(([amount]) => amount > 0)
      .map(([amount, unit]) => `${amount}${unit}`)
      .join("");
  const datePart = part(date);
  const timePart = part(time);
  if (datePart === "" && timePart === "") return "PT0S";
  return `P${datePart}${timePart === "" ? "" : `T${timePart}`}`;
}

/** True when the duration adds nothing (PT0S, P0D): a WAIT of it moves a run on at once. */
export function isZeroDuration(duration: IsoDuration): boolean {
  return (
    duration.years === 0 &&
    duration.months === 0 &&
    duration.weeks === 0 &&
    duration.days === 0 &&
    elapsedMs(duration) === 0
  );
}

/**
 * The instant `duration` after `at`: its years, months, weeks and days on the wall clock of
 * `timeZone` (an IANA name; the day of month is clamped to the target month's last day), then its
 * hours, minutes and seconds as elapsed time. A wall-clock time that a daylight saving change skips
 * moves forward by the length of the gap (02:30 on the night clocks go forward is 03:30); one that
 * happens twice is its first occurrence. Throws a RangeError for a zone Intl does not know.
 */
export function addIsoDuration(at: Date, duration: IsoDuration, timeZone = "UTC"): Date {
  let ms = at.getTime();
  const days = duration.weeks * 7 + duration.days;
  if (duration.years !== 0 || duration.months !== 0 || days !== 0) {
    const read = wallClockReader(timeZone);
    const wall = read(ms);
    const monthIndex = wall.year * 12 + (wall.month - 1) + duration.years * 12 + duration.months;
    const year = Math.floor(monthIndex / 12);
    const month = (monthIndex % 12) + 1;
    const day = Math.min(wall.day, daysInMonth(year, month));
    // Days are added on the calendar of the clamped date, as a count of days.
    const date = new Date(0);
    date.setUTCFullYear(year, month - 1, day + days);
    ms = instantOf(
      {
        ...wall,
        year: date.getUTCFullYear(),
        month: date.getUTCMonth() + 1,
        day: date.getUTCDate(),
      },
      read,
    );
  }
  return new Date(ms + elapsedMs(duration));
}

/** True when `name` is an IANA time zone Intl knows ("Europe/Brussels", "UTC"). */
export function isTimeZone(name: string): boolean {
  if (name.trim() === "") return false;
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

/** The wall clock of `at` in `timeZone`. */
export function wallClockOf(at: Date, timeZone: string): WallClock {
  return wallClockReader(timeZone)(at.getTime());
}

/**
 * The instant the wall clock of `timeZone` reads `wall` (seconds and milliseconds default to 0):
 * for a time skipped by a daylight saving change, that time moved forward by the gap; for a time
 * that happens twice, the first.
 */
export function zonedTime(
  wall: Omit<WallClock, "second" | "millisecond"> & Partial<WallClock>,
  timeZone: string,
): Date {
  return new Date(instantOf({ second: 0, millisecond: 0, ...wall }, wallClockReader(timeZone)));
}

/** Reads the wall clock of an instant (milliseconds since the epoch) in one zone. */
type WallClockReader = (ms: number) => WallClock;

/** One reader per call of the public functions: an Intl formatter is costly to make, so it is made once. */
function wallClockReader(timeZone: string): WallClockReader {
  if (timeZone === "UTC") return utcWallClock;
  const format = new Intl.DateTimeFormat("en-US", {
    timeZone,
    hourCycle: "h23",
    year: "numeric",
    month: "numeric",
    day: "numeric",
    hour: "numeric",
    minute: "numeric",
    second: "numeric",
    era: "short",
  });
  return (ms) => wallClockWith(format, ms);
}

function instantOf(wall: WallClock, read: WallClockReader): number {
  const asUtc = utcMs(wall);
  const offsetAt = (ms: number) => utcMs(read(ms)) - ms;
  // A zone changes its offset at most once within a day either side: the offsets in force a
  // day before and a day after are the only ones the wall time can have.
  const before = offsetAt(asUtc - MS_PER_DAY);
  const after = offsetAt(asUtc + MS_PER_DAY);
  const candidates = [...new Set([before, after])]
    .map((offset) => asUtc - offset)
    .filter((ms) => offsetAt(ms) === asUtc - ms)
    .sort((a, b) => a - b);
  // No candidate: the time is in a gap; read with the offset before it, it lands as far past the gap.
  return candidates[0] ?? asUtc - before;
}

function wallClockWith(format: Intl.DateTimeFormat, ms: number): WallClock {
  const parts: Record<string, string> = {};
  for (const part of format.formatToParts(new Date(ms))) parts[part.type] = part.value;
  const yearOfEra = Number(parts.year);
  // Years before 1 AD come as "2 BC": astronomical year 1 − 2 = −1.
  const year = parts.era === "BC" || parts.era === "B" ? 1 - yearOfEra : yearOfEra;
  return {
    year,
    month: Number(parts.month),
    day: Number(parts.day),
    hour: Number(parts.hour),
    minute: Number(parts.minute),
    second: Number(parts.second),
    // Intl has no milliseconds part in every Node version; the zone offset is whole seconds.
    millisecond: ((ms % 1000) + 1000) % 1000,
  };
}

function utcWallClock(ms: number): WallClock {
  const d = new Date(ms);
  return {
    year: d.getUTCFullYear(),
    month: d.getUTCMonth() + 1,
    day: d.getUTCDate(),
    hour: d.getUTCHours(),
    minute: d.getUTCMinutes(),
    second: d.getUTCSeconds(),
    millisecond: d.getUTCMilliseconds(),
  };
}

/** The wall clock read as if it were UTC, in milliseconds since the epoch. */
function utcMs(wall: WallClock): number {
  const d = new Date(0);
  // setUTCFullYear keeps years 0–99 as they are (Date.UTC would read them as 1900–1999).
  d.setUTCFullYear(wall.year, wall.month - 1, wall.day);
  d.setUTCHours(wall.hour, wall.minute, wall.second, wall.millisecond);
  return d.getTime();
}

function daysInMonth(year: number, month: number): number {
  const d = new Date(0);
  d.setUTCFullYear(year, month, 0);
  return d.getUTCDate();
}

function elapsedMs(duration: IsoDuration): number {
  return (
    duration.hours * 3_600_000 + duration.minutes * 60_000 + Math.round(duration.seconds * 1000)
  );
}

/** An upper bound of the duration's length (every year a leap year, every month 31 days). */
function longestSpanMs(duration: IsoDuration): number {
  const days = duration.years * 366 + duration.months * 31 + duration.weeks * 7 + duration.days;
  return days * MS_PER_DAY + elapsedMs(duration);
}
