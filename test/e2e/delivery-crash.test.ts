/**
 * At-least-once across a crash: a worker process (`herald start --role worker`) is killed with
 * SIGKILL mid-stream and another one is started. Every committed event still arrives, each record's
 * versions still arrive in order, and the re-sent duplicates are counted and reported.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createLogger } from "../../src/logger.js";
import { startSequencer } from "../../src/sequencer/sequencer.js";
import { createTestDatabase, postgresUnavailable } from "../helpers/test-database.js";
import type { ReceivedRequest } from "../helpers/webhook-receiver.js";
import { startWebhookReceiver } from "../helpers/webhook-receiver.js";
import {
  append,
  dataObjects,
  entityId,
  eventually,
  orderReport,
  profileUpdate,
  startHeraldProcess,
  subscribe,
} from "./delivery-fixtures.js";

const unavailable = await postgresUnavailable();
if (unavailable) console.log(`# SKIPPING delivery crash test: ${unavailable}`);

const RECORDS = 100;
const VERSIONS_BEFORE = 30;
const VERSIONS_AFTER = 10;

describe(
  "delivery across a worker crash (PostgreSQL)",
  {
    skip: unavailable ? `needs PostgreSQL: ${unavailable}` : false,
  },
  () => {
    test(
      "SIGKILL mid-stream, restart: everything arrives, in per-record order",
      { timeout: 150_000 },
      async () => {
        const t = await createTestDatabase("postgres");
        const entity = await entityId(t.db);
        const distinct = [new Set<string>(), new Set<string>()];
        const track = (i: number) => (q: ReceivedRequest) => {
          for (const d of dataObjects(q.json)) distinct[i]!.add((d._event as { id: string }).id);
        };
        const oneByOne = await startWebhookReceiver({ onRequest: track(0) });
        oneByOne.respondWith(() => ({ delayMs: 3 }));
        const bulk = await startWebhookReceiver({ onRequest: track(1) });
        bulk.respondWith(() => ({ delayMs: 20 }));
        await subscribe(t.db, entity, { targetUrl: oneByOne.url });
        await subscribe(t.db, entity, {
          targetUrl: bulk.url,
          pushMode: "BULK",
          maxBlockSize: 50,
          lingerMs: 50,
          maxWaitMs: 500,
        });
        const sequencer = await startSequencer({
          db: t.db,
          logSignals: t.logSignals,
          logger: createLogger("silent"),
        });
        const workers = [];
        try {
          for (let v = 1; v <= VERSIONS_BEFORE; v++)
            await append(
              t.db,
              Array.from({ length: RECORDS }, (_, i) => profileUpdate(entity, 1000 + i, v)),
            );
          const first = startHeraldProcess(t.url!, "worker");
          workers.push(first);
          await oneByOne.waitFor(
            (reqs) => reqs.length >= 600,
            60_000,
            "600 pushes before the crash",
          );
          assert.equal(await first.kill("SIGKILL"), null, "killed by the signal");
          const atCrash = distinct[0]!.size;
          assert.ok(atCrash < RECORDS * VERSIONS_BEFORE, "the crash happened mid-stream");

          for (let v = VERSIONS_BEFORE + 1; v <= VERSIONS_BEFORE + VERSIONS_AFTER; v++)
            await append(
              t.db,
              Array.from({ length: RECORDS }, (_, i) => profileUpdate(entity, 1000 + i, v)),
            );
          const total = RECORDS * (VERSIONS_BEFORE + VERSIONS_AFTER);
          const second = startHeraldProcess(t.url!, "worker");
          workers.push(second);
          await eventually(
            () => distinct[0]!.size >= total && distinct[1]!.size >= total,
            60_000,
            `all ${total} events at both receivers (now ${distinct[0]!.size} and ${distinct[1]!.size})`,
          );
          for (const [name, receiver] of [
            ["ONE_BY_ONE", oneByOne],
            ["BULK", bulk],
          ] as const) {
            const report = orderReport(receiver.requests.map((q) => q.json));
            console.log(
              `# crash test ${name}: ${report.distinct} distinct events, ${report.delivered} deliveries, ${report.duplicates} duplicates re-sent after the crash (killed at ${atCrash})`,
            );
            assert.deepEqual(report.outOfOrder, [], `${name}: per-record order`);
            assert.equal(report.distinct, total);
          }
          assert.equal(await second.kill("SIGTERM"), 0, "SIGTERM exits cleanly");
          const { rows } = await t.db.query<{ n: number }>(
            "SELECT count(*)::int AS n FROM webhook_subscriptions WHERE lease_owner IS NOT NULL",
          );
          assert.equal(rows[0]?.n, 0, "a stopped worker hands its leases back");
        } finally {
          for (const w of workers) if (w.child.exitCode === null) await w.kill("SIGKILL");
          if (process.env.HERALD_E2E_DEBUG) for (const w of workers) console.log(w.output());
          await sequencer.stop();
          await oneByOne.close();
          await bulk.close();
          await t.drop();
        }
      },
    );
  },
);
