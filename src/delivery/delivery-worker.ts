/**
 * The delivery worker (DESIGN §5, §7): one per process with the `worker` role. It claims a fair
 * share of the subscriptions with renewable leases, runs one SubscriptionRunner per leased
 * subscription, wakes them on NOTIFY `herald_log` (with a slow poll as a safety net), and on stop
 * hands everything back so another worker resumes at once. A sequencer leading in this process
 * announces each new head directly (`onLogStamped`), with the events it stamped when they are few,
 * so runners need not read them back; a NOTIFY that arrives while such a round runs waits for it,
 * and one for a head already announced is ignored (a poke with no news would cost a read).
 *
 * Fair share: a worker claims free leases up to ceil(deliverable / live workers); it gives back what
 * it holds above that share, and one lease per renewal while it holds two more than the least-loaded
 * live worker, so a worker that joins (or survives a peer) gets work within a few renewals and no
 * live worker is left idle.
 *
 * Takeover (PostgreSQL): the worker holds a liveness lock (worker-liveness.ts) and looks every
 * `orphanCheckMs` for leases whose holder's lock is gone; once it has seen one so for
 * `livenessGraceMs` it takes it over (within its fair share, the dead worker no longer counted), so a
 * killed worker's subscriptions move within about 3 s instead of when their leases expire. Should
 * this worker's own lock stop being confirmed, it aborts its pushes and hands everything back.
 */
import type { Logger } from "pino";
import type { BackgroundService } from "../background-service.js";
import { defaultWorkerId } from "../background-service.js";
import type { HeraldConfig } from "../config/config.js";
import type { SecretBox } from "../domain/secret-box.js";
import type { RandomSource, RetryPolicy } from "../domain/retry-policy.js";
import { DEFAULT_RETRY_POLICY } from "../domain/retry-policy.js";
import type { Database } from "../storage/database.js";
import { LogWakeups } from "./log-wakeups.js";
import type { LogSignals } from "../storage/log-signals.js";
import type {
  LeasedSubscription,
  OrphanedLease,
} from "../storage/subscription-lease-repository.js";
import {
  claimLeases,
  claimOrphanedLeases,
  heartbeat,
  orphanedLeases,
  releaseLeases,
  releaseUndeliverable,
  removeWorker,
  renewLeases,
} from "../storage/subscription-lease-repository.js";
import type { DeliveryTuning } from "./delivery-tuning.js";
import { reportWorkerGauges } from "./delivery-metrics.js";
import { subscriptionsWithOpenReplays } from "../storage/replay-repository.js";
import { DEFAULT_DELIVERY_TUNING } from "./delivery-tuning.js";
import type { EndpointHealthThresholds } from "../domain/endpoint-health.js";
import { ENDPOINT_HEALTH_THRESHOLDS } from "../domain/endpoint-health.js";
import type { OperationsNotifier } from "./operations-notifier.js";
import { createOperationsNotifier } from "./operations-notifier.js";
import { DatabaseOutageLog } from "../database-outage-log.js";
import { isDatabaseUnavailable } from "../storage/database-unavailable.js";
import type { Clock } from "./clock.js";
import { systemClock } from "./clock.js";
import type { HttpSender } from "./http-sender.js";
import { createHttpSender } from "./http-sender.js";
import { SubscriptionRunner } from "./subscription-runner.js";
import { startWorkerLiveness } from "./worker-liveness.js";

/** After a renewal that failed because the database is away, the next try (not the next interval). */
const RENEWAL_RETRY_MS = 500;

export interface DeliveryWorkerOptions {
  db: Database;
  /** This process's log signals: a sequencer leading here announces new heads through them. */
  logSignals: LogSignals;
  logger: Logger;
  config: HeraldConfig;
  /** Opens the subscriptions' signing secrets (sealed in the database; main.ts builds it). */
  secrets: SecretBox;
  /** Tests and benchmarks only: lease timing, buffer sizes. */
  tuning?: Partial<DeliveryTuning>;
  /** Tests only: a shorter retry schedule, a fixed random source. */
  policy?: RetryPolicy;
  random?: RandomSource;
  /** Tests and the failures benchmark: a scaled clock, so the retry schedule's days pass in seconds. */
  clock?: Clock;
  /** Where operational events go; by default a notifier built from `config` (log + operations URL). */
  operations?: OperationsNotifier;
  /** Tests only: shorter endpoint-health thresholds than 24 h / 3 days. */
  health?: EndpointHealthThresholds;
}

export interface DeliveryWorker extends BackgroundService {
  /** Subscriptions changed: re-read them now instead of at the next lease renewal. */
  wake(): void;
  readonly workerId: string;
  /** Ids of the subscriptions this worker drives right now. */
  driving(): number[];
}

