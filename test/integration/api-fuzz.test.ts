/**
 * A bounded, seeded fuzzer of the whole API (issue #19): requests generated from the app's own
 * OpenAPI document (every operation, its path and query parameters and its body schema) and a list
 * of hostile inputs (NUL, unpaired surrogates, very long keys, deep JSON, prototype keys, huge
 * numbers, wrong types, empty values, unicode, broken percent-encoding, wrong content types,
 * repeated query parameters, HEAD). On both backends it checks that:
 * - nothing answers 5xx;
 * - every error body is SPEC §2's `{status, code, message, details}` with a catalogue code;
 * - a rejected request writes nothing and appends no event: a row trigger on every table counts
 *   the rows written, and the count is the same after a rejected request as before it.
 * The seed is fixed, so a failure repeats; the failures are listed together with the request.
 */
import assert from "node:assert/strict";
import { connect } from "node:net";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { ERRORS } from "../../src/domain/errors.js";
import { MAX_UNIQUE_VALUE_BYTES } from "../../src/domain/attribute-values.js";
import type { TestApp } from "../helpers/test-app.js";
import { createTestApp, TEST_ADMIN_KEY } from "../helpers/test-app.js";
import { testBackends } from "../helpers/test-database.js";

const SEED = 0x19_2024;
/** Requests per operation of the OpenAPI document (74 operations today: ~1,500 per backend). */
const REQUESTS_PER_OPERATION = 20;

/** mulberry32: a small seeded PRNG, so every run sends the same requests. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    chance: (p: number) => next() < p,
    int: (n: number) => Math.floor(next() * n),
    pick: <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)] as T,
  };
}
type Rng = ReturnType<typeof prng>;

function longUnicodeKey(bytes: number): string {
  let key = "";
  while (Buffer.byteLength(`${key}é€😀/%`) <= bytes) key += "é€😀/%";
  return key.padEnd(key.length + bytes - Buffer.byteLength(key), "k");
}

const HOSTILE_STRINGS: readonly string[] = [
  "\u0000",
  "a\u0000b",
  "\ud800",
  "x\udc00",
  "\udbff\udfff\ud800",
  "",
  " ",
  "x".repeat(5_000),
  longUnicodeKey(MAX_UNIQUE_VALUE_BYTES),
  longUnicodeKey(MAX_UNIQUE_VALUE_BYTES + 1),
  "__proto__",
  "constructor",
  "prototype",
  "toString",
  "hasOwnProperty",
  "😀",
  "\u202eevil",
  "Ａｃｍｅ",
  "é",
  "%00",
  "%",
  "../../etc/passwd",
  "' OR '1'='1",
  "1e309",
  "-1",
  "NaN",
  "Infinity",
  "0x10",
  "9".repeat(400),
  "null",
  "true",
  "[]",
  "{}",
  "a=b",
  "emailAddress=",
  "=",
  "2024-02-30",
  "https://[::1]/",
  "javascript:alert(1)",
  "\r\nX-Injected: 1",
];

const HOSTILE_NUMBERS: readonly number[] = [
  1e308,
  -1e308,
  2 ** 53 + 2,
  -0,
  1.5,
  -1,
  0,
  1e-7,
  4_294_967_296,
  Number.MAX_SAFE_INTEGER,
];

function nested(depth: number, leaf: unknown): unknown {
  let value = leaf;
  for (let i = 0; i < depth; i++) value = i % 2 ? [value] : { a: value };
  return value;
}

/** A JSON value that is wrong in some way for almost any field. */
function hostileValue(rng: Rng): unknown {
  switch (rng.int(9)) {
    case 0:
    case 1:
    case 2:
      return rng.pick(HOSTILE_STRINGS);
    case 3:
      return rng.pick(HOSTILE_NUMBERS);
    case 4:
      return rng.pick([null, true, false]);
    case 5:
      return rng.pick([[], {}, [rng.pick(HOSTILE_STRINGS)], { x: rng.pick(HOSTILE_STRINGS) }]);
    case 6:
      return nested(rng.pick([3, 40, 200]), rng.pick(HOSTILE_STRINGS));
    case 7:
      return JSON.parse('{"__proto__": {"isAdmin": true}, "constructor": {"prototype": {}}}');
    default:
      return Array.from({ length: rng.pick([5, 300]) }, () => rng.pick(HOSTILE_STRINGS));
  }
}

