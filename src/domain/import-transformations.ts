/**
 * Column transformations of an ETL (SPEC §7.1), applied to a cell's text in the order listed, before
 * the value is validated like an API write: TRIM, LOWERCASE, UPPERCASE, DATE_FORMAT (`from`, a
 * pattern such as `dd/MM/yyyy` or `yyyyMMdd HH:mm`, to ISO 8601), VALUE_MAP (`values`: text → text;
 * other values pass unchanged) and DEFAULT (`value`, for an empty cell). Pure.
 */
export const TRANSFORMATION_TYPES = [
  "TRIM",
  "LOWERCASE",
  "UPPERCASE",
  "DATE_FORMAT",
  "VALUE_MAP",
  "DEFAULT",
] as const;
export type TransformationType = (typeof TRANSFORMATION_TYPES)[number];

export type Transformation =
  | { column: string; type: "TRIM" | "LOWERCASE" | "UPPERCASE" }
  | { column: string; type: "DATE_FORMAT"; from: string }
  | { column: string; type: "VALUE_MAP"; values: Record<string, string> }
  | { column: string; type: "DEFAULT"; value: string };

/** A cell the transformation cannot take (a date that does not fit the pattern). */
export class TransformationFailed extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TransformationFailed";
  }
}

const DATE_TOKENS = ["yyyy", "yy", "MM", "M", "dd", "d", "HH", "H", "mm", "ss", "SSS"] as const;
type DateToken = (typeof DATE_TOKENS)[number];

/** A DATE_FORMAT pattern compiled to a regular expression and the tokens of its groups. */
interface DatePattern {
  regex: RegExp;
  tokens: DateToken[];
  hasTime: boolean;
}

function compileDatePattern(pattern: string): DatePattern | string {
  let source = "";
  const tokens: DateToken[] = [];
  for (let i = 0; i < pattern.length;) {
    const token = DATE_TOKENS.find((t) => pattern.startsWith(t, i));
    if (token) {
      tokens.push(token);
      // Day, month and time fields take one or two digits, as Java's date parsing does.
      source += token === "yyyy" || token === "SSS" ? `(\\d{${token.length}})` : "(\\d{1,2})";
      i += token.length;
      continue;
    }
    const char = pattern[i]!;
    if (/[A-Za-z]/.test(char))
      return `'${char}' is not a pattern letter (use yyyy, yy, MM, M, dd, d, HH, H, mm, ss, SSS)`;
    source += char.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    i += 1;
  }
  const has = (t: DateToken) => tokens.includes(t);
  if (!(has("yyyy") || has("yy")) || !(has("MM") || has("M")) || !(has("dd") || has("d")))
    return "needs a year (yyyy or yy), a month (MM or M) and a day (dd or d)";
  return {
    regex: new RegExp(`^${source}$`),
    tokens,
    hasTime: has("HH") || has("H") || has("mm"),
  };
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, "0");
}

function reformatDate(pattern: DatePattern, from: string, value: string): string {
  const match = pattern.regex.exec(value.trim());
  if (!match) throw new TransformationFailed(`'${value}' does not match the date pattern ${from}`);
  const parts: Partial<Record<DateToken, number>> = {};
  pattern.tokens.forEach((token, i) => (parts[token] = Number(match[i + 1])));
  const year = parts.yyyy ?? 2000 + (parts.yy ?? 0);
  const month = parts.MM ?? parts.M ?? 0;
  const day = parts.dd ?? parts.d ?? 0;
  const date = `${pad(year, 4)}-${pad(month, 2)}-${pad(day, 2)}`;
  if (!pattern.hasTime) return date;
  const hour = parts.HH ?? parts.H ?? 0;
  const time = `${pad(hour, 2)}:${pad(parts.mm ?? 0, 2)}:${pad(parts.ss ?? 0, 2)}.${pad(parts.SSS ?? 0, 3)}`;
  return `${date}T${time}Z`;
}

