/**
 * Rate limits per licence (SPEC §1): calls per minute and requests in progress at once. Limits are
 * kept in this process's memory, so with several API processes each one applies them separately.
 *
 * Calls per minute is a token bucket: it holds up to `perMinute` calls and refills continuously at
 * `perMinute / 60` per second, so a quiet client may burst, and a busy one gets a steady rate.
 * 0 disables a limit.
 */
import { HeraldError } from "../domain/errors.js";
import { rateLimitedRequests } from "../metrics.js";

export interface RateLimits {
  perMinute: number;
  concurrent: number;
}

interface LicenceState {
  tokens: number;
  refilledAt: number;
  inFlight: number;
}

/** Releases a concurrency slot; calling it more than once releases it once. */
export type Release = () => void;

const NOTHING_TO_RELEASE: Release = () => {};

export class RateLimiter {
  private readonly licences = new Map<number, LicenceState>();

  constructor(
    private readonly limits: RateLimits,
    private readonly now: () => number = Date.now,
  ) {}

  get enabled(): boolean {
    return this.limits.perMinute > 0 || this.limits.concurrent > 0;
  }

  /** Admits one call of the licence, or throws a 429 with `Retry-After` in seconds. */
  admit(licenceId: number): Release {
    if (!this.enabled) return NOTHING_TO_RELEASE;
    const state = this.stateOf(licenceId);
    const { perMinute, concurrent } = this.limits;
    if (concurrent > 0 && state.inFlight >= concurrent) {
      rateLimitedRequests.inc({ limit: "concurrent" });
      throw rateLimited(1);
    }
    if (perMinute > 0) {
      const now = this.now();
      const perMs = perMinute / 60_000;
      state.tokens = Math.min(perMinute, state.tokens + (now - state.refilledAt) * perMs);
      state.refilledAt = now;
      if (state.tokens < 1) {
        rateLimitedRequests.inc({ limit: "per_minute" });
        throw rateLimited(Math.max(1, Math.ceil((1 - state.tokens) / perMs / 1000)));
      }
      state.tokens -= 1;
    }
    if (concurrent === 0) return NOTHING_TO_RELEASE;
    state.inFlight += 1;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      state.inFlight -= 1;
    };
  }

  private stateOf(licenceId: number): LicenceState {
    let state = this.licences.get(licenceId);
    if (!state) {
      state = { tokens: this.limits.perMinute, refilledAt: this.now(), inFlight: 0 };
      this.licences.set(licenceId, state);
    }
    return state;
  }
}

function rateLimited(retryAfterSeconds: number): HeraldError {
  return new HeraldError("HERALD_RATE_LIMITED", { retryAfter: retryAfterSeconds }, [], {
    "retry-after": String(retryAfterSeconds),
  });
}
