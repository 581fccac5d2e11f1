/**
 * HTML written by the console: a tagged template that escapes every interpolated value unless it
 * is already HTML made by this module. A record value, a target URL or an error message holding
 * markup is shown as text, never parsed as markup; that rule lives here and nowhere else.
 */

const ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
  "`": "&#96;",
};

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"'`]/g, (c) => ESCAPES[c]!);
}

/** Markup that is safe to insert as it is: only `html` and `unsafeRaw` make one. */
export class SafeHtml {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

/** A value the template accepts: text (escaped), numbers, HTML, lists of them; nothing for null. */
export type HtmlValue =
  SafeHtml | string | number | bigint | boolean | null | undefined | HtmlValue[];

function render(value: HtmlValue): string {
  if (value === null || value === undefined || value === false) return "";
  if (value instanceof SafeHtml) return value.text;
  if (Array.isArray(value)) return value.map(render).join("");
  return escapeHtml(String(value));
}

/** `html\`<td>${value}</td>\``: the literal parts are markup, every value is escaped. */
export function html(strings: TemplateStringsArray, ...values: HtmlValue[]): SafeHtml {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += render(values[i]!) + strings[i + 1]!;
  return new SafeHtml(out);
}

/** Markup written by Herald's own code (an SVG built from numbers, say); never data. */
export function unsafeRaw(markup: string): SafeHtml {
  return new SafeHtml(markup);
}

/** A path segment or query value in a link: percent-encoded, then escaped by the template. */
export function pathPart(value: string | number): string {
  return encodeURIComponent(String(value));
}

/** A date for a person: ISO-8601 in UTC without milliseconds, or a dash. */
export function when(value: string | Date | null | undefined): string {
  if (value === null || value === undefined || value === "") return "—";
  const date = value instanceof Date ? value : new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return date
    .toISOString()
    .replace(/\.\d{3}Z$/, "Z")
    .replace("T", " ");
}
