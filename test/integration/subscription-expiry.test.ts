/**
 * [ext] Temporary subscriptions (`expiresAt`, migration 021): accepted on create, PUT and PATCH,
 * renewed by PATCH, cleared by null, refused when already past; housekeeping deletes an expired one
 * as a DELETE through the API would (its delivery state goes with it), logs it, and leaves the
 * others, including one renewed between its read and its delete.
 */
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { after, before, describe, test } from "node:test";
import type { Housekeeping } from "../../src/jobs/housekeeping.js";
import { startHousekeeping } from "../../src/jobs/housekeeping.js";
import { createLogger } from "../../src/logger.js";
import type { Database } from "../../src/storage/database.js";
import { deleteSubscription } from "../../src/storage/subscription-repository.js";
import type { TestApp } from "../helpers/test-app.js";
import { createTestApp } from "../helpers/test-app.js";
import { testBackends } from "../helpers/test-database.js";

const BASE = "/v4/entity/acme/webhookSubscription";
const MINUTE = 60_000;

type Json = Record<string, unknown> & { id: number; expiresAt: string | null };
interface ErrorBody {
  code: string;
  message: string;
  details: { path: string; message: string }[];
}

const inMinutes = (n: number) => new Date(Date.now() + n * MINUTE).toISOString();

