/**
 * The scenario starter (SPEC §7.4, DESIGN §6b): one per process with the `worker` role. It starts
 * the runs of ACTIVE scenarios whose start reads the change log (DATA_EVENT, SEGMENT_ENTRY,
 * SUBSCRIPTION), each a consumer of the log as a subscription is: it claims scenarios under
 * renewable leases (one worker at a time per scenario; another takes over once a lease expires,
 * and at once when it is handed back at stop) and runs one ScenarioStartFollower per scenario it
 * holds, which writes the runs of what it read with the move of the scenario's cursor.
 *
 * Wake-ups, as the delivery worker's: a sequencer leading in this process announces each new head
 * (LogSignals.onLogStamped, with the events it stamped), other processes' NOTIFY on the log channel,
 * and a poll as a safety net. New activations are found at each lease renewal and soon after a
 * NOTIFY on the jobs channel (an activation, like any job, may send one).
 *
 * On a database that no other process shares (the embedded one), a lease held by another worker id
 * at start can only be a previous process's that died: the first claim takes those at once instead
 * of waiting for them to expire.
 *
 * DATE starts are not followed here: they are schedules (start-schedule.ts). API starts are calls.
 */
import type { Logger } from "pino";
import type { BackgroundService } from "../../background-service.js";
import { defaultWorkerId } from "../../background-service.js";
import type { HeraldConfig } from "../../config/config.js";
import { DatabaseOutageLog } from "../../database-outage-log.js";
import type { Database, Unlisten } from "../../storage/database.js";
import { JOBS_CHANNEL } from "../../storage/job-channels.js";
import type { JobSignals } from "../../storage/job-signals.js";
import type { LogSignals } from "../../storage/log-signals.js";
import type { HeldScenario } from "../../storage/scenario-cursor-repository.js";
import {
  claimScenarioLeases,
  releaseScenarioLeases,
  renewScenarioLeases,
} from "../../storage/scenario-cursor-repository.js";
import { LogWakeups } from "../../delivery/log-wakeups.js";
import { ScenarioStartFollower } from "./start-follower.js";

export const SCENARIO_STARTER_DEFAULTS = {
  /** A lease lasts this long without renewal: a dead worker's scenarios move on after it. */
  leaseMs: 10_000,
  /** Leases are renewed, and new activations claimed, this often. */
  renewMs: 2_000,
  /** Safety-net look at the log when no wake-up comes. */
  pollMs: 2_000,
  /** Log events read per query (a page); the runs of a page are inserted in one statement. */
  batchSize: 1_000,
  /** Windows with nothing to start move the cursor at most this often. */
  progressMs: 1_000,
  /** After a write that failed, the next try. */
  retryMs: 1_000,
  /** A jobs NOTIFY looks for new activations at most this often. */
  jobsWakeMs: 250,
  /** Scenarios one worker follows at most. */
  maxScenarios: 1_000,
} as const;

export interface ScenarioStarterOptions {
  db: Database;
  /** This process's log signals: a sequencer leading here announces new heads through them. */
  logSignals: LogSignals;
  /** This process's job signals: runs started here wake this process's run workers. */
  jobSignals: JobSignals;
  logger: Logger;
  config: HeraldConfig;
  /** The runs' clock (tests: a test clock). Leases use the database's. */
  now?: () => Date;
  pollMs?: number;
  /** Log events read per query. */
  batchSize?: number;
  /** Tests: lease timing, the worker's name, the progress interval. */
  leaseMs?: number;
  renewMs?: number;
  progressMs?: number;
  workerId?: string;
  /** Take every lease not this worker's at the first claim (default: where no other process shares the database). */
  takeOverAtStart?: boolean;
}

export interface ScenarioStarter extends BackgroundService {
  readonly workerId: string;
  /** Renew the leases and look for new activations now. */
  wake(): void;
  /** Ids of the scenarios this worker follows right now. */
  following(): string[];
}

