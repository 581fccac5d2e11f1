/**
 * Worker takeover on PostgreSQL (issue #19 defect 9; docs/delivery.md "Workers, leases and
 * scale-out"). Real processes, as users run them: an api/sequencer process and two
 * `herald start --role worker` processes with the default delivery timeout (so leases last 20 s),
 * a receiver, and events written steadily.
 *
 * 1. The worker driving the subscription is killed with SIGKILL: the other one pushes again within
 *    a few seconds (its liveness lock told it so), not when the lease expires.
 * 2. The driving worker stays alive but its database connections are cut (a TCP proxy between it
 *    and PostgreSQL): it cuts its pushes in flight at once, and the other worker takes over.
 *
 * Both check that no event is lost, each record's versions arrive in order, and no two workers ever
 * have a push to the subscription open at the same time, as the receiver sees its connections
 * (`herald-worker` header; a push is open from its arrival until it is answered or its sender
 * closes the connection).
 */
import assert from "node:assert/strict";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, test } from "node:test";
import type { Database } from "../../src/storage/database.js";
import { livenessKeyHeld } from "../../src/storage/liveness-locks.js";
import { createTestDatabase, postgresUnavailable } from "../helpers/test-database.js";
import { startTcpProxy } from "../helpers/tcp-proxy.js";
import type { HeraldProcess } from "./delivery-fixtures.js";
import {
  append,
  entityId,
  eventually,
  orderReport,
  profileUpdate,
  startHeraldProcess,
  subscribe,
} from "./delivery-fixtures.js";

const unavailable = await postgresUnavailable();
if (unavailable) console.log(`# SKIPPING worker takeover tests: ${unavailable}`);

const RECORDS = 5;
/** What today's leases would take: the takeover must come well before. */
const TAKEOVER_BOUND_MS = 8_000;

/** A push as the receiver saw it. */
interface Seen {
  worker: string;
  json: unknown;
  receivedAt: number;
  /** Answered, or closed by the sender; undefined while open. */
  endedAt?: number;
  /** The sender closed the connection before the answer. */
  cut?: boolean;
}

interface Receiver {
  url: string;
  pushes: Seen[];
  /** Each push waits this long before its answer. */
  delayMs: number;
  close(): Promise<void>;
}

async function startReceiver(): Promise<Receiver> {
  const receiver: Receiver = {
    url: "",
    pushes: [],
    delayMs: 5,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const seen: Seen = {
        worker: String(req.headers["herald-worker"]),
        json: JSON.parse(Buffer.concat(chunks).toString("utf8")),
        receivedAt: Date.now(),
      };
      receiver.pushes.push(seen);
      res.on("close", () => {
        seen.endedAt ??= Date.now();
        if (!res.writableFinished) seen.cut = true;
      });
      const timer = setTimeout(() => {
        if (!res.destroyed) res.end();
      }, receiver.delayMs);
      res.on("close", () => clearTimeout(timer));
    });
  };
  const server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  return receiver;
}

/** Fails when pushes of two different workers were open at the same time. */
function assertNeverTwoAtOnce(pushes: readonly Seen[]): void {
  const sorted = [...pushes].sort((a, b) => a.receivedAt - b.receivedAt);
  for (let i = 0; i < sorted.length; i++) {
    const a = sorted[i] as Seen;
    const end = a.endedAt ?? Infinity;
    for (let j = i + 1; j < sorted.length && (sorted[j] as Seen).receivedAt < end; j++) {
      const b = sorted[j] as Seen;
      if (b.worker !== a.worker)
        assert.fail(
          `${b.worker} pushed at +${b.receivedAt - a.receivedAt} ms while a push of ${a.worker} was open (${a.endedAt === undefined ? "never ended" : `until +${end - a.receivedAt} ms`})`,
        );
    }
  }
}

/** The workers whose liveness lock is held right now (as recorded in delivery_workers). */
async function livingWorkers(db: Database): Promise<string[]> {
  const { rows } = await db.query<{ worker_id: string; liveness_key: number | null }>(
    "SELECT worker_id, liveness_key FROM delivery_workers ORDER BY worker_id",
  );
  const alive: string[] = [];
  for (const row of rows)
    if (row.liveness_key !== null && (await livenessKeyHeld(db, row.liveness_key)))
      alive.push(row.worker_id);
  return alive;
}

