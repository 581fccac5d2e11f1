/**
 * ETLs that read a file reference (SPEC §7.1 `source` and `launch`) on both backends: ON_FILE runs
 * once per new file and never for UNCHANGED, SCHEDULED runs at each due time on the file its
 * reference brings then, trigger-execution without a body imports the reference's latest file, and
 * bad definitions are refused before anything is stored.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { etlScheduleHandler, fileSyncScheduleHandler } from "../../src/jobs/etl-launch.js";
import type { Scheduler } from "../../src/jobs/scheduler.js";
import { startScheduler } from "../../src/jobs/scheduler.js";
import { createLogger } from "../../src/logger.js";
import type { FileSyncTestApp } from "../helpers/file-sync.js";
import { createFileSyncTestApp, REFERENCES } from "../helpers/file-sync.js";
import type { Execution } from "../helpers/imports.js";
import { CUSTOMERS } from "../helpers/imports.js";
import { testBackends } from "../helpers/test-database.js";

const ETLS = "/mass-imports/v5/entities/acme/etls";
const EXECUTIONS = "/mass-imports/v5/entities/acme/etl-executions";

interface ErrorBody {
  code: string;
  message: string;
  details: { path: string; message: string }[];
}

for (const { backend, skip } of await testBackends()) {
  describe(`ETL launch on ${backend}`, { skip }, () => {
    let t: FileSyncTestApp;
    let scheduler: Scheduler;
    let clock = new Date();
    before(async () => {
      t = await createFileSyncTestApp(backend);
      assert.equal(
        (await t.request("POST", "/v5/entities/acme/profile-tables", CUSTOMERS)).statusCode,
        201,
      );
      scheduler = await startScheduler({
        db: t.database.db,
        jobSignals: t.database.jobSignals,
        logger: createLogger("silent"),
        handlers: { FILE_SYNCHRONIZATION: fileSyncScheduleHandler, ETL: etlScheduleHandler },
        now: () => clock,
        pollMs: 3_600_000,
      });
    });
    after(async () => {
      await scheduler?.stop();
      await t?.close();
    });

    const definition = (name: string, reference: string, launch?: unknown) => ({
      name,
      target: { tableType: "PROFILE_TABLE", table: "Customers" },
      keyAttribute: "customerId",
      source: { fileReference: reference },
      ...(launch === undefined ? {} : { launch }),
    });

    const executionsOf = async (etlId: string) => {
      const response = await t.request("GET", `${EXECUTIONS}?etlId=${etlId}`);
      return (response.json() as { etlExecutions: Execution[] }).etlExecutions;
    };

    test("ON_FILE runs once per new file, in the commit that finishes the synchronisation; never for UNCHANGED", async () => {
      const file = join(t.dropDir, "on-file.csv");
      writeFileSync(file, "customerId,emailAddress\nOF1,of1@x.io\n");
      const reference = await t.createReference({
        name: "on-file",
        source: { type: "DIRECTORY", path: "on-file.csv" },
      });
      const created = await t.request(
        "POST",
        ETLS,
        definition("on-file-etl", "on-file", { type: "ON_FILE" }),
      );
      assert.equal(created.statusCode, 201, created.body);
      const etl = created.json() as {
        id: string;
        definition: { source: unknown; launch: unknown };
      };
      assert.deepEqual(etl.definition.source, { fileReference: reference }, "stored by id");
      assert.deepEqual(etl.definition.launch, { type: "ON_FILE" });
      // A MANUAL ETL on the same reference is not started by its files.
      const manual = await t.request("POST", ETLS, definition("manual-etl", reference));
      assert.equal(manual.statusCode, 201, manual.body);
      const manualId = (manual.json() as { id: string }).id;

      const first = await t.synced(reference, await t.synchronize(reference));
      assert.equal(first.status, "SUCCESS");
      // No wait: the execution was committed with the synchronisation's final status.
      const afterFirst = await executionsOf(etl.id);
      assert.equal(afterFirst.length, 1);
      const run = await t.finished(afterFirst[0]!.id);
      assert.equal(run.status, "SUCCESS", JSON.stringify(run));
      assert.equal(run.counts.created, 1);
      assert.equal(run.file.sha256, first.sha256);
      assert.equal(run.file.name, "on-file.csv");

      const unchanged = await t.synced(reference, await t.synchronize(reference));
      assert.equal(unchanged.status, "UNCHANGED");
      assert.equal((await executionsOf(etl.id)).length, 1, "no run for an unchanged file");

      writeFileSync(file, "customerId,emailAddress\nOF1,of1@x.io\nOF2,of2@x.io\n");
      const second = await t.synced(reference, await t.synchronize(reference));
      assert.equal(second.status, "SUCCESS");
      const afterSecond = await executionsOf(etl.id);
      assert.equal(afterSecond.length, 2);
      const run2 = await t.finished(afterSecond[0]!.id);
      assert.deepEqual(run2.counts, { read: 2, created: 1, updated: 0, unchanged: 1, rejected: 0 });
      assert.equal((await executionsOf(manualId)).length, 0);

      // Two synchronisations of one new file running side by side: one is new, the other UNCHANGED.
      writeFileSync(file, "customerId,emailAddress\nOF3,of3@x.io\n");
      const [a, b] = await Promise.all([t.synchronize(reference), t.synchronize(reference)]);
      const statuses = (await Promise.all([t.synced(reference, a), t.synced(reference, b)]))
        .map((s) => s.status)
        .sort();
      assert.deepEqual(statuses, ["SUCCESS", "UNCHANGED"]);
      assert.equal((await executionsOf(etl.id)).length, 3, "one run for that file");

      // ETL events name the ETL; the execution says which synchronisation started it.
      const origin = await t.database.db.query<{ origin: Record<string, string> }>(
        "SELECT origin FROM etl_executions WHERE id = $1",
        [Number(run2.id)],
      );
      assert.deepEqual(origin.rows[0]?.origin, {
        kind: "SYSTEM",
        trigger: "ON_FILE",
        fileReferenceId: reference,
        fileSynchronizationId: second.id,
      });
    });

    test("trigger-execution without a body imports the reference's latest file; 400 when there is none", async () => {
      writeFileSync(join(t.dropDir, "manual.csv"), "customerId,emailAddress\nMA1,ma1@x.io\n");
      const reference = await t.createReference({
        name: "manual",
        source: { type: "DIRECTORY", path: "manual.csv" },
      });
      const etl = (await t.request("POST", ETLS, definition("manual-latest", "manual"))).json() as {
        id: string;
      };
      const early = await t.request("POST", `${ETLS}/${etl.id}/trigger-execution`);
      assert.equal(early.statusCode, 400, early.body);
      const error = early.json() as ErrorBody;
      assert.equal(error.code, "HERALD_NO_SYNCHRONIZED_FILE");
      assert.match(error.message, /synchronizations first/);

      const synced = await t.synced(reference, await t.synchronize(reference));
      const started = await t.request("POST", `${ETLS}/${etl.id}/trigger-execution`);
      assert.equal(started.statusCode, 202, started.body);
      assert.match(String(started.headers.location), /\/etl-executions\/\d+$/);
      const run = await t.finished((started.json() as { executionId: string }).executionId);
      assert.equal(run.status, "SUCCESS", JSON.stringify(run));
      assert.equal(run.etlId, etl.id);
      assert.equal(run.file.sha256, synced.sha256);
      // An upload still works for such an ETL.
      const uploaded = await t.upload(
        [
          {
            name: "inputFile",
            filename: "u.csv",
            content: "customerId,emailAddress\nMA2,ma2@x.io\n",
          },
        ],
        `${ETLS}/${etl.id}/trigger-execution`,
      );
      assert.equal(uploaded.statusCode, 202, uploaded.body);
      // An ETL without a file reference still needs an upload.
      const plain = (
        await t.request("POST", ETLS, { ...definition("plain", "manual"), source: undefined })
      ).json() as { id: string };
      const refused = await t.request("POST", `${ETLS}/${plain.id}/trigger-execution`);
      assert.equal(refused.statusCode, 415, refused.body);
    });

    test("SCHEDULED runs at each due time on the file its reference brings then (UNCHANGED included)", async () => {
      writeFileSync(join(t.dropDir, "scheduled.csv"), "customerId,emailAddress\nSC1,sc1@x.io\n");
      const reference = await t.createReference({
        name: "scheduled",
        source: { type: "DIRECTORY", path: "scheduled.csv" },
      });
      const created = await t.request(
        "POST",
        ETLS,
        definition("scheduled-etl", "scheduled", {
          type: "SCHEDULED",
          cron: "0 3 * * *",
          timezone: "Europe/Brussels",
        }),
      );
      assert.equal(created.statusCode, 201, created.body);
      const etl = created.json() as { id: string; definition: { launch: unknown } };
      assert.deepEqual(etl.definition.launch, {
        type: "SCHEDULED",
        cron: "0 3 * * *",
        timezone: "Europe/Brussels",
      });
      const { rows } = await t.database.db.query<{ next_due_at: Date }>(
        "SELECT next_due_at FROM schedules WHERE kind = 'ETL' AND owner_id = $1",
        [etl.id],
      );
      const due = rows[0]!.next_due_at;
      const shown = (await t.request("GET", `${ETLS}/${etl.id}`)).json() as { nextRunAt: string };
      assert.equal(shown.nextRunAt, due.toISOString(), "the ETL answers its next due time");

      const runAt = async (at: Date) => {
        clock = at;
        assert.equal(await scheduler.runDue(), 1);
        const syncs = (
          await t.request("GET", `${REFERENCES}/${reference}/synchronizations`)
        ).json() as { synchronizations: { id: string }[] };
        return t.synced(reference, syncs.synchronizations[0]!.id);
      };
      const first = await runAt(new Date(due.getTime() + 1_000));
      assert.equal(first.status, "SUCCESS");
      const runs = await executionsOf(etl.id);
      assert.equal(runs.length, 1);
      assert.equal((await t.finished(runs[0]!.id)).status, "SUCCESS");

      const second = await runAt(new Date(due.getTime() + 24 * 3_600_000 + 1_000));
      assert.equal(second.status, "UNCHANGED");
      assert.equal((await executionsOf(etl.id)).length, 2, "a schedule is a promise to run");

      // Back to MANUAL: the schedule goes; deleting the ETL removes nothing else.
      const manual = await t.request(
        "PUT",
        `${ETLS}/${etl.id}`,
        definition("scheduled-etl", reference),
      );
      assert.equal(manual.statusCode, 200, manual.body);
      assert.equal((manual.json() as { nextRunAt: unknown }).nextRunAt, null);
      const left = await t.database.db.query(
        "SELECT 1 FROM schedules WHERE kind = 'ETL' AND owner_id = $1",
        [etl.id],
      );
      assert.equal(left.rowCount, 0);
    });

    test("bad source or launch: a 4xx naming the key, nothing stored", async () => {
      await t.createReference({ name: "for-bad", source: { type: "DIRECTORY", path: "b.csv" } });
      const cases: [unknown, number, string, string][] = [
        [
          definition("b1", "no-such-reference"),
          404,
          "HERALD_FILE_REFERENCE_NOT_FOUND",
          "source.fileReference",
        ],
        [
          { ...definition("b2", "for-bad"), source: "for-bad" },
          400,
          "HERALD_INVALID_ETL_DEFINITION",
          "source",
        ],
        [
          { ...definition("b3", "for-bad"), source: {} },
          400,
          "HERALD_INVALID_ETL_DEFINITION",
          "source.fileReference",
        ],
        [
          { ...definition("b4", "for-bad"), source: undefined, launch: { type: "ON_FILE" } },
          400,
          "HERALD_INVALID_ETL_DEFINITION",
          "source.fileReference",
        ],
        [
          {
            ...definition("b5", "for-bad"),
            source: undefined,
            launch: { type: "SCHEDULED", cron: "0 2 * * *" },
          },
          400,
          "HERALD_INVALID_ETL_DEFINITION",
          "source.fileReference",
        ],
        [
          definition("b6", "for-bad", { type: "SCHEDULED", cron: "0 25 * * *" }),
          400,
          "HERALD_INVALID_ETL_DEFINITION",
          "launch.cron",
        ],
        [
          definition("b7", "for-bad", { type: "SCHEDULED" }),
          400,
          "HERALD_INVALID_ETL_DEFINITION",
          "launch.cron",
        ],
        [
          definition("b8", "for-bad", {
            type: "SCHEDULED",
            cron: "0 2 * * *",
            timezone: "Moon/Base",
          }),
          400,
          "HERALD_INVALID_ETL_DEFINITION",
          "launch.timezone",
        ],
        [
          definition("b9", "for-bad", { type: "WHENEVER" }),
          400,
          "HERALD_INVALID_ETL_DEFINITION",
          "launch.type",
        ],
        [definition("b10", "for-bad", "ON_FILE"), 400, "HERALD_INVALID_ETL_DEFINITION", "launch"],
      ];
      for (const [body, status, code, path] of cases) {
        const response = await t.request("POST", ETLS, body);
        assert.equal(response.statusCode, status, `${JSON.stringify(body)}: ${response.body}`);
        const error = response.json() as ErrorBody;
        assert.equal(error.code, code, response.body);
        assert.ok(
          error.details.some((d) => d.path === path),
          `${JSON.stringify(body)} → ${response.body}`,
        );
      }
      const stored = await t.database.db.query("SELECT 1 FROM etls WHERE name LIKE 'b%'");
      assert.equal(stored.rowCount, 0);
      const schedules = await t.database.db.query("SELECT 1 FROM schedules WHERE kind = 'ETL'");
      assert.equal(schedules.rowCount, 0);
    });
  });
}