export async function startScenarioStarter(
  options: ScenarioStarterOptions,
): Promise<ScenarioStarter> {
  const { db, logSignals, jobSignals } = options;
  const defaults = SCENARIO_STARTER_DEFAULTS;
  const workerId = options.workerId ?? options.config.workerId ?? defaultWorkerId();
  const logger = options.logger.child({ component: "scenario-starter", workerId });
  const leaseMs = options.leaseMs ?? defaults.leaseMs;
  const renewMs = options.renewMs ?? defaults.renewMs;
  const followers = new Map<string, ScenarioStartFollower>();
  /** Followers being stopped: their lease is still held, but they are not to be started again. */
  const dropping = new Map<string, Promise<void>>();
  let takeOver = options.takeOverAtStart ?? !db.capabilities.sharedByProcesses;
  let stopping = false;
  const outage = new DatabaseOutageLog(logger, "scenario starts (lease renewal, new activations)");

  const context = {
    db,
    jobSignals,
    logger,
    workerId,
    now: options.now ?? (() => new Date()),
    pageSize: options.batchSize ?? defaults.batchSize,
    progressMs: options.progressMs ?? defaults.progressMs,
    retryMs: defaults.retryMs,
    onLost: (follower: ScenarioStartFollower, why: string) => void drop(follower.id, why, follower),
  };

  function follow(held: HeldScenario): void {
    const follower = new ScenarioStartFollower(held, context);
    followers.set(held.id, follower);
    logger.info(
      { scenarioId: held.id, cursor: held.cursor, start: held.definition.start.type },
      "following a scenario's start",
    );
    follower.poke(wakeups.head > 0 ? wakeups.head : undefined);
  }

  /**
   * Stops a follower (it writes what it read), then gives its lease back. With `only`, nothing
   * happens unless that very follower is the scenario's: a follower that lost its scenario tells
   * so, and by then the scenario may be followed again by another, which must go on.
   *
   * Once the lease is back, a claim looks again: while the drop ran, claims left the scenario out
   * (or took it, and the drop handed that lease back too), so the activation whose wake-up they
   * answered would otherwise wait for the next renewal to be followed.
   */
  function drop(scenarioId: string, why: string, only?: ScenarioStartFollower): Promise<void> {
    const follower = followers.get(scenarioId);
    if (!follower || (only !== undefined && follower !== only))
      return dropping.get(scenarioId) ?? Promise.resolve();
    followers.delete(scenarioId);
    const done = (async () => {
      try {
        await follower.stop();
        await releaseScenarioLeases(db, workerId, [scenarioId]);
        logger.info({ scenarioId, why }, "stopped following a scenario's start");
      } catch (error) {
        outage.failed(error, "could not hand a scenario's lease back (it expires by itself)");
      } finally {
        dropping.delete(scenarioId);
      }
      tick(false);
    })();
    dropping.set(scenarioId, done);
    return done;
  }

  /** Renews the leases: stops following what is no longer this worker's, follows what is. */
  async function renew(): Promise<void> {
    const renewed = await renewScenarioLeases(db, workerId, leaseMs);
    const kept = new Set(renewed.map((held) => held.id));
    for (const id of [...followers.keys()])
      if (!kept.has(id))
        void drop(id, "its lease is no longer this worker's, or it is no longer ACTIVE");
    for (const held of renewed) {
      if (dropping.has(held.id)) continue;
      const follower = followers.get(held.id);
      // Held from before (a restart under the same worker id): follow it from its cursor.
      if (!follower) {
        if (!stopping) follow(held);
      } else if (JSON.stringify(follower.held.definition) !== JSON.stringify(held.definition)) {
        void drop(held.id, "its definition changed; it is followed again from its cursor");
      }
    }
  }

  /**
   * Claims the free leases of ACTIVE scenarios (new activations, or a gone worker's). A scenario
   * whose follower is being dropped is left to the claim that the drop makes once it handed its
   * lease back (it would hand back a lease taken now too). A claimed scenario that this worker still follows was
   * deactivated and activated again since its follower last wrote (both clear the lease): that
   * follower read for the activation before, so it is stopped without writing, and the scenario is
   * followed from the new cursor. Only then is it followed again: never two followers for one.
   */
  async function claim(): Promise<void> {
    if (stopping) return;
    const room = defaults.maxScenarios - followers.size - dropping.size;
    const claimed = await claimScenarioLeases(db, workerId, leaseMs, room, takeOver, [
      ...dropping.keys(),
    ]);
    takeOver = false;
    for (const held of claimed) {
      if (stopping) break;
      // Dropped while the claim ran (its follower lost it): the drop hands the lease back, then
      // claims again.
      if (dropping.has(held.id)) continue;
      const stale = followers.get(held.id);
      if (stale) {
        followers.delete(held.id);
        await stale.stop({ write: false });
        logger.info(
          { scenarioId: held.id, cursor: stale.committed },
          "stopped following a scenario's start: it was activated again from a new cursor",
        );
      }
      if (!stopping) follow(held);
    }
    if (stopping && claimed.length > 0)
      await releaseScenarioLeases(
        db,
        workerId,
        claimed.map((held) => held.id),
      );
  }

  /**
   * One look at a time: a renewal and a claim, or (woken by a job created somewhere) a claim only,
   * which touches free leases alone and so never waits for this worker's own cursor moves.
   */
  let ticking: Promise<void> | undefined;
  let tickAgain = false;
  let renewDue = false;
  function tick(withRenewal = true): void {
    if (stopping) return;
    if (withRenewal) renewDue = true;
    if (ticking) {
      tickAgain = true;
      return;
    }
    ticking = (async () => {
      do {
        tickAgain = false;
        try {
          if (renewDue) {
            renewDue = false;
            await renew();
          }
          await claim();
          outage.succeeded();
        } catch (error) {
          if (stopping) break;
          outage.failed(error, "scenario lease renewal failed; retrying");
        }
      } while (tickAgain && !stopping);
    })().finally(() => {
      ticking = undefined;
    });
  }

  /** A job was created somewhere (maybe an activation): look, at most every jobsWakeMs. */
  let jobsTimer: NodeJS.Timeout | undefined;
  let lastJobsLook = 0;
  function jobsCreated(): void {
    if (jobsTimer || stopping) return;
    const wait = Math.max(0, lastJobsLook + defaults.jobsWakeMs - Date.now());
    jobsTimer = setTimeout(() => {
      jobsTimer = undefined;
      lastJobsLook = Date.now();
      tick(false);
    }, wait);
    jobsTimer.unref();
  }

  const wakeups = await LogWakeups.start({
    db,
    logSignals,
    logger,
    poke: (head, stamped) => {
      for (const follower of followers.values()) follower.poke(head, stamped);
    },
    wantsEvents: () => followers.size > 0,
    listenFailed: "LISTEN on the log failed; scenario starts rely on the poll",
  });
  const stopJobsCreated = jobSignals.onJobsCreated(jobsCreated);
  let unlistenJobs: Unlisten | undefined;
  try {
    unlistenJobs = await db.listen(JOBS_CHANNEL, jobsCreated);
  } catch (error) {
    logger.warn({ err: error }, "LISTEN on the jobs failed; new activations are found at renewals");
  }

  tick();
  const renewTimer = setInterval(() => tick(), renewMs);
  renewTimer.unref();
  const pollTimer = setInterval(() => {
    for (const follower of followers.values()) follower.poke();
  }, options.pollMs ?? defaults.pollMs);
  pollTimer.unref();
  logger.info("scenario starter started");

  return {
    name: "scenario-starter",
    workerId,
    following: () => [...followers.keys()].sort((a, b) => Number(a) - Number(b)),
    wake: () => tick(),
    stop: async () => {
      if (stopping) return;
      stopping = true;
      clearInterval(renewTimer);
      clearInterval(pollTimer);
      if (jobsTimer) clearTimeout(jobsTimer);
      await wakeups.stop();
      stopJobsCreated();
      await unlistenJobs?.().catch(() => {});
      await ticking;
      await Promise.all([...followers.keys()].map((id) => drop(id, "worker stopping")));
      await Promise.all([...dropping.values()]);
      // Anything still leased to this worker (a claim racing the stop) goes back too.
      await releaseScenarioLeases(db, workerId, "all").catch(() => {});
      logger.info("scenario starter stopped");
    },
  };
}