export async function startDeliveryWorker(options: DeliveryWorkerOptions): Promise<DeliveryWorker> {
  const { db, config, logSignals } = options;
  // A push may run for the whole delivery timeout, so none starts unless the lease outlives it:
  // the lease lasts at least the timeout plus 5 s, and pushes stop the timeout plus 1 s before it ends.
  const tuning: DeliveryTuning = {
    ...DEFAULT_DELIVERY_TUNING,
    leaseTtlMs: Math.max(DEFAULT_DELIVERY_TUNING.leaseTtlMs, config.deliveryTimeoutMs + 5_000),
    leaseSafetyMarginMs: config.deliveryTimeoutMs + 1_000,
    ...options.tuning,
  };
  const workerId = config.workerId ?? defaultWorkerId();
  const logger = options.logger.child({ workerId });
  const httpSender = createHttpSender({
    timeoutMs: config.deliveryTimeoutMs,
    allowInsecureTargets: config.allowInsecureTargets,
    workerId,
    // Bulkheads: each runner keeps its subscription within maxConcurrency, so the shared per-origin
    // pool needs no cap of its own, and no subscription waits for another's connections.
    connectionsPerOrigin: null,
  });
  const ownsOperations = options.operations === undefined;
  const operations =
    options.operations ?? createOperationsNotifier({ config, logger: options.logger });
  const runners = new Map<number, SubscriptionRunner>();
  /** Subscriptions being handed back: still leased to us, but not to be restarted. */
  const handingBack = new Set<number>();
  let leaseDeadline = 0;
  let stopping = false;
  /** After giving a lease back for balance, do not claim it straight back. */
  let claimPausedUntil = 0;
  /**
   * Other workers' leases seen orphaned: since when (performance.now() when the answer came), and
   * whether a renewal round has been offered them since they matured.
   */
  const orphans = new Map<number, { lease: OrphanedLease; since: number; offered: boolean }>();
  let maturityTimer: NodeJS.Timeout | undefined;

  const liveness = startWorkerLiveness({
    db,
    logger,
    timing: { confirmMs: tuning.livenessConfirmMs, graceMs: tuning.livenessGraceMs },
    onInvalid: (why) => {
      // The pushes are being aborted; nothing starts again before a renewal under a confirmed lock.
      leaseDeadline = 0;
      orphans.clear();
      for (const id of [...runners.keys()]) void handBack(id, why);
    },
    onValid: () => {
      if (!stopping) tick();
    },
  });
  // Every push carries the liveness signal: losing the lock cuts the pushes in flight at once.
  const sender: HttpSender = {
    send: (push) => {
      const signal = liveness.signal;
      return httpSender.send(signal ? { ...push, signal } : push);
    },
    close: () => httpSender.close(),
  };

  const context = {
    db,
    sender,
    logger,
    workerId,
    tuning,
    policy: options.policy ?? DEFAULT_RETRY_POLICY,
    random: options.random ?? Math.random,
    clock: options.clock ?? systemClock,
    operations,
    health: options.health ?? ENDPOINT_HEALTH_THRESHOLDS,
    leaseValid: () => Date.now() < leaseDeadline && liveness.valid(),
    onGiveUp: (subscriptionId: number, why: string) => {
      void handBack(subscriptionId, why);
    },
  };

  function startRunner(leased: LeasedSubscription): void {
    const runner = new SubscriptionRunner(leased.subscription, leased.watermark, context);
    runners.set(runner.id, runner);
    logger.info({ subscriptionId: runner.id, watermark: leased.watermark }, "driving subscription");
    runner.poke();
  }

  const outage = new DatabaseOutageLog(logger, "delivery (lease renewal and new subscriptions)");

  /** Stops a runner gracefully, then gives its lease back. */
  async function handBack(subscriptionId: number, why: string): Promise<void> {
    const runner = runners.get(subscriptionId);
    if (!runner || handingBack.has(subscriptionId)) return;
    handingBack.add(subscriptionId);
    runners.delete(subscriptionId);
    try {
      await runner.stop(tuning.stopTimeoutMs);
      await releaseLeases(db, workerId, [subscriptionId]);
      logger.info({ subscriptionId, why }, "handed subscription back");
    } catch (error) {
      // With the database away, every runner handed back fails alike: the outage is told once.
      if (isDatabaseUnavailable(error))
        outage.failed(error, "could not hand the subscription back");
      else logger.warn({ err: error, subscriptionId }, "could not hand the subscription back");
    } finally {
      handingBack.delete(subscriptionId);
    }
  }

  /** The liveness lock went (or stopped being confirmed) since `epoch`: leases read since go undriven. */
  const livenessChanged = (epoch: number) => liveness.epoch !== epoch || !liveness.valid();

  async function renewAndBalance(): Promise<void> {
    // Without a confirmed liveness lock nothing is renewed or claimed (on PostgreSQL the statements
    // refuse it too): other workers may be taking this worker's leases over.
    if (!liveness.valid()) return;
    const epoch = liveness.epoch;
    const startedAt = Date.now();
    const census = await heartbeat(db, workerId, tuning.leaseTtlMs, liveness.key);
    const renewed = await renewLeases(db, options.secrets, workerId, tuning.leaseTtlMs);
    if (livenessChanged(epoch)) return;
    leaseDeadline = startedAt + tuning.leaseTtlMs - tuning.leaseSafetyMarginMs;
    const renewedIds = new Set(renewed.map((l) => l.subscription.id));
    for (const id of [...runners.keys()])
      if (!renewedIds.has(id)) void handBack(id, "no longer leased or no longer active");
    await releaseUndeliverable(db, workerId);
    for (const leased of renewed) {
      const id = leased.subscription.id;
      if (handingBack.has(id)) continue;
      const runner = runners.get(id);
      if (runner) runner.update(leased.subscription);
      else if (!stopping) startRunner(leased);
    }
    if (stopping) return;
    const target = Math.ceil(census.deliverable / census.liveWorkers);
    if (runners.size < target) {
      // After giving a lease back for balance, claim no free one for a while; a dead worker's
      // (matured orphans) are never one this worker gave back.
      const claimed =
        Date.now() >= claimPausedUntil
          ? await claimLeases(
              db,
              options.secrets,
              workerId,
              tuning.leaseTtlMs,
              target - runners.size,
            )
          : [];
      const matured = maturedOrphans().filter((o) => !runners.has(o.subscriptionId));
      if (runners.size + claimed.length < target && matured.length > 0) {
        const taken = await claimOrphanedLeases(
          db,
          options.secrets,
          workerId,
          tuning.leaseTtlMs,
          matured,
          target - runners.size - claimed.length,
        );
        for (const leased of taken) {
          const from = orphans.get(leased.subscription.id)?.lease.owner;
          orphans.delete(leased.subscription.id);
          logger.info(
            { subscriptionId: leased.subscription.id, from },
            "taking over a subscription whose worker is gone (its liveness lock was released)",
          );
        }
        claimed.push(...taken);
      }
      // Claimed under a lock that is gone by now: left to the next renewal under a confirmed lock.
      if (livenessChanged(epoch)) return;
      for (const leased of claimed) if (!stopping) startRunner(leased);
      if (stopping && claimed.length > 0)
        await releaseLeases(
          db,
          workerId,
          claimed.map((l) => l.subscription.id),
        );
    } else if (
      runners.size > census.minOwned + 1 &&
      runners.size > Math.floor(census.deliverable / census.liveWorkers)
    ) {
      // Above the fair share (a worker joined): give the whole excess back at once. Within it but two
      // above the least-loaded worker: give one back. The least-loaded workers claim them; rounds
      // converge to within ±1 of each other.
      const excess = Math.max(1, runners.size - target);
      const newest = [...runners.keys()].sort((a, b) => b - a).slice(0, excess);
      claimPausedUntil = Date.now() + 2 * tuning.leaseRenewMs;
      for (const id of newest) void handBack(id, "rebalancing over live workers");
    }
    for (const runner of runners.values()) runner.poke();
    // Replay requests (POST …/replay wakes this worker in the API's process; others see them here).
    const withReplays = await subscriptionsWithOpenReplays(db, [...runners.keys()]);
    for (const id of withReplays) runners.get(id)?.kickReplays();
  }

  /** Orphaned leases seen so for the whole grace: their holder's pushes have stopped by now. */
  function maturedOrphans(): OrphanedLease[] {
    const now = performance.now();
    const matured = [...orphans.values()].filter((o) => now - o.since >= tuning.livenessGraceMs);
    for (const o of matured) o.offered = true;
    return matured.map((o) => o.lease);
  }

  /** Looks for other workers' orphaned leases; ticks (to take them over) once some have matured. */
  async function lookForOrphans(): Promise<void> {
    if (stopping || !liveness.valid()) return;
    const found = await orphanedLeases(db, workerId, tuning.leaseTtlMs);
    // Seen when the answer came: the lock was gone by then, never later.
    const answeredAt = performance.now();
    const seen = new Set<number>();
    for (const lease of found) {
      seen.add(lease.subscriptionId);
      const known = orphans.get(lease.subscriptionId)?.lease;
      const same =
        known !== undefined &&
        known.owner === lease.owner &&
        known.key === lease.key &&
        known.expiresAt === lease.expiresAt;
      if (!same) orphans.set(lease.subscriptionId, { lease, since: answeredAt, offered: false });
    }
    for (const id of [...orphans.keys()]) if (!seen.has(id)) orphans.delete(id);
    if (maturityTimer) clearTimeout(maturityTimer);
    maturityTimer = undefined;
    // Each orphan is offered to one renewal round as soon as it matures (then to every regular one:
    // this worker may be at its fair share while another takes it).
    const waiting = [...orphans.values()].filter((o) => !o.offered);
    if (waiting.length === 0) return;
    const first = Math.min(...waiting.map((o) => o.since));
    if (answeredAt - first >= tuning.livenessGraceMs) return tick();
    maturityTimer = setTimeout(
      () => {
        maturityTimer = undefined;
        if (!stopping) tick();
      },
      first + tuning.livenessGraceMs - performance.now(),
    );
  }

  let lookingForOrphans = false;
  function orphanCheck(): void {
    if (lookingForOrphans) return;
    lookingForOrphans = true;
    lookForOrphans()
      .catch((error: unknown) => {
        if (!stopping) logger.debug({ err: error }, "could not look for orphaned leases");
      })
      .finally(() => {
        lookingForOrphans = false;
      });
  }

  /** A database outage is logged once, not at every renewal that fails because of it. */
  let ticking: Promise<void> | undefined;
  let tickAgain = false;
  function tick(): void {
    if (ticking) {
      tickAgain = true;
      return;
    }
    ticking = (async () => {
      do {
        tickAgain = false;
        try {
          await renewAndBalance();
          outage.succeeded();
        } catch (error) {
          if (stopping) break;
          outage.failed(error, "lease renewal failed; retrying");
          // While the database is away, renew again soon rather than at the next interval: pushes
          // stop once the lease might have run out, and resume at the first renewal that works.
          if (isDatabaseUnavailable(error)) retrySoon();
        }
      } while (tickAgain && !stopping);
    })().finally(() => {
      ticking = undefined;
    });
  }
  let retryTimer: NodeJS.Timeout | undefined;
  function retrySoon(): void {
    if (retryTimer) return;
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      if (!stopping) tick();
    }, RENEWAL_RETRY_MS);
    retryTimer.unref();
  }

  const wakeups = await LogWakeups.start({
    db,
    logSignals,
    logger,
    poke: (head, stamped) => {
      for (const runner of runners.values()) runner.poke(head, stamped);
    },
    wantsEvents: () => runners.size > 0,
    listenFailed: "LISTEN failed; relying on the poll",
  });
  tick();
  const unreport = reportWorkerGauges(() => {
    const gauges = { driven: runners.size, failing: 0, parkedRecords: 0, bufferedEvents: 0 };
    for (const runner of runners.values()) {
      if (runner.failing) gauges.failing++;
      gauges.parkedRecords += runner.parkedRecords;
      gauges.bufferedEvents += runner.buffered;
    }
    return gauges;
  });
  const renewTimer = setInterval(tick, tuning.leaseRenewMs);
  const pollTimer = setInterval(() => {
    for (const runner of runners.values()) runner.poke();
  }, tuning.pollMs);
  // Only where other processes share the database (PostgreSQL) can one die while its leases last.
  const orphanTimer = db.capabilities.sharedByProcesses
    ? setInterval(orphanCheck, tuning.orphanCheckMs)
    : undefined;
  logger.info("delivery worker started");

  return {
    name: "delivery",
    workerId,
    driving: () => [...runners.keys()].sort((a, b) => a - b),
    wake: () => {
      if (!stopping) tick();
    },
    stop: async () => {
      if (stopping) return;
      stopping = true;
      clearInterval(renewTimer);
      clearTimeout(retryTimer);
      unreport();
      clearInterval(pollTimer);
      if (orphanTimer) clearInterval(orphanTimer);
      if (maturityTimer) clearTimeout(maturityTimer);
      await wakeups.stop();
      await ticking;
      const ids = [...runners.keys()];
      await Promise.all(ids.map((id) => handBack(id, "worker stopping")));
      // Anything still leased to us (a claim racing the stop) goes back too.
      await releaseLeases(db, workerId, "all").catch(() => {});
      await removeWorker(db, workerId).catch(() => {});
      await liveness.stop();
      await sender.close().catch(() => {});
      if (ownsOperations) await operations.close().catch(() => {});
      logger.info("delivery worker stopped");
    },
  };
}
