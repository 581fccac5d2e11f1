/**
 * The three systems `npm run bench -- peers` pushes one workload through (peers.ts): Herald, as
 * bench/delivery.ts runs it, and what a team would otherwise build on the same PostgreSQL: a job per
 * event, enqueued in the transaction that writes it (the queue's job table is the outbox), whose
 * task signs Herald's body for that event as Herald does and POSTs it with undici, on
 * graphile-worker or on pg-boss.
 *
 * Each writes its events in the writer's transaction and nothing else: the data write beside them
 * would be the same for all three, so it is left out. Herald keeps each record's events in order,
 * across retries too; the peers' jobs run in any order (keeping it would need a queue per record),
 * which only makes their work lighter.
 */
import { Logger as GraphileLogger, run as runGraphileWorker } from "graphile-worker";
import pg from "pg";
import PgBoss from "pg-boss";
import { Agent, request } from "undici";
import { buildEnvelope, toDataObject } from "../src/domain/event-payload.js";
import { webhookSignatureHeaders } from "../src/domain/webhook-signature.js";
import { createLogger } from "../src/logger.js";
import { startSequencer } from "../src/sequencer/sequencer.js";
import { appendChangeEvents, readLog } from "../src/storage/change-event-repository.js";
import type { BenchOptions } from "./bench-support.js";
import { BENCH_ENTITY, createBenchDatabase, profileEvent } from "./bench-support.js";
import { BENCH_SECRET, setUp, startWorker, subscribeFrom } from "./delivery.js";

/** One event of the workload: the profile it changes and the version it makes. */
export interface WorkloadEvent {
  record: number;
  version: number;
}

/** How the receiver names an event (receiver-process.ts): `<profileId>:<version>`. */
export function eventKey(event: WorkloadEvent): string {
  return `${event.record}:${event.version}`;
}

/** What a peer's job carries: the push id (sent as `webhook-id`) and Herald's body for one event. */
export interface PushJob {
  id: string;
  body: string;
}

/** The peers' jobs, by eventKey: Herald's payloads for the events of Herald's own run. */
export type PushJobs = Map<string, PushJob>;

export interface SystemUnderTest {
  /** The system's own database (the bench counts the CPU time of its PostgreSQL backends). */
  databaseUrl: string;
  /** Commits `events` in one transaction, with whatever the system enqueues for them. */
  write(events: readonly WorkloadEvent[]): Promise<void>;
}

/**
 * What must be undone when a system's run ends, fails or is interrupted: each start adds a step as
 * soon as it holds the thing the step releases, so a start that fails halfway leaves nothing behind.
 */
export class Teardown {
  private steps: (() => Promise<void>)[] = [];

  add(step: () => Promise<void>): void {
    this.steps.push(step);
  }

  /** Runs the steps, latest first; a step that fails is reported and the others still run. */
  async run(): Promise<void> {
    for (let step = this.steps.pop(); step; step = this.steps.pop()) {
      await step().catch((error: Error) => console.error(`  teardown: ${error.message}`));
    }
  }
}

/** Requests in flight at once: Herald's default `maxConcurrency` of a subscription. */
export const CONCURRENCY = 8;
/** Concurrent writing transactions, for every system (as bench/delivery.ts's latency part). */
export const WRITERS = 4;

const silent = createLogger("silent");

// Herald ------------------------------------------------------------------------------------------

export interface HeraldUnderTest extends SystemUnderTest {
  /** The peers' jobs: Herald's body for every event in its log (read after its run). */
  pushJobs(): Promise<PushJobs>;
}