for (const { backend, skip } of await testBackends()) {
  describe(`subscription expiry on ${backend}`, { skip }, () => {
    let t: TestApp;
    let db: Database;
    let housekeeping: Housekeeping;
    let woken = 0;
    const logLines: { level: number; msg: string; subscriptionId?: number }[] = [];

    const subscription = (extra: Record<string, unknown> = {}) => ({
      on: "PROFILE_TABLE",
      onElementId: "Customers",
      eventType: "CREATE",
      targetUrl: "https://hooks.example.com/herald",
      ...extra,
    });
    const create = async (extra: Record<string, unknown> = {}): Promise<Json> => {
      const response = await t.request("POST", BASE, subscription(extra));
      assert.equal(response.statusCode, 201, response.body);
      return response.json() as Json;
    };
    const read = async (id: number) => t.request("GET", `${BASE}/${id}`);
    const count = async () =>
      (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM webhook_subscriptions"))
        .rows[0]!.n;

    before(async () => {
      t = await createTestApp(backend);
      db = t.database.db;
      const table = await t.request("POST", "/v5/entities/acme/profile-tables", {
        name: "Customers",
        attributes: [{ name: "emailAddress", type: "EMAIL_ADDRESS", unique: true }],
      });
      assert.equal(table.statusCode, 201, table.body);
      const logs = new Writable({
        write(chunk: Buffer, _encoding, done) {
          for (const line of chunk.toString("utf8").split("\n"))
            if (line.trim()) logLines.push(JSON.parse(line) as (typeof logLines)[number]);
          done();
        },
      });
      housekeeping = await startHousekeeping({
        db,
        logger: createLogger("info", logs),
        config: { retentionDays: 7 },
        intervalMs: 3_600_000,
        firstRunDelayMs: 3_600_000,
        subscriptionsChanged: () => woken++,
      });
    });
    after(async () => {
      await housekeeping?.stop();
      await t?.close();
    });

    test("create with expiresAt: stored, answered, listed; without it, null", async () => {
      const at = inMinutes(2);
      const created = await create({ expiresAt: at });
      assert.equal(created.expiresAt, at);
      const got = (await read(created.id)).json() as Json;
      assert.equal(got.expiresAt, at);
      const list = (await t.request("GET", BASE)).json() as { webhookSubscriptions: Json[] };
      assert.equal(list.webhookSubscriptions.find((s) => s.id === created.id)?.expiresAt, at);

      // Another zone and no fraction: the same instant, answered in UTC.
      const zoned = await create({ expiresAt: "2099-06-01T12:00:00+02:00" });
      assert.equal(zoned.expiresAt, "2099-06-01T10:00:00.000Z");

      const plain = await create();
      assert.equal(plain.expiresAt, null);
    });

    test("PATCH renews expiresAt and keeps everything else, secret included", async () => {
      const created = await create({ expiresAt: inMinutes(2), headers: { "X-Team": "crm" } });
      const secretBefore = (await t.request("GET", `${BASE}/${created.id}/secret`)).json();
      const later = inMinutes(10);
      const patched = await t.request("PATCH", `${BASE}/${created.id}`, { expiresAt: later });
      assert.equal(patched.statusCode, 200, patched.body);
      const body = patched.json() as Json;
      assert.equal(body.expiresAt, later);
      const { expiresAt: _a, updatedAt: _b, ...rest } = body;
      const { expiresAt: _c, updatedAt: _d, secret: _e, ...restBefore } = created;
      assert.deepEqual(rest, restBefore);
      assert.deepEqual(
        (await t.request("GET", `${BASE}/${created.id}/secret`)).json(),
        secretBefore,
        "a renewal does not rotate the secret",
      );
      assert.equal(((await read(created.id)).json() as Json).expiresAt, later);
    });

    test("null clears expiresAt, on PATCH and on PUT (a PUT without it too)", async () => {
      const patchedOne = await create({ expiresAt: inMinutes(2) });
      const cleared = await t.request("PATCH", `${BASE}/${patchedOne.id}`, { expiresAt: null });
      assert.equal(cleared.statusCode, 200, cleared.body);
      assert.equal((cleared.json() as Json).expiresAt, null);
      assert.equal(((await read(patchedOne.id)).json() as Json).expiresAt, null);

      const putOne = await create({ expiresAt: inMinutes(2) });
      const put = await t.request("PUT", `${BASE}/${putOne.id}`, subscription());
      assert.equal(put.statusCode, 200, put.body);
      assert.equal((put.json() as Json).expiresAt, null, "PUT replaces: left out is never");

      const again = await t.request("PUT", `${BASE}/${putOne.id}`, {
        ...subscription(),
        expiresAt: inMinutes(3),
      });
      assert.equal(again.statusCode, 200, again.body);
      const nulled = await t.request("PUT", `${BASE}/${putOne.id}`, {
        ...subscription(),
        expiresAt: null,
      });
      assert.equal((nulled.json() as Json).expiresAt, null);
    });

    test("a past or malformed expiresAt is 400 naming the field, and nothing changes", async () => {
      const before = await count();
      for (const bad of [new Date(Date.now() - MINUTE).toISOString(), "2000-01-01T00:00:00Z"]) {
        const response = await t.request("POST", BASE, subscription({ expiresAt: bad }));
        assert.equal(response.statusCode, 400, response.body);
        const error = response.json() as ErrorBody;
        assert.equal(error.code, "HERALD_VALIDATION");
        assert.equal(error.details[0]?.path, "expiresAt");
        assert.match(error.details[0]!.message, /must be in the future/);
        assert.match(error.message, /expiresAt must be in the future/);
      }
      for (const bad of ["tomorrow", "2099-02-30T00:00:00Z", "2099-01-01T25:00:00Z", 1234]) {
        const response = await t.request("POST", BASE, subscription({ expiresAt: bad }));
        assert.equal(response.statusCode, 400, `${String(bad)}: ${response.body}`);
        const error = response.json() as ErrorBody;
        assert.ok(
          error.details.some((d) => d.path.includes("expiresAt")),
          `${String(bad)}: ${response.body}`,
        );
      }
      assert.equal(await count(), before, "nothing was stored");

      const created = await create({ expiresAt: inMinutes(2) });
      const past = await t.request("PATCH", `${BASE}/${created.id}`, {
        expiresAt: "2001-01-01T00:00:00Z",
      });
      assert.equal(past.statusCode, 400, past.body);
      assert.equal((past.json() as ErrorBody).details[0]?.path, "expiresAt");
      assert.equal(((await read(created.id)).json() as Json).expiresAt, created.expiresAt);

      const unknown = await t.request("PATCH", `${BASE}/${created.id}`, { expiresIn: 60 });
      assert.equal(unknown.statusCode, 400, unknown.body);
      const missing = await t.request("PATCH", `${BASE}/999999`, { expiresAt: inMinutes(1) });
      assert.equal(missing.statusCode, 404, missing.body);
      assert.equal((missing.json() as ErrorBody).code, "HERALD_SUBSCRIPTION_NOT_FOUND");
    });

    test("an expiresAt that passed since is kept by a GET → PUT round trip", async () => {
      const created = await create({ expiresAt: inMinutes(2) });
      await db.query(
        "UPDATE webhook_subscriptions SET expires_at = now() - interval '5 seconds' WHERE id = $1",
        [created.id],
      );
      const stored = (await read(created.id)).json() as Json;
      const put = await t.request("PUT", `${BASE}/${created.id}`, {
        ...stored,
        isActive: false,
      });
      assert.equal(put.statusCode, 200, put.body);
      assert.equal((put.json() as Json).expiresAt, stored.expiresAt);
      const patch = await t.request("PATCH", `${BASE}/${created.id}`, { isActive: true });
      assert.equal(patch.statusCode, 200, patch.body);
      // Gone, so that the housekeeping test below counts only its own.
      assert.equal((await t.request("DELETE", `${BASE}/${created.id}`)).statusCode, 204);
    });

    test("housekeeping deletes an expired subscription as DELETE does, logs it, leaves the others", async () => {
      const expired = await create({ expiresAt: inMinutes(1) });
      const renewed = await create({ expiresAt: inMinutes(1) });
      const future = await create({ expiresAt: inMinutes(30) });
      const forever = await create();
      // The API refuses a past expiresAt, so the time is moved back in the database.
      await db.query(
        "UPDATE webhook_subscriptions SET expires_at = now() - interval '1 second' WHERE id = ANY($1)",
        [[expired.id, renewed.id]],
      );
      // Delivery state of the expired one, which must go with it as on a DELETE.
      await db.query(
        `INSERT INTO delivery_attempts (subscription_id, push_id, attempt, event_ids, first_position,
           last_position, attempted_at, duration_ms, outcome, worker_id)
         VALUES ($1, gen_random_uuid(), 1, ARRAY[1], 1, 1, now(), 5, 'DELIVERED', 'w')`,
        [expired.id],
      );
      await db.query(
        `INSERT INTO subscription_replays (subscription_id, from_position, to_position, cursor)
         VALUES ($1, 1, 1, 0)`,
        [expired.id],
      );
      // A renewal that lands between housekeeping's read and its delete keeps the subscription.
      const acme = await entityId(db);
      assert.equal(
        await deleteSubscription(db, acme, renewed.id, {
          expiredBy: new Date(Date.now() - MINUTE),
        }),
        false,
      );
      const renewal = await t.request("PATCH", `${BASE}/${renewed.id}`, {
        expiresAt: inMinutes(5),
      });
      assert.equal(renewal.statusCode, 200, renewal.body);

      const wokenBefore = woken;
      const report = await housekeeping.runOnce();
      assert.equal(report?.expiredSubscriptions, 1);
      assert.equal(woken, wokenBefore + 1, "the delivery worker is woken");

      assert.equal((await read(expired.id)).statusCode, 404);
      for (const kept of [renewed, future, forever])
        assert.equal((await read(kept.id)).statusCode, 200, `subscription ${kept.id} stays`);
      const leftovers = await db.query<{ n: number }>(
        `SELECT (SELECT count(*) FROM delivery_attempts WHERE subscription_id = $1)
              + (SELECT count(*) FROM subscription_replays WHERE subscription_id = $1) AS n`,
        [expired.id],
      );
      assert.equal(Number(leftovers.rows[0]!.n), 0, "its delivery state went with it");

      const lines = logLines.filter((l) => l.msg === "webhook subscription expired; deleted");
      assert.deepEqual(
        lines.map((l) => [l.level, l.subscriptionId]),
        [[30, expired.id]],
      );

      const quiet = await housekeeping.runOnce();
      assert.equal(quiet?.expiredSubscriptions, 0, "nothing more to delete");
    });
  });
}

async function entityId(db: Database): Promise<number> {
  const { rows } = await db.query<{ id: number }>("SELECT id FROM entities WHERE name = 'acme'");
  return rows[0]!.id;
}
