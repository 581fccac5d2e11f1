/**
 * The time the delivery engine's failure handling runs on: retry and probe delays, parked records'
 * next attempts, how long an endpoint has been failing. Production uses the system clock; tests and
 * the failures benchmark use a scaled clock so that the hours and days of the retry schedule and of
 * endpoint health pass in seconds. Leases, linger timers and HTTP timeouts always run on real time.
 */
export interface Clock {
  /** Milliseconds since the epoch, as `Date.now()`. */
  now(): number;
  /**
   * Runs `fn` once about `ms` of this clock's time has passed. Like Node's timers it may fire a
   * little early by `now()` (a few real milliseconds, times the scale): a caller that needs a
   * threshold reached checks `now()` and waits again (EndpointCircuit's health timers do).
   */
  setTimer(fn: () => void, ms: number): NodeJS.Timeout;
  clearTimer(timer: NodeJS.Timeout): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer: (fn, ms) => setTimeout(fn, ms),
  clearTimer: (timer) => clearTimeout(timer),
};

/**
 * A clock that runs `factor` times faster than real time from now on: with a factor of 100 000 the
 * three days of the retry schedule pass in about 2.6 s. Its `now()` starts at the real time.
 */
export function scaledClock(factor: number, origin: number = Date.now()): Clock {
  if (!(factor >= 1)) throw new Error(`clock scale must be at least 1, got ${factor}`);
  return {
    now: () => origin + (Date.now() - origin) * factor,
    setTimer: (fn, ms) => setTimeout(fn, Math.max(0, ms) / factor),
    clearTimer: (timer) => clearTimeout(timer),
  };
}
