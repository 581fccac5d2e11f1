/**
 * A delivery worker's liveness lock (PostgreSQL; docs/delivery.md "Workers, leases and scale-out").
 * The worker holds a session advisory lock on a connection of its own for as long as it lives and
 * records the key with its heartbeat; when its process dies the server drops the lock at once, and
 * the other workers take its leases over after `graceMs` instead of when the leases expire.
 *
 * What keeps two workers from pushing one subscription at once when the holder is alive but its
 * lock session died (a database blip, a killed connection): the worker may push only while the lock
 * is *confirmed*, that is within `graceMs` of sending a query that found its key held; and another
 * worker takes a lease over only once it has seen the holder's key not held for `graceMs`. A
 * confirmation sent at time s found the key held after s, so before the key went; its pushes stop by
 * s + graceMs, before anyone else may take the lease. On losing the lock (the connection reports it,
 * a confirmation finds the key gone, or confirmations stop coming back in time) the worker aborts
 * its in-flight pushes (`signal`), hands its subscriptions back (`onInvalid`), and takes a lock
 * with a fresh key; once confirmed it claims leases again (`onValid`). A key once lost is never
 * taken again, so a late confirmation can never vouch for a lock session that is gone.
 *
 * The embedded database has one process: there is nothing to detect, and the worker is always
 * valid with no key (its leases move only when they expire, as before).
 */
import { setMaxListeners } from "node:events";
import type { Logger } from "pino";
import type { AdvisoryLock, Database } from "../storage/database.js";
import { allocateLivenessKey, livenessKeyHeld } from "../storage/liveness-locks.js";

export interface LivenessTiming {
  /** How often the worker confirms that its lock is held. */
  confirmMs: number;
  /** How long a confirmation lets the worker push, and how long others wait before a takeover. */
  graceMs: number;
}

export interface WorkerLiveness {
  /** The key to record with the heartbeat: null on the embedded database or while no lock is held. */
  readonly key: number | null;
  /** The worker may start pushes: its lock is held and was confirmed within the grace. */
  valid(): boolean;
  /** Aborted when the worker stops being valid; pushes pass it to the sender. */
  readonly signal: AbortSignal | undefined;
  /** Changes each time the worker becomes valid: leases taken in an older epoch are not trusted. */
  readonly epoch: number;
  stop(): Promise<void>;
}

export interface LivenessOptions {
  db: Database;
  logger: Logger;
  timing: LivenessTiming;
  /** The worker stopped being valid: hand every subscription back now (pushes are being aborted). */
  onInvalid(why: string): void;
  /** The worker became valid (again): renew and claim leases now. */
  onValid(): void;
}

/**
 * Waits between attempts to take the lock, doubling up to the last. Capped at 1 s: delivery waits
 * for this lock after an outage, and everything should resume within 2 s of the database coming
 * back (an attempt against a database still away costs one failed connection).
 */
const ACQUIRE_BACKOFF_MS = [100, 250, 500, 1_000];
/**
 * Confirmations of one lock that may wait for an answer at once: one that hangs does not hold the
 * next ones back. When this many hang, the database has stopped answering: the lock is given up and
 * a fresh one taken once it answers again (a dead database does not pile queries up).
 */
const MAX_PENDING_CONFIRMATIONS = 3;

/** An AbortError whose message says why the push was cut (it shows in the attempt's record). */
/**
 * The controller whose signal every push of this worker carries: each push in flight listens to it
 * (http-sender's cutOff), so it has as many listeners as the worker has pushes in flight, and Node's
 * warning past ten would be a false alarm.
 */
function cutter(): AbortController {
  const controller = new AbortController();
  setMaxListeners(0, controller.signal);
  return controller;
}

function handedBack(why: string): Error {
  const error = new Error(`the push was cut short: ${why}; the subscription is handed over`);
  error.name = "AbortError";
  return error;
}