interface Schema {
  type?: string | string[];
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  anyOf?: Schema[];
  oneOf?: Schema[];
  allOf?: Schema[];
  enum?: unknown[];
  const?: unknown;
  additionalProperties?: boolean | Schema;
  description?: string;
  minimum?: number;
  maximum?: number;
  pattern?: string;
}

/** Words that make a plausible string for a field, so that requests get past the first checks. */
const PLAUSIBLE: Record<string, readonly string[]> = {
  on: ["PROFILE_TABLE", "CUSTOM_TABLE", "ETL"],
  eventType: ["CREATE", "UPDATE", "DELETE", "FINISHED"],
  targetUrl: ["http://127.0.0.1:9/hook", "https://127.0.0.1:9/h"],
  name: ["fuzz", "People", "emailAddress", "news", "Active"],
  type: ["CUSTOM", "REPOSITORY", "SIMPLE", "EMAIL_ADDRESS", "STRING"],
  valueType: ["STRING", "INTEGER", "BOOLEAN", "DATE"],
  value: ["a@b.cd", "n1", "5"],
  pushMode: ["ONE_BY_ONE", "BULK"],
  operator: ["=", "!=", "IS_NULL", "CHANGED"],
  attribute: ["emailAddress", "age", "text"],
  tableType: ["PROFILE_TABLE", "CUSTOM_TABLE"],
  mode: ["CREATE_UPDATE", "CREATE_ONLY"],
};

/** A value that fits `schema` as well as a quick guess can (enums, descriptions listing values). */
function plausible(schema: Schema, rng: Rng, field: string, depth = 0): unknown {
  if (schema.const !== undefined) return schema.const;
  if (schema.enum) return rng.pick(schema.enum);
  const alternatives = schema.anyOf ?? schema.oneOf;
  if (alternatives) return plausible(rng.pick(alternatives), rng, field, depth);
  if (schema.allOf)
    return Object.assign(
      {},
      ...schema.allOf.map((part) => plausible(part, rng, field, depth) as object),
    );
  const type = Array.isArray(schema.type) ? rng.pick(schema.type) : schema.type;
  switch (type) {
    case "string": {
      const listed = PLAUSIBLE[field];
      if (listed) return rng.pick(listed);
      const words = schema.description?.match(/\b[A-Z][A-Z_]{2,}\b/g);
      return words?.length ? rng.pick(words) : rng.pick(["x", "People", "1", "a@b.cd"]);
    }
    case "integer":
    case "number":
      return Math.max(schema.minimum ?? 0, Math.min(schema.maximum ?? 10, rng.int(12)));
    case "boolean":
      return rng.chance(0.5);
    case "null":
      return null;
    case "array":
      return depth > 4 || !schema.items
        ? []
        : Array.from({ length: rng.int(3) }, () => plausible(schema.items!, rng, field, depth + 1));
    default: {
      if (depth > 4) return {};
      const out: Record<string, unknown> = {};
      for (const [name, property] of Object.entries(schema.properties ?? {}))
        if (schema.required?.includes(name) || rng.chance(0.5))
          out[name] = plausible(property, rng, name, depth + 1);
      return out;
    }
  }
}