/** Sequencer and delivery worker in this process, one ONE_BY_ONE subscription from the log head. */
export async function startHerald(
  options: BenchOptions,
  receiverUrl: string,
  teardown: Teardown,
): Promise<HeraldUnderTest> {
  const setup = await setUp(options);
  teardown.add(() => setup.drop());
  const subscription = await subscribeFrom(setup, receiverUrl, {}, "head");
  const sequencer = await startSequencer({
    db: setup.db,
    logSignals: setup.logSignals,
    logger: silent,
  });
  teardown.add(() => sequencer.stop());
  const worker = await startWorker(setup, "bench-peers");
  teardown.add(() => worker.stop());
  return {
    databaseUrl: setup.url,
    write: async (events) => {
      await setup.db.transaction((tx) =>
        appendChangeEvents(
          tx,
          events.map((event) => profileEvent(setup.entity, event.record, event.version)),
          setup.logSignals,
        ),
      );
      // What capture does after its commits: wake this process's sequencer.
      setup.logSignals.inboxCommitted();
    },
    pushJobs: async () => {
      const jobs: PushJobs = new Map();
      for (let after = 0; ;) {
        const events = await readLog(setup.db, after, 5_000);
        if (events.length === 0) return jobs;
        for (const event of events) {
          const data = toDataObject(event, { entityName: BENCH_ENTITY, includePrevious: false });
          const id = crypto.randomUUID();
          const body = JSON.stringify(buildEnvelope(id, subscription, data));
          jobs.set(`${event.recordKey}:${event.version}`, { id, body });
        }
        after = events.at(-1)!.position;
      }
    },
  };
}

// What the peers share ----------------------------------------------------------------------------

export interface PeerSender {
  /** Signs the body as Herald does (Standard Webhooks, the subscription's secret) and POSTs it. */
  post(job: PushJob): Promise<void>;
}

/** One undici agent with CONCURRENCY keep-alive connections, as Herald's sender has to one origin. */
export function startPeerSender(url: string, teardown: Teardown): PeerSender {
  const agent = new Agent({ connections: CONCURRENCY, keepAliveTimeout: 30_000 });
  teardown.add(() => agent.close());
  const secrets = { secret: BENCH_SECRET, previousSecret: null, previousSecretExpiresAt: null };
  return {
    post: async (job) => {
      const response = await request(url, {
        method: "POST",
        dispatcher: agent,
        headers: {
          "content-type": "application/json",
          ...webhookSignatureHeaders(secrets, job.id, job.body, new Date()),
        },
        body: job.body,
      });
      await response.body.dump();
      // A failed push fails the job, which its queue then retries.
      if (response.statusCode >= 300)
        throw new Error(`the receiver answered ${response.statusCode}`);
    },
  };
}

/**
 * A pool the bench ends itself (before the database is dropped), with handlers for a connection the
 * server ends: otherwise its error would end the bench without its teardown. A checked-out
 * connection's error also surfaces at its next query.
 */
function startPool(url: string, max: number, name: string, teardown: Teardown): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max });
  pool.on("error", (error) => console.error(`  ${name}: ${error.message}`));
  pool.on("connect", (client) => client.on("error", () => {}));
  teardown.add(() => pool.end());
  return pool;
}

