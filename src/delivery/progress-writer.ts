/**
 * Writes one runner's delivery progress (DESIGN §5): the buffered attempt rows, the events queued
 * behind parked records, and the watermark over the contiguous prefix of finished positions. It
 * writes at most every watermarkFlushMs, through the runner's write chain, and only while this
 * worker holds the lease: a write the database refuses for the lease says it was lost.
 */
import type { DatabaseOutageLog } from "../database-outage-log.js";
import type { AttemptRecord } from "../storage/attempt-repository.js";
import { recordAttempts } from "../storage/attempt-repository.js";
import { advanceWatermark } from "../storage/subscription-lease-repository.js";
import type { AttemptRows } from "./push-attempt.js";
import type { RunnerContext } from "./runner-context.js";
import type { WriteChain } from "./write-chain.js";
import { LeaseLostError } from "./write-chain.js";

/** Events read behind parked records: written down before the watermark may pass them. */
export interface QueuedEvents {
  /** Writes them (inside the write chain); throws LeaseLostError when the lease is gone. */
  writeQueue(): Promise<void>;
}

export interface ProgressParts {
  ctx: Pick<RunnerContext, "db" | "workerId" | "tuning">;
  subscriptionId: number;
  /** The watermark as the lease handed it over. */
  watermark: number;
  chain: WriteChain;
  /** The contiguous prefix of finished positions (the watermark tracker). */
  finished: { readonly safe: number };
  parked: QueuedEvents;
  /** A database outage is logged once, not at every read and flush while it lasts. */
  outage: Pick<DatabaseOutageLog, "failed">;
  /** This worker no longer holds the lease: another one drives the subscription now. */
  leaseLost(): void;
}

export class ProgressWriter implements AttemptRows {
  private attempts: AttemptRecord[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** The watermark as last written. */
  private persisted: number;
  /** The runner stopped and wrote its last progress: nothing is scheduled any more. */
  private closed = false;

  constructor(private readonly parts: ProgressParts) {
    this.persisted = parts.watermark;
  }

  /** Buffers an attempt row for the next flush. */
  recordAttempt(attempt: AttemptRecord): void {
    this.attempts.push(attempt);
    this.schedule();
  }

  /** Flushes within watermarkFlushMs (unless a flush is scheduled already). */
  schedule(): void {
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, this.parts.ctx.tuning.watermarkFlushMs);
  }

  /** Flushes now instead of at the scheduled time. */
  flushNow(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    void this.flush();
  }

  /** Writes pending attempts, parked events and the watermark. */
  flush(): Promise<void> {
    const { ctx, outage } = this.parts;
    return this.parts.chain.serial(async () => {
      const attempts = this.attempts;
      this.attempts = [];
      try {
        await recordAttempts(ctx.db, attempts);
      } catch (error) {
        outage.failed(error, "could not record push attempts; will retry");
        this.attempts = attempts.concat(this.attempts);
        this.schedule();
        return;
      }
      try {
        await this.parts.parked.writeQueue();
        const safe = this.parts.finished.safe;
        if (safe > this.persisted) {
          const id = this.parts.subscriptionId;
          const held = await advanceWatermark(ctx.db, id, ctx.workerId, safe);
          if (held) this.persisted = safe;
          else this.parts.leaseLost();
        }
      } catch (error) {
        if (error instanceof LeaseLostError) this.parts.leaseLost();
        else {
          outage.failed(error, "could not persist delivery progress; will retry");
          this.schedule();
        }
      }
    });
  }

  /**
   * The runner stops: writes what is left, then schedules nothing more (a failure of this last
   * flush still schedules its one retry, as any flush does).
   */
  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.flush();
    this.closed = true;
  }
}
