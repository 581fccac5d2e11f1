/**
 * Live pushes waiting to go again (DESIGN §5: a failing record's later events wait behind it): each
 * on a timer of the failure clock for its retry's delay, then due, in the order they came due,
 * until the runner has a free slot. The records of a waiting push stay busy in the scheduler.
 */
import type { Clock } from "./clock.js";
import type { Push } from "./push.js";

export interface RetriesHost {
  readonly clock: Clock;
  /** A push came due: send it when a slot is free. */
  retryDue(): void;
}

export class PushRetries {
  private due: Push[] = [];
  private readonly timers = new Map<NodeJS.Timeout, Push>();

  constructor(private readonly host: RetriesHost) {}

  /** The push goes again after `delayMs` of the failure clock. */
  schedule(push: Push, delayMs: number): void {
    const timer = this.host.clock.setTimer(() => {
      this.timers.delete(timer);
      this.due.push(push);
      this.host.retryDue();
    }, delayMs);
    this.timers.set(timer, push);
  }

  /** The next due push, if any. */
  next(): Push | undefined {
    return this.due.length > 0 ? this.due.shift() : undefined;
  }

  /** These pushes are due now, after those already due (the circuit closed). */
  retryNow(pushes: readonly Push[]): void {
    for (const push of pushes) this.due.push(push);
  }

  /** Takes every waiting push, on a timer or due, and stops their timers (the circuit holds them). */
  takeAll(): Push[] {
    const waiting: Push[] = [];
    for (const [timer, push] of this.timers) {
      this.host.clock.clearTimer(timer);
      waiting.push(push);
    }
    this.timers.clear();
    for (const push of this.due.splice(0)) waiting.push(push);
    return waiting;
  }

  /** Stops every timer and forgets every waiting push (the runner stops). */
  clear(): void {
    for (const timer of this.timers.keys()) this.host.clock.clearTimer(timer);
    this.timers.clear();
    this.due = [];
  }
}
