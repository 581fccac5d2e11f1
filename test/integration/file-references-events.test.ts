/**
 * File synchronisations as trigger sources and on a schedule (SPEC §7.2, §7 "Schedules") on both
 * backends: STARTED and FINISHED in the change log with §7.2's payload, subscriptions on
 * FILE_SYNCHRONIZATION (with and without onElementId) receiving them, and a scheduled
 * synchronisation started by the scheduler on a test clock, its date placeholders expanded at the
 * due time in the reference's zone.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { matchesSubscription } from "../../src/domain/subscription-matching.js";
import { expandDatePlaceholders } from "../../src/domain/file-source.js";
import { etlScheduleHandler, fileSyncScheduleHandler } from "../../src/jobs/etl-launch.js";
import type { Scheduler } from "../../src/jobs/scheduler.js";
import { startScheduler } from "../../src/jobs/scheduler.js";
import { createLogger } from "../../src/logger.js";
import { readLog } from "../../src/storage/change-event-repository.js";
import { stampPendingEvents } from "../../src/storage/sequencer-repository.js";
import type { FileSyncTestApp, SynchronizationJson } from "../helpers/file-sync.js";
import { createFileSyncTestApp, REFERENCES } from "../helpers/file-sync.js";
import { testBackends } from "../helpers/test-database.js";

for (const { backend, skip } of await testBackends()) {
  describe(`file synchronisation events and schedules on ${backend}`, { skip }, () => {
    let t: FileSyncTestApp;
    let scheduler: Scheduler;
    let clock = new Date();
    before(async () => {
      t = await createFileSyncTestApp(backend);
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

    test("STARTED and FINISHED reach the change log with §7.2's payload; subscriptions on FILE_SYNCHRONIZATION match them", async () => {
      writeFileSync(join(t.dropDir, "events.csv"), "a,b\n1,2\n");
      const id = await t.createReference({
        name: "watched",
        source: { type: "DIRECTORY", path: "events.csv" },
      });
      const other = await t.createReference({
        name: "unwatched",
        source: { type: "DIRECTORY", path: "events.csv" },
      });
      const subscribe = async (body: Record<string, unknown>) => {
        const response = await t.request("POST", "/v4/entity/acme/webhookSubscription", {
          on: "FILE_SYNCHRONIZATION",
          targetUrl: "http://127.0.0.1:9/hook",
          ...body,
        });
        assert.equal(response.statusCode, 201, response.body);
        return response.json() as { onElementId: string | null; eventType: string };
      };
      const byName = await subscribe({ onElementId: "watched", eventType: "FINISHED" });
      assert.equal(byName.onElementId, id, "a reference named by its name is stored by id");
      const every = await subscribe({ eventType: "STARTED" });
      assert.equal(every.onElementId, null);
      const unknown = await t.request("POST", "/v4/entity/acme/webhookSubscription", {
        on: "FILE_SYNCHRONIZATION",
        onElementId: "424242",
        eventType: "FINISHED",
        targetUrl: "http://127.0.0.1:9/hook",
      });
      assert.equal(unknown.statusCode, 404);
      assert.equal((unknown.json() as { code: string }).code, "HERALD_FILE_REFERENCE_NOT_FOUND");

      await stampPendingEvents(t.database.db);
      const head = await logHead(t);
      const done = await t.synced(id, await t.synchronize(id));
      const otherDone = await t.synced(other, await t.synchronize(other));
      assert.equal(done.status, "SUCCESS");
      await stampPendingEvents(t.database.db);

      const page = await t.request(
        "GET",
        `/v5/entities/acme/change-events?after=${head}&on=FILE_SYNCHRONIZATION&onElementId=${id}`,
      );
      assert.equal(page.statusCode, 200, page.body);
      const events = (page.json() as { events: Record<string, unknown>[] }).events;
      assert.deepEqual(
        events.map((e) => (e._event as { type: string }).type),
        ["STARTED", "FINISHED"],
      );
      const [started, finished] = events as [Record<string, unknown>, Record<string, unknown>];
      const syncHref = `${REFERENCES}/${id}/synchronizations/${done.id}`;
      const payload = (e: Record<string, unknown>) =>
        Object.fromEntries(Object.entries(e).filter(([key]) => !key.startsWith("_")));
      assert.deepEqual(payload(started), {
        "fileSynchronization.id": done.id,
        "fileSynchronization.fileReferenceId": id,
        "fileSynchronization.status": "RUNNING",
        "fileSynchronization.fileName": "",
        "fileSynchronization.bytes": "",
        "fileSynchronization.sha256": "",
      });
      assert.deepEqual(payload(finished), {
        "fileSynchronization.id": done.id,
        "fileSynchronization.fileReferenceId": id,
        "fileSynchronization.status": "SUCCESS",
        "fileSynchronization.fileName": "events.csv",
        "fileSynchronization.bytes": "8",
        "fileSynchronization.sha256": createHash("sha256").update("a,b\n1,2\n").digest("hex"),
      });
      const links = finished._links as Record<string, { href: string }>;
      assert.equal(links.fileSynchronization?.href, syncHref);
      assert.equal(links.fileReference?.href, `${REFERENCES}/${id}`);
      assert.equal(
        (finished._event as { origin: { kind: string } }).origin.kind,
        "API_KEY",
        "who asked for it",
      );

      // What each subscription receives: the delivery engine's own matching over the log.
      const log = await readLog(t.database.db, head, 100, { source: "FILE_SYNCHRONIZATION" });
      const received = (subscription: { onElementId: string | null; eventType: string }) =>
        log
          .filter((event) =>
            matchesSubscription(
              {
                entityId: event.entityId,
                on: "FILE_SYNCHRONIZATION",
                onElementId: subscription.onElementId,
                eventType: subscription.eventType as "FINISHED",
                onFields: [],
                conditions: null,
              },
              event,
            ),
          )
          .map((event) => `${event.sourceId}/${event.recordKey}/${event.eventType}`);
      assert.deepEqual(received(byName), [`${id}/${done.id}/FINISHED`]);
      assert.deepEqual(received(every), [
        `${id}/${done.id}/STARTED`,
        `${other}/${otherDone.id}/STARTED`,
      ]);
    });

    test("a scheduled reference is synchronised once per due time, its placeholders at the due time in its zone", async () => {
      const id = await t.createReference({
        name: "nightly",
        source: { type: "DIRECTORY", path: "nightly/crm_$yyyyMMdd.csv" },
        schedule: { cron: "30 1 * * *", timezone: "Pacific/Auckland" },
      });
      const reference = (await t.request("GET", `${REFERENCES}/${id}`)).json() as {
        nextSynchronizationAt: string;
        timezone: string;
      };
      assert.equal(reference.timezone, "Pacific/Auckland");
      const due = new Date(reference.nextSynchronizationAt);
      const name = expandDatePlaceholders("crm_$yyyyMMdd.csv", due, "Pacific/Auckland");
      mkdirSync(join(t.dropDir, "nightly"), { recursive: true });
      writeFileSync(join(t.dropDir, "nightly", name), "x\n1\n");

      clock = new Date(due.getTime() - 60_000);
      assert.equal(await scheduler.runDue(), 0, "not due yet");
      clock = new Date(due.getTime() + 60_000);
      assert.equal(await scheduler.runDue(), 1);
      assert.equal(await scheduler.runDue(), 0, "one run per due time");
      const list = (await t.request("GET", `${REFERENCES}/${id}/synchronizations`)).json() as {
        synchronizations: SynchronizationJson[];
      };
      assert.equal(list.synchronizations.length, 1);
      const done = await t.synced(id, list.synchronizations[0]!.id);
      assert.equal(done.status, "SUCCESS", JSON.stringify(done));
      assert.equal(done.fileName, name);
      const next = (await t.request("GET", `${REFERENCES}/${id}`)).json() as {
        nextSynchronizationAt: string;
      };
      assert.ok(Date.parse(next.nextSynchronizationAt) > due.getTime());
    });
  });
}

async function logHead(t: FileSyncTestApp): Promise<number> {
  const { rows } = await t.database.db.query<{ head: number | null }>(
    "SELECT max(position) AS head FROM change_events",
  );
  return Number(rows[0]?.head ?? 0);
}