async function leaseOwner(db: Database, subscriptionId: number): Promise<string | null> {
  const { rows } = await db.query<{ lease_owner: string | null }>(
    "SELECT lease_owner FROM webhook_subscriptions WHERE id = $1 AND lease_expires_at > now()",
    [subscriptionId],
  );
  return rows[0]?.lease_owner ?? null;
}

/** Appends one version of every record every 100 ms until stopped; resolves to the last version. */
function steadyWriter(db: Database, entity: number) {
  let writing = true;
  let version = 0;
  const done = (async () => {
    while (writing) {
      version++;
      await append(
        db,
        Array.from({ length: RECORDS }, (_, i) => profileUpdate(entity, 3000 + i, version)),
      );
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return version;
  })();
  return {
    stop: async () => {
      writing = false;
      return done;
    },
  };
}

/** Every event written arrived, in per-record order, and no two workers pushed at once. */
async function assertDeliveredInOrder(receiver: Receiver, versions: number, label: string) {
  const total = RECORDS * versions;
  const distinct = () => orderReport(receiver.pushes.map((p) => p.json)).distinct;
  await eventually(() => distinct() >= total, 30_000, `${label}: all ${total} events delivered`);
  const report = orderReport(receiver.pushes.map((p) => p.json));
  assert.deepEqual(report.outOfOrder, [], `${label}: per-record order`);
  assert.equal(report.distinct, total, `${label}: every event`);
  assertNeverTwoAtOnce(receiver.pushes);
  return report;
}

const WORKER_ENV = {
  // The default delivery timeout, so leases last 20 s as in production.
  HERALD_DELIVERY_TIMEOUT_MS: "15000",
};

describe(
  "worker takeover (PostgreSQL)",
  { skip: unavailable ? `needs PostgreSQL: ${unavailable}` : false },
  () => {
    test(
      "SIGKILL of the driving worker: the other one pushes again within seconds, nothing lost, never two at once",
      { timeout: 120_000 },
      async () => {
        const t = await createTestDatabase("postgres");
        const entity = await entityId(t.db);
        const receiver = await startReceiver();
        const sub = await subscribe(t.db, entity, { targetUrl: receiver.url, maxConcurrency: 4 });
        const processes: HeraldProcess[] = [
          startHeraldProcess(t.url!, "api,sequencer", { HERALD_WORKER_ID: "core" }),
        ];
        const writer = steadyWriter(t.db, entity);
        try {
          for (const id of ["w1", "w2"])
            processes.push(
              startHeraldProcess(t.url!, "worker", { ...WORKER_ENV, HERALD_WORKER_ID: id }),
            );
          await eventually(
            async () => (await livingWorkers(t.db)).join() === "w1,w2",
            60_000,
            "both workers alive, their liveness locks held",
          );
          let holder = "";
          await eventually(
            async () => {
              holder = (await leaseOwner(t.db, sub.id)) ?? "";
              return receiver.pushes.filter((p) => p.worker === holder).length >= 20;
            },
            60_000,
            "one worker driving the subscription",
          );
          const other = holder === "w1" ? "w2" : "w1";
          const victim = processes.find((p) => p.workerId === holder) as HeraldProcess;
          const killedAt = Date.now();
          assert.equal(await victim.kill("SIGKILL"), null, "killed by the signal");
          const exitedAt = Date.now();
          let resumedAt = 0;
          await eventually(
            () => {
              resumedAt =
                receiver.pushes.find((p) => p.worker === other && p.receivedAt > killedAt)
                  ?.receivedAt ?? 0;
              return resumedAt > 0;
            },
            40_000,
            `${other} pushing after ${holder} was killed`,
          );
          const takeoverMs = resumedAt - killedAt;
          console.log(
            `# takeover after SIGKILL: ${other} pushed again ${takeoverMs} ms after ${holder} was killed (leases last 20 s)`,
          );
          // Steady traffic goes on for a moment under the new driver.
          await new Promise((resolve) => setTimeout(resolve, 1_500));
          const versions = await writer.stop();
          const report = await assertDeliveredInOrder(receiver, versions, "SIGKILL");
          console.log(
            `# takeover after SIGKILL: ${report.distinct} events, ${report.duplicates} re-sent after the kill`,
          );
          assert.ok(
            takeoverMs < TAKEOVER_BOUND_MS,
            `the takeover took ${takeoverMs} ms (bound ${TAKEOVER_BOUND_MS} ms)`,
          );
          assert.ok(
            receiver.pushes.every((p) => p.receivedAt <= exitedAt || p.worker !== holder),
            "nothing from the killed worker after the kill",
          );
        } finally {
          await writer.stop().catch(() => {});
          for (const p of processes)
            if (p.child.exitCode === null && p.child.signalCode === null) await p.kill("SIGKILL");
          if (process.env.HERALD_E2E_DEBUG) for (const p of processes) console.log(p.output());
          await receiver.close();
          await t.drop();
        }
      },
    );

    test(
      "the driving worker loses the database but lives on: its pushes in flight are cut at once, the other takes over, never two at once",
      { timeout: 120_000 },
      async () => {
        const t = await createTestDatabase("postgres");
        const entity = await entityId(t.db);
        const receiver = await startReceiver();
        const sub = await subscribe(t.db, entity, { targetUrl: receiver.url, maxConcurrency: 4 });
        const target = new URL(t.url!);
        const proxy = await startTcpProxy({
          host: target.hostname,
          port: Number(target.port || 5432),
        });
        const processes: HeraldProcess[] = [
          startHeraldProcess(t.url!, "api,sequencer", { HERALD_WORKER_ID: "core" }),
        ];
        const writer = steadyWriter(t.db, entity);
        try {
          // w1 reaches the database through the proxy and drives the subscription alone first.
          const w1 = startHeraldProcess(proxy.urlFor(t.url!), "worker", {
            ...WORKER_ENV,
            HERALD_WORKER_ID: "w1",
          });
          processes.push(w1);
          await eventually(
            async () =>
              (await leaseOwner(t.db, sub.id)) === "w1" &&
              receiver.pushes.filter((p) => p.worker === "w1").length >= 20,
            60_000,
            "w1 driving the subscription",
          );
          processes.push(
            startHeraldProcess(t.url!, "worker", { ...WORKER_ENV, HERALD_WORKER_ID: "w2" }),
          );
          await eventually(
            async () => (await livingWorkers(t.db)).join() === "w1,w2",
            60_000,
            "w2 alive beside w1",
          );
          // The endpoint slows down: w1 has pushes open, each waiting 10 s for its answer.
          receiver.delayMs = 10_000;
          await eventually(
            () => receiver.pushes.filter((p) => p.worker === "w1" && !p.endedAt).length >= 4,
            30_000,
            "four pushes of w1 open at the endpoint",
          );
          const open = receiver.pushes.filter((p) => p.worker === "w1" && !p.endedAt);
          proxy.cut();
          const cutAt = Date.now();
          receiver.delayMs = 5;
          let resumedAt = 0;
          await eventually(
            () => {
              resumedAt =
                receiver.pushes.find((p) => p.worker === "w2" && p.receivedAt > cutAt)
                  ?.receivedAt ?? 0;
              return resumedAt > 0;
            },
            40_000,
            "w2 pushing after w1 lost the database",
          );
          // A push of w1 still open now would be two workers pushing at once.
          assertNeverTwoAtOnce(receiver.pushes);
          const closedWithin = Math.max(...open.map((p) => (p.endedAt as number) - cutAt));
          console.log(
            `# takeover after a database cut: w1 closed its ${open.length} open pushes within ${closedWithin} ms; w2 pushed ${resumedAt - cutAt} ms after the cut`,
          );
          assert.ok(
            open.every((p) => p.cut),
            "w1's open pushes were cut by w1, not answered",
          );
          assert.ok(closedWithin < 2_000, `w1 closed its pushes ${closedWithin} ms after the cut`);
          assert.ok(
            resumedAt - cutAt < TAKEOVER_BOUND_MS,
            `w2 took over ${resumedAt - cutAt} ms after the cut`,
          );
          await new Promise((resolve) => setTimeout(resolve, 1_000));
          proxy.restore();
          await eventually(
            async () => (await livingWorkers(t.db)).join() === "w1,w2",
            30_000,
            "w1 back with a fresh liveness lock once the database answers again",
          );
          const versions = await writer.stop();
          await assertDeliveredInOrder(receiver, versions, "database cut");
          assert.equal(w1.child.exitCode, null, "w1 lived through the cut");
        } finally {
          await writer.stop().catch(() => {});
          for (const p of processes)
            if (p.child.exitCode === null && p.child.signalCode === null) await p.kill("SIGKILL");
          if (process.env.HERALD_E2E_DEBUG) for (const p of processes) console.log(p.output());
          await proxy.close();
          await receiver.close();
          await t.drop();
        }
      },
    );
  },
);