/** The writers' own pool, BEGIN … COMMIT around `work` (Herald's writers share the worker's pool). */
function startWriters(url: string, teardown: Teardown) {
  const pool = startPool(url, WRITERS, "the writers' pool", teardown);
  return async (work: (client: pg.PoolClient) => Promise<unknown>): Promise<void> => {
    const client = await pool.connect();
    try {
      await client.query("BEGIN");
      await work(client);
      await client.query("COMMIT");
    } catch (error) {
      await client.query("ROLLBACK").catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  };
}

function jobsFor(jobs: PushJobs, events: readonly WorkloadEvent[]): PushJob[] {
  return events.map((event) => {
    const job = jobs.get(eventKey(event));
    if (!job) throw new Error(`Herald's log has no event ${eventKey(event)}`);
    return job;
  });
}

// graphile-worker ---------------------------------------------------------------------------------

/**
 * The jobs of one transaction in one statement, with the batch function graphile-worker documents
 * for adding jobs from SQL (it NOTIFYs the workers at commit).
 */
const ADD_JOBS_SQL = `SELECT graphile_worker.add_jobs(
  ARRAY(SELECT json_populate_recordset(NULL::graphile_worker.job_spec, $1::json)))`;

/**
 * graphile-worker 0.17 with its documented throughput settings (worker.graphile.org, Performance):
 * - `concurrency` (concurrentJobs) at Herald's CONCURRENCY, and a pool of concurrency + 2
 *   connections, as it recommends;
 * - LISTEN/NOTIFY on (its default): a new job wakes a worker at once, and a worker that finished a
 *   job asks for the next straight away, so `pollInterval` (its default, 2 s) is only the safety net;
 * - its batching: a local queue that locks 100 jobs per fetch instead of one round trip per job (the
 *   docs advise well over concurrency + 1 for many fast jobs; larger did no better here), and job
 *   completions batched (completeJobBatchDelay 0: those of one turn of the event loop in one
 *   statement; a push is done once the receiver answered, so this delays no receipt).
 */
export async function startGraphileWorker(
  options: BenchOptions,
  receiverUrl: string,
  jobs: PushJobs,
  teardown: Teardown,
): Promise<SystemUnderTest> {
  const database = await createBenchDatabase(options.adminUrl, { migrated: false });
  teardown.add(() => database.drop());
  const sender = startPeerSender(receiverUrl, teardown);
  // Its pool is ours, so that it is closed before the database is dropped (graphile-worker ends a
  // pool of its own without waiting for it).
  const runner = await runGraphileWorker({
    pgPool: startPool(database.url, CONCURRENCY + 2, "graphile-worker's pool", teardown),
    concurrency: CONCURRENCY,
    pollInterval: 2_000,
    noHandleSignals: true,
    logger: new GraphileLogger(() => () => {}),
    taskList: { push: (payload) => sender.post(payload as PushJob) },
    preset: { worker: { localQueue: { size: 100 }, completeJobBatchDelay: 0 } },
  });
  teardown.add(() => runner.stop());
  const transaction = startWriters(database.url, teardown);
  return {
    databaseUrl: database.url,
    write: (events) =>
      transaction((client) =>
        client.query(ADD_JOBS_SQL, [
          JSON.stringify(jobsFor(jobs, events).map((payload) => ({ identifier: "push", payload }))),
        ]),
      ),
  };
}

// pg-boss -----------------------------------------------------------------------------------------

const PG_BOSS_QUEUE = "push";
/**
 * Jobs a pg-boss worker fetches (and completes) at once. A worker whose batch took less than the
 * polling interval waits out the rest of it, so small batches cap the rate (8 workers × 10 jobs per
 * 0.5 s is 160 jobs/s); pushing 500 one after the other outlasts the interval, so while there is a
 * backlog no worker waits (larger batches did no better here).
 */
const PG_BOSS_BATCH = 500;

/**
 * pg-boss 10 with its documented throughput settings (timgit.github.io/pg-boss): v10 dropped
 * `teamSize`, so CONCURRENCY workers (one `work()` each, one push in flight each), each fetching
 * and completing PG_BOSS_BATCH jobs per statement (`batchSize`), polling at the minimum interval,
 * 0.5 s (pg-boss has no LISTEN/NOTIFY). Jobs are enqueued with `insert`, its batch call, through the
 * writer's transaction (its `db` option). No cron (`schedule: false`): the bench schedules nothing.
 */
export async function startPgBoss(
  options: BenchOptions,
  receiverUrl: string,
  jobs: PushJobs,
  teardown: Teardown,
): Promise<SystemUnderTest> {
  const database = await createBenchDatabase(options.adminUrl, { migrated: false });
  teardown.add(() => database.drop());
  const sender = startPeerSender(receiverUrl, teardown);
  const boss = new PgBoss({
    connectionString: database.url,
    max: CONCURRENCY + 2,
    schedule: false,
  });
  boss.on("error", (error) => console.error(`  pg-boss: ${error.message}`));
  await boss.start();
  // By teardown the run is over: no job is in flight.
  teardown.add(() => boss.stop({ graceful: false, wait: true, timeout: 5_000 }));
  await boss.createQueue(PG_BOSS_QUEUE);
  for (let i = 0; i < CONCURRENCY; i++) {
    await boss.work<PushJob>(
      PG_BOSS_QUEUE,
      { batchSize: PG_BOSS_BATCH, pollingIntervalSeconds: 0.5 },
      async (batch) => {
        for (const job of batch) await sender.post(job.data);
      },
    );
  }
  const transaction = startWriters(database.url, teardown);
  return {
    databaseUrl: database.url,
    write: (events) =>
      transaction((client) =>
        boss.insert(
          jobsFor(jobs, events).map((data) => ({ name: PG_BOSS_QUEUE, data })),
          { db: { executeSql: (text, values) => client.query(text, values) } },
        ),
      ),
  };
}
