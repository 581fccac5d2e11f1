/**
 * Date placeholders in file names, paths and URLs (SPEC §7.2: `customers_$yyyyMMdd.csv`), as
 * Actito writes them: evaluated at a given time as the wall clock reads it in a time zone. Pure.
 */

/** The pattern letters a placeholder is made of, longest first so `yyyy` wins over `yy`. */
const PLACEHOLDER = /\$(\$|(?:yyyy|yy|MM|dd|HH|mm|ss)+)/g;
const TOKEN = /yyyy|yy|MM|dd|HH|mm|ss/g;

/**
 * Replaces date placeholders with the date `at` as the wall clock reads it in `timeZone` (an IANA
 * name): `$` followed by any run of `yyyy` (year), `yy` (two-digit year), `MM` (month), `dd` (day),
 * `HH` (hour, 00–23), `mm` (minute) and `ss` (second), e.g. `$yyyyMMdd` → `20261207`,
 * `$yyyy-$MM-$dd` → `2026-12-07`, `$ddMMyyyy`, `$yyyyMMddHHmm`. `$$` is a literal `$`; any other
 * `$` is left as it is. Throws a RangeError for an unknown time zone.
 */
export function expandDatePlaceholders(template: string, at: Date, timeZone: string): string {
  if (!template.includes("$")) return template;
  const parts = wallClock(at, timeZone);
  return template.replace(PLACEHOLDER, (_, body: string) =>
    body === "$" ? "$" : body.replace(TOKEN, (token) => parts[token] ?? token),
  );
}

/** True when `template` holds at least one date placeholder. */
export function hasDatePlaceholders(template: string): boolean {
  return [...template.matchAll(PLACEHOLDER)].some((m) => m[1] !== "$");
}

function wallClock(at: Date, timeZone: string): Record<string, string> {
  const values: Record<string, string> = {};
  const format = new Intl.DateTimeFormat("en-GB", {
    timeZone,
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hourCycle: "h23",
  });
  for (const part of format.formatToParts(at)) values[part.type] = part.value;
  const year = (values.year ?? "").padStart(4, "0");
  return {
    yyyy: year,
    yy: year.slice(-2),
    MM: values.month ?? "",
    dd: values.day ?? "",
    HH: values.hour ?? "",
    mm: values.minute ?? "",
    ss: values.second ?? "",
  };
}
