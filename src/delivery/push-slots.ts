/**
 * A subscription's bulkhead (docs/delivery.md): at most maxConcurrency requests in flight, its live
 * pushes and its replay's pushes alike. A replay push that finds every slot taken waits, and the
 * next slot freed goes to it before live work takes it again (the runner admits it first when it
 * dispatches), so neither starves the other. Stopping waits here for the requests in flight.
 */
import type { AttemptResult } from "../domain/delivery-outcome.js";
import type { HttpSender, OutgoingPush } from "./http-sender.js";

export interface SlotsHost {
  /** The subscription's maxConcurrency (a PUT may change it). */
  maxConcurrency(): number;
  /** A replay push ended: its slot is free for live work. */
  replayEnded(): void;
}

export class PushSlots {
  /** Requests in flight, live and replay. */
  inFlight = 0;
  private replayWaiting: (() => void) | undefined;
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly host: SlotsHost) {}

  /** Sends a replay push in a slot of its own, waiting for one while every slot is taken. */
  async sendReplay(sender: HttpSender, push: OutgoingPush): Promise<AttemptResult> {
    if (this.inFlight < this.host.maxConcurrency()) this.inFlight++;
    else await new Promise<void>((resolve) => (this.replayWaiting = resolve));
    try {
      return await sender.send(push);
    } finally {
      this.inFlight--;
      this.host.replayEnded();
      this.notifyIdle();
    }
  }

  /** The replay push waiting for a slot, if any, takes one and goes. */
  admitReplay(): void {
    const admit = this.replayWaiting;
    this.replayWaiting = undefined;
    if (!admit) return;
    this.inFlight++;
    admit();
  }

  /** Wakes whoever waits for the requests in flight once none is left. */
  notifyIdle(): void {
    if (this.inFlight > 0) return;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  /** Resolves once no request is in flight, or after `timeoutMs`. */
  async drained(timeoutMs: number): Promise<void> {
    if (this.inFlight === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      new Promise<void>((resolve) => this.idleWaiters.push(resolve)),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs))),
    ]);
    clearTimeout(timer);
  }
}
