/**
 * Secrets at rest (docs/files-and-exports.md "Secrets at rest"), on both backends: the tables hold
 * no plain-text signing secret or source credential after writes through the API; the start-time
 * step (src/storage/sealed-values.ts) seals what a database from before holds in plain text, moves
 * values from HERALD_SECRET_KEY_PREVIOUS to the current key, refuses a wrong key before touching
 * anything, and is safe with several processes at once. Where the key comes from:
 * secret-key-file.test.ts.
 */
import assert from "node:assert/strict";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { after, before, beforeEach, describe, test } from "node:test";
import { Webhook } from "standardwebhooks";
import { generateSecretKey, parseSecretKey, SecretBox } from "../../src/domain/secret-box.js";
import { insertTable } from "../../src/storage/data-table-repository.js";
import type { Database, Queryable } from "../../src/storage/database.js";
import {
  checkSecretKey,
  prepareSealedValues,
  SEALED_COLUMNS,
  WrongSecretKey,
} from "../../src/storage/sealed-values.js";
import type { TestApp } from "../helpers/test-app.js";
import { createTestApp } from "../helpers/test-app.js";
import { testBackends } from "../helpers/test-database.js";
import type { WebhookReceiver } from "../helpers/webhook-receiver.js";
import { startWebhookReceiver } from "../helpers/webhook-receiver.js";

const SUBSCRIPTIONS = "/webhooks/v4/entity/acme/webhookSubscription";
const REFERENCES = "/v5/entities/acme/file-references";

const newBox = () => new SecretBox(parseSecretKey(generateSecretKey()));
const newSecret = () => `whsec_${randomBytes(32).toString("base64")}`;

/** A box that remembers its key, so a test can hand it on as the previous one. */
function keyedBox(previous?: Buffer): SecretBox & { key: Buffer } {
  const key = parseSecretKey(generateSecretKey());
  return Object.assign(new SecretBox(key, previous), { key });
}

/** Every row of `table` as JSON text: what someone reading the table would see. */
async function tableText(db: Queryable, table: string): Promise<string> {
  const { rows } = await db.query<{ row: string }>(
    `SELECT row_to_json(t)::text AS row FROM ${table} t`,
  );
  return rows.map((r) => r.row).join("\n");
}

/** The secrets' base64 parts too: a value holding the key bytes in another wrapping is a leak. */
function assertAbsent(text: string, secrets: readonly string[], where: string) {
  for (const secret of secrets) {
    assert.ok(!text.includes(secret), `${where} holds a secret in plain text`);
    const bare = secret.replace(/^whsec_/, "");
    assert.ok(!text.includes(bare), `${where} holds a secret's base64`);
  }
}