export function startWorkerLiveness(options: LivenessOptions): WorkerLiveness {
  const { db, logger, timing } = options;
  if (!db.capabilities.sharedByProcesses)
    return { key: null, valid: () => true, signal: undefined, epoch: 0, stop: async () => {} };

  let stopped = false;
  let lock: AdvisoryLock | undefined;
  let key: number | null = null;
  /** performance.now() until which the worker may push (confirmation sent + grace). */
  let validUntil = 0;
  let isValid = false;
  let epoch = 0;
  let controller = cutter();
  let confirmTimer: NodeJS.Timeout | undefined;
  let lapseTimer: NodeJS.Timeout | undefined;
  /** Confirmations of the current lock waiting for an answer (a new object for each lock). */
  let pending = { count: 0 };
  let acquiring: Promise<void> | undefined;
  let wakeSleeper: (() => void) | undefined;

  function invalidate(why: string, lockLost: boolean): void {
    if (isValid) {
      isValid = false;
      validUntil = 0;
      controller.abort(handedBack(why));
      controller = cutter();
      if (!stopped) {
        logger.warn(
          { why },
          "this worker's liveness lock is gone or unconfirmed: its pushes are cut and its subscriptions handed back until it holds the lock again",
        );
        options.onInvalid(why);
      }
    }
    if (lapseTimer) clearTimeout(lapseTimer);
    lapseTimer = undefined;
    if (lockLost && lock) {
      const old = lock;
      lock = undefined;
      key = null;
      validUntil = 0;
      if (confirmTimer) clearInterval(confirmTimer);
      confirmTimer = undefined;
      void old.release().catch(() => {});
      if (!stopped) acquire();
    }
  }

  function confirmed(sentAt: number): void {
    if (stopped || !lock) return;
    validUntil = Math.max(validUntil, sentAt + timing.graceMs);
    if (lapseTimer) clearTimeout(lapseTimer);
    lapseTimer = setTimeout(
      () => {
        lapseTimer = undefined;
        if (performance.now() >= validUntil)
          invalidate(`no confirmation of the lock within ${timing.graceMs} ms`, false);
      },
      Math.max(0, validUntil - performance.now()),
    );
    if (!isValid && performance.now() < validUntil) {
      isValid = true;
      epoch++;
      if (epoch > 1) logger.info("liveness lock held again: this worker takes subscriptions again");
      options.onValid();
    }
  }

  async function confirm(): Promise<void> {
    if (stopped || key === null) return;
    if (pending.count >= MAX_PENDING_CONFIRMATIONS) {
      invalidate("the database does not answer the liveness lock's confirmations", true);
      return;
    }
    const mine = pending;
    mine.count++;
    const sentAt = performance.now();
    const asked = key;
    try {
      const held = await livenessKeyHeld(db, asked);
      if (key !== asked) return;
      if (held) confirmed(sentAt);
      else invalidate("the liveness lock's session ended", true);
    } catch (error) {
      // The database did not answer: the grace runs out unless a later confirmation comes back.
      logger.debug({ err: error }, "could not confirm the liveness lock");
    } finally {
      mine.count--;
    }
  }

  function acquire(): void {
    if (acquiring) return;
    acquiring = (async () => {
      for (let attempt = 0; !stopped; attempt++) {
        try {
          // A fresh key every time: a key whose session may still be alive somewhere is never reused.
          const next = await allocateLivenessKey(db);
          const taken = await db.tryAdvisoryLock(next);
          if (taken) {
            if (stopped) {
              await taken.release().catch(() => {});
              return;
            }
            lock = taken;
            key = next;
            pending = { count: 0 };
            void taken.lost.then((error) => {
              if (lock === taken)
                invalidate(`the liveness lock's connection ended: ${error.message}`, true);
            });
            confirmTimer = setInterval(() => void confirm(), timing.confirmMs);
            // Not awaited: should it find the lock gone, the new acquisition must not find this one
            // still running.
            void confirm();
            return;
          }
        } catch (error) {
          if (attempt === 0 || attempt % 10 === 0)
            logger.warn(
              { err: error },
              "cannot take the delivery worker's liveness lock; delivery waits for it",
            );
        }
        const wait = ACQUIRE_BACKOFF_MS[Math.min(attempt, ACQUIRE_BACKOFF_MS.length - 1)] as number;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, wait);
          wakeSleeper = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wakeSleeper = undefined;
      }
    })().finally(() => {
      acquiring = undefined;
    });
  }

  acquire();

  return {
    get key() {
      return key;
    },
    valid: () => isValid && performance.now() < validUntil,
    get signal() {
      return controller.signal;
    },
    get epoch() {
      return epoch;
    },
    stop: async () => {
      stopped = true;
      if (confirmTimer) clearInterval(confirmTimer);
      if (lapseTimer) clearTimeout(lapseTimer);
      // An acquisition under way gives back what it takes once it sees `stopped` (not awaited: with
      // the database away it could wait for a query's whole time limit).
      wakeSleeper?.();
      const held = lock;
      lock = undefined;
      key = null;
      isValid = false;
      await held?.release().catch(() => {});
    },
  };
}
