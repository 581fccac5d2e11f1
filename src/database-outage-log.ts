/**
 * How a background loop (sequencer, delivery worker, job workers) tells the operator that the
 * database went away: once per outage, not once per attempt. The first failure that says the
 * database is unavailable is logged at warn, in words, with what stops meanwhile; the failures after
 * it at debug; the first success after it at info, with how long it lasted. Any other error is
 * logged at warn every time, as before.
 */
import type { Logger } from "pino";
import { findUnavailable } from "./storage/database-unavailable.js";

export class DatabaseOutageLog {
  private since: number | undefined;

  /** `paused`: what waits for the database, in words ("stamping", "imports"). */
  constructor(
    private readonly logger: Logger,
    private readonly paused: string,
  ) {}

  /** True while an outage is reported and not yet over. */
  get inOutage(): boolean {
    return this.since !== undefined;
  }

  /** A failure of the loop; `message` says what failed when it is not the database being away. */
  failed(error: unknown, message: string): void {
    const unavailable = findUnavailable(error);
    if (!unavailable) {
      this.logger.warn({ err: error }, message);
      return;
    }
    if (this.since !== undefined) {
      this.logger.debug({ err: error }, message);
      return;
    }
    this.since = Date.now();
    this.logger.warn(
      { reason: unavailable.reason },
      `${unavailable.message}; ${this.paused} paused until it is back (retrying by itself)`,
    );
  }

  /** The loop's database work succeeded: ends the outage reported, if any. */
  succeeded(): void {
    if (this.since === undefined) return;
    const outageMs = Date.now() - this.since;
    this.since = undefined;
    this.logger.info(
      { outageMs },
      `the database is back (unavailable for ${(outageMs / 1000).toFixed(1)} s); ${this.paused} resumed`,
    );
  }
}
