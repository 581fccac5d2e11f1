/**
 * Profiles v5 (SPEC §3, "Profiles (v5)"): upsert by key, the paged list, read and delete by key,
 * under the bare path and Actito's service prefix; the same events as the v4 calls; bad input is a
 * 4xx with a stable code that writes nothing.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { TestApp } from "../helpers/test-app.js";
import { createTestApp } from "../helpers/test-app.js";
import { testBackends } from "../helpers/test-database.js";

const TABLE = {
  name: "Members",
  attributes: [
    { name: "emailAddress", type: "EMAIL_ADDRESS", unique: true, mandatory: true },
    { name: "firstName", type: "FIRSTNAME" },
    { name: "customerId", type: "CUSTOM", valueType: "STRING", unique: true },
    { name: "points", type: "CUSTOM", valueType: "INTEGER" },
    { name: "ratio", type: "CUSTOM", valueType: "NUMBER" },
    { name: "vip", type: "CUSTOM", valueType: "BOOLEAN" },
    { name: "since", type: "CUSTOM", valueType: "DATE" },
  ],
  subscriptions: [{ name: "newsletter" }, { name: "offers" }],
  segmentations: [
    { name: "Active", type: "SIMPLE" },
    { name: "ClientType", type: "EXCLUSIVE", segments: ["Gold", "Silver"] },
  ],
};

interface EventRow {
  event_type: string;
  record_key: string;
  fields: string[];
  previous: Record<string, unknown>;
  extra: Record<string, unknown>;
  version: number;
}

for (const { backend, skip } of await testBackends()) {
  describe(`profiles v5 on ${backend}`, { skip }, () => {
    let t: TestApp;
    const url = "/v5/entities/acme/profile-tables/Members/profiles";
    const prefixed = `/profiles${url}`;
    const events = async (): Promise<EventRow[]> =>
      (await t.database.db.query<EventRow>("SELECT * FROM change_events ORDER BY id")).rows;
    const clearEvents = () => t.database.db.query("DELETE FROM change_events");
    const snapshot = async () =>
      (
        await t.database.db.query(
          "SELECT record_id, attributes, subscriptions, segments, version, data_collection FROM records ORDER BY record_id",
        )
      ).rows;

    /** A refused write: its status and code, and nothing written (no record change, no event). */
    const refused = async (body: unknown, status: number, code: string, path?: string) => {
      await clearEvents();
      const before = await snapshot();
      const res = await t.request("PUT", url, body);
      assert.equal(res.statusCode, status, res.body);
      assert.equal(res.json().code, code, res.body);
      if (path) assert.equal(res.json().details[0]?.path, path, res.body);
      assert.deepEqual(await snapshot(), before, "nothing changed");
      assert.equal((await events()).length, 0, "no event");
    };

    before(async () => {
      t = await createTestApp(backend);
      const created = await t.request("POST", "/v5/entities/acme/profile-tables", TABLE);
      assert.equal(created.statusCode, 201, created.body);
    });
    after(() => t?.close());

    test("PUT upserts by key: 201 created, then 200 updated; typed values read back; the v4 events", async () => {
      await clearEvents();
      const create = await t.request("PUT", prefixed, {
        key: { emailAddress: "Ann@Example.com" },
        attributes: {
          firstName: "Ann",
          points: "5",
          ratio: 1.5,
          vip: "false",
          since: "2024-02-29",
        },
        subscriptions: { newsletter: true, offers: false },
        segmentations: { ClientType: "Gold", Active: true },
      });
      assert.equal(create.statusCode, 201, create.body);
      const { profileId, created } = create.json();
      assert.equal(created, true);
      assert.equal(typeof profileId, "number");
      assert.deepEqual(
        (await events()).map((e) => e.event_type),
        ["CREATE", "UPDATED_SUBSCRIPTION", "UPDATED_SEGMENT", "UPDATED_SEGMENT"],
      );

      const read = await t.request("GET", `${url}/emailAddress=ann@example.com`);
      assert.equal(read.statusCode, 200, read.body);
      const profile = read.json();
      assert.equal(profile.profileId, profileId);
      assert.deepEqual(profile.attributes, {
        emailAddress: "ann@example.com",
        firstName: "Ann",
        points: 5,
        ratio: 1.5,
        vip: false,
        since: "2024-02-29",
      });
      assert.deepEqual(profile.subscriptions, { newsletter: true, offers: false });
      assert.deepEqual(profile.segmentations, { Active: true, ClientType: "Gold" });
      assert.match(profile.creationMoment, /^\d{4}-\d{2}-\d{2}T.*Z$/);
      assert.equal(
        (await t.request("GET", `${prefixed}/${profileId}`)).json().profileId,
        profileId,
      );

      // The SDK's read-add-write: a number read is a number, so + 1 is 6, not "51".
      await clearEvents();
      const update = await t.request("PUT", url, {
        key: { emailAddress: "ann@example.com" },
        attributes: { points: profile.attributes.points + 1 },
        segmentations: { ClientType: "Silver" },
      });
      assert.equal(update.statusCode, 200, update.body);
      assert.deepEqual(update.json(), { profileId, created: false });
      const rows = await events();
      assert.deepEqual(
        rows.map((e) => [e.event_type, e.extra]),
        [
          ["UPDATE", {}],
          ["UPDATED_SEGMENT", { segmentation: "ClientType", segment: "Gold", belongs: false }],
          ["UPDATED_SEGMENT", { segmentation: "ClientType", segment: "Silver", belongs: true }],
        ],
      );
      assert.deepEqual(rows[0]!.fields, ["points"]);
      assert.deepEqual(rows[0]!.previous, { points: 5 });
      assert.equal((await t.request("GET", `${url}/${profileId}`)).json().attributes.points, 6);

      // The same write again changes nothing: 200, no event.
      await clearEvents();
      const again = await t.request("PUT", url, {
        key: { emailAddress: "ann@example.com" },
        attributes: { points: 6 },
      });
      assert.deepEqual(again.json(), { profileId, created: false });
      assert.equal((await events()).length, 0);
    });

    test("false (or null) takes the profile out of a segmentation, whatever segment it is in", async () => {
      await clearEvents();
      const res = await t.request("PUT", url, {
        key: { emailAddress: "ann@example.com" },
        segmentations: { ClientType: false, Active: null },
      });
      assert.equal(res.statusCode, 200, res.body);
      const left = (await events()).map((e) => e.extra);
      left.sort((a, b) => String(a.segmentation).localeCompare(String(b.segmentation)));
      assert.deepEqual(left, [
        { segmentation: "Active", segment: "Active", belongs: false },
        { segmentation: "ClientType", segment: "Silver", belongs: false },
      ]);
      const read = await t.request("GET", `${url}/emailAddress=ann@example.com`);
      assert.deepEqual(read.json().segmentations, { Active: false });
    });

    test("the key finds by that value only: another profile's value given in attributes is 409", async () => {
      const bob = await t.request("PUT", url, {
        key: { emailAddress: "bob@example.com" },
        attributes: { customerId: "C-BOB" },
      });
      assert.equal(bob.statusCode, 201, bob.body);
      // customerId C-NEW is nobody's: a create, whose email is Ann's: taken.
      await refused(
        { key: { customerId: "C-NEW" }, attributes: { emailAddress: "ann@example.com" } },
        409,
        "HERALD_UNIQUE_KEY_TAKEN",
      );
      // Found by customerId, the profile takes a new email.
      await clearEvents();
      const moved = await t.request("PUT", url, {
        key: { customerId: "C-BOB" },
        attributes: { emailAddress: "robert@example.com" },
      });
      assert.deepEqual(moved.json(), { profileId: bob.json().profileId, created: false });
      assert.deepEqual(
        (await events()).map((e) => [e.event_type, e.fields]),
        [["UPDATE", ["emailAddress"]]],
      );
      // {"profileId": n} updates that profile.
      const byId = await t.request("PUT", url, {
        key: { profileId: bob.json().profileId },
        attributes: { firstName: "Bob" },
      });
      assert.deepEqual(byId.json(), { profileId: bob.json().profileId, created: false });
    });

    test("bad writes are 4xx with a stable code and change nothing", async () => {
      // The key: not unique, two attributes, none, an unknown attribute, a bad value, no key at all.
      await refused(
        { key: { firstName: "Ann" }, attributes: { points: 1 } },
        400,
        "HERALD_INVALID_PROFILE_KEY",
        "body.key.firstName",
      );
      await refused(
        { key: { emailAddress: "ann@example.com", customerId: "C-1" } },
        400,
        "HERALD_INVALID_PROFILE_KEY",
        "body.key",
      );
      await refused({ key: {} }, 400, "HERALD_INVALID_PROFILE_KEY", "body.key");
      await refused({ key: { nope: "x" } }, 400, "HERALD_INVALID_PROFILE_KEY", "body.key.nope");
      await refused(
        { key: { emailAddress: "not-an-email" } },
        400,
        "HERALD_INVALID_VALUE",
        "body.key.emailAddress",
      );
      await refused({ attributes: { points: 1 } }, 400, "HERALD_VALIDATION");
      await refused([], 400, "HERALD_VALIDATION");
      await refused({ key: { profileId: 999999 } }, 404, "HERALD_PROFILE_NOT_FOUND");
      // Values: a wrong type (also on a create), an unknown attribute, a technical one.
      for (const email of ["ann@example.com", "new@example.com"])
        await refused(
          { key: { emailAddress: email }, attributes: { points: "51x" } },
          400,
          "HERALD_INVALID_VALUE",
          "body.attributes.points",
        );
      await refused(
        { key: { emailAddress: "ann@example.com" }, attributes: { vip: "maybe" } },
        400,
        "HERALD_INVALID_VALUE",
        "body.attributes.vip",
      );
      await refused(
        { key: { emailAddress: "ann@example.com" }, attributes: { shoeSize: 42 } },
        400,
        "HERALD_UNKNOWN_ATTRIBUTE",
        "body.attributes.shoeSize",
      );
      await refused(
        { key: { emailAddress: "ann@example.com" }, attributes: { creationMoment: "2024-01-01" } },
        400,
        "HERALD_TECHNICAL_ATTRIBUTE",
      );
      // Memberships: an unknown segment, a SIMPLE segmentation's other "segment", an EXCLUSIVE
      // segmentation with no segment, unknown names, a non-boolean subscription.
      await refused(
        { key: { emailAddress: "ann@example.com" }, segmentations: { ClientType: "Platinum" } },
        400,
        "HERALD_UNKNOWN_SEGMENT",
        "body.segmentations.ClientType",
      );
      await refused(
        { key: { emailAddress: "ann@example.com" }, segmentations: { Active: "Sleeping" } },
        400,
        "HERALD_UNKNOWN_SEGMENT",
        "body.segmentations.Active",
      );
      await refused(
        { key: { emailAddress: "ann@example.com" }, segmentations: { ClientType: true } },
        400,
        "HERALD_VALIDATION",
        "body.segmentations.ClientType",
      );
      await refused(
        { key: { emailAddress: "ann@example.com" }, segmentations: { Nope: true } },
        400,
        "HERALD_VALIDATION",
        "body.segmentations.Nope",
      );
      await refused(
        { key: { emailAddress: "ann@example.com" }, subscriptions: { nope: true } },
        400,
        "HERALD_VALIDATION",
        "body.subscriptions.nope",
      );
      await refused(
        { key: { emailAddress: "ann@example.com" }, subscriptions: { newsletter: "yes" } },
        400,
        "HERALD_VALIDATION",
      );
      // A create that lacks a mandatory value.
      await refused({ key: { customerId: "C-LONE" } }, 400, "HERALD_MISSING_MANDATORY");
    });

    test("the list: every profile in profileId order, a page at a time, with the total; search", async () => {
      for (let i = 0; i < 5; i++) {
        const res = await t.request("PUT", url, {
          key: { emailAddress: `page${i}@example.com` },
          attributes: { points: i % 2 },
        });
        assert.equal(res.statusCode, 201, res.body);
      }
      const all = await t.request("GET", `${url}?pageSize=1000`);
      assert.equal(all.statusCode, 200, all.body);
      const ids = all.json().profiles.map((p: { profileId: number }) => p.profileId);
      assert.equal(all.json().totalElements, ids.length);
      assert.ok(ids.length >= 7);
      assert.deepEqual(
        ids,
        [...ids].sort((a: number, b: number) => a - b),
      );

      const pages: number[] = [];
      for (let page = 0; page * 3 < ids.length; page++) {
        const res = await t.request("GET", `${prefixed}?page=${page}&pageSize=3`);
        assert.equal(res.statusCode, 200, res.body);
        assert.equal(res.json().page, page);
        assert.equal(res.json().pageSize, 3);
        assert.equal(res.json().totalElements, ids.length);
        pages.push(...res.json().profiles.map((p: { profileId: number }) => p.profileId));
      }
      assert.deepEqual(pages, ids, "the pages together are the list, once each");
      const beyond = await t.request("GET", `${url}?page=50&pageSize=3`);
      assert.deepEqual(beyond.json().profiles, []);
      assert.equal(beyond.json().totalElements, ids.length);

      const ones = await t.request("GET", `${url}?search=points=1&pageSize=1`);
      assert.equal(ones.statusCode, 200, ones.body);
      assert.equal(ones.json().totalElements, 2);
      assert.equal(ones.json().profiles.length, 1);
      assert.equal(ones.json().profiles[0].attributes.points, 1);
      const byEmail = await t.request("GET", `${url}?search=emailAddress=PAGE3@example.com`);
      assert.deepEqual(
        byEmail
          .json()
          .profiles.map((p: { attributes: { emailAddress: string } }) => p.attributes.emailAddress),
        ["page3@example.com"],
      );
      const byId = await t.request("GET", `${url}?search=profileId=${ids[0]}`);
      assert.equal(byId.json().totalElements, 1);

      for (const query of [
        "search=points=x",
        "search=nope=1",
        "search=points",
        "page=-1",
        "pageSize=0",
        "pageSize=1001",
      ]) {
        const res = await t.request("GET", `${url}?${query}`);
        assert.equal(res.statusCode, 400, `${query}: ${res.body}`);
        assert.match(res.json().code, /^HERALD_(INVALID_QUERY|VALIDATION)$/);
      }
    });

    test("GET and DELETE by key: 204 with a DELETE event, then 404", async () => {
      await clearEvents();
      const del = await t.request("DELETE", `${prefixed}/emailAddress=page4@example.com`);
      assert.equal(del.statusCode, 204, del.body);
      assert.deepEqual(
        (await events()).map((e) => e.event_type),
        ["DELETE"],
      );
      const gone = await t.request("GET", `${url}/emailAddress=page4@example.com`);
      assert.equal(gone.statusCode, 404);
      assert.equal(gone.json().code, "HERALD_PROFILE_NOT_FOUND");
      const again = await t.request("DELETE", `${url}/emailAddress=page4@example.com`);
      assert.equal(again.statusCode, 404);
      const badKey = await t.request("GET", `${url}/firstName=Ann`);
      assert.equal(badKey.statusCode, 400);
      assert.equal(badKey.json().code, "HERALD_INVALID_PROFILE_KEY");
      const noTable = await t.request("GET", "/v5/entities/acme/profile-tables/Nope/profiles");
      assert.equal(noTable.statusCode, 404);
      assert.equal(noTable.json().code, "HERALD_TABLE_NOT_FOUND");
    });
  });
}
