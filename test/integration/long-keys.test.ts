/**
 * Issue #19 defect 4: every value that can be written as a key works in every path that takes a
 * key, up to the attribute's maximum (a unique value is at most MAX_UNIQUE_VALUE_BYTES UTF-8
 * bytes). Fastify's default router answered 414 for any path parameter over 100 characters, so a
 * record created with a long key could not be read, changed or even deleted.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { MAX_UNIQUE_VALUE_BYTES } from "../../src/domain/attribute-values.js";
import type { TestApp } from "../helpers/test-app.js";
import { createTestApp } from "../helpers/test-app.js";
import { testBackends } from "../helpers/test-database.js";

/**
 * A key of exactly `bytes` UTF-8 bytes, with characters a path must percent-encode (`/`, `%`, `?`,
 * `#`, a space) and multi-byte ones (é, €, an emoji outside the BMP).
 */
function longKey(bytes: number, prefix = ""): string {
  const unit = "a/%?# é€😀";
  let key = prefix;
  while (Buffer.byteLength(key + unit) <= bytes) key += unit;
  while (Buffer.byteLength(key) < bytes) key += "z";
  return key;
}

const PEOPLE = {
  name: "People",
  attributes: [
    { name: "emailAddress", type: "EMAIL_ADDRESS", unique: true },
    { name: "customerReference", type: "CUSTOM", valueType: "STRING", unique: true },
    { name: "firstName", type: "FIRSTNAME" },
  ],
  subscriptions: [{ name: "news" }],
  segmentations: [{ name: "Active", type: "SIMPLE" }],
};

const NOTES = {
  name: "Notes",
  type: "REPOSITORY",
  primaryKeyAttribute: "noteId",
  attributes: [
    { name: "noteId", valueType: "STRING", mandatory: true, unique: true },
    { name: "text", valueType: "STRING" },
  ],
};

for (const { backend, skip } of await testBackends()) {
  describe(`long keys in paths on ${backend}`, { skip }, () => {
    let t: TestApp;
    before(async () => {
      t = await createTestApp(backend);
      for (const [url, body] of [
        ["/v5/entities/acme/profile-tables", PEOPLE],
        ["/v5/entities/acme/custom-tables", NOTES],
      ] as const) {
        const created = await t.request("POST", url, body);
        assert.equal(created.statusCode, 201, created.body);
      }
    });
    after(() => t?.close());

    test("the longest key is exactly the unique-value limit", () => {
      assert.equal(Buffer.byteLength(longKey(MAX_UNIQUE_VALUE_BYTES)), MAX_UNIQUE_VALUE_BYTES);
    });

    test("v4 profiles: create, then GET, PUT, memberships and DELETE by a key of the maximum length", async () => {
      const value = longKey(MAX_UNIQUE_VALUE_BYTES, "v4-");
      const created = await t.request("POST", "/v4/entity/acme/table/People/profile", {
        attributes: [{ name: "customerReference", value }],
      });
      assert.equal(created.statusCode, 200, created.body);
      const url = `/v4/entity/acme/table/People/profile/customerReference=${encodeURIComponent(value)}`;
      assert.ok(url.length > 2500, "the key is percent-encoded into a long path");

      const read = await t.request("GET", url);
      assert.equal(read.statusCode, 200, read.body);
      const attributes = (read.json() as { attributes: { name: string; value: unknown }[] })
        .attributes;
      assert.equal(attributes.find((a) => a.name === "customerReference")?.value, value);

      const put = await t.request("PUT", url, {
        attributes: [{ name: "firstName", value: "Ann" }],
      });
      assert.equal(put.statusCode, 200, put.body);
      const subscribed = await t.request("POST", `${url}/subscription/news`);
      assert.ok(subscribed.statusCode < 300, subscribed.body);
      const subscriptions = await t.request("GET", `${url}/subscription`);
      assert.equal(subscriptions.statusCode, 200, subscriptions.body);
      const segmented = await t.request("PUT", `${url}/segmentation/Active`);
      assert.ok(segmented.statusCode < 300, segmented.body);

      const deleted = await t.request("DELETE", url);
      assert.equal(deleted.statusCode, 204, deleted.body);
      assert.equal((await t.request("GET", url)).statusCode, 404);
    });

    test("v5 profiles: upsert, then GET and DELETE by a key of the maximum length", async () => {
      const value = longKey(MAX_UNIQUE_VALUE_BYTES, "v5-");
      const upserted = await t.request("PUT", "/v5/entities/acme/profile-tables/People/profiles", {
        key: { customerReference: value },
        attributes: { firstName: "Bo" },
      });
      assert.equal(upserted.statusCode, 201, upserted.body);
      const url = `/v5/entities/acme/profile-tables/People/profiles/customerReference=${encodeURIComponent(value)}`;
      const read = await t.request("GET", url);
      assert.equal(read.statusCode, 200, read.body);
      assert.equal(
        (read.json() as { attributes: Record<string, unknown> }).attributes.customerReference,
        value,
      );
      // Also under a service prefix, as Actito's hrefs name it.
      assert.equal((await t.request("GET", `/profiles${url}`)).statusCode, 200);
      assert.equal((await t.request("DELETE", url)).statusCode, 204);
      assert.equal((await t.request("GET", url)).statusCode, 404);
    });

    test("custom-table records: create, then GET, PUT and DELETE by a business key of the maximum length", async () => {
      const key = longKey(MAX_UNIQUE_VALUE_BYTES, "rec-");
      const created = await t.request("POST", "/v4/entity/acme/customTable/Notes/record", {
        properties: [
          { name: "noteId", value: key },
          { name: "text", value: "first" },
        ],
      });
      assert.equal(created.statusCode, 200, created.body);
      assert.equal((created.json() as { businessKey: string }).businessKey, key);
      const url = `/v4/entity/acme/customTable/Notes/record/${encodeURIComponent(key)}`;

      const read = await t.request("GET", url);
      assert.equal(read.statusCode, 200, read.body);
      const put = await t.request("PUT", url, { properties: [{ name: "text", value: "second" }] });
      assert.equal(put.statusCode, 200, put.body);
      const again = (await t.request("GET", url)).json() as {
        properties: { name: string; value: unknown }[];
      };
      assert.equal(again.properties.find((p) => p.name === "text")?.value, "second");
      assert.equal((await t.request("DELETE", url)).statusCode, 204);
      assert.equal((await t.request("GET", url)).statusCode, 404);
    });

    test("a key one byte past the limit is refused at creation, and a path segment longer than any key answers 400 in the catalogue's shape", async () => {
      const tooLong = await t.request("POST", "/v4/entity/acme/customTable/Notes/record", {
        properties: [{ name: "noteId", value: longKey(MAX_UNIQUE_VALUE_BYTES + 1) }],
      });
      assert.equal(tooLong.statusCode, 400, tooLong.body);
      assert.equal((tooLong.json() as { code: string }).code, "HERALD_INVALID_VALUE");

      const huge = await t.request(
        "GET",
        `/v4/entity/acme/customTable/Notes/record/${"x".repeat(10_000)}`,
      );
      assert.equal(huge.statusCode, 400, huge.body);
      const body = huge.json() as { status: number; code: string; details: { path: string }[] };
      assert.equal(body.status, 400);
      assert.equal(body.code, "HERALD_VALIDATION");
      assert.equal(body.details[0]?.path, "url");
    });
  });
}
