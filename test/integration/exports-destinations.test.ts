/**
 * Exports' destinations, schedules and job rules (SPEC §7.3, DESIGN §6b) on both backends: a
 * DIRECTORY reference (and an SFTP one, against Debian's sshd, where it can run) receives a copy;
 * a failed copy ends ERROR with the reason and offers no file; a schedule's due time starts one
 * execution; nothing is downloadable before SUCCESS; an execution interrupted midway runs again
 * from the start and leaves no partial file.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { destinationCopier, exportScheduleHandler } from "../../src/jobs/export-worker.js";
import { startExportWorker } from "../../src/jobs/export-worker.js";
import { createLogger } from "../../src/logger.js";
import { claimExportExecution } from "../../src/storage/export-repository.js";
import type { SftpTestServer } from "../helpers/sftp-server.js";
import { sshdUnavailable, startSftpServer } from "../helpers/sftp-server.js";
import { testBackends } from "../helpers/test-database.js";
import type { ExportExecution, ExportTestApp } from "./exports-harness.js";
import { createExportTestApp, CUSTOMERS, EXPORTS } from "./exports-harness.js";

const REFERENCES = "/v5/entities/acme/file-references";
const noSshd = sshdUnavailable();

for (const { backend, skip } of await testBackends()) {
  describe(`export destinations, schedules and reruns on ${backend}`, { skip }, () => {
    let t: ExportTestApp;
    let idle: ExportTestApp;
    let dropDir: string;
    let sftp: SftpTestServer | undefined;
    before(async () => {
      dropDir = mkdtempSync(join(tmpdir(), "herald-export-drop-"));
      mkdirSync(join(dropDir, "out"));
      const config = { fileDropDir: dropDir };
      // The worker copies as main's does: through the references' opened credentials.
      t = await createExportTestApp(backend, { config, worker: false });
      t.worker = await startExportWorker({
        db: t.database.db,
        logSignals: t.database.logSignals,
        jobSignals: t.database.jobSignals,
        logger: createLogger("silent"),
        config: t.config,
        copy: destinationCopier(t.database.db, t.database.secrets, t.config),
        pollMs: 50,
        leaseMs: 5_000,
      });
      const table = await t.request("POST", "/v5/entities/acme/profile-tables", CUSTOMERS);
      assert.equal(table.statusCode, 201, table.body);
      for (let i = 1; i <= 3; i++)
        await t.profile({ key: { customerId: `C${i}` }, attributes: { firstName: `N${i}` } });
      idle = await createExportTestApp(backend, { worker: false });
      assert.equal(
        (await idle.request("POST", "/v5/entities/acme/profile-tables", CUSTOMERS)).statusCode,
        201,
      );
      if (!noSshd) sftp = await startSftpServer();
    });
    after(async () => {
      await t?.worker?.stop();
      await t?.close();
      await idle?.close();
      await sftp?.stop();
      rmSync(dropDir, { recursive: true, force: true });
    });

    const base = {
      source: { table: "Customers" },
      fields: ["customerId", "firstName"],
    };
    const reference = async (name: string, source: Record<string, unknown>) => {
      const response = await t.request("POST", REFERENCES, { name, source });
      assert.equal(response.statusCode, 201, response.body);
      return (response.json() as { id: string }).id;
    };

    test("a DIRECTORY reference receives a copy of the file", async () => {
      const ref = await reference("drop-out", { type: "DIRECTORY", path: "out/" });
      const id = await t.define({ ...base, name: "to-dir", destination: { fileReference: ref } });
      const execution = await t.run(id);
      assert.equal(execution.status, "SUCCESS", JSON.stringify(execution));
      const file = await t.download(execution);
      const name = /filename="([^"]+)"/.exec(file.disposition)![1]!;
      const copied = readFileSync(join(dropDir, "out", name));
      assert.deepEqual(copied, file.body);
      assert.ok(execution.destination?.includes(`out/${name}`), String(execution.destination));
    });

    test("a destination that is an HTTPS reference is refused at definition time", async () => {
      const ref = await reference("web", { type: "HTTPS", url: "https://files.example.com/a.csv" });
      const response = await t.request("POST", EXPORTS, {
        ...base,
        name: "to-web",
        destination: { fileReference: ref },
      });
      assert.equal(response.statusCode, 400, response.body);
      assert.equal((response.json() as { code: string }).code, "HERALD_INVALID_EXPORT_DEFINITION");
    });

    test("a failed copy ends ERROR with the reason, and no file is offered", async () => {
      const ref = await reference("nowhere", { type: "DIRECTORY", path: "missing/dir/" });
      const id = await t.define({
        ...base,
        name: "to-nowhere",
        destination: { fileReference: ref },
      });
      const execution = await t.run(id);
      assert.equal(execution.status, "ERROR", JSON.stringify(execution));
      assert.equal(execution.error?.code, "HERALD_EXPORT_COPY_FAILED");
      assert.match(execution.error!.message, /copy to file reference/);
      assert.equal(execution._links.file, undefined);
      const download = await t.request("GET", `${execution._links.self.href}/file`);
      assert.equal(download.statusCode, 409, download.body);
      assert.equal((download.json() as { code: string }).code, "HERALD_EXPORT_FILE_NOT_READY");
      const { rows } = await t.database.db.query<{ state: Record<string, string>; extra: object }>(
        "SELECT state, extra FROM change_events WHERE source = 'EXPORT' AND record_key = $1",
        [execution.id],
      );
      assert.equal(rows[0]!.state["export.executionStatus"], "ERROR");
      assert.deepEqual(Object.keys((rows[0]!.extra as { _links: object })._links), [
        "exportExecution",
      ]);
      const files = await t.database.db.query(
        "SELECT 1 FROM stored_files WHERE name LIKE 'to-nowhere-%'",
      );
      assert.equal(files.rowCount, 0, "the ERROR execution's file is deleted");
    });

    test("an SFTP reference receives a copy", { skip: noSshd ?? false }, async () => {
      const server = sftp!;
      const source = server.source(`${server.dir}/`);
      const ref = await reference("sftp-out", { ...source, type: "SFTP" });
      const id = await t.define({
        ...base,
        name: "to-sftp",
        format: { compression: "GZIP" },
        destination: { fileReference: ref },
      });
      const execution = await t.run(id);
      assert.equal(execution.status, "SUCCESS", JSON.stringify(execution));
      const file = await t.download(execution);
      const name = /filename="([^"]+)"/.exec(file.disposition)![1]!;
      assert.deepEqual(readFileSync(join(server.dir, name)), file.body);
    });

    test("a due schedule starts one execution; nextRunAt is shown", async () => {
      const created = await t.request("POST", EXPORTS, {
        ...base,
        name: "nightly",
        schedule: { cron: "0 2 * * *", timezone: "Europe/Brussels" },
      });
      assert.equal(created.statusCode, 201, created.body);
      const exp = created.json() as { id: string; nextRunAt: string; schedule: object };
      assert.deepEqual(exp.schedule, { cron: "0 2 * * *", timezone: "Europe/Brussels" });
      assert.ok(new Date(exp.nextRunAt).getTime() > Date.now());
      const { rows } = await t.database.db.query<{ entity_id: number }>(
        "SELECT entity_id FROM exports WHERE id = $1",
        [exp.id],
      );
      await t.database.db.transaction((tx) =>
        exportScheduleHandler(tx, {
          kind: "EXPORT",
          ownerId: exp.id,
          entityId: rows[0]!.entity_id,
          dueAt: new Date(),
        }),
      );
      const list = (await t.request("GET", `${EXPORTS}/${exp.id}/executions`)).json() as {
        executions: ExportExecution[];
      };
      assert.equal(list.executions.length, 1);
      const done = await t.finished(exp.id, list.executions[0]!.id);
      assert.equal(done.status, "SUCCESS", JSON.stringify(done));
      // Without a schedule, nothing stays due.
      const put = await t.request("PUT", `${EXPORTS}/${exp.id}`, { ...base, name: "nightly" });
      assert.equal(put.statusCode, 200, put.body);
      assert.equal((put.json() as { nextRunAt?: string }).nextRunAt, undefined);
      const due = await t.database.db.query(
        "SELECT 1 FROM schedules WHERE kind = 'EXPORT' AND owner_id = $1",
        [exp.id],
      );
      assert.equal(due.rowCount, 0);
    });

    test("nothing is downloadable before SUCCESS", async () => {
      const id = (
        (await idle.request("POST", EXPORTS, { ...base, name: "pending" })).json() as {
          id: string;
        }
      ).id;
      const started = await idle.request("POST", `${EXPORTS}/${id}/executions`);
      assert.equal(started.statusCode, 202, started.body);
      const href = started.headers.location as string;
      const execution = (await idle.request("GET", href)).json() as ExportExecution;
      assert.equal(execution.status, "PENDING");
      assert.equal(execution._links.file, undefined);
      const download = await idle.request("GET", `${href}/file`);
      assert.equal(download.statusCode, 409, download.body);
      assert.match((download.json() as { message: string }).message, /PENDING/);
    });

    test("a file over HERALD_MAX_FILE_BYTES ends ERROR in every compression, and leaves nothing", async () => {
      const small = await createExportTestApp(backend, {
        config: { maxFileBytes: 3_000 },
        batchRows: 10,
      });
      try {
        assert.equal(
          (await small.request("POST", "/v5/entities/acme/profile-tables", CUSTOMERS)).statusCode,
          201,
        );
        for (let i = 0; i < 300; i++)
          await small.profile({
            key: { customerId: `S${i}` },
            // Random text: compressed, the file is still past the limit.
            attributes: { firstName: randomBytes(32).toString("hex") },
          });
        for (const compression of ["NONE", "GZIP", "ZIP"]) {
          const id = await small.define({
            ...base,
            name: `too-big-${compression}`,
            format: { type: "NDJSON", compression },
          });
          const execution = await small.run(id);
          assert.equal(execution.status, "ERROR", JSON.stringify(execution));
          assert.equal(execution.error?.code, "HERALD_EXPORT_FAILED");
          assert.match(execution.error!.message, /exceeds 3000 bytes \(HERALD_MAX_FILE_BYTES\)/);
        }
        const files = await small.database.db.query("SELECT 1 FROM stored_files");
        assert.equal(files.rowCount, 0);
        // The connections are sound afterwards: a small export still runs.
        const ok = await small.run(
          await small.define({
            ...base,
            name: "fits",
            filter: { conditions: [{ attribute: "customerId", operator: "=", value: "S1" }] },
          }),
        );
        assert.equal(ok.status, "SUCCESS", JSON.stringify(ok));
        assert.equal(ok.rowCount, 1);
      } finally {
        await small.close();
      }
    });

    test("an execution whose worker died runs again from the start, with no partial file left", async () => {
      const db = idle.database.db;
      for (let i = 0; i < 200; i++)
        await idle.profile({ key: { customerId: `R${i}` }, attributes: { firstName: `R${i}` } });
      const id = (
        (await idle.request("POST", EXPORTS, { ...base, name: "rerun" })).json() as { id: string }
      ).id;
      const started = await idle.request("POST", `${EXPORTS}/${id}/executions`);
      const executionId = (started.json() as { executionId: string }).executionId;
      // A worker claims it and dies at once: its lease lapses.
      // (The earlier test's PENDING execution is claimed first: it is older.)
      let claimed = await claimExportExecution(db, "dead-worker", 1);
      while (claimed && claimed.id !== executionId)
        claimed = await claimExportExecution(db, "dead-worker", 1);
      assert.equal(claimed?.id, executionId);
      // A worker that stops midway hands its run back: the snapshot's transaction rolls back.
      const stopping = await startExportWorker({
        db,
        logSignals: idle.database.logSignals,
        jobSignals: idle.database.jobSignals,
        logger: createLogger("silent"),
        config: idle.config,
        pollMs: 20,
        leaseMs: 5_000,
        batchRows: 1,
      });
      await new Promise((resolve) => setTimeout(resolve, 60));
      await stopping.stop();
      const worker = await startExportWorker({
        db,
        logSignals: idle.database.logSignals,
        jobSignals: idle.database.jobSignals,
        logger: createLogger("silent"),
        config: idle.config,
        pollMs: 20,
        leaseMs: 5_000,
      });
      try {
        const done = await idle.finished(id, executionId);
        assert.equal(done.status, "SUCCESS", JSON.stringify(done));
        assert.equal(done.rowCount, 200);
        const { rows } = await db.query<{ runs: number }>(
          "SELECT runs FROM export_executions WHERE id = $1",
          [executionId],
        );
        assert.ok(rows[0]!.runs >= 2, `runs ${rows[0]!.runs}`);
        const files = await db.query("SELECT 1 FROM stored_files WHERE name LIKE 'rerun-%'");
        assert.equal(files.rowCount, 1, "one file: the complete one");
      } finally {
        await worker.stop();
      }
    });
  });
}
