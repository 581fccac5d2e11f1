/**
 * Admission of API requests on the embedded database. Every database operation of an embedded
 * process waits in one first-come-first-served queue for the single session
 * (src/storage/session-queue.ts). If every request went straight to that queue, 200 busy clients
 * would keep it 200 deep: each operation would wait behind all the others, a request makes several,
 * and when more requests arrive than the session can serve the wait grows without bound.
 *
 * So at most `maxConcurrent` API requests are in progress at once; the next ones wait at the door,
 * first come first served, costing nothing but their open connection. A request that has waited
 * `maxWaitMs` without getting in is answered 503 with `Retry-After` (HERALD_DATABASE_BUSY): beyond
 * what the embedded database can take, clients are told so instead of waiting unboundedly. The
 * session queue stays short, so the background roles (sequencer, delivery, imports), which do not
 * pass the door, keep getting their turns.
 *
 * Public routes (/healthz, /readyz, /metrics) never wait here. On PostgreSQL (a pool of sessions and
 * a server that schedules them) every request goes in at once.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { HeraldError } from "../domain/errors.js";
import type { Database } from "../storage/database.js";

export interface AdmissionLimits {
  /** API requests in progress at once. */
  maxConcurrent: number;
  /** Longest a request waits at the door before it is answered 503. */
  maxWaitMs: number;
  /** What `Retry-After` asks of a refused client, in seconds. */
  retryAfterSeconds: number;
}

/**
 * 64 requests keep the write batches large (group commit) while a request inside waits for at
 * most about 64 operations ahead of each of its own; 1 s at the door plus that keeps every request
 * under 2 s (docs/performance-notes.md, "Admission").
 */
export const ADMISSION_LIMITS: AdmissionLimits = {
  maxConcurrent: 64,
  maxWaitMs: 1_000,
  retryAfterSeconds: 1,
};

type Release = () => void;

interface Waiter {
  admit: (release: Release) => void;
  refuse: (error: HeraldError) => void;
  timer: NodeJS.Timeout;
  since: number;
}

/** The door: `enter()` resolves with the way out once the request may go in. */
export class RequestAdmission {
  private inside = 0;
  private readonly waiting: Waiter[] = [];

  constructor(private readonly limits: AdmissionLimits = ADMISSION_LIMITS) {}

  /** Requests in progress and waiting (for tests and metrics). */
  get counts(): { inside: number; waiting: number } {
    return { inside: this.inside, waiting: this.waiting.length };
  }

  enter(): Release | Promise<Release> {
    if (this.inside < this.limits.maxConcurrent && this.waiting.length === 0) {
      this.inside++;
      return this.exit();
    }
    return new Promise<Release>((admit, refuse) => {
      const since = performance.now();
      const waiter: Waiter = {
        admit,
        refuse,
        since,
        timer: setTimeout(() => {
          this.waiting.splice(this.waiting.indexOf(waiter), 1);
          refuse(this.busy(performance.now() - since));
        }, this.limits.maxWaitMs),
      };
      this.waiting.push(waiter);
    });
  }

  private exit(): Release {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = this.waiting.shift();
      if (!next) {
        this.inside--;
        return;
      }
      // The slot passes straight to the oldest waiter.
      clearTimeout(next.timer);
      next.admit(this.exit());
    };
  }

  private busy(waitedMs: number): HeraldError {
    const retryAfter = this.limits.retryAfterSeconds;
    return new HeraldError(
      "HERALD_DATABASE_BUSY",
      { waitedMs: Math.round(waitedMs), retryAfter },
      [],
      { "retry-after": String(retryAfter) },
    );
  }
}

/**
 * Registers the door's hooks when `db` serves every operation from one queue (the embedded
 * database); does nothing otherwise. Register after the authentication hook: a request that is
 * refused (401, 429) or that the server turns away while closing never takes a place.
 */
export function registerDatabaseAdmission(
  app: FastifyInstance,
  db: Database,
  limits: AdmissionLimits = ADMISSION_LIMITS,
): void {
  if (!db.queueDelayMs) return;
  const admission = new RequestAdmission(limits);
  const releases = new WeakMap<FastifyRequest, Release>();
  const release = (request: FastifyRequest) => {
    releases.get(request)?.();
    releases.delete(request);
  };
  const refusals = refusalLog(app, limits.maxWaitMs);
  app.addHook("onRequest", async (request: FastifyRequest, reply: FastifyReply) => {
    const { url, config } = request.routeOptions;
    if (config.public || url === undefined || url.startsWith("/docs")) return;
    let exit: Release;
    try {
      exit = await admission.enter();
    } catch (error) {
      refusals.count();
      throw error;
    }
    releases.set(request, exit);
    // "close" fires once the response is done or the client went away; onResponse covers inject.
    // A client that hung up while it waited has closed already: it gives its place back now.
    if (reply.raw.closed) exit();
    else reply.raw.once("close", exit);
  });
  app.addHook("onResponse", async (request) => release(request));
}

/** Refusals are logged as one warning a minute at most, with their count, not one per request. */
function refusalLog(app: FastifyInstance, maxWaitMs: number): { count(): void } {
  const everyMs = 60_000;
  let refused = 0;
  let loggedAt = -Infinity;
  return {
    count() {
      refused++;
      const now = performance.now();
      if (now - loggedAt < everyMs) return;
      app.log.warn(
        { refused, code: "HERALD_DATABASE_BUSY" },
        `the embedded database is busy: ${refused} request(s) waited ${maxWaitMs} ms for their turn and were answered 503 with Retry-After${loggedAt === -Infinity ? "" : " in the last minute"}. This is more load than one embedded process takes; for more, run Herald on PostgreSQL (DATABASE_URL) with several processes`,
      );
      loggedAt = now;
      refused = 0;
    },
  };
}
