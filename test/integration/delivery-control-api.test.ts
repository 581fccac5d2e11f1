/**
 * The delivery control API (SPEC §4 [ext]) on both backends: attempts and the daily error log (read
 * from rows inserted directly), secret rotation (checked with the standardwebhooks package), test
 * pushes to a real loopback receiver, and replay requests with the engine-side claim/advance/complete.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { Webhook } from "standardwebhooks";
import type { DataTable } from "../../src/domain/data-table.js";
import { webhookSignatureHeaders } from "../../src/domain/webhook-signature.js";
import type { Database } from "../../src/storage/database.js";
import { insertTable } from "../../src/storage/data-table-repository.js";
import {
  advanceReplay,
  claimPendingReplay,
  completeReplay,
  MAX_OPEN_REPLAYS,
} from "../../src/storage/replay-repository.js";
import { loadSubscription } from "../../src/storage/subscription-repository.js";
import type { TestApp } from "../helpers/test-app.js";
import { createTestApp } from "../helpers/test-app.js";
import { testBackends } from "../helpers/test-database.js";
import type { WebhookReceiver } from "../helpers/webhook-receiver.js";
import { startWebhookReceiver } from "../helpers/webhook-receiver.js";

const BASE = "/v4/entity/acme/webhookSubscription";

type Json = Record<string, unknown>;

interface AttemptRow {
  subscriptionId: number;
  pushId?: string;
  attempt?: number;
  eventIds?: number[];
  positions?: [number, number];
  at: string;
  outcome: "DELIVERED" | "RETRY" | "FAILED" | "DISABLED";
  statusCode?: number | null;
  errorClass?: string | null;
  excerpt?: string | null;
}

async function insertAttempt(db: Database, row: AttemptRow): Promise<string> {
  const pushId = row.pushId ?? randomUUID();
  const [first, last] = row.positions ?? [1, 1];
  await db.query(
    `INSERT INTO delivery_attempts (subscription_id, push_id, attempt, event_ids, first_position,
       last_position, attempted_at, duration_ms, outcome, status_code, error_class, error_message,
       response_excerpt, next_attempt_at, worker_id)
     VALUES ($1, $2, $3, $4, $5, $6, $7, 12, $8, $9, $10, NULL, $11,
             CASE WHEN $8 = 'RETRY' THEN $7::timestamptz + interval '5 seconds' END, 'test-worker')`,
    [
      row.subscriptionId,
      pushId,
      row.attempt ?? 1,
      row.eventIds ?? [first],
      first,
      last,
      row.at,
      row.outcome,
      row.statusCode ?? null,
      row.errorClass ?? null,
      row.excerpt ?? null,
    ],
  );
  return pushId;
}

async function entityId(db: Database): Promise<number> {
  const { rows } = await db.query<{ id: number }>("SELECT id FROM entities WHERE name = 'acme'");
  return rows[0]!.id;
}

/** Stamped events at positions `from..to` of the entity, one minute apart starting at `start`. */
async function insertLog(
  db: Database,
  entity: number,
  tableId: string,
  from: number,
  to: number,
  start: Date,
): Promise<void> {
  await db.query(
    `INSERT INTO change_events (entity_id, source, source_id, event_type, record_key, position, occurred_at, sequenced_at)
     SELECT $1, 'PROFILE_TABLE', $2, 'CREATE', p::text, p, $5::timestamptz + (p - $3) * interval '1 minute', now()
       FROM generate_series($3::bigint, $4::bigint) AS p`,
    [entity, tableId, from, to, start],
  );
  await db.query("UPDATE log_head SET position = GREATEST(position, $1)", [to]);
}

