/**
 * What Actito's clients send to and expect from the v4 profile calls (SPEC §3): typed values in
 * reads, the segmentation call's shapes (bodiless, `;category=`, `?segment=`, `belongs: false`),
 * both keys of the segmentation list, dataCollectionInformation, and empty write bodies. Each
 * refused call changes nothing.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { TestApp } from "../helpers/test-app.js";
import { createTestApp } from "../helpers/test-app.js";
import { testBackends } from "../helpers/test-database.js";

const TABLE = {
  name: "Shapes",
  attributes: [
    { name: "emailAddress", type: "EMAIL_ADDRESS", unique: true, mandatory: true },
    { name: "firstName", type: "FIRSTNAME" },
    { name: "points", type: "CUSTOM", valueType: "INTEGER" },
    { name: "big", type: "CUSTOM", valueType: "LONG" },
    { name: "ratio", type: "CUSTOM", valueType: "NUMBER" },
    { name: "vip", type: "CUSTOM", valueType: "BOOLEAN" },
    { name: "birthDate", type: "BIRTHDATE" },
    { name: "seenAt", type: "CUSTOM", valueType: "TIMESTAMP" },
    { name: "tags", type: "CUSTOM", valueType: "INTEGER", multiValued: true },
  ],
  subscriptions: [{ name: "newsletter" }],
  segmentations: [
    { name: "Active", type: "SIMPLE" },
    { name: "ClientType", type: "EXCLUSIVE", segments: ["Gold", "Silver"] },
  ],
};

interface EventRow {
  event_type: string;
  extra: Record<string, unknown>;
}

for (const { backend, skip } of await testBackends()) {
  describe(`v4 profile shapes on ${backend}`, { skip }, () => {
    let t: TestApp;
    let id: number;
    const url = "/v4/entity/acme/table/Shapes/profile";
    const events = async (): Promise<EventRow[]> =>
      (await t.database.db.query<EventRow>("SELECT * FROM change_events ORDER BY id")).rows;
    const clearEvents = () => t.database.db.query("DELETE FROM change_events");
    const record = async () =>
      (
        await t.database.db.query<{
          attributes: Record<string, unknown>;
          version: number;
          updated_at: Date;
          data_collection: unknown;
        }>(
          "SELECT attributes, subscriptions, segments, version, updated_at, data_collection FROM records WHERE record_id = $1",
          [id],
        )
      ).rows[0]!;
    const value = (body: { attributes: { name: string; value: unknown }[] }, name: string) =>
      body.attributes.find((a) => a.name === name)?.value;

    /** A call that must change nothing: status, code, record and events as they were. */
    const refused = async (
      method: string,
      path: string,
      body: unknown,
      status: number,
      code: string,
    ) => {
      await clearEvents();
      const before = await record();
      const res = await t.request(method, path, body);
      assert.equal(res.statusCode, status, `${method} ${path}: ${res.body}`);
      assert.equal(res.json().code, code, res.body);
      assert.deepEqual(await record(), before, "the profile is unchanged");
      assert.equal((await events()).length, 0, "no event");
      return res.json();
    };

    before(async () => {
      t = await createTestApp(backend);
      const created = await t.request("POST", "/v5/entities/acme/profile-tables", TABLE);
      assert.equal(created.statusCode, 201, created.body);
      const profile = await t.request("POST", url, {
        attributes: [
          { name: "emailAddress", value: "typed@example.com" },
          { name: "points", value: "5" },
          { name: "big", value: "9007199254740991" },
          { name: "ratio", value: "2e3" },
          { name: "vip", value: "FALSE" },
          { name: "birthDate", value: "29/02/2000" },
          { name: "seenAt", value: "2024-05-01 10:00:00+02:00" },
          { name: "tags", value: ["1", 2] },
        ],
        dataCollectionInformation: { date: "2024-05-01", source: "shop", way: "paper form" },
      });
      assert.equal(profile.statusCode, 200, profile.body);
      id = profile.json().profileId;
    });
    after(() => t?.close());

    test("reads answer typed values: numbers, booleans, lists of them; dates as text; no value left out", async () => {
      const read = await t.request("GET", `${url}/${id}`);
      assert.equal(read.statusCode, 200, read.body);
      const body = read.json();
      assert.deepEqual(
        body.attributes.slice(0, 3).map((a: { name: string }) => a.name),
        ["profileId", "creationMoment", "updateMoment"],
      );
      assert.equal(value(body, "profileId"), id);
      assert.equal(value(body, "points"), 5);
      assert.equal(value(body, "big"), 9007199254740991);
      assert.equal(value(body, "ratio"), 2000);
      assert.equal(value(body, "vip"), false);
      assert.equal(value(body, "birthDate"), "2000-02-29");
      assert.equal(value(body, "seenAt"), "2024-05-01T08:00:00.000Z");
      assert.deepEqual(value(body, "tags"), [1, 2]);
      assert.ok(!body.attributes.some((a: { name: string }) => a.name === "firstName"));
      const search = await t.request("GET", `${url}?search=vip=false`);
      assert.equal(search.statusCode, 200, search.body);
      assert.deepEqual(search.json().profiles, [body]);
      const byTag = await t.request("GET", `${url}?search=tags=2`);
      assert.equal(byTag.json().profiles.length, 1);
    });

    test("a value that does not parse as its type is 400 HERALD_INVALID_VALUE and changes nothing", async () => {
      for (const [name, bad] of [
        ["points", "51x"],
        ["points", 1.5],
        ["ratio", "1,5"],
        ["vip", "yes"],
        ["birthDate", "2001-02-29"],
        ["tags", ["1", "x"]],
      ] as const) {
        const error = await refused(
          "PUT",
          `${url}/${id}`,
          { attributes: [{ name, value: bad }] },
          400,
          "HERALD_INVALID_VALUE",
        );
        assert.equal(error.details[0].path, "attributes[0].value");
      }
      await refused(
        "POST",
        `${url}?allowUpdate=true`,
        {
          attributes: [
            { name: "emailAddress", value: "typed@example.com" },
            { name: "points", value: "51x" },
          ],
        },
        400,
        "HERALD_INVALID_VALUE",
      );
    });

    test("dataCollectionInformation is kept and returned; a change of it alone is no UPDATE", async () => {
      const read = async () => (await t.request("GET", `${url}/${id}`)).json();
      assert.deepEqual((await read()).dataCollectionInformation, {
        date: "2024-05-01",
        source: "shop",
        way: "paper form",
      });
      await clearEvents();
      const before = await record();
      const alone = await t.request("PUT", `${url}/${id}`, {
        dataCollectionInformation: { source: "web" },
      });
      assert.equal(alone.statusCode, 200, alone.body);
      const after = await record();
      assert.deepEqual(after.data_collection, { source: "web" });
      assert.equal(after.version, before.version, "no version bump");
      assert.equal(after.updated_at.getTime(), before.updated_at.getTime(), "no new updateMoment");
      assert.equal((await events()).length, 0, "no event");
      assert.deepEqual((await read()).dataCollectionInformation, { source: "web" });

      // With an attribute change: one UPDATE of the attribute, the information stored too.
      const both = await t.request("POST", `${url}?allowUpdate=true`, {
        attributes: [
          { name: "emailAddress", value: "typed@example.com" },
          { name: "firstName", value: "Tia" },
        ],
        dataCollectionInformation: { source: "app", way: "signup" },
      });
      assert.equal(both.statusCode, 200, both.body);
      assert.deepEqual(
        (await events()).map((e) => e.event_type),
        ["UPDATE"],
      );
      assert.deepEqual((await read()).dataCollectionInformation, { source: "app", way: "signup" });
      await refused(
        "PUT",
        `${url}/${id}`,
        { dataCollectionInformation: { source: 42 } },
        400,
        "HERALD_VALIDATION",
      );
    });

    test("segmentation calls: bodiless PUT for SIMPLE, ;category= and ?segment=, belongs: false, both list keys", async () => {
      const seg = `${url}/${id}/segmentation`;
      await clearEvents();
      // A SIMPLE segmentation: no body at all, an empty JSON body, [] and {} are one join.
      for (const body of [undefined, "", "[]", {}, { name: "Active" }]) {
        const res = await t.request("PUT", `${seg}/Active`, body);
        assert.equal(res.statusCode, 200, `${JSON.stringify(body)}: ${res.body}`);
        assert.deepEqual(res.json(), { profileId: id });
      }
      const joined = await t.request("PUT", `${seg}/Active;category=Active`, "[]");
      assert.equal(joined.statusCode, 200, joined.body);
      assert.deepEqual(
        (await events()).map((e) => e.extra),
        [{ segmentation: "Active", segment: "Active", belongs: true }],
      );
      // EXCLUSIVE: the segment as matrix parameter, then as query parameter.
      await clearEvents();
      const gold = await t.request("PUT", `${seg}/ClientType;category=Gold`, "[]");
      assert.equal(gold.statusCode, 200, gold.body);
      const silver = await t.request("PUT", `${seg}/ClientType?segment=Silver`);
      assert.equal(silver.statusCode, 200, silver.body);
      assert.deepEqual(
        (await events()).map((e) => e.extra),
        [
          { segmentation: "ClientType", segment: "Gold", belongs: true },
          { segmentation: "ClientType", segment: "Gold", belongs: false },
          { segmentation: "ClientType", segment: "Silver", belongs: true },
        ],
      );
      const list = (await t.request("GET", seg)).json();
      const expected = [
        { belongs: true, segmentation: { category: "Active", name: "Active" } },
        { belongs: true, segmentation: { category: "ClientType", name: "Silver" } },
      ];
      assert.deepEqual(list, { segmentations: expected, segmentation: expected });

      // belongs: false takes it out (naming the segment it is in, or none).
      await clearEvents();
      const out = await t.request("PUT", `${seg}/ClientType`, { belongs: false });
      assert.equal(out.statusCode, 200, out.body);
      const outSimple = await t.request("PUT", `${seg}/Active;category=Active`, {
        belongs: false,
      });
      assert.equal(outSimple.statusCode, 200, outSimple.body);
      // Leaving a segment it is not in changes nothing.
      const notIn = await t.request("DELETE", `${seg}/ClientType;category=Gold`);
      assert.equal(notIn.statusCode, 204, notIn.body);
      assert.deepEqual(
        (await events()).map((e) => e.extra),
        [
          { segmentation: "ClientType", segment: "Silver", belongs: false },
          { segmentation: "Active", segment: "Active", belongs: false },
        ],
      );
      assert.deepEqual((await t.request("GET", seg)).json(), {
        segmentations: [],
        segmentation: [],
      });
    });

    test("segmentation calls refused: unknown segment, another name for a SIMPLE one, no segment for EXCLUSIVE, two segments, unknown matrix parameter", async () => {
      const seg = `${url}/${id}/segmentation`;
      const unknown = await refused(
        "PUT",
        `${seg}/ClientType;category=Platinum`,
        undefined,
        400,
        "HERALD_UNKNOWN_SEGMENT",
      );
      assert.equal(unknown.details[0].path, "params.segmentationName");
      await refused(
        "PUT",
        `${seg}/ClientType?segment=Platinum`,
        "[]",
        400,
        "HERALD_UNKNOWN_SEGMENT",
      );
      await refused(
        "PUT",
        `${seg}/ClientType`,
        { name: "Platinum" },
        400,
        "HERALD_UNKNOWN_SEGMENT",
      );
      await refused(
        "DELETE",
        `${seg}/ClientType?segment=Platinum`,
        undefined,
        400,
        "HERALD_UNKNOWN_SEGMENT",
      );
      await refused("PUT", `${seg}/Active;category=Sleeping`, "[]", 400, "HERALD_UNKNOWN_SEGMENT");
      const none = await refused("PUT", `${seg}/ClientType`, "[]", 400, "HERALD_VALIDATION");
      assert.equal(none.details[0].path, "body.name");
      await refused(
        "PUT",
        `${seg}/ClientType;category=Gold?segment=Silver`,
        "[]",
        400,
        "HERALD_VALIDATION",
      );
      await refused("PUT", `${seg}/ClientType;segment=Gold`, "[]", 400, "HERALD_VALIDATION");
      await refused("PUT", `${seg}/Nope`, "[]", 404, "HERALD_SEGMENTATION_NOT_FOUND");
      await refused("PUT", `${seg}/Active`, { belongs: "no" }, 400, "HERALD_VALIDATION");
    });

    test("empty write bodies are empty writes: 200 and no event, never 400", async () => {
      for (const body of [undefined, "", "[]", {}, "null"]) {
        await clearEvents();
        const before = await record();
        const put = await t.request("PUT", `${url}/${id}`, body);
        assert.equal(put.statusCode, 200, `PUT ${JSON.stringify(body)}: ${put.body}`);
        assert.deepEqual(put.json(), { profileId: id });
        assert.deepEqual(await record(), before);
        assert.equal((await events()).length, 0);
      }
      // The subscription calls take no body: one event for the change, none for the repeat.
      await clearEvents();
      for (const body of ["", "[]", {}]) {
        const sub = await t.request("POST", `${url}/${id}/subscription/newsletter`, body);
        assert.equal(sub.statusCode, 200, `POST ${JSON.stringify(body)}: ${sub.body}`);
      }
      const unsub = await t.request("DELETE", `${url}/${id}/subscription/newsletter`, "[]");
      assert.equal(unsub.statusCode, 204, unsub.body);
      assert.deepEqual(
        (await events()).map((e) => e.extra),
        [
          { subscriptionName: "newsletter", subscribe: true },
          { subscriptionName: "newsletter", subscribe: false },
        ],
      );
      // Where something is required it is still asked for, not "body must be object".
      await clearEvents();
      const create = await t.request("POST", url, "[]");
      assert.equal(create.statusCode, 400, create.body);
      assert.equal(create.json().code, "HERALD_MISSING_MANDATORY");
      assert.equal((await events()).length, 0);
      const malformed = await t.request("PUT", `${url}/${id}`, "{");
      assert.equal(malformed.statusCode, 400);
      assert.equal(malformed.json().code, "HERALD_MALFORMED_JSON");
      const notEmpty = await t.request("PUT", `${url}/${id}`, "[1]");
      assert.equal(notEmpty.statusCode, 400);
      assert.equal(notEmpty.json().code, "HERALD_VALIDATION");
    });
  });
}