/** `value` with one of its fields (at any depth) replaced by a hostile value, or one added. */
function mutate(value: unknown, rng: Rng, depth = 0): unknown {
  if (depth > 5 || value === null || typeof value !== "object" || rng.chance(0.15))
    return hostileValue(rng);
  if (Array.isArray(value)) {
    if (value.length === 0) return [hostileValue(rng)];
    const copy = [...value];
    const i = rng.int(copy.length);
    copy[i] = mutate(copy[i], rng, depth + 1);
    return copy;
  }
  const copy: Record<string, unknown> = { ...value };
  const keys = Object.keys(copy);
  if (keys.length === 0 || rng.chance(0.2)) {
    const key = rng.pick([...HOSTILE_STRINGS.slice(0, 16), "extra", "isAdmin"]);
    Object.defineProperty(copy, key, {
      value: hostileValue(rng),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  } else {
    const key = rng.pick(keys);
    copy[key] = mutate(copy[key], rng, depth + 1);
  }
  return copy;
}

/** Request bodies that are not the JSON they claim to be, or not JSON at all. */
const RAW_BODIES: readonly string[] = [
  "{not json",
  "",
  "null",
  "[]",
  '"text"',
  "1e999999",
  '{"a":1,"a":2}',
  '{"__proto__":{"polluted":true}}',
  '{"constructor":{"prototype":{"polluted":true}}}',
  "[".repeat(5_000) + "]".repeat(5_000),
  '{"a":"\\ud800"}',
  '{"a":"\\u0000"}',
  "\ufeff{}",
  '{"x": 1}\u0000',
];

const CONTENT_TYPES: readonly string[] = [
  "text/plain",
  "application/xml",
  "application/x-www-form-urlencoded",
  "multipart/form-data; boundary=xyz",
  "application/json; charset=latin1",
  "application/json; charset=utf-8",
  "application/merge-patch+json",
  "",
  "application/json\u0000",
];

/** `json` with its first scalar field value replaced by arrays nested 20,000 deep (~40 KB). */
function withDeepField(json: string): string {
  const deep = "[".repeat(20_000) + "]".repeat(20_000);
  const replaced = json.replace(/:("[^"]*"|-?[0-9.]+|true|false|null)/, `:${deep}`);
  return replaced === json ? `{"deep":${deep}}` : replaced;
}

interface Operation {
  method: string;
  path: string;
  parameters: { name: string; in: string; schema?: Schema }[];
  body?: Schema;
}

function operationsOf(document: {
  paths: Record<string, Record<string, Record<string, unknown>>>;
}): Operation[] {
  const operations: Operation[] = [];
  for (const [path, methods] of Object.entries(document.paths))
    for (const [method, operation] of Object.entries(methods)) {
      const content = (
        operation.requestBody as { content?: Record<string, { schema?: Schema }> } | undefined
      )?.content;
      operations.push({
        method: method.toUpperCase(),
        path,
        parameters: (operation.parameters as Operation["parameters"] | undefined) ?? [],
        body: content?.["application/json"]?.schema,
      });
    }
  // Deletions last, so that the fixtures the other operations aim at live as long as possible.
  return operations.sort(
    (a, b) => Number(a.method === "DELETE") - Number(b.method === "DELETE") || 0,
  );
}

interface Fixtures {
  tableId: string;
  customTableId: string;
  subscriptionId: string;
}

/** A plausible value for a path parameter, so that most requests reach the handler. */
function plausibleParam(name: string, rng: Rng, f: Fixtures): string {
  const byName: Record<string, readonly string[]> = {
    entity: ["acme", "acme", "nope"],
    table: ["People", f.tableId, "Notes", f.customTableId, "404"],
    profileKey: ["emailAddress=a@b.cd", "1", "age=3", "emailAddress=zz@zz.zz"],
    businessKey: ["n1", "missing"],
    id: [f.subscriptionId, "1", "999999"],
    etlId: ["1", "x"],
    replayId: ["1", "00000000-0000-0000-0000-000000000000"],
    date: ["2024-01-01", "2024-13-45"],
    subscriptionName: ["news", "nope"],
    segmentationName: ["Active", "Tier", "nope"],
  };
  return encodeURIComponent(rng.pick(byName[name] ?? ["1"]));
}

function hostileParam(rng: Rng): string {
  switch (rng.int(4)) {
    case 0:
      return rng.pick(["%zz", "%E0%A4%A", "%", "%C0%AF", "%ED%A0%80", "%00", "a%2Fb", "%2e%2e"]);
    case 1:
      return encodeURIComponent("x".repeat(rng.pick([101, 3_000, 12_000])));
    default: {
      const text = rng.pick(HOSTILE_STRINGS);
      // encodeURIComponent throws on an unpaired surrogate: send its UTF-8 bytes' would-be form.
      try {
        return encodeURIComponent(text) || "%20";
      } catch {
        return "%ED%A0%80";
      }
    }
  }
}

interface FuzzRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
  payload?: string;
}

function buildRequest(op: Operation, rng: Rng, f: Fixtures, token: string): FuzzRequest {
  const path = op.path.replace(/\{(\w+)\}/g, (_, name: string) =>
    rng.chance(0.8) ? plausibleParam(name, rng, f) : hostileParam(rng),
  );
  const query: string[] = [];
  for (const parameter of op.parameters.filter((p) => p.in === "query")) {
    if (!rng.chance(0.4)) continue;
    const value = rng.chance(0.6)
      ? String(plausible(parameter.schema ?? {}, rng, parameter.name))
      : String(hostileValue(rng));
    let encoded: string;
    try {
      encoded = encodeURIComponent(value);
    } catch {
      encoded = "%ED%A0%80";
    }
    query.push(`${parameter.name}=${encoded}`);
    // A repeated parameter arrives as an array.
    if (rng.chance(0.1)) query.push(`${parameter.name}=${encoded}`);
  }
  if (rng.chance(0.05))
    query.push(rng.pick(["__proto__[x]=1", "constructor[prototype][x]=1", "a=%zz", "=", "&&"]));
  const url = query.length ? `${path}?${query.join("&")}` : path;

  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  if (rng.chance(0.04))
    headers.authorization = rng.pick([
      "",
      "Bearer ",
      "Bearer x\u00e9",
      "Basic !!!",
      `Basic ${Buffer.from("herald/admin:wrong").toString("base64")}`,
      TEST_ADMIN_KEY,
    ]);
  let method = op.method;
  if (rng.chance(0.04)) method = op.method === "GET" ? "HEAD" : rng.pick(["PATCH", "OPTIONS"]);

  let payload: string | undefined;
  if (op.body || rng.chance(0.1)) {
    headers["content-type"] = "application/json";
    const roll = rng.int(10);
    if (roll < 2 || !op.body) payload = rng.pick(RAW_BODIES);
    else if (roll < 3) payload = JSON.stringify(plausible(op.body, rng, ""));
    else if (roll < 4) payload = withDeepField(JSON.stringify(plausible(op.body, rng, "")));
    else payload = JSON.stringify(mutate(plausible(op.body, rng, ""), rng));
    if (rng.chance(0.06)) headers["content-type"] = rng.pick(CONTENT_TYPES);
  }
  return { method, url, headers, payload };
}

/** What any 4xx/5xx body must be (SPEC §2). Returns a problem, or undefined when it conforms. */
function errorShapeProblem(res: LightMyRequestResponse, method: string): string | undefined {
  if (method === "HEAD") return undefined;
  if (!String(res.headers["content-type"] ?? "").startsWith("application/json"))
    return `content-type ${String(res.headers["content-type"])}`;
  let body: unknown;
  try {
    body = JSON.parse(res.body);
  } catch {
    return "the body is not JSON";
  }
  const b = body as Record<string, unknown>;
  if (Object.keys(b).sort().join(",") !== "code,details,message,status")
    return `keys ${Object.keys(b).join(",")}`;
  if (b.status !== res.statusCode) return `status ${String(b.status)} in the body`;
  if (typeof b.code !== "string" || !(b.code in ERRORS)) return `code ${String(b.code)}`;
  if (typeof b.message !== "string" || b.message === "") return "no message";
  if (
    !Array.isArray(b.details) ||
    !b.details.every(
      (d: unknown) =>
        typeof (d as { path?: unknown }).path === "string" &&
        typeof (d as { message?: unknown }).message === "string",
    )
  )
    return "details are not [{path, message}]";
  return undefined;
}

/**
 * A count of every row written (inserted, updated or deleted) in any table since the fuzzer began,
 * kept by a row trigger on every table of this test's database. A write rolled back is not counted,
 * so a refused request must leave it as it was.
 */
async function writeCounter(t: TestApp): Promise<() => Promise<number>> {
  const db = t.database.db;
  await db.query("CREATE TABLE fuzz_writes (n bigint NOT NULL)");
  await db.query("INSERT INTO fuzz_writes VALUES (0)");
  await db.query(
    `CREATE FUNCTION fuzz_count_write() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN UPDATE fuzz_writes SET n = n + 1; RETURN NULL; END $$`,
  );
  const { rows } = await db.query<{ name: string }>(
    `SELECT tablename AS name FROM pg_tables
      WHERE schemaname = current_schema() AND tablename <> 'fuzz_writes' ORDER BY 1`,
  );
  assert.ok(rows.some((r) => r.name === "change_events") && rows.length > 10);
  for (const { name } of rows)
    await db.query(
      `CREATE TRIGGER fuzz_count AFTER INSERT OR UPDATE OR DELETE ON "${name}"
       FOR EACH ROW EXECUTE FUNCTION fuzz_count_write()`,
    );
  return async () =>
    Number((await db.query<{ n: string }>("SELECT n::text AS n FROM fuzz_writes")).rows[0]!.n);
}

function describeRequest(r: FuzzRequest): string {
  const payload = r.payload === undefined ? "" : ` ${JSON.stringify(r.payload.slice(0, 160))}`;
  return `${r.method} ${r.url.slice(0, 160)} [${r.headers["content-type"] ?? "-"}]${payload}`;
}

for (const { backend, skip } of await testBackends()) {
  describe(`API fuzzer on ${backend}`, { skip }, () => {
    let t: TestApp;
    let fixtures: Fixtures;
    before(async () => {
      t = await createTestApp(backend);
      const created = async (method: string, url: string, body: unknown) => {
        const res = await t.request(method, url, body);
        assert.ok(res.statusCode < 300, `${method} ${url}: ${res.statusCode} ${res.body}`);
        return res.json() as Record<string, unknown>;
      };
      const people = await created("POST", "/v5/entities/acme/profile-tables", {
        name: "People",
        attributes: [
          { name: "emailAddress", type: "EMAIL_ADDRESS", unique: true, mandatory: true },
          { name: "age", type: "CUSTOM", valueType: "INTEGER", unique: true },
        ],
        subscriptions: [{ name: "news" }],
        segmentations: [
          { name: "Active", type: "SIMPLE" },
          { name: "Tier", type: "EXCLUSIVE", segments: ["Gold", "Silver"] },
        ],
      });
      const notes = await created("POST", "/v5/entities/acme/custom-tables", {
        name: "Notes",
        type: "REPOSITORY",
        primaryKeyAttribute: "noteId",
        attributes: [
          { name: "noteId", valueType: "STRING", mandatory: true, unique: true },
          { name: "text", valueType: "STRING" },
        ],
      });
      await created("POST", "/v4/entity/acme/table/People/profile", {
        attributes: [
          { name: "emailAddress", value: "a@b.cd" },
          { name: "age", value: 3 },
        ],
      });
      await created("POST", "/v4/entity/acme/customTable/Notes/record", {
        properties: [{ name: "noteId", value: "n1" }],
      });
      const subscription = await created("POST", "/v4/entity/acme/webhookSubscription", {
        on: "PROFILE_TABLE",
        onElementId: String(people.id),
        eventType: "CREATE",
        targetUrl: "http://127.0.0.1:9/hook",
      });
      fixtures = {
        tableId: String(people.id),
        customTableId: String(notes.id),
        subscriptionId: String(subscription.id),
      };
    });
    after(() => t?.close());

    test("every operation, seeded hostile input: no 5xx, SPEC §2 errors, nothing written when refused", async () => {
      const document = (await t.app.inject({ method: "GET", url: "/openapi.json" })).json() as {
        paths: Record<string, Record<string, Record<string, unknown>>>;
      };
      const operations = operationsOf(document);
      assert.ok(operations.length >= 60, `only ${operations.length} operations in /openapi.json`);
      const writes = await writeCounter(t);
      // The counter sees a write that keeps every row count, or the test would prove nothing.
      const unchanged = await writes();
      await t.database.db.query("UPDATE records SET version = version");
      assert.notEqual(await writes(), unchanged, "an UPDATE is counted");
      const rng = prng(SEED);
      const problems: string[] = [];
      const statuses = new Map<number, number>();
      let written = await writes();
      for (const op of operations)
        for (let i = 0; i < REQUESTS_PER_OPERATION; i++) {
          const request = buildRequest(op, rng, fixtures, t.token);
          const res = await t.app.inject({
            method: request.method as "GET",
            url: request.url,
            headers: request.headers,
            ...(request.payload === undefined ? {} : { payload: request.payload }),
          });
          statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
          const where = `${describeRequest(request)} → ${res.statusCode} ${res.body.slice(0, 200)}`;
          if (res.statusCode >= 500) problems.push(`5xx: ${where}`);
          if (res.statusCode >= 400) {
            const shape = errorShapeProblem(res, request.method);
            if (shape) problems.push(`not SPEC §2 (${shape}): ${where}`);
          }
          const now = await writes();
          if (res.statusCode >= 400 && now !== written)
            problems.push(`refused but wrote ${now - written} rows: ${where}`);
          written = now;
        }
      const summary = [...statuses].sort(([a], [b]) => a - b).map(([s, n]) => `${s}×${n}`);
      assert.deepEqual(problems, [], `statuses: ${summary.join(" ")}`);
      // The fuzzer must reach the handlers, not only the first refusal.
      const accepted = [...statuses].filter(([s]) => s < 300).reduce((n, [, c]) => n + c, 0);
      assert.ok(accepted >= 100, `only ${accepted} requests accepted: ${summary.join(" ")}`);
    });

    test("fixed hostile requests: odd URLs, a body past the limit, a wrong Content-Length, repeated query parameters, HEAD", async () => {
      const bearer = { authorization: `Bearer ${t.token}` };
      const json = { ...bearer, "content-type": "application/json" };
      const cases: {
        method: string;
        url: string;
        headers?: Record<string, string>;
        payload?: string;
        status: number;
        code?: string;
      }[] = [
        {
          method: "POST",
          url: "/v4/entity",
          headers: json,
          payload: `{"name":"${"x".repeat(1_100_000)}"}`,
          status: 413,
          code: "HERALD_BODY_TOO_LARGE",
        },
        {
          method: "POST",
          url: "/v4/entity",
          headers: { ...json, "content-length": "5" },
          payload: '{"name":"abc"}',
          status: 400,
          code: "HERALD_MALFORMED_JSON",
        },
        {
          method: "POST",
          url: "/v4/entity",
          headers: { ...json, "content-type": "text/plain" },
          payload: "name=x",
          status: 415,
          code: "HERALD_UNSUPPORTED_MEDIA_TYPE",
        },
        {
          method: "GET",
          url: "/v4/entity/acme/webhookSubscription?page=1&page=2",
          headers: bearer,
          status: 400,
          code: "HERALD_VALIDATION",
        },
        {
          method: "GET",
          url: "/v5/entities/acme/change-events?onElementId=a&onElementId=b",
          headers: bearer,
          status: 400,
          code: "HERALD_VALIDATION",
        },
        {
          method: "GET",
          url: "/v4/entity/%E0%A4%A",
          headers: bearer,
          status: 400,
          code: "HERALD_VALIDATION",
        },
        {
          method: "GET",
          url: `/v4/entity/acme/table/People/profile/${"k".repeat(20_000)}`,
          headers: bearer,
          status: 400,
          code: "HERALD_VALIDATION",
        },
        { method: "GET", url: "/v4/entity/acme/../../healthz", headers: bearer, status: 404 },
        {
          method: "GET",
          url: "//v4//entity",
          headers: bearer,
          status: 404,
          code: "HERALD_NOT_FOUND",
        },
        { method: "GET", url: "/v4/entity?%zz=%zz", headers: bearer, status: 200 },
        {
          method: "GET",
          url: "/docs/%zz",
          headers: bearer,
          status: 400,
          code: "HERALD_VALIDATION",
        },
        {
          method: "DELETE",
          url: "/v4/entity",
          headers: json,
          payload: "",
          status: 405,
          code: "HERALD_METHOD_NOT_ALLOWED",
        },
        { method: "HEAD", url: "/v4/entity/nope", headers: bearer, status: 404 },
        { method: "HEAD", url: "/v4/entity", headers: bearer, status: 200 },
      ];
      for (const c of cases) {
        const res = await t.app.inject({
          method: c.method as "GET",
          url: c.url,
          headers: c.headers ?? {},
          ...(c.payload === undefined ? {} : { payload: c.payload }),
        });
        const label = `${c.method} ${c.url.slice(0, 80)} → ${res.statusCode} ${res.body.slice(0, 200)}`;
        assert.equal(res.statusCode, c.status, label);
        if (res.statusCode >= 400) {
          assert.equal(errorShapeProblem(res, c.method), undefined, label);
          if (c.code) assert.equal((res.json() as { code: string }).code, c.code, label);
        }
      }
    });

    test("requests Node's HTTP parser refuses, and the router's own refusals, answer in SPEC §2's shape", async () => {
      await t.app.listen({ port: 0, host: "127.0.0.1" });
      const { port } = t.app.server.address() as AddressInfo;
      const raw = (text: string) =>
        new Promise<string>((resolve, reject) => {
          const socket = connect(port, "127.0.0.1");
          let answer = "";
          socket.on("data", (chunk) => (answer += chunk.toString("utf8")));
          socket.on("error", reject);
          socket.on("close", () => resolve(answer));
          socket.end(text);
        });
      const cases: [string, string, number, string][] = [
        ["a request line that is no HTTP", "GARBAGE\r\n\r\n", 400, "HERALD_VALIDATION"],
        [
          "a header line without a colon",
          "GET /healthz HTTP/1.1\r\nHost: x\r\nbroken\r\n\r\n",
          400,
          "HERALD_VALIDATION",
        ],
        [
          "headers past the limit",
          `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`,
          431,
          "HERALD_HEADERS_TOO_LARGE",
        ],
        [
          "a path that does not percent-decode",
          "GET /v4/entity/%E0%A4%A HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
          400,
          "HERALD_VALIDATION",
        ],
      ];
      for (const [name, text, status, code] of cases) {
        const answer = await raw(text);
        const [head = "", body = ""] = answer.split("\r\n\r\n");
        assert.match(head, new RegExp(`^HTTP/1.1 ${status} `), `${name}: ${answer.slice(0, 300)}`);
        assert.match(head, /content-type: application\/json/i, name);
        const parsed = JSON.parse(body) as Record<string, unknown>;
        assert.equal(parsed.status, status, name);
        assert.equal(parsed.code, code, name);
        assert.ok(Array.isArray(parsed.details), name);
      }
    });
  });
}