/**
 * Checks the `transformations` list of a definition; `add(path, message)` collects problems.
 * Unknown keys of an item are ignored.
 */
export function parseTransformations(
  raw: unknown,
  add: (path: string, message: string) => void,
): Transformation[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) {
    add("transformations", "must be a list of {column, type, …}");
    return [];
  }
  const out: Transformation[] = [];
  raw.forEach((item: unknown, i) => {
    const at = `transformations[${i}]`;
    if (typeof item !== "object" || item === null || Array.isArray(item)) {
      add(at, "must be an object {column, type, …}");
      return;
    }
    const t = item as Record<string, unknown>;
    if (typeof t.column !== "string" || t.column === "") {
      add(`${at}.column`, "names a column of the file");
      return;
    }
    const column = t.column;
    const type = typeof t.type === "string" ? t.type.toUpperCase() : undefined;
    switch (type) {
      case "TRIM":
      case "LOWERCASE":
      case "UPPERCASE":
        out.push({ column, type });
        return;
      case "DATE_FORMAT": {
        if (typeof t.from !== "string") {
          add(`${at}.from`, "is the date pattern of the file, such as dd/MM/yyyy");
          return;
        }
        const compiled = compileDatePattern(t.from);
        if (typeof compiled === "string") add(`${at}.from`, compiled);
        else out.push({ column, type, from: t.from });
        return;
      }
      case "VALUE_MAP": {
        const values = t.values;
        if (typeof values !== "object" || values === null || Array.isArray(values)) {
          add(`${at}.values`, "must be an object of file value → imported value");
          return;
        }
        const map: Record<string, string> = {};
        for (const [from, to] of Object.entries(values)) {
          if (typeof to !== "string" && typeof to !== "number" && typeof to !== "boolean") {
            add(`${at}.values.${from}`, "must be a string, a number or a boolean");
            continue;
          }
          map[from] = String(to);
        }
        out.push({ column, type, values: map });
        return;
      }
      case "DEFAULT":
        if (
          typeof t.value !== "string" &&
          typeof t.value !== "number" &&
          typeof t.value !== "boolean"
        ) {
          add(`${at}.value`, "is the value of an empty cell (a string, number or boolean)");
          return;
        }
        out.push({ column, type, value: String(t.value) });
        return;
      default:
        add(`${at}.type`, `must be one of ${TRANSFORMATION_TYPES.join(", ")}`);
    }
  });
  return out;
}

/** The transformations of each column, compiled once per execution. */
export type ColumnTransforms = Map<string, ((value: string) => string)[]>;

export function compileTransformations(list: readonly Transformation[]): ColumnTransforms {
  const byColumn: ColumnTransforms = new Map();
  for (const t of list) {
    let step: (value: string) => string;
    switch (t.type) {
      case "TRIM":
        step = (v) => v.trim();
        break;
      case "LOWERCASE":
        step = (v) => v.toLowerCase();
        break;
      case "UPPERCASE":
        step = (v) => v.toUpperCase();
        break;
      case "DATE_FORMAT": {
        const pattern = compileDatePattern(t.from) as DatePattern;
        step = (v) => (v === "" ? v : reformatDate(pattern, t.from, v));
        break;
      }
      case "VALUE_MAP": {
        const values = new Map(Object.entries(t.values));
        step = (v) => values.get(v) ?? v;
        break;
      }
      case "DEFAULT":
        step = (v) => (v === "" ? t.value : v);
        break;
    }
    const steps = byColumn.get(t.column) ?? [];
    steps.push(step);
    byColumn.set(t.column, steps);
  }
  return byColumn;
}

/** Applies a column's transformations; throws TransformationFailed. */
export function transformCell(transforms: ColumnTransforms, column: string, value: string): string {
  const steps = transforms.get(column);
  if (!steps) return value;
  let out = value;
  for (const step of steps) out = step(out);
  return out;
}
