/**
 * File references (SPEC §7.2) on both backends: definitions and their bad input, write-only
 * credentials, DIRECTORY synchronisations end to end (SUCCESS, UNCHANGED, NOT_FOUND, ERROR, the
 * download), a synchronisation resumed after its worker died, deleting a reference in use.
 * HTTPS and SFTP: file-references-remote.test.ts; events and schedules: file-references-events.
 */
import assert from "node:assert/strict";
import { createHash, generateKeyPairSync } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { loadFileReferenceSource } from "../../src/storage/file-reference-repository.js";
import type { FileSyncTestApp } from "../helpers/file-sync.js";
import { createFileSyncTestApp, REFERENCES } from "../helpers/file-sync.js";
import { CUSTOMERS } from "../helpers/imports.js";
import type { TestApp } from "../helpers/test-app.js";
import { createTestApp } from "../helpers/test-app.js";
import { testBackends } from "../helpers/test-database.js";

const HOST_KEY = "SHA256:" + "A".repeat(43);
const sha256 = (text: string | Buffer) => createHash("sha256").update(text).digest("hex");

interface ErrorBody {
  code: string;
  message: string;
  details: { path: string; message: string }[];
}

for (const { backend, skip } of await testBackends()) {
  describe(`file references on ${backend}`, { skip }, () => {
    let t: FileSyncTestApp;
    let strict: TestApp;
    before(async () => {
      t = await createFileSyncTestApp(backend, { maxFileBytes: 64 * 1024 });
      // The operator's defaults: no insecure targets, no drop directory.
      strict = await createTestApp(backend, { allowInsecureTargets: false });
    });
    after(async () => {
      await t?.close();
      await strict?.close();
    });

    const sftp = {
      type: "SFTP",
      host: "files.example.com",
      port: 2222,
      username: "herald",
      password: "hunter2-not-shown",
      path: "/out/customers_$yyyyMMdd.csv",
      hostKeySha256: HOST_KEY,
    };

    test("create, read by id and name, list, replace, delete; names are unique", async () => {
      const created = await t.request("POST", REFERENCES, {
        name: "crm-daily",
        source: { type: "DIRECTORY", path: "crm/daily.csv" },
        schedule: { cron: "0 2 * * *", timezone: "Europe/Brussels" },
        unknownKey: 1,
      });
      assert.equal(created.statusCode, 201, created.body);
      const body = created.json() as {
        id: string;
        source: { type: string; path: string };
        schedule: { cron: string; timezone: string };
        timezone: string;
        nextSynchronizationAt: string;
        details: { path: string }[];
        _links: { self: { href: string }; synchronizations: { href: string } };
      };
      assert.equal(created.headers.location, `${REFERENCES}/${body.id}`);
      assert.deepEqual(body.source, { type: "DIRECTORY", path: "crm/daily.csv" });
      assert.deepEqual(body.schedule, { cron: "0 2 * * *", timezone: "Europe/Brussels" });
      assert.equal(body.timezone, "Europe/Brussels");
      assert.ok(Date.parse(body.nextSynchronizationAt) > Date.now());
      assert.deepEqual(
        body.details.map((d) => d.path),
        ["unknownKey"],
      );
      assert.equal(body._links.synchronizations.href, `${REFERENCES}/${body.id}/synchronizations`);
      for (const key of [body.id, "crm-daily"]) {
        const read = await t.request("GET", `${REFERENCES}/${key}`);
        assert.equal(read.statusCode, 200, read.body);
        assert.equal((read.json() as { id: string }).id, body.id);
      }
      const taken = await t.request("POST", REFERENCES, {
        name: "crm-daily",
        source: { type: "DIRECTORY", path: "x.csv" },
      });
      assert.equal(taken.statusCode, 409);
      const list = (await t.request("GET", `${REFERENCES}?page=0&pageSize=50`)).json() as {
        fileReferences: { id: string }[];
        page: number;
        pageSize: number;
        totalElements: number;
      };
      assert.equal(list.page, 0);
      assert.equal(list.pageSize, 50);
      assert.ok(list.fileReferences.some((r) => r.id === body.id));
      assert.equal(list.totalElements, list.fileReferences.length);

      const replaced = await t.request("PUT", `${REFERENCES}/${body.id}`, {
        name: "crm-daily",
        source: { type: "DIRECTORY", path: "crm/other.csv" },
      });
      assert.equal(replaced.statusCode, 200, replaced.body);
      const after = replaced.json() as {
        source: { path: string };
        schedule: null;
        nextSynchronizationAt: null;
        timezone: string;
      };
      assert.equal(after.source.path, "crm/other.csv");
      assert.equal(after.schedule, null);
      assert.equal(after.nextSynchronizationAt, null, "the schedule went with it");
      assert.equal(after.timezone, "UTC");
      const schedules = await t.database.db.query(
        "SELECT 1 FROM schedules WHERE kind = 'FILE_SYNCHRONIZATION' AND owner_id = $1",
        [body.id],
      );
      assert.equal(schedules.rowCount, 0);

      assert.equal((await t.request("DELETE", `${REFERENCES}/${body.id}`)).statusCode, 204);
      const gone = await t.request("GET", `${REFERENCES}/${body.id}`);
      assert.equal(gone.statusCode, 404);
      assert.equal((gone.json() as ErrorBody).code, "HERALD_FILE_REFERENCE_NOT_FOUND");
      assert.equal((await t.request("DELETE", `${REFERENCES}/${body.id}`)).statusCode, 404);
    });

    test("credentials are write-only: never answered, sealed at rest, kept by a PUT for the same server", async () => {
      const created = await t.request("POST", REFERENCES, { name: "sftp-ref", source: sftp });
      assert.equal(created.statusCode, 201, created.body);
      assert.doesNotMatch(created.body, /hunter2/);
      const id = (created.json() as { id: string }).id;
      assert.deepEqual((created.json() as { source: unknown }).source, {
        type: "SFTP",
        host: "files.example.com",
        port: 2222,
        username: "herald",
        path: "/out/customers_$yyyyMMdd.csv",
        hostKeySha256: HOST_KEY,
        passwordSet: true,
        privateKeySet: false,
      });
      const https = await t.request("POST", REFERENCES, {
        name: "https-ref",
        source: {
          type: "HTTPS",
          url: "https://files.example.com/export.csv",
          headers: { Authorization: "Bearer token-not-shown" },
        },
      });
      assert.equal(https.statusCode, 201, https.body);
      assert.doesNotMatch(https.body, /token-not-shown/);
      assert.deepEqual((https.json() as { source: { headerNames: string[] } }).source.headerNames, [
        "Authorization",
      ]);
      for (const url of [REFERENCES, `${REFERENCES}/${id}`, `${REFERENCES}/https-ref`]) {
        const read = await t.request("GET", url);
        assert.equal(read.statusCode, 200);
        assert.doesNotMatch(read.body, /hunter2|token-not-shown/);
      }
      const rows = await t.database.db.query<{ source: unknown; credentials: string }>(
        "SELECT source, credentials FROM file_references WHERE name IN ('sftp-ref', 'https-ref')",
      );
      for (const row of rows.rows) {
        assert.doesNotMatch(JSON.stringify(row.source), /hunter2|token-not-shown/);
        assert.match(row.credentials, /^hs1\./);
        assert.doesNotMatch(row.credentials, /hunter2|token-not-shown/);
      }

      // A PUT without the password, same host, port and user: the stored one stays.
      const kept = await t.request("PUT", `${REFERENCES}/${id}`, {
        name: "sftp-ref",
        source: { ...sftp, password: undefined, path: "/out/other.csv" },
      });
      assert.equal(kept.statusCode, 200, kept.body);
      assert.equal((kept.json() as { source: { passwordSet: boolean } }).source.passwordSet, true);
      const loaded = await loadFileReferenceSource(
        t.database.db,
        t.database.secrets,
        (await entityId(t)) as number,
        id,
      );
      assert.equal(loaded?.source.type === "SFTP" && loaded.source.password, "hunter2-not-shown");
      // Another host: the password is not carried over to it.
      const moved = await t.request("PUT", `${REFERENCES}/${id}`, {
        name: "sftp-ref",
        source: { ...sftp, password: undefined, host: "elsewhere.example.com" },
      });
      assert.equal(moved.statusCode, 400, moved.body);
      assert.equal((moved.json() as ErrorBody).details[0]?.path, "source.password");
      // A new private key replaces the password.
      const key = await t.request("PUT", `${REFERENCES}/${id}`, {
        name: "sftp-ref",
        source: { ...sftp, password: undefined, privateKey: PRIVATE_KEY },
      });
      assert.equal(key.statusCode, 200, key.body);
      assert.deepEqual(
        [
          (key.json() as { source: { passwordSet: boolean } }).source.passwordSet,
          (key.json() as { source: { privateKeySet: boolean } }).source.privateKeySet,
        ],
        [false, true],
      );
      assert.doesNotMatch(key.body, /PRIVATE KEY/);

      // HTTPS: headers left out are kept for the same origin, not sent to another one.
      const sameOrigin = await t.request("PUT", `${REFERENCES}/https-ref`, {
        name: "https-ref",
        source: { type: "HTTPS", url: "https://files.example.com/other.csv" },
      });
      assert.equal(sameOrigin.statusCode, 200, sameOrigin.body);
      const headerNames = (body: string) =>
        (JSON.parse(body) as { source: { headerNames: string[] } }).source.headerNames;
      assert.deepEqual(headerNames(sameOrigin.body), ["Authorization"]);
      const cleared = await t.request("PUT", `${REFERENCES}/https-ref`, {
        name: "https-ref",
        source: { type: "HTTPS", url: "https://files.example.com/x.csv", headers: {} },
      });
      assert.deepEqual(headerNames(cleared.body), [], '"headers": {} removes them');
      await t.request("PUT", `${REFERENCES}/https-ref`, {
        name: "https-ref",
        source: {
          type: "HTTPS",
          url: "https://files.example.com/x.csv",
          headers: { "X-Api-Key": "key-not-shown" },
        },
      });
      const otherOrigin = await t.request("PUT", `${REFERENCES}/https-ref`, {
        name: "https-ref",
        source: { type: "HTTPS", url: "https://elsewhere.example.com/other.csv" },
      });
      assert.equal(otherOrigin.statusCode, 200, otherOrigin.body);
      assert.deepEqual(headerNames(otherOrigin.body), [], "not carried to another origin");
    });

    test("bad input is a 400 naming the key, at definition time", async () => {
      const cases: [unknown, string][] = [
        [[], "name"],
        [{ source: { type: "DIRECTORY", path: "a.csv" } }, "name"],
        [{ name: "x" }, "source"],
        [{ name: "x", source: "https://x" }, "source"],
        [{ name: "x", source: { type: "FTP" } }, "source.type"],
        [{ name: "x", source: { type: "HTTPS", url: "not a url" } }, "source.url"],
        [{ name: "x", source: { type: "DIRECTORY", path: "../etc/passwd" } }, "source.path"],
        [{ name: "x", source: { type: "DIRECTORY", path: "/etc/passwd" } }, "source.path"],
        [{ name: "x", source: { ...sftp, hostKeySha256: "nope" } }, "source.hostKeySha256"],
        [
          {
            name: "x",
            source: { type: "DIRECTORY", path: "a.csv" },
            schedule: { cron: "61 * * * *" },
          },
          "schedule.cron",
        ],
        [
          {
            name: "x",
            source: { type: "DIRECTORY", path: "a.csv" },
            schedule: { cron: "0 2 * * *", timezone: "Mars/Olympus" },
          },
          "schedule.timezone",
        ],
        [
          { name: "x", source: { type: "DIRECTORY", path: "a.csv" }, timezone: "Nowhere" },
          "timezone",
        ],
      ];
      for (const [body, path] of cases) {
        const response = await t.request("POST", REFERENCES, body);
        assert.equal(response.statusCode, 400, `${JSON.stringify(body)}: ${response.body}`);
        const error = response.json() as ErrorBody;
        assert.equal(error.code, "HERALD_INVALID_FILE_REFERENCE", response.body);
        assert.ok(
          error.details.some((d) => d.path === path),
          `${JSON.stringify(body)} → ${response.body}`,
        );
      }
      // Where the operator allows no insecure target and set no drop directory.
      const strictCases: [unknown, string, RegExp][] = [
        [{ type: "HTTPS", url: "https://127.0.0.1/a.csv" }, "source.url", /loopback/],
        [{ type: "HTTPS", url: "https://localhost/a.csv" }, "source.url", /localhost/],
        [{ type: "HTTPS", url: "http://files.example.com/a.csv" }, "source.url", /https/],
        [{ ...sftp, host: "10.1.2.3" }, "source.host", /private/],
        [{ type: "DIRECTORY", path: "a.csv" }, "source", /HERALD_FILE_DROP_DIR/],
      ];
      for (const [source, path, reason] of strictCases) {
        const response = await strict.request("POST", REFERENCES, { name: "x", source });
        assert.equal(response.statusCode, 400, `${JSON.stringify(source)}: ${response.body}`);
        const error = response.json() as ErrorBody;
        assert.equal(error.code, "HERALD_INVALID_FILE_REFERENCE");
        const detail = error.details.find((d) => d.path === path);
        assert.ok(detail, response.body);
        assert.match(detail.message, reason);
      }
      const count = await t.database.db.query("SELECT 1 FROM file_references WHERE name = 'x'");
      assert.equal(count.rowCount, 0);
    });

    test("DIRECTORY end to end: SUCCESS, UNCHANGED without a second copy, the download, NOT_FOUND, ERROR", async () => {
      mkdirSync(join(t.dropDir, "in"), { recursive: true });
      const file = join(t.dropDir, "in", "customers.csv");
      const first = "customerId,emailAddress\nC1,c1@x.io\n";
      writeFileSync(file, first);
      const id = await t.createReference({
        name: "drop",
        source: { type: "DIRECTORY", path: "in/customers.csv" },
      });

      const response = await t.request("POST", `${REFERENCES}/${id}/synchronizations`);
      assert.equal(response.statusCode, 202, response.body);
      const syncId = (response.json() as { synchronizationId: string }).synchronizationId;
      assert.equal(response.headers.location, `${REFERENCES}/${id}/synchronizations/${syncId}`);
      const done = await t.synced(id, syncId);
      assert.equal(done.status, "SUCCESS", JSON.stringify(done));
      assert.equal(done.fileName, "customers.csv");
      assert.equal(done.bytes, Buffer.byteLength(first));
      assert.equal(done.sha256, sha256(first));
      assert.equal(done.error, null);
      assert.ok(done.startedAt && done.finishedAt);
      const download = await t.request(
        "GET",
        `${REFERENCES}/${id}/synchronizations/${syncId}/file`,
      );
      assert.equal(download.statusCode, 200);
      assert.equal(download.body, first);
      assert.match(String(download.headers["content-disposition"]), /filename="customers.csv"/);

      const filesBefore = await storedFiles(t);
      const again = await t.synced(id, await t.synchronize(id));
      assert.equal(again.status, "UNCHANGED", JSON.stringify(again));
      assert.equal(again.sha256, done.sha256);
      assert.equal(await storedFiles(t), filesBefore, "the duplicate copy was dropped");
      const unchangedDownload = await t.request(
        "GET",
        `${REFERENCES}/${id}/synchronizations/${again.id}/file`,
      );
      assert.equal(unchangedDownload.body, first);

      const second = first + "C2,c2@x.io\n";
      writeFileSync(file, second);
      const changed = await t.synced(id, await t.synchronize(id));
      assert.equal(changed.status, "SUCCESS");
      assert.equal(changed.sha256, sha256(second));

      unlinkSync(file);
      const missing = await t.synced(id, await t.synchronize(id));
      assert.equal(missing.status, "NOT_FOUND", JSON.stringify(missing));
      assert.match(missing.error?.message ?? "", /customers\.csv/);
      const noFile = await t.request(
        "GET",
        `${REFERENCES}/${id}/synchronizations/${missing.id}/file`,
      );
      assert.equal(noFile.statusCode, 404);
      assert.equal((noFile.json() as ErrorBody).code, "HERALD_SYNCHRONIZED_FILE_GONE");
      assert.match((noFile.json() as ErrorBody).message, /NOT_FOUND/);

      writeFileSync(file, Buffer.alloc(100 * 1024, "x"));
      const large = await t.synced(id, await t.synchronize(id));
      assert.equal(large.status, "ERROR", JSON.stringify(large));
      assert.equal(large.error?.code, "HERALD_FILE_SYNC_FAILED");
      assert.match(large.error?.message ?? "", /64 KiB.*HERALD_MAX_FILE_BYTES/);
      assert.equal(large.fileName, null);

      // A symbolic link out of the drop directory is refused at transfer time.
      const outside = mkdtempSync(join(tmpdir(), "herald-outside-"));
      try {
        writeFileSync(join(outside, "secret.csv"), "a,b\n");
        unlinkSync(file);
        symlinkSync(join(outside, "secret.csv"), file);
        const escaped = await t.synced(id, await t.synchronize(id));
        assert.equal(escaped.status, "ERROR", JSON.stringify(escaped));
        assert.ok(escaped.error?.message, JSON.stringify(escaped));
      } finally {
        rmSync(outside, { recursive: true, force: true });
        rmSync(file, { force: true });
      }

      const all = (await t.request("GET", `${REFERENCES}/${id}/synchronizations`)).json() as {
        synchronizations: { id: string }[];
        totalElements: number;
      };
      assert.equal(all.totalElements, 6);
      const ids = all.synchronizations.map((s) => Number(s.id));
      assert.deepEqual(
        ids,
        [...ids].sort((a, b) => b - a),
        "newest first",
      );
      assert.equal(ids.at(-1), Number(syncId));
      const page = (
        await t.request("GET", `${REFERENCES}/${id}/synchronizations?page=1&pageSize=2`)
      ).json() as { synchronizations: { id: string }[]; totalElements: number; page: number };
      assert.equal(page.page, 1);
      assert.equal(page.totalElements, 6);
      assert.deepEqual(
        page.synchronizations.map((s) => Number(s.id)),
        ids.slice(2, 4),
      );
      const errors = await t.request("GET", `${REFERENCES}/${id}/synchronizations?status=ERROR`);
      assert.equal((errors.json() as { totalElements: number }).totalElements, 2);
      const unknown = await t.request("GET", `${REFERENCES}/${id}/synchronizations/999999`);
      assert.equal(unknown.statusCode, 404);
      assert.equal((unknown.json() as ErrorBody).code, "HERALD_FILE_SYNCHRONIZATION_NOT_FOUND");
      const otherRef = await t.request("POST", `${REFERENCES}/424242/synchronizations`);
      assert.equal(otherRef.statusCode, 404);
    });

    test("a synchronisation whose worker died midway runs again and finishes once", async () => {
      writeFileSync(join(t.dropDir, "resumed.csv"), "a\n1\n");
      const id = await t.createReference({
        name: "resumed",
        source: { type: "DIRECTORY", path: "resumed.csv" },
      });
      const acme = await entityId(t);
      // As a dead worker leaves it: RUNNING, its lease expired, a partial file never completed.
      const { rows } = await t.database.db.query<{ id: number }>(
        `INSERT INTO file_synchronizations
           (entity_id, file_reference_id, status, lease_owner, lease_until, started_at, runs)
         VALUES ($1, $2, 'RUNNING', 'dead-worker', now() - interval '1 second', now(), 1)
         RETURNING id`,
        [acme, Number(id)],
      );
      const syncId = String(rows[0]!.id);
      t.syncWorker.wake();
      const done = await t.synced(id, syncId);
      assert.equal(done.status, "SUCCESS", JSON.stringify(done));
      const events = await t.database.db.query<{ event_type: string }>(
        "SELECT event_type FROM change_events WHERE source = 'FILE_SYNCHRONIZATION' AND record_key = $1",
        [syncId],
      );
      assert.deepEqual(
        events.rows.map((e) => e.event_type),
        ["FINISHED"],
        "no second STARTED for a resumed run",
      );
      const runs = await t.database.db.query<{ runs: number }>(
        "SELECT runs FROM file_synchronizations WHERE id = $1",
        [Number(syncId)],
      );
      assert.equal(runs.rows[0]?.runs, 2);
    });

    test("a reference an ETL or an export uses cannot be deleted (409 naming them); once free it goes with its synchronisations", async () => {
      assert.equal(
        (await t.request("POST", "/v5/entities/acme/profile-tables", CUSTOMERS)).statusCode,
        201,
      );
      writeFileSync(join(t.dropDir, "used.csv"), "customerId,emailAddress\n");
      const id = await t.createReference({
        name: "used",
        source: { type: "DIRECTORY", path: "used.csv" },
      });
      await t.synced(id, await t.synchronize(id));
      const etl = await t.request("POST", "/mass-imports/v5/entities/acme/etls", {
        name: "reads-used",
        target: { table: "Customers" },
        source: { fileReference: "used" },
      });
      assert.equal(etl.statusCode, 201, etl.body);
      const etlId = (etl.json() as { id: string }).id;
      const refused = await t.request("DELETE", `${REFERENCES}/${id}`);
      assert.equal(refused.statusCode, 409, refused.body);
      const error = refused.json() as ErrorBody;
      assert.equal(error.code, "HERALD_FILE_REFERENCE_IN_USE");
      assert.match(error.message, /ETL 'reads-used'/);
      const exported = await t.request("POST", "/v5/entities/acme/exports", {
        name: "writes-used",
        source: { tableType: "PROFILE_TABLE", table: "Customers" },
        fields: ["customerId"],
        mode: "FULL",
        format: { type: "CSV" },
        destination: { fileReference: id },
      });
      assert.equal(exported.statusCode, 201, exported.body);
      const exportId = (exported.json() as { id: string }).id;
      assert.equal(
        (await t.request("DELETE", `/mass-imports/v5/entities/acme/etls/${etlId}`)).statusCode,
        204,
      );
      const stillUsed = await t.request("DELETE", `${REFERENCES}/${id}`);
      assert.equal(stillUsed.statusCode, 409, stillUsed.body);
      assert.match((stillUsed.json() as ErrorBody).message, /export 'writes-used'/);
      assert.doesNotMatch((stillUsed.json() as ErrorBody).message, /reads-used/);
      assert.equal(
        (await t.request("DELETE", `/v5/entities/acme/exports/${exportId}`)).statusCode,
        204,
      );
      assert.equal((await t.request("DELETE", `${REFERENCES}/${id}`)).statusCode, 204);
      const left = await t.database.db.query(
        "SELECT 1 FROM file_synchronizations WHERE file_reference_id = $1",
        [Number(id)],
      );
      assert.equal(left.rowCount, 0);
    });
  });
}

async function entityId(t: TestApp): Promise<number> {
  const { rows } = await t.database.db.query<{ id: number }>(
    "SELECT id FROM entities WHERE name = 'acme'",
  );
  return Number(rows[0]!.id);
}

async function storedFiles(t: TestApp): Promise<number> {
  const { rows } = await t.database.db.query<{ n: number }>(
    "SELECT count(*)::integer AS n FROM stored_files",
  );
  return rows[0]!.n;
}

/** An unencrypted key in PEM (PKCS#8) form, made for the test and authorised nowhere. */
const PRIVATE_KEY = generateKeyPairSync("ed25519").privateKey.export({
  type: "pkcs8",
  format: "pem",
}) as string;
