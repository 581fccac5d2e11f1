/**
 * Part `takeover` of the faults bench: on PostgreSQL, an `api,sequencer` process and two
 * `--role worker` processes (as users run them, default delivery timeout, so leases last 20 s), one
 * ONE_BY_ONE subscription, events written steadily straight into the log. The worker pushing (the
 * `herald-worker` header of the latest push) is killed with SIGKILL; measured: the time from the
 * kill to the other worker's first push (target: within 3 s, where the lease alone would take
 * ~21 s). Then the writes stop and the bench checks that every event written arrived.
 */
import type { Push } from "./faults-support.js";
import { bootstrap } from "../src/api/bootstrap.js";
import { appendChangeEvents } from "../src/storage/change-event-repository.js";
import { LogSignals } from "../src/storage/log-signals.js";
import { PostgresDatabase } from "../src/storage/postgres-database.js";
import { insertSubscription } from "../src/storage/subscription-repository.js";
import { findEntityByName, firstLicenceId } from "../src/storage/tenancy-repository.js";
import type { BenchOptions } from "./bench-support.js";
import { benchSecrets, createBenchDatabase, fixed, profileEvent } from "./bench-support.js";
import type { HeraldProcess, ResultRow } from "./faults-support.js";
import {
  FAULTS_ADMIN_KEY,
  sleep,
  startHeraldProcess,
  startPushRecorder,
  subscriptionSettings,
  until,
  verdict,
} from "./faults-support.js";

const RECORDS = 20;
const WRITE_EVERY_MS = 100;
const TARGET_MS = 3_000;

export async function takeover(options: BenchOptions): Promise<ResultRow[]> {
  const bench = await createBenchDatabase(options.adminUrl);
  const db = new PostgresDatabase({ connectionString: bench.url, maxConnections: 2 });
  const recorder = await startPushRecorder();
  const processes: HeraldProcess[] = [];
  let writing = true;
  let writer: Promise<void> | undefined;
  let written = 0;
  try {
    await bootstrap(db, { defaultEntity: "bench", adminApiKey: FAULTS_ADMIN_KEY });
    const entity = (await findEntityByName(db, await firstLicenceId(db), "bench"))!.id;
    await insertSubscription(
      db,
      benchSecrets(),
      entity,
      subscriptionSettings(`${recorder.origin}/takeover`, { maxConcurrency: 4 }),
    );
    const env = { HERALD_DEFAULT_ENTITY: "bench" };
    const core = startHeraldProcess({
      roles: "api,sequencer",
      databaseUrl: bench.url,
      env: { ...env, HERALD_WORKER_ID: "core" },
    });
    processes.push(core);
    const workers = new Map<string, HeraldProcess>();
    for (const id of ["w1", "w2"]) {
      const worker = startHeraldProcess({
        roles: "worker",
        databaseUrl: bench.url,
        env: { ...env, HERALD_WORKER_ID: id },
      });
      workers.set(id, worker);
      processes.push(worker);
    }
    await core.listening();
    for (const worker of workers.values()) await worker.waitFor("delivery worker started");

    // One version of every record each WRITE_EVERY_MS (RECORDS × 10 events/s).
    const writerSignals = new LogSignals();
    writer = (async () => {
      for (let version = 1; writing; version++) {
        const events = Array.from({ length: RECORDS }, (_, r) => profileEvent(entity, r, version));
        await db.transaction((tx) => appendChangeEvents(tx, events, writerSignals));
        written += events.length;
        await sleep(WRITE_EVERY_MS);
      }
    })();
    if ((await until(() => recorder.pushes.length > 0, 30_000)) === undefined)
      throw new Error("no push within 30 s of the writes");
    // Both workers settled (liveness locks taken, the subscription claimed), pushes steady.
    await sleep(Math.max(3_000, options.warmupMs));

    const driving = recorder.pushes.at(-1)!.worker;
    const victim = workers.get(driving);
    if (!victim) throw new Error(`the latest push came from '${driving}', not from w1 or w2`);
    const killedAt = Date.now();
    victim.child.kill("SIGKILL");
    const other = (p: Push) => p.worker !== driving && p.receivedAt >= killedAt;
    await until(() => recorder.pushes.some(other), 40_000);
    const first = recorder.pushes.find(other);
    const gapMs = first ? first.receivedAt - killedAt : NaN;
    const lastBefore = recorder.pushes.filter((p) => p.receivedAt < killedAt).at(-1)!;

    writing = false;
    await writer;
    const ids = () => {
      const seen = new Set<string>();
      for (const push of recorder.pushes)
        for (const data of push.data) seen.add(String((data._event as { id: string }).id));
      return seen.size;
    };
    await until(() => ids() >= written, 30_000);
    const delivered = ids();
    console.log(
      `takeover: ${driving} (pid ${victim.pid}) killed ${fixed(killedAt - lastBefore.receivedAt)} ms after its last push; ` +
        `${first ? `${first.worker} pushed ${fixed(gapMs)} ms after the kill` : "no other worker pushed within 40 s"}; ` +
        `${delivered} of ${written} events written arrived (distinct ids)`,
    );
    return [
      [
        "takeover after SIGKILL of the pushing worker (ms to the other's first push)",
        first ? fixed(gapMs) : "none in 40 s",
        `≤ ${TARGET_MS}`,
        verdict(Number.isFinite(gapMs) && gapMs <= TARGET_MS),
      ],
      [
        "takeover: events written that arrived",
        `${delivered} / ${written}`,
        "all",
        verdict(delivered >= written),
      ],
    ];
  } finally {
    writing = false;
    await writer?.catch(() => {});
    for (const herald of processes) await herald.stop();
    await recorder.close();
    await db.close().catch(() => {});
    await bench.drop();
  }
}