for (const { backend, skip } of await testBackends()) {
  describe(`secrets at rest on ${backend}`, { skip }, () => {
    let t: TestApp;
    let db: Database;
    let entity: number;
    let receiver: WebhookReceiver;
    let table: string;
    before(async () => {
      t = await createTestApp(backend);
      db = t.database.db;
      entity = (await db.query<{ id: number }>("SELECT id FROM entities WHERE name = 'acme'"))
        .rows[0]!.id;
      receiver = await startWebhookReceiver();
      table = (
        await insertTable(db, {
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
          ],
          subscriptions: [],
          segmentations: [],
          eventsToTrigger: [],
        })
      ).id;
    });
    after(async () => {
      await receiver?.close();
      await t?.close();
    });
    beforeEach(async () => {
      await db.query("DELETE FROM webhook_subscriptions");
      await db.query("DELETE FROM file_references");
      await db.query("DELETE FROM secret_key_check");
    });

    const subscription = (extra: Record<string, unknown> = {}) => ({
      on: "PROFILE_TABLE",
      onElementId: table,
      eventType: "UPDATE",
      targetUrl: `${receiver.url}/hook`,
      ...extra,
    });

    async function secretOf(id: number): Promise<{ secret: string; previousSecret?: string }> {
      const response = await t.request("GET", `${SUBSCRIPTIONS}/${id}/secret`);
      assert.equal(response.statusCode, 200, response.body);
      return response.json() as { secret: string; previousSecret?: string };
    }

    /** A test push signed with the stored secret, verified with `secret` as the receiver knows it. */
    async function assertPushVerifies(id: number, secret: string) {
      const before = receiver.requests.length;
      const response = await t.request("POST", `${SUBSCRIPTIONS}/${id}/test`);
      assert.equal(response.statusCode, 200, response.body);
      assert.equal((response.json() as { delivered: boolean }).delivered, true, response.body);
      const received = receiver.requests[before]!;
      new Webhook(secret).verify(received.body, received.headers as Record<string, string>);
    }

    test("signing secrets written through the API are sealed in every column, and still sign", async () => {
      const given = newSecret();
      const created = await t.request("POST", SUBSCRIPTIONS, subscription({ secret: given }));
      assert.equal(created.statusCode, 201, created.body);
      const { id, secret: shown } = created.json() as { id: number; secret: string };
      assert.equal(shown, given, "the create answer shows the secret (SPEC §4)");
      const generated = await t.request("POST", SUBSCRIPTIONS, subscription());
      const other = generated.json() as { id: number; secret: string };

      // A PUT with a new secret keeps the old one as the previous secret; a rotation makes another.
      const replacement = newSecret();
      const put = await t.request(
        "PUT",
        `${SUBSCRIPTIONS}/${id}`,
        subscription({ secret: replacement }),
      );
      assert.equal(put.statusCode, 200, put.body);
      assert.equal((put.json() as { secret?: string }).secret, undefined, "a PUT never shows it");
      const rotated = (
        await t.request("POST", `${SUBSCRIPTIONS}/${other.id}/rotate-secret`)
      ).json() as { secret: string };

      const plain = [given, replacement, other.secret, rotated.secret];
      assertAbsent(await tableText(db, "webhook_subscriptions"), plain, "webhook_subscriptions");
      const { rows } = await db.query<{ secret: string; previous_secret: string | null }>(
        "SELECT secret, previous_secret FROM webhook_subscriptions ORDER BY id",
      );
      for (const row of rows) {
        assert.ok(t.database.secrets.sealedWithCurrent(row.secret), row.secret);
        assert.ok(t.database.secrets.sealedWithCurrent(row.previous_secret!));
      }

      const replaced = await secretOf(id);
      assert.equal(replaced.secret, replacement);
      assert.equal(replaced.previousSecret, given);
      assert.equal((await secretOf(other.id)).secret, rotated.secret);
      assert.equal((await secretOf(other.id)).previousSecret, other.secret);
      await assertPushVerifies(id, replacement);
      await assertPushVerifies(id, given);
      await assertPushVerifies(other.id, rotated.secret);
      // Nothing read back shows a sealed value.
      const list = await t.request("GET", SUBSCRIPTIONS);
      assert.doesNotMatch(list.body, /hs1\./);
    });

    test("a PUT that brings the current secret, or none, keeps it without a rotation", async () => {
      const given = newSecret();
      const { id } = (
        await t.request("POST", SUBSCRIPTIONS, subscription({ secret: given }))
      ).json() as { id: number };
      const stored = async () =>
        (
          await db.query<{ secret: string; previous_secret: string | null }>(
            "SELECT secret, previous_secret FROM webhook_subscriptions WHERE id = $1",
            [id],
          )
        ).rows[0]!;
      const before = await stored();
      for (const body of [subscription({ secret: given }), subscription({ isActive: false })]) {
        const put = await t.request("PUT", `${SUBSCRIPTIONS}/${id}`, body);
        assert.equal(put.statusCode, 200, put.body);
        assert.deepEqual(await stored(), before, "the same sealed value, no previous secret");
      }
      assert.deepEqual(await secretOf(id), { secret: given });
    });

    test("source credentials are sealed in file_references and never shown back", async () => {
      const password = `pw-${randomBytes(12).toString("hex")}`;
      const { privateKey } = generateKeyPairSync("ed25519", {
        privateKeyEncoding: { type: "pkcs8", format: "pem" },
        publicKeyEncoding: { type: "spki", format: "pem" },
      });
      const sftp = {
        type: "SFTP",
        host: "127.0.0.1",
        port: 2222,
        username: "etl",
        path: "/in/a.csv",
      };
      const withPassword = await t.request("POST", REFERENCES, {
        name: "by-password",
        source: { ...sftp, password, hostKeySha256: null },
      });
      assert.equal(withPassword.statusCode, 201, withPassword.body);
      const withKey = await t.request("POST", REFERENCES, {
        name: "by-key",
        source: { ...sftp, privateKey },
      });
      assert.equal(withKey.statusCode, 201, withKey.body);
      for (const answer of [withPassword, withKey]) {
        assert.ok(!answer.body.includes(password));
        assert.ok(!answer.body.includes("PRIVATE KEY"));
      }
      const keyBody = privateKey.split("\n")[1]!;
      const text = await tableText(db, "file_references");
      assert.ok(!text.includes(password), "file_references holds the password in plain text");
      assert.ok(!text.includes(keyBody), "file_references holds the private key in plain text");
      const { rows } = await db.query<{ credentials: string }>(
        "SELECT credentials FROM file_references",
      );
      assert.equal(rows.length, 2);
      for (const row of rows) assert.ok(t.database.secrets.sealedWithCurrent(row.credentials));
      const listed = await t.request("GET", REFERENCES);
      assert.ok(!listed.body.includes(password) && !listed.body.includes("PRIVATE KEY"));
    });

    test("an upgrade: plain-text secrets and credentials are sealed at start, and keep working", async () => {
      const secrets = Array.from({ length: 7 }, newSecret);
      const ids: number[] = [];
      for (const [i, secret] of secrets.entries()) {
        const { rows } = await db.query<{ id: number }>(
          `INSERT INTO webhook_subscriptions (entity_id, source, element_id, event_type, target_url,
             secret, previous_secret, previous_secret_expires_at)
           VALUES ($1, 'PROFILE_TABLE', '1', 'UPDATE', $2, $3, $4, now() + interval '1 hour')
           RETURNING id`,
          [entity, `${receiver.url}/hook`, secret, i === 0 ? secrets[6] : null],
        );
        ids.push(rows[0]!.id);
      }
      const credentials = JSON.stringify({ password: "legacy-password-0001" });
      await db.query(
        `INSERT INTO file_references (entity_id, name, source, credentials)
         VALUES ($1, 'legacy', $2, $3)`,
        [
          entity,
          JSON.stringify({
            type: "SFTP",
            host: "127.0.0.1",
            port: 22,
            username: "u",
            path: "/a",
            hostKeySha256: null,
          }),
          credentials,
        ],
      );

      const box = t.database.secrets;
      const report = await prepareSealedValues(db, box, { batchSize: 3 });
      assert.deepEqual(report, {
        key: "recorded",
        rewritten: {
          "webhook_subscriptions.secret": 7,
          "webhook_subscriptions.previous_secret": 1,
          "file_references.credentials": 1,
        },
      });
      assertAbsent(await tableText(db, "webhook_subscriptions"), secrets, "webhook_subscriptions");
      assert.ok(!(await tableText(db, "file_references")).includes("legacy-password-0001"));
      // One plain text in two places is two different sealed values: equal secrets do not show.
      const twice = await db.query<{ a: string; b: string }>(
        `SELECT (SELECT previous_secret FROM webhook_subscriptions WHERE id = $1) AS a,
                (SELECT secret FROM webhook_subscriptions WHERE id = $2) AS b`,
        [ids[0], ids[6]],
      );
      const { a, b } = twice.rows[0]!;
      assert.notEqual(a, b);
      assert.equal(box.open(a), secrets[6]);
      assert.equal(box.open(b), secrets[6]);
      const sealed = await db.query<{ credentials: string }>(
        "SELECT credentials FROM file_references",
      );
      assert.equal(box.open(sealed.rows[0]!.credentials), credentials);

      assert.equal((await secretOf(ids[0]!)).previousSecret, secrets[6]);
      for (const [i, id] of ids.entries()) assert.equal((await secretOf(id)).secret, secrets[i]);
      await assertPushVerifies(ids[3]!, secrets[3]!);

      // Again (the next start, or a second process): nothing left to do, nothing changed.
      const before = await tableText(db, "webhook_subscriptions");
      assert.deepEqual(await prepareSealedValues(db, box), { key: "matched", rewritten: {} });
      assert.equal(await tableText(db, "webhook_subscriptions"), before);
    });

    test("rotation: HERALD_SECRET_KEY_PREVIOUS opens the old values, which are rewritten with the new key", async () => {
      const oldBox = keyedBox();
      await prepareSealedValues(db, oldBox);
      const secrets = Array.from({ length: 5 }, newSecret);
      for (const secret of secrets)
        await db.query(
          `INSERT INTO webhook_subscriptions (entity_id, source, element_id, event_type, target_url, secret)
           VALUES ($1, 'PROFILE_TABLE', '1', 'UPDATE', 'http://127.0.0.1:9/x', $2)`,
          [entity, oldBox.seal(secret)],
        );
      const newKeyOnly = keyedBox();
      await assert.rejects(prepareSealedValues(db, newKeyOnly), WrongSecretKey);

      const rotating = new SecretBox(newKeyOnly.key, oldBox.key);
      const report = await prepareSealedValues(db, rotating, { batchSize: 2 });
      assert.deepEqual(report, {
        key: "matched-previous",
        rewritten: { "webhook_subscriptions.secret": 5 },
      });
      const { rows } = await db.query<{ secret: string }>(
        "SELECT secret FROM webhook_subscriptions ORDER BY id",
      );
      assert.deepEqual(
        rows.map((r) => newKeyOnly.open(r.secret)),
        secrets,
        "the new key alone opens every value",
      );
      // The check moved to the new key: the new key alone now starts, the old one is refused.
      assert.equal(await checkSecretKey(db, newKeyOnly), "matched");
      await assert.rejects(checkSecretKey(db, oldBox), WrongSecretKey);
      assert.deepEqual(await prepareSealedValues(db, newKeyOnly), {
        key: "matched",
        rewritten: {},
      });
    });

    test("a wrong key is refused with both key ids, before anything is rewritten", async () => {
      const right = keyedBox();
      await prepareSealedValues(db, right);
      await db.query(
        `INSERT INTO webhook_subscriptions (entity_id, source, element_id, event_type, target_url, secret)
         VALUES ($1, 'PROFILE_TABLE', '1', 'UPDATE', 'http://127.0.0.1:9/x', $2)`,
        [entity, newSecret()],
      );
      const before = await tableText(db, "webhook_subscriptions");
      const wrong = keyedBox();
      await assert.rejects(
        prepareSealedValues(db, wrong),
        (error: unknown) =>
          error instanceof WrongSecretKey &&
          error.message.includes(right.currentKeyId) &&
          error.message.includes(wrong.currentKeyId) &&
          /HERALD_SECRET_KEY_PREVIOUS/.test(error.message),
      );
      assert.equal(
        await tableText(db, "webhook_subscriptions"),
        before,
        "the plain row is untouched",
      );
    });

    test("an altered sealed value refuses the start as a key problem (exit 2), naming its column", async () => {
      const box = keyedBox();
      await prepareSealedValues(db, box);
      const sealed = box.seal(newSecret());
      // One character of the ciphertext changed: the key id still matches, GCM refuses it.
      const last = sealed.at(-1) === "A" ? "B" : "A";
      await db.query(
        `INSERT INTO webhook_subscriptions (entity_id, source, element_id, event_type, target_url, secret)
         VALUES ($1, 'PROFILE_TABLE', '1', 'UPDATE', 'http://127.0.0.1:9/x', $2)`,
        [entity, `${sealed.slice(0, -1)}${last}`],
      );
      // A rotation rewrites what the previous key sealed, so the altered value is opened.
      const rotating = keyedBox(box.key);
      await assert.rejects(
        prepareSealedValues(db, rotating),
        (error: unknown) =>
          error instanceof WrongSecretKey && /webhook_subscriptions\.secret/.test(error.message),
      );
    });

    test("a value under a key this process lacks refuses the start, naming its column and key id", async () => {
      const box = keyedBox();
      await prepareSealedValues(db, box);
      const stranger = newBox();
      await db.query(
        `INSERT INTO webhook_subscriptions (entity_id, source, element_id, event_type, target_url, secret)
         VALUES ($1, 'PROFILE_TABLE', '1', 'UPDATE', 'http://127.0.0.1:9/x', $2)`,
        [entity, stranger.seal(newSecret())],
      );
      await assert.rejects(
        prepareSealedValues(db, box),
        (error: unknown) =>
          error instanceof WrongSecretKey &&
          error.message.includes("webhook_subscriptions.secret") &&
          error.message.includes(stranger.currentKeyId),
      );
    });

    test("a first start whose key opens not every value records no check: the right key still starts", async () => {
      const right = keyedBox();
      await db.query(
        `INSERT INTO webhook_subscriptions (entity_id, source, element_id, event_type, target_url, secret)
         VALUES ($1, 'PROFILE_TABLE', '1', 'UPDATE', 'http://127.0.0.1:9/x', $2)`,
        [entity, right.seal(newSecret())],
      );
      await assert.rejects(prepareSealedValues(db, newBox()), WrongSecretKey);
      assert.equal((await db.query("SELECT 1 FROM secret_key_check")).rowCount, 0);
      assert.equal((await prepareSealedValues(db, right)).key, "recorded");
    });

    test("several processes starting at once: every value sealed once, each opens to its plain text", async () => {
      const count = 300;
      const secrets = Array.from({ length: count }, newSecret);
      await db.query(
        `INSERT INTO webhook_subscriptions (entity_id, source, element_id, event_type, target_url, secret, previous_secret)
         SELECT $1, 'PROFILE_TABLE', '1', 'UPDATE', 'http://127.0.0.1:9/x', s, NULL
           FROM unnest($2::text[]) AS s`,
        [entity, secrets],
      );
      // PostgreSQL: four pools, as four processes would have; PGlite has one process only.
      const pools =
        backend === "postgres"
          ? await Promise.all([1, 2, 3, 4].map(() => t.database.connect(2)))
          : [db, db];
      const box = t.database.secrets;
      const reports = await Promise.all(
        pools.map((pool) => prepareSealedValues(pool, box, { batchSize: 25 })),
      );
      const total = reports.reduce(
        (sum, r) => sum + (r.rewritten["webhook_subscriptions.secret"] ?? 0),
        0,
      );
      assert.equal(total, count, "each row rewritten by exactly one of them");
      assert.equal(reports.filter((r) => r.key === "recorded").length, 1, "one records the check");
      const { rows } = await db.query<{ secret: string }>(
        "SELECT secret FROM webhook_subscriptions ORDER BY id",
      );
      assert.deepEqual(
        rows.map((r) => box.open(r.secret)),
        secrets,
      );
      assertAbsent(rows.map((r) => r.secret).join("\n"), secrets, "webhook_subscriptions");
    });

    test("the sealed columns are the subscriptions' secrets and the references' credentials", () => {
      assert.deepEqual(
        SEALED_COLUMNS.map((c) => `${c.table}.${c.column}`),
        [
          "webhook_subscriptions.secret",
          "webhook_subscriptions.previous_secret",
          "file_references.credentials",
        ],
      );
    });

    test("a column that does not exist (a part not migrated yet) is skipped", async () => {
      const report = await prepareSealedValues(db, t.database.secrets, {
        columns: [
          { table: "no_such_table", column: "credentials" },
          { table: "webhook_subscriptions", column: "no_such_column" },
        ],
      });
      assert.deepEqual(report, { key: "recorded", rewritten: {} });
    });
  });
}
