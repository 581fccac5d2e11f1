/**
 * Where a Herald process's HERALD_SECRET_KEY comes from (src/storage/secret-key-file.ts), on both
 * backends: the setting, refused when malformed and required with DATABASE_URL; on the embedded
 * database the key file in the data directory, generated once (0600) and read after, a missing
 * file refused while the database holds a key check, and a rotation that makes a new file.
 */
import assert from "node:assert/strict";
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, beforeEach, describe, test } from "node:test";
import { generateSecretKey, parseSecretKey, SecretBox } from "../../src/domain/secret-box.js";
import type { Database } from "../../src/storage/database.js";
import { checkSecretKey, prepareSealedValues } from "../../src/storage/sealed-values.js";
import {
  openSecretBox,
  SECRET_KEY_FILE_NAME,
  SecretKeySetupError,
} from "../../src/storage/secret-key-file.js";
import type { TestDatabase } from "../helpers/test-database.js";
import { createTestDatabase, testBackends } from "../helpers/test-database.js";

for (const { backend, skip } of await testBackends()) {
  describe(`the secret key's source on ${backend}`, { skip }, () => {
    let t: TestDatabase;
    let db: Database;
    before(async () => {
      t = await createTestDatabase(backend);
      db = t.db;
    });
    after(async () => {
      await t?.drop();
    });
    beforeEach(async () => {
      await db.query("DELETE FROM secret_key_check");
    });

    describe("where the key comes from", () => {
      let dataDir: string;
      before(() => {
        dataDir = mkdtempSync(join(tmpdir(), "herald-secret-key-"));
      });
      after(() => rmSync(dataDir, { recursive: true, force: true }));
      const settings = (extra: Record<string, string | undefined> = {}) => ({
        databaseUrl: undefined,
        dataDir,
        secretKey: undefined,
        secretKeyPrevious: undefined,
        ...extra,
      });
      const file = () => join(dataDir, SECRET_KEY_FILE_NAME);

      test("HERALD_SECRET_KEY wins; a malformed one is refused naming the setting", async () => {
        const key = generateSecretKey();
        const opened = await openSecretBox(db, settings({ secretKey: key }));
        assert.equal(opened.secrets.currentKeyId, new SecretBox(parseSecretKey(key)).currentKeyId);
        assert.equal(opened.generatedFile, undefined);
        assert.equal(
          existsSync(file()),
          false,
          "no file is written when the setting gives the key",
        );
        await assert.rejects(
          openSecretBox(db, settings({ secretKey: "hunter2" })),
          (e: unknown) =>
            e instanceof SecretKeySetupError && /HERALD_SECRET_KEY must be 32/.test(e.message),
        );
        await assert.rejects(
          openSecretBox(db, settings({ secretKey: key, secretKeyPrevious: "short" })),
          /HERALD_SECRET_KEY_PREVIOUS must be 32/,
        );
      });

      test("with DATABASE_URL the setting is required", async () => {
        await assert.rejects(
          openSecretBox(db, settings({ databaseUrl: "postgres://h/db" })),
          (e: unknown) =>
            e instanceof SecretKeySetupError &&
            /HERALD_SECRET_KEY is required with DATABASE_URL/.test(e.message) &&
            /openssl rand -hex 32/.test(e.message),
        );
      });

      test("embedded: generated once into the data directory (0600), then read at each start", async () => {
        const first = await openSecretBox(db, settings());
        assert.equal(first.generatedFile, file());
        assert.equal(statSync(file()).mode & 0o777, 0o600);
        assert.match(readFileSync(file(), "utf8"), /^[0-9a-f]{64}\n$/);
        await prepareSealedValues(db, first.secrets);
        const again = await openSecretBox(db, settings());
        assert.equal(again.generatedFile, undefined);
        assert.equal(again.warning, undefined);
        assert.equal(again.secrets.currentKeyId, first.secrets.currentKeyId);

        chmodSync(file(), 0o644);
        const loose = await openSecretBox(db, settings());
        assert.match(loose.warning!, /may be read by other users \(mode 644\).*chmod 600/);
        chmodSync(file(), 0o600);
      });

      test("embedded: a missing key file on a database that had one is refused, not replaced", async () => {
        const first = await openSecretBox(db, settings());
        await prepareSealedValues(db, first.secrets);
        const saved = readFileSync(file(), "utf8");
        rmSync(file());
        await assert.rejects(
          openSecretBox(db, settings()),
          (e: unknown) =>
            e instanceof SecretKeySetupError &&
            e.message.includes(file()) &&
            /Restore/.test(e.message),
        );
        assert.equal(existsSync(file()), false);

        // A rotation on the embedded database: the old key as HERALD_SECRET_KEY_PREVIOUS, no file.
        const rotated = await openSecretBox(db, settings({ secretKeyPrevious: saved }));
        assert.equal(rotated.generatedFile, file());
        assert.equal(rotated.secrets.previousKeyId, first.secrets.currentKeyId);
        assert.notEqual(rotated.secrets.currentKeyId, first.secrets.currentKeyId);
        assert.equal((await prepareSealedValues(db, rotated.secrets)).key, "matched-previous");
        const next = await openSecretBox(db, settings());
        assert.equal(await checkSecretKey(db, next.secrets), "matched");
      });

      test("embedded: a key file that is not a key is refused naming the file", async () => {
        rmSync(file(), { force: true });
        const dir = mkdtempSync(join(tmpdir(), "herald-secret-key-bad-"));
        try {
          const bad = join(dir, SECRET_KEY_FILE_NAME);
          writeFileSync(bad, "not a key\n", { mode: 0o600 });
          await assert.rejects(
            openSecretBox(db, settings({ dataDir: dir })),
            (e: unknown) => e instanceof SecretKeySetupError && e.message.includes(bad),
          );
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      });
    });
  });
}
