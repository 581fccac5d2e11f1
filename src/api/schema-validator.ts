/**
 * How the API checks the parts of a request against its route's TypeBox schemas (the server's
 * validator compiler, set in app.ts).
 */
import type { FastifySchemaCompiler } from "fastify";
import type { TSchema } from "typebox";
import { Compile } from "typebox/compile";
import { Value } from "typebox/value";

/**
 * TypeBox validation (as @fastify/type-provider-typebox's compiler: bodies are checked as sent;
 * params, query strings and headers are converted, "5" to 5 and "true" to true, then checked),
 * except that converting does not walk the schema with Value.Convert on every request (it copies
 * the value, a cost that every request with path parameters or a query string paid; see
 * docs/performance-notes.md, "API request handling"). For an object schema of plain string,
 * boolean, integer and number properties (no unions), a value that already checks is taken as it
 * is, and "true" / "false" and decimal numbers are converted in place. A number is written in
 * decimal digits only: Value.Convert would also take "1.5" as the integer 1, "0x10" as 16 and
 * "1e2" as 100, which silently answers another question than the one asked, so those are a 400
 * here. Anything else (another boolean spelling, a union, a nested schema) goes through
 * Value.Convert as before.
 */
export const typeBoxValidatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const typeCheck = Compile(schema);
  const convert = httpPart !== "body";
  const quick = convert ? quickConverter(schema) : undefined;
  return (value: unknown) => {
    const converted = quick?.(value);
    if (converted !== undefined) {
      // The converter is sure: a value that fails now fails however it is spelled.
      if (typeCheck.Check(converted)) return { value: converted };
      return { error: typeCheck.Errors(converted) };
    }
    const slow = convert ? Value.Convert(schema, value) : value;
    if (typeCheck.Check(slow)) return { value: slow };
    return { error: typeCheck.Errors(slow) };
  };
};

const DECIMAL_INTEGER = /^-?[0-9]{1,15}$/;
const DECIMAL_NUMBER = /^-?[0-9]{1,15}(?:\.[0-9]{1,15})?$/;

/**
 * The fast conversion of `typeBoxValidatorCompiler` for a flat object schema of scalar properties;
 * undefined for any other schema. The converter answers undefined when it cannot be sure. A string
 * given for an integer or number property that is not written in decimal is left as it is, so
 * that the check fails on it.
 */
function quickConverter(schema: TSchema): ((value: unknown) => unknown) | undefined {
  const object = schema as { type?: unknown; properties?: Record<string, Record<string, unknown>> };
  if (
    object.type !== "object" ||
    !object.properties ||
    /"(anyOf|oneOf|allOf)"/.test(JSON.stringify(schema))
  )
    return undefined;
  const scalars: [string, "string" | "boolean" | "integer" | "number"][] = [];
  for (const [name, property] of Object.entries(object.properties)) {
    const type = property.type;
    if (type !== "string" && type !== "boolean" && type !== "integer" && type !== "number")
      return undefined;
    scalars.push([name, type]);
  }
  return (value) => {
    if (typeof value !== "object" || value === null) return undefined;
    let copy: Record<string, unknown> | undefined;
    for (const [name, type] of scalars) {
      const given = (value as Record<string, unknown>)[name];
      if (typeof given !== "string" || type === "string") continue;
      let converted: boolean | number | string;
      if (type === "boolean") {
        if (given !== "true" && given !== "false") return undefined;
        converted = given === "true";
      } else if ((type === "integer" ? DECIMAL_INTEGER : DECIMAL_NUMBER).test(given))
        converted = Number(given);
      else converted = given;
      copy ??= { ...value };
      copy[name] = converted;
    }
    return copy ?? value;
  };
}
