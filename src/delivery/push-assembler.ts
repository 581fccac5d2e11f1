/**
 * Assembles the stream's pushes from the record scheduler (DESIGN §5): one event each
 * (ONE_BY_ONE), or BULK blocks gathered in the bulk batcher, which leave when full, when no new
 * event joined for the linger time, when the oldest waited the maximum wait, or at once when a
 * backlog has nothing more to add. A block that waits has a timer for the time it is due.
 */
import type { Subscription } from "../domain/subscription.js";
import { BulkBatcher } from "./bulk-batcher.js";
import type { PendingEvent, Push } from "./push.js";
import { newPush } from "./push.js";
import type { RecordScheduler } from "./record-scheduler.js";

export interface AssemblerHost {
  /** The subscription's current definition (a PUT may change it). */
  subscription(): Subscription;
  /** More of the log is known to wait: a block need not linger for events still to come. */
  behind(): boolean;
  /** The waiting block is due: send it. */
  blockDue(): void;
}

function limitsOf(s: Subscription) {
  return { maxBlockSize: s.maxBlockSize, lingerMs: s.lingerMs, maxWaitMs: s.maxWaitMs };
}

export class PushAssembler {
  private readonly batcher: BulkBatcher<PendingEvent>;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly scheduler: RecordScheduler<PendingEvent>,
    private readonly host: AssemblerHost,
  ) {
    this.batcher = new BulkBatcher(limitsOf(host.subscription()));
  }

  /** The subscription was edited: its block limits apply from the next check. */
  update(subscription: Subscription): void {
    this.batcher.setLimits(limitsOf(subscription));
  }

  /** Events ready to go that no push in flight or held carries (a fresh probe could be made). */
  get hasFresh(): boolean {
    return this.scheduler.readyRecords > 0 || this.batcher.length > 0;
  }

  /** The next one-event push (ONE_BY_ONE); undefined when no record is ready. */
  single(): Push | undefined {
    const items = this.scheduler.take(1);
    return items.length > 0 ? newPush(items, this.host.subscription(), false) : undefined;
  }

  /**
   * Fills the open block with what is ready and returns it when it may leave now (`mayLeave`: a
   * slot is free); undefined when it waits. Call armTimer once done.
   */
  block(now: number, mayLeave: boolean): Push | undefined {
    const batcher = this.batcher;
    if (batcher.room > 0) batcher.add(this.scheduler.take(batcher.room), now);
    // Lingering waits for events still to come; with a backlog they are already here, so a block
    // that nothing ready can join leaves at once instead of idling for lingerMs.
    const nothingToAdd = this.host.behind() && this.scheduler.readyRecords === 0;
    if (batcher.length > 0 && (batcher.isDue(now) || nothingToAdd) && mayLeave)
      return newPush(batcher.take(), this.host.subscription(), true);
    return undefined;
  }

  /** A block that waits (not full) gets a timer for the time it is due. */
  armTimer(now: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const due = this.batcher.dueAt();
    if (due === undefined || this.batcher.isFull) return;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.host.blockDue();
      },
      Math.max(0, due - now),
    );
  }

  /** A push of the next ready events, whatever the block's timing (what a fresh probe is made of). */
  fresh(): Push | undefined {
    const sub = this.host.subscription();
    if (this.batcher.length > 0) return newPush(this.batcher.take(), sub, true);
    const bulk = sub.pushMode === "BULK";
    const items = this.scheduler.take(bulk ? sub.maxBlockSize : 1);
    return items.length > 0 ? newPush(items, sub, bulk) : undefined;
  }

  /** Stops the timer and drops the open block (its events go back with the runner's stop). */
  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.batcher.take();
  }
}
