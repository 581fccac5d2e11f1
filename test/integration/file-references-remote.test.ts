/**
 * File references on real servers through the API (SPEC §7.2), on both backends: an HTTPS server
 * on loopback with a certificate trusted for this test only, and OpenSSH's sshd (skipped, saying
 * why, where there is none). Each source: SUCCESS with its credentials used, NOT_FOUND, and ERROR
 * with a clear reason (a server error, a slow server, a host key that does not match its pin).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { FileSyncTestApp } from "../helpers/file-sync.js";
import { createFileSyncTestApp, REFERENCES } from "../helpers/file-sync.js";
import type { HttpsFileServer } from "../helpers/https-file-server.js";
import { startHttpsFileServer } from "../helpers/https-file-server.js";
import type { SftpTestServer } from "../helpers/sftp-server.js";
import { sshdUnavailable, startSftpServer } from "../helpers/sftp-server.js";
import { testBackends } from "../helpers/test-database.js";

const noSshd = sshdUnavailable();
const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");
const year = () => String(new Date().getUTCFullYear());

for (const { backend, skip } of await testBackends()) {
  describe(`HTTPS file references on ${backend}`, { skip }, () => {
    let server: HttpsFileServer;
    let t: FileSyncTestApp;
    before(async () => {
      server = await startHttpsFileServer();
      t = await createFileSyncTestApp(
        backend,
        { fileFetchTimeoutMs: 1_500 },
        { trustedCa: server.ca },
      );
    });
    after(async () => {
      await t?.close();
      await server?.stop();
    });

    test("SUCCESS with the write-only headers sent, NOT_FOUND on 404, ERROR on a server error and on a slow server", async () => {
      const content = "customerId,emailAddress\nH1,h1@x.io\n";
      mkdirSync(join(server.dir, "exports"), { recursive: true });
      writeFileSync(join(server.dir, "exports", `crm_${year()}.csv`), content);
      const id = await t.createReference({
        name: "https-crm",
        source: {
          type: "HTTPS",
          url: `${server.url}/exports/crm_$yyyy.csv?token=query-not-shown`,
          headers: { Authorization: "Bearer header-not-shown" },
        },
        timezone: "UTC",
      });
      const done = await t.synced(id, await t.synchronize(id));
      assert.equal(done.status, "SUCCESS", JSON.stringify(done));
      assert.equal(done.sha256, sha256(content));
      assert.equal(done.bytes, content.length);
      const request = server.requests.find((r) => r.path.startsWith(`/exports/crm_${year()}`));
      assert.equal(request?.headers.authorization, "Bearer header-not-shown");
      const download = await t.request(
        "GET",
        `${REFERENCES}/${id}/synchronizations/${done.id}/file`,
      );
      assert.equal(download.body, content);

      const missing = await t.createReference({
        name: "https-missing",
        source: { type: "HTTPS", url: `${server.url}/exports/none.csv?token=query-not-shown` },
      });
      const notFound = await t.synced(missing, await t.synchronize(missing));
      assert.equal(notFound.status, "NOT_FOUND", JSON.stringify(notFound));
      assert.match(notFound.error?.message ?? "", /none\.csv/);
      assert.doesNotMatch(notFound.error?.message ?? "", /query-not-shown/);

      server.route("/broken.csv", (_request, response) => {
        response.writeHead(500).end("boom");
      });
      const broken = await t.createReference({
        name: "https-broken",
        source: { type: "HTTPS", url: `${server.url}/broken.csv` },
      });
      const failed = await t.synced(broken, await t.synchronize(broken));
      assert.equal(failed.status, "ERROR", JSON.stringify(failed));
      assert.equal(failed.error?.code, "HERALD_FILE_SYNC_FAILED");
      assert.match(failed.error?.message ?? "", /500/);

      server.route("/slow.csv", (_request, response) => {
        response.writeHead(200, { "content-length": "1000" });
        response.write("a,b\n"); // and nothing more
      });
      const slow = await t.createReference({
        name: "https-slow",
        source: { type: "HTTPS", url: `${server.url}/slow.csv` },
      });
      const started = Date.now();
      const timedOut = await t.synced(slow, await t.synchronize(slow), 20_000);
      assert.equal(timedOut.status, "ERROR", JSON.stringify(timedOut));
      assert.match(timedOut.error?.message ?? "", /1500 ms|1\.5 s|time/i);
      assert.ok(Date.now() - started < 15_000, "ended by the timeout, not hanging");
      const partial = await t.request(
        "GET",
        `${REFERENCES}/${slow}/synchronizations/${timedOut.id}/file`,
      );
      assert.equal(partial.statusCode, 404, "no partial file presented");
    });
  });

  describe(`SFTP file references on ${backend}`, { skip: skip || noSshd }, () => {
    let server: SftpTestServer;
    let t: FileSyncTestApp;
    before(async () => {
      server = await startSftpServer();
      t = await createFileSyncTestApp(backend);
    });
    after(async () => {
      await t?.close();
      await server?.stop();
    });

    test("SUCCESS with a private key and a pinned host key, NOT_FOUND, ERROR on a host key that is not the pinned one", async () => {
      const content = "customerId,emailAddress\nS1,s1@x.io\n";
      writeFileSync(join(server.dir, "crm.csv"), content);
      const source = server.source(`${server.dir}/crm.csv`);
      const created = await t.request("POST", REFERENCES, { name: "sftp-crm", source });
      assert.equal(created.statusCode, 201, created.body);
      assert.doesNotMatch(created.body, /PRIVATE KEY/);
      const id = (created.json() as { id: string }).id;
      const done = await t.synced(id, await t.synchronize(id));
      assert.equal(done.status, "SUCCESS", `${JSON.stringify(done)}\n${server.log()}`);
      assert.equal(done.sha256, sha256(content));
      assert.equal(done.fileName, "crm.csv");
      const again = await t.synced(id, await t.synchronize(id));
      assert.equal(again.status, "UNCHANGED");

      const missing = await t.createReference({
        name: "sftp-missing",
        source: server.source(`${server.dir}/absent.csv`),
      });
      const notFound = await t.synced(missing, await t.synchronize(missing));
      assert.equal(notFound.status, "NOT_FOUND", JSON.stringify(notFound));

      const pinnedElsewhere = await t.createReference({
        name: "sftp-wrong-pin",
        source: server.source(`${server.dir}/crm.csv`, {
          hostKeySha256: "SHA256:" + "B".repeat(43),
        }),
      });
      const refused = await t.synced(pinnedElsewhere, await t.synchronize(pinnedElsewhere));
      assert.equal(refused.status, "ERROR", JSON.stringify(refused));
      assert.match(refused.error?.message ?? "", /host key/i);
      assert.equal(refused.fileName, null);
    });
  });
}
