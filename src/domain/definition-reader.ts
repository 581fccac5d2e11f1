/**
 * Reading untrusted definition JSON (tables, declared events): small typed readers that record a
 * problem with its path instead of throwing, so one answer can list every problem. Malformed input
 * is `bad` (400); a reference to something that does not exist is a `conflict` (422); a key Herald
 * does not know is a `warning`: definitions are read leniently (SPEC §3), so it is ignored and the
 * answer says so in its `details`.
 */
import type { ErrorDetail } from "./errors.js";
import { HeraldError } from "./errors.js";

export class Problems {
  readonly invalid: ErrorDetail[] = [];
  readonly inconsistent: ErrorDetail[] = [];
  readonly warnings: ErrorDetail[] = [];
  bad(path: string, message: string): void {
    this.invalid.push({ path, message });
  }
  conflict(path: string, message: string): void {
    this.inconsistent.push({ path, message });
  }
  warn(path: string, message: string): void {
    this.warnings.push({ path, message });
  }
  /** Warns about each key of `raw` that is not in `known` (`what` names the object in the message). */
  ignoreUnknownKeys(raw: Json, known: readonly string[], path: string, what: string): void {
    for (const key of Object.keys(raw))
      if (!known.includes(key))
        this.warn(path ? `${path}.${key}` : key, `is not a key of ${what}: ignored`);
  }
  throwIfAny(): void {
    const [list, code] =
      this.invalid.length > 0
        ? ([this.invalid, "HERALD_INVALID_TABLE_DEFINITION"] as const)
        : ([this.inconsistent, "HERALD_TABLE_DEFINITION_INCONSISTENT"] as const);
    const first = list[0];
    if (first) throw new HeraldError(code, { reason: `${first.path} ${first.message}` }, list);
  }
}

export type Json = Record<string, unknown>;

export function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function arrayAt(p: Problems, value: unknown, path: string): unknown[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) {
    p.bad(path, "must be an array");
    return [];
  }
  return value;
}

export function stringAt(
  p: Problems,
  value: unknown,
  path: string,
  required: boolean,
): string | undefined {
  if (value === undefined || value === null) {
    if (required) p.bad(path, "is required");
    return undefined;
  }
  if (typeof value !== "string" || value.trim() === "") {
    p.bad(path, "must be a non-empty string");
    return undefined;
  }
  return value.trim();
}

export function booleanAt(p: Problems, value: unknown, path: string): boolean {
  if (value === undefined || value === null) return false;
  if (typeof value !== "boolean") p.bad(path, "must be true or false");
  return value === true;
}

export function oneOf<T extends string>(
  p: Problems,
  value: unknown,
  allowed: readonly T[],
  path: string,
  required: boolean,
): T | undefined {
  if (value === undefined || value === null) {
    if (required) p.bad(path, `is required (one of ${allowed.join(", ")})`);
    return undefined;
  }
  if (typeof value !== "string" || !(allowed as readonly string[]).includes(value)) {
    p.bad(path, `must be one of ${allowed.join(", ")}`);
    return undefined;
  }
  return value as T;
}

export function duplicates(names: readonly (string | undefined)[]): Set<number> {
  const seen = new Set<string>();
  const dup = new Set<number>();
  names.forEach((name, i) => {
    if (name === undefined) return;
    if (seen.has(name)) dup.add(i);
    seen.add(name);
  });
  return dup;
}
