/**
 * Scale-out: three worker processes on one PostgreSQL share the subscriptions through leases. One is
 * killed; its subscriptions move to the survivors and nothing is lost. The receiver checks that no
 * subscription is ever driven by two workers at once: the requests of different workers (the
 * `herald-worker` header) to one subscription never overlap in time.
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
  leaseOwners,
  orderReport,
  profileUpdate,
  startHeraldProcess,
  subscribe,
} from "./delivery-fixtures.js";

const unavailable = await postgresUnavailable();
if (unavailable) console.log(`# SKIPPING delivery scale-out test: ${unavailable}`);

const SUBSCRIPTIONS = 6;
const RECORDS = 20;

describe(
  "delivery scale-out over worker processes (PostgreSQL)",
  {
    skip: unavailable ? `needs PostgreSQL: ${unavailable}` : false,
  },
  () => {
    test(
      "three workers share subscriptions; one dies; its subscriptions move; nothing lost; never two drivers",
      { timeout: 150_000 },
      async () => {
        const t = await createTestDatabase("postgres");
        const entity = await entityId(t.db);
        const receiver = await startWebhookReceiver();
        receiver.respondWith(() => ({ delayMs: 5 }));
        const subs: number[] = [];
        for (let i = 0; i < SUBSCRIPTIONS; i++)
          subs.push(
            (
              await subscribe(t.db, entity, {
                targetUrl: `${receiver.url}/${i}`,
                maxConcurrency: 4,
              })
            ).id,
          );
        const sequencer = await startSequencer({
          db: t.db,
          logSignals: t.logSignals,
          logger: createLogger("silent"),
        });
        const workers = ["w1", "w2", "w3"].map((id) =>
          startHeraldProcess(t.url!, "worker", { HERALD_WORKER_ID: id }),
        );
        let version = 0;
        let writing = true;
        const writer = (async () => {
          while (writing) {
            version++;
            await append(
              t.db,
              Array.from({ length: RECORDS }, (_, i) => profileUpdate(entity, 2000 + i, version)),
            );
            await new Promise((resolve) => setTimeout(resolve, 100));
          }
        })();
        try {
          const started = Date.now();
          const pushers = () =>
            new Set(receiver.requests.map((q) => String(q.headers["herald-worker"])));
          await eventually(
            async () => {
              const owners = [...(await leaseOwners(t.db)).values()];
              return new Set(owners).size >= 3 && !owners.includes(null) && pushers().size >= 3;
            },
            60_000,
            "every worker driving (and pushing for) some subscriptions",
          );
          const spreadAfter = Date.now() - started;
          const owners = await leaseOwners(t.db);
          const ofW2 = [...owners].filter(([, owner]) => owner === "w2").map(([id]) => id);
          assert.ok(ofW2.length >= 1);
          await workers[1]!.kill("SIGKILL");
          const killedAt = Date.now();
          await eventually(
            async () => {
              const now = await leaseOwners(t.db);
              return ofW2.every((id) => now.get(id) === "w1" || now.get(id) === "w3");
            },
            30_000,
            "the dead worker's subscriptions moving to the survivors",
          );
          const movedAfter = Date.now() - killedAt;
          await new Promise((resolve) => setTimeout(resolve, 1_000));
          writing = false;
          await writer;
          const total = RECORDS * version;
          const pathOf = (i: number) => new URL(`${receiver.url}/${i}`).pathname;
          const distinctAt = (i: number) =>
            new Set(
              receiver.requests
                .filter((q) => q.path === pathOf(i))
                .flatMap((q) => dataObjects(q.json).map((d) => (d._event as { id: string }).id)),
            ).size;
          await eventually(
            () => subs.every((_, i) => distinctAt(i) >= total),
            40_000,
            `all ${total} events at each of the ${SUBSCRIPTIONS} subscriptions`,
          );
          const byWorker = new Map<string, number>();
          for (let i = 0; i < SUBSCRIPTIONS; i++) {
            const requests = receiver.requests.filter((q) => q.path === pathOf(i));
            const report = orderReport(requests.map((q) => q.json));
            assert.deepEqual(report.outOfOrder, [], `subscription ${i}: per-record order`);
            assert.equal(report.distinct, total);
            assertNoOverlap(requests, i);
            for (const q of requests) {
              const w = String(q.headers["herald-worker"]);
              byWorker.set(w, (byWorker.get(w) ?? 0) + 1);
            }
          }
          console.log(
            `# scale-out: ${total} events × ${SUBSCRIPTIONS} subscriptions; pushes by worker ${JSON.stringify(Object.fromEntries(byWorker))}; spread over 3 workers after ${spreadAfter} ms; w2's ${ofW2.length} subscription(s) moved ${movedAfter} ms after SIGKILL`,
          );
          assert.deepEqual(
            [...byWorker.keys()].sort(),
            ["w1", "w2", "w3"],
            "each worker drove some",
          );
          assert.equal(await workers[0]!.kill("SIGTERM"), 0);
          assert.equal(await workers[2]!.kill("SIGTERM"), 0);
        } finally {
          writing = false;
          await writer.catch(() => {});
          for (const w of workers)
            if (w.child.exitCode === null && w.child.signalCode === null) await w.kill("SIGKILL");
          await sequencer.stop();
          await receiver.close();
          await t.drop();
        }
      },
    );
  },
);

/** Requests of two different workers to one subscription never overlap (arrival to answer). */
function assertNoOverlap(requests: ReceivedRequest[], subscription: number): void {
  const sorted = [...requests].sort((a, b) => a.receivedAt - b.receivedAt);
  let openUntil = new Map<string, number>();
  for (const q of sorted) {
    const worker = String(q.headers["herald-worker"]);
    for (const [other, until] of openUntil)
      if (other !== worker && until > q.receivedAt)
        assert.fail(
          `subscription ${subscription}: ${worker} pushed while ${other} still had a push in flight`,
        );
    openUntil = new Map([...openUntil].filter(([, until]) => until > q.receivedAt));
    const end = q.answeredAt ?? q.receivedAt;
    openUntil.set(worker, Math.max(openUntil.get(worker) ?? 0, end));
  }
}