for (const { backend, skip } of await testBackends()) {
  describe(`delivery control API (${backend})`, { skip }, () => {
    let t: TestApp;
    let receiver: WebhookReceiver;
    let table: DataTable;
    let entity: number;
    let subscriptionId: number;
    let otherId: number;

    const createSubscription = async (body: Json = {}): Promise<number> => {
      const response = await t.request("POST", BASE, {
        on: "PROFILE_TABLE",
        onElementId: table.id,
        eventType: "UPDATE",
        targetUrl: receiver.url,
        onFields: ["city"],
        ...body,
      });
      assert.equal(response.statusCode, 201, response.body);
      return (response.json() as { id: number }).id;
    };

    before(async () => {
      t = await createTestApp(backend);
      receiver = await startWebhookReceiver();
      entity = await entityId(t.database.db);
      table = await insertTable(t.database.db, {
        entityId: entity,
        kind: "PROFILE_TABLE",
        name: "contacts",
        attributes: [
          {
            name: "emailAddress",
            type: "EMAIL_ADDRESS",
            valueType: "STRING",
            unique: true,
            mandatory: false,
            multiValued: false,
          },
          {
            name: "city",
            valueType: "STRING",
            unique: false,
            mandatory: false,
            multiValued: false,
          },
          {
            name: "age",
            valueType: "INTEGER",
            unique: false,
            mandatory: false,
            multiValued: false,
          },
          { name: "tags", valueType: "STRING", unique: false, mandatory: false, multiValued: true },
        ],
        subscriptions: [],
        segmentations: [],
        eventsToTrigger: [],
      });
      subscriptionId = await createSubscription();
      otherId = await createSubscription({ eventType: "CREATE", onFields: [] });
    });
    after(async () => {
      await receiver?.close();
      await t?.close();
    });

    describe("GET …/attempts", () => {
      const pushes: Record<string, string> = {};
      before(async () => {
        const db = t.database.db;
        pushes.a = await insertAttempt(db, {
          subscriptionId,
          at: "2026-11-29T10:00:00Z",
          outcome: "RETRY",
          statusCode: 503,
          errorClass: "http_5xx",
          excerpt: "busy",
          eventIds: [41, 42],
          positions: [10, 11],
        });
        await insertAttempt(db, {
          subscriptionId,
          pushId: pushes.a,
          attempt: 2,
          at: "2026-11-29T10:00:05Z",
          outcome: "DELIVERED",
          statusCode: 200,
          eventIds: [41, 42],
          positions: [10, 11],
        });
        pushes.b = await insertAttempt(db, {
          subscriptionId,
          at: "2026-11-30T08:00:00Z",
          outcome: "RETRY",
          errorClass: "timeout",
        });
        pushes.c = await insertAttempt(db, {
          subscriptionId,
          at: "2026-11-30T09:00:00Z",
          outcome: "FAILED",
          statusCode: 400,
          errorClass: "http_4xx",
          excerpt: "bad",
        });
        await insertAttempt(db, {
          subscriptionId,
          at: "2026-11-30T10:00:00Z",
          outcome: "DELIVERED",
          statusCode: 204,
        });
        await insertAttempt(db, {
          subscriptionId: otherId,
          at: "2026-11-30T09:30:00Z",
          outcome: "FAILED",
          errorClass: "dns",
        });
      });

      test("lists a subscription's attempts newest first, in the documented shape", async () => {
        const response = await t.request("GET", `${BASE}/${subscriptionId}/attempts`);
        assert.equal(response.statusCode, 200, response.body);
        const body = response.json() as {
          attempts: Json[];
          totalElements: number;
          page: number;
          pageSize: number;
        };
        assert.equal(body.totalElements, 5);
        assert.equal(body.page, 0);
        assert.equal(body.pageSize, 100);
        assert.deepEqual(
          body.attempts.map((a) => a.attemptedAt),
          [
            "2026-11-30T10:00:00.000Z",
            "2026-11-30T09:00:00.000Z",
            "2026-11-30T08:00:00.000Z",
            "2026-11-29T10:00:05.000Z",
            "2026-11-29T10:00:00.000Z",
          ],
        );
        assert.deepEqual(body.attempts[4], {
          pushId: pushes.a,
          eventIds: ["evt_41", "evt_42"],
          positions: { first: 10, last: 11 },
          attempt: 1,
          attemptedAt: "2026-11-29T10:00:00.000Z",
          durationMs: 12,
          outcome: "RETRY",
          statusCode: 503,
          errorClass: "http_5xx",
          errorMessage: null,
          responseExcerpt: "busy",
          nextAttemptAt: "2026-11-29T10:00:05.000Z",
        });
      });

      test("filters by outcome, error class, push id and time, and pages", async () => {
        const get = async (query: string) => {
          const response = await t.request("GET", `${BASE}/${subscriptionId}/attempts?${query}`);
          assert.equal(response.statusCode, 200, response.body);
          return response.json() as { attempts: Json[]; totalElements: number };
        };
        assert.deepEqual(
          (await get("outcome=DELIVERED")).attempts.map((a) => a.statusCode),
          [204, 200],
        );
        assert.deepEqual(
          (await get("errorClass=timeout")).attempts.map((a) => a.pushId),
          [pushes.b],
        );
        const byPush = await get(`pushId=${pushes.a!.toUpperCase()}`);
        assert.deepEqual(
          byPush.attempts.map((a) => a.attempt),
          [2, 1],
        );
        const window = await get("from=2026-11-30T00:00:00Z&to=2026-11-30T09:00:00Z");
        assert.deepEqual(
          window.attempts.map((a) => a.pushId),
          [pushes.b],
        );
        const page = await get("page=1&pageSize=2");
        assert.equal(page.totalElements, 5);
        assert.deepEqual(
          page.attempts.map((a) => a.pushId),
          [pushes.b, pushes.a],
        );
      });

      test("counts matching attempts up to 10000, and says when there are more", async () => {
        const id = await createSubscription();
        await t.database.db.query(
          `INSERT INTO delivery_attempts (subscription_id, push_id, attempt, event_ids, first_position,
             last_position, attempted_at, duration_ms, outcome, worker_id)
           SELECT $1, gen_random_uuid(), 1, ARRAY[n], n, n, now() - n * interval '1 second', 1, 'DELIVERED', 'w'
             FROM generate_series(1, 10005) AS n`,
          [id],
        );
        const many = (await t.request("GET", `${BASE}/${id}/attempts?pageSize=3`)).json() as Json;
        assert.equal(many.totalElements, 10_000);
        assert.equal(many.totalElementsCapped, true);
        assert.equal((many.attempts as Json[]).length, 3);
        const few = (await t.request("GET", `${BASE}/${subscriptionId}/attempts`)).json() as Json;
        assert.equal(few.totalElementsCapped, false);
      });

      test("rejects bad filters with 400 naming the parameter", async () => {
        for (const [query, parameter] of [
          ["outcome=LOST", "outcome"],
          ["errorClass=gremlins", "errorClass"],
          ["pushId=not-a-uuid", "pushId"],
          ["from=yesterday", "from"],
          ["pageSize=5000", undefined],
        ] as const) {
          const response = await t.request("GET", `${BASE}/${subscriptionId}/attempts?${query}`);
          assert.equal(response.statusCode, 400, query);
          if (parameter)
            assert.match((response.json() as { message: string }).message, new RegExp(parameter));
        }
      });

      test("404 for an unknown subscription or one of another entity", async () => {
        assert.equal((await t.request("GET", `${BASE}/999999/attempts`)).statusCode, 404);
        assert.equal((await t.request("GET", `${BASE}/abc/attempts`)).statusCode, 404);
        await t.database.db.query(
          `INSERT INTO entities (licence_id, name) SELECT licence_id, 'other' FROM entities WHERE name = 'acme'`,
        );
        const response = await t.request(
          "GET",
          `/v4/entity/other/webhookSubscription/${subscriptionId}/attempts`,
        );
        assert.equal(response.statusCode, 404);
      });

      test("the daily error log lists that UTC day's failed attempts, oldest first", async () => {
        const response = await t.request("GET", `${BASE}/${subscriptionId}/2026-11-30`);
        assert.equal(response.statusCode, 200, response.body);
        const body = response.json() as { date: string; failures: Json[]; totalElements: number };
        assert.equal(body.date, "2026-11-30");
        assert.equal(body.totalElements, 2);
        assert.deepEqual(
          body.failures.map((f) => [
            f.time,
            f.pushId,
            f.outcome,
            f.statusCode,
            f.errorClass,
            f.responseExcerpt,
          ]),
          [
            ["2026-11-30T08:00:00.000Z", pushes.b, "RETRY", null, "timeout", null],
            ["2026-11-30T09:00:00.000Z", pushes.c, "FAILED", 400, "http_4xx", "bad"],
          ],
        );
        const day29 = (await t.request("GET", `${BASE}/${subscriptionId}/2026-11-29`)).json() as {
          failures: Json[];
        };
        assert.deepEqual(
          day29.failures.map((f) => f.eventIds),
          [["evt_41", "evt_42"]],
        );
        const empty = (await t.request("GET", `${BASE}/${subscriptionId}/2026-12-01`)).json() as {
          failures: Json[];
        };
        assert.deepEqual(empty.failures, []);
      });

      test("the daily log rejects a date that is not a real day, and shadows no other route", async () => {
        for (const bad of [
          "2026-02-30",
          "2026-13-01",
          "2026-1-1",
          "yesterday",
          "2026-11-30T00:00",
        ]) {
          const response = await t.request(
            "GET",
            `${BASE}/${subscriptionId}/${encodeURIComponent(bad)}`,
          );
          assert.equal(response.statusCode, 400, bad);
          assert.equal((response.json() as { code: string }).code, "HERALD_VALIDATION");
        }
        const secret = await t.request("GET", `${BASE}/${subscriptionId}/secret`);
        assert.equal(secret.statusCode, 200);
        assert.match((secret.json() as { secret: string }).secret, /^whsec_/);
        const test405 = await t.request("GET", `${BASE}/${subscriptionId}/test`);
        assert.equal(test405.statusCode, 405);
        assert.equal(test405.headers.allow, "POST");
        assert.equal((await t.request("GET", `${BASE}/${subscriptionId}/replays`)).statusCode, 200);
        // The service prefix works here as everywhere.
        const prefixed = await t.request(
          "GET",
          `/webhooks/v4/entity/acme/webhookSubscription/${subscriptionId}/2026-11-30`,
        );
        assert.equal(prefixed.statusCode, 200);
      });
    });

    describe("POST …/rotate-secret", () => {
      test("the new secret signs, and the old one keeps signing during the grace period", async () => {
        const before = (await t.request("GET", `${BASE}/${subscriptionId}/secret`)).json() as {
          secret: string;
        };
        const started = Date.now();
        const response = await t.request("POST", `${BASE}/${subscriptionId}/rotate-secret`);
        assert.equal(response.statusCode, 200, response.body);
        const rotated = response.json() as {
          secret: string;
          previousSecretExpiresAt: string;
          gracePeriodSeconds: number;
        };
        assert.notEqual(rotated.secret, before.secret);
        assert.match(rotated.secret, /^whsec_[A-Za-z0-9+/]{43}=$/);
        assert.equal(rotated.gracePeriodSeconds, 86_400);
        const expires = Date.parse(rotated.previousSecretExpiresAt) - started;
        assert.ok(expires > 86_390_000 && expires < 86_410_000, `expiry in ${expires} ms`);

        const shown = (await t.request("GET", `${BASE}/${subscriptionId}/secret`)).json() as Json;
        assert.equal(shown.secret, rotated.secret);
        assert.equal(shown.previousSecret, before.secret);

        // What delivery signs with: the stored subscription through the engine's signing function.
        const stored = (await loadSubscription(t.database.db, t.database.secrets, subscriptionId))!;
        const body = JSON.stringify({ id: "push-1", data: { city: "Namur" } });
        const headers = webhookSignatureHeaders(stored, "push-1", body, new Date());
        assert.equal(headers["webhook-signature"].split(" ").length, 2);
        new Webhook(rotated.secret).verify(body, headers);
        new Webhook(before.secret).verify(body, headers);
        assert.throws(() =>
          new Webhook(`whsec_${Buffer.alloc(32, 7).toString("base64")}`).verify(body, headers),
        );
      });

      test("gracePeriodSeconds 0 ends the old secret at once; out-of-range values are 400", async () => {
        const before = (await t.request("GET", `${BASE}/${subscriptionId}/secret`)).json() as {
          secret: string;
        };
        const response = await t.request("POST", `${BASE}/${subscriptionId}/rotate-secret`, {
          gracePeriodSeconds: 0,
        });
        assert.equal(response.statusCode, 200, response.body);
        const rotated = response.json() as { secret: string };
        const stored = (await loadSubscription(t.database.db, t.database.secrets, subscriptionId))!;
        const body = "{}";
        const headers = webhookSignatureHeaders(stored, "push-2", body, new Date());
        assert.equal(headers["webhook-signature"].split(" ").length, 1);
        new Webhook(rotated.secret).verify(body, headers);
        assert.throws(() => new Webhook(before.secret).verify(body, headers));
        for (const grace of [-1, 7 * 86_400 + 1, 1.5]) {
          const bad = await t.request("POST", `${BASE}/${subscriptionId}/rotate-secret`, {
            gracePeriodSeconds: grace,
          });
          assert.equal(bad.statusCode, 400, String(grace));
        }
        const unknownField = await t.request("POST", `${BASE}/${subscriptionId}/rotate-secret`, {
          secret: "whsec_x",
        });
        assert.equal(unknownField.statusCode, 400);
        assert.equal((await t.request("POST", `${BASE}/424242/rotate-secret`)).statusCode, 404);
      });
    });

    describe("POST …/test", () => {
      test("sends one signed sample push and reports the answer; nothing is recorded", async () => {
        receiver.respondWith(() => ({ status: 200, body: "thanks" }));
        const count = receiver.requests.length;
        const attemptsBefore = await t.database.db.query("SELECT 1 FROM delivery_attempts");
        const response = await t.request("POST", `${BASE}/${subscriptionId}/test`);
        assert.equal(response.statusCode, 200, response.body);
        const result = response.json() as Json;
        assert.equal(result.delivered, true);
        assert.equal(result.statusCode, 200);
        assert.equal(result.errorClass, null);
        assert.equal(result.responseExcerpt, "thanks");
        assert.equal(typeof result.durationMs, "number");
        assert.equal(receiver.requests.length, count + 1);
        const received = receiver.requests.at(-1)!;
        assert.equal(received.headers["webhook-id"], result.pushId);
        const secret = (
          (await t.request("GET", `${BASE}/${subscriptionId}/secret`)).json() as { secret: string }
        ).secret;
        new Webhook(secret).verify(received.body, received.headers as Record<string, string>);
        const envelope = received.json as {
          id: string;
          test: boolean;
          data: Record<string, unknown> & { _event: Json };
          _links: { webhook: { href: string } };
        };
        assert.equal(envelope.id, result.pushId);
        assert.equal(envelope.test, true);
        assert.equal(envelope.data._event.type, "UPDATE");
        assert.equal(envelope.data._event.test, true);
        assert.deepEqual(envelope.data._event.changedFields, ["city"]);
        assert.equal(envelope.data.city, "sample city");
        assert.equal(envelope.data.emailAddress, "sample@example.com");
        assert.equal(
          envelope._links.webhook.href,
          `/webhooks/v4/entity/acme/webhookSubscription/${subscriptionId}`,
        );
        const attemptsAfter = await t.database.db.query("SELECT 1 FROM delivery_attempts");
        assert.equal(attemptsAfter.rowCount, attemptsBefore.rowCount);
      });

      test("a failing endpoint is reported with its status, class and excerpt", async () => {
        receiver.respondWith(() => ({ status: 503, body: "down for maintenance" }));
        const result = (await t.request("POST", `${BASE}/${otherId}/test`)).json() as Json;
        assert.equal(result.delivered, false);
        assert.equal(result.statusCode, 503);
        assert.equal(result.errorClass, "http_5xx");
        assert.equal(result.responseExcerpt, "down for maintenance");
        const created = receiver.requests.at(-1)!.json as { data: { _event: Json } };
        assert.equal(created.data._event.type, "CREATE");
        receiver.respondWith(() => undefined);
      });

      test("an unreachable endpoint is reported as an error class, not an HTTP status", async () => {
        const closed = await startWebhookReceiver();
        const url = closed.url;
        await closed.close();
        const id = await createSubscription({ targetUrl: url });
        const result = (await t.request("POST", `${BASE}/${id}/test`)).json() as Json;
        assert.equal(result.delivered, false);
        assert.equal(result.statusCode, null);
        assert.equal(result.errorClass, "connection_refused");
        assert.equal(typeof result.errorMessage, "string");
      });
    });

    describe("POST …/replay", () => {
      const start = new Date("2026-11-30T08:00:00Z");
      before(async () => {
        await insertLog(t.database.db, entity, table.id, 1, 20, start);
      });

      test("records a request from a position up to the log head, without touching the watermark", async () => {
        const watermark = (await loadSubscription(
          t.database.db,
          t.database.secrets,
          subscriptionId,
        ))!.watermark;
        const response = await t.request("POST", `${BASE}/${subscriptionId}/replay`, {
          fromPosition: 5,
        });
        assert.equal(response.statusCode, 202, response.body);
        const replay = response.json() as Json;
        assert.equal(replay.subscriptionId, subscriptionId);
        assert.equal(replay.fromPosition, 5);
        assert.equal(replay.toPosition, 20);
        assert.equal(replay.cursor, 4);
        assert.equal(replay.status, "PENDING");
        assert.equal(replay.fromTime, null);
        assert.equal(
          (await loadSubscription(t.database.db, t.database.secrets, subscriptionId))!.watermark,
          watermark,
        );
        const list = (await t.request("GET", `${BASE}/${subscriptionId}/replays`)).json() as {
          replays: Json[];
        };
        assert.equal(list.replays[0]!.id, replay.id);
      });

      test("resolves fromTime to the first position at or after it, and takes toPosition", async () => {
        const response = await t.request("POST", `${BASE}/${otherId}/replay`, {
          fromTime: "2026-11-30T08:09:30Z",
          toPosition: 15,
        });
        assert.equal(response.statusCode, 202, response.body);
        const replay = response.json() as Json;
        assert.equal(replay.fromPosition, 11);
        assert.equal(replay.toPosition, 15);
        assert.equal(replay.fromTime, "2026-11-30T08:09:30.000Z");
      });

      test("rejects requests that name no range, or a range the log cannot serve", async () => {
        const post = (body: unknown) => t.request("POST", `${BASE}/${otherId}/replay`, body);
        for (const body of [
          {},
          { fromPosition: 1, fromTime: "2026-11-30T08:00:00Z" },
          { fromPosition: 0 },
          { fromTime: "soon" },
          { fromPosition: "3" },
        ]) {
          assert.equal((await post(body)).statusCode, 400, JSON.stringify(body));
        }
        for (const body of [
          { fromPosition: 5, toPosition: 21 },
          { fromPosition: 21 },
          { fromPosition: 10, toPosition: 9 },
          { fromTime: "2026-12-01T00:00:00Z" },
        ]) {
          const response = await post(body);
          assert.equal(response.statusCode, 422, `${JSON.stringify(body)} ${response.body}`);
        }
        assert.equal(
          (await t.request("POST", `${BASE}/777777/replay`, { fromPosition: 1 })).statusCode,
          404,
        );
      });

      test("a pruned start is refused rather than silently skipped", async () => {
        await t.database.db.query("DELETE FROM change_events WHERE position <= 2");
        const byPosition = await t.request("POST", `${BASE}/${otherId}/replay`, {
          fromPosition: 1,
        });
        assert.equal(byPosition.statusCode, 422);
        assert.match(byPosition.body, /positions below 3 were pruned/);
        const byTime = await t.request("POST", `${BASE}/${otherId}/replay`, {
          fromTime: "2026-11-30T07:00:00Z",
        });
        assert.equal(byTime.statusCode, 422);
        assert.equal(
          (await t.request("POST", `${BASE}/${otherId}/replay`, { fromPosition: 3 })).statusCode,
          202,
        );
      });

      test("the engine claims, advances and completes a replay only while it holds the lease", async () => {
        const db = t.database.db;
        const id = await createSubscription();
        const posted = (
          await t.request("POST", `${BASE}/${id}/replay`, { fromPosition: 3 })
        ).json() as {
          id: number;
        };
        assert.equal(await claimPendingReplay(db, id, "worker-a"), undefined, "no lease, no claim");
        await db.query(
          "UPDATE webhook_subscriptions SET lease_owner = 'worker-a', lease_expires_at = now() + interval '1 minute' WHERE id = $1",
          [id],
        );
        const claimed = (await claimPendingReplay(db, id, "worker-a"))!;
        assert.equal(claimed.id, posted.id);
        assert.equal(claimed.status, "RUNNING");
        assert.equal(claimed.cursor, 2);
        assert.equal(await advanceReplay(db, claimed.id, "worker-a", 10, 4), true);
        assert.equal(await advanceReplay(db, claimed.id, "worker-b", 12, 1), false);
        // A worker taking the lease over resumes the RUNNING replay at its cursor.
        await db.query("UPDATE webhook_subscriptions SET lease_owner = 'worker-b' WHERE id = $1", [
          id,
        ]);
        assert.equal(await advanceReplay(db, claimed.id, "worker-a", 12, 1), false);
        const resumed = (await claimPendingReplay(db, id, "worker-b"))!;
        assert.equal(resumed.id, claimed.id);
        assert.equal(resumed.cursor, 10);
        assert.equal(resumed.eventsSent, 4);
        assert.equal(await completeReplay(db, claimed.id, "worker-b", 3), true);
        const [done] = (
          (await t.request("GET", `${BASE}/${id}/replays`)).json() as { replays: Json[] }
        ).replays;
        assert.equal(done!.status, "DONE");
        assert.equal(done!.cursor, 20);
        assert.equal(done!.eventsSent, 7);
        assert.equal(typeof done!.finishedAt, "string");
        assert.equal(await claimPendingReplay(db, id, "worker-b"), undefined);
      });

      test("open replays are capped per subscription, and one can be cancelled", async () => {
        const id = await createSubscription();
        const ids: number[] = [];
        for (let i = 0; i < MAX_OPEN_REPLAYS; i++) {
          const response = await t.request("POST", `${BASE}/${id}/replay`, { fromPosition: 10 });
          assert.equal(response.statusCode, 202);
          ids.push((response.json() as { id: number }).id);
        }
        const refused = await t.request("POST", `${BASE}/${id}/replay`, { fromPosition: 10 });
        assert.equal(refused.statusCode, 409);
        const cancelled = await t.request("DELETE", `${BASE}/${id}/replays/${ids[0]}`);
        assert.equal(cancelled.statusCode, 200, cancelled.body);
        assert.equal((cancelled.json() as Json).status, "CANCELLED");
        assert.equal(
          (await t.request("POST", `${BASE}/${id}/replay`, { fromPosition: 10 })).statusCode,
          202,
        );
        assert.equal((await t.request("DELETE", `${BASE}/${id}/replays/99999`)).statusCode, 404);
        assert.equal(
          (await t.request("DELETE", `${BASE}/${otherId}/replays/${ids[1]}`)).statusCode,
          404,
        );
      });
    });
  });
}
