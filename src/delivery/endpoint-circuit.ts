/**
 * The circuit breaker and endpoint health of one subscription (SPEC §6, DESIGN §5). When the endpoint
 * fails everything the circuit opens: the subscription is FAILING, the runner stops reading and
 * sending, and one probe goes on the retry schedule. The health timers raise a warning after 24 h
 * and deactivate the subscription after 3 days, both counted from the first failure of the streak
 * that opened the circuit. Which push is the probe, and what happens to held pushes, is the circuit
 * breaker's (circuit-breaker.ts), which opens and closes this.
 */
import type { Logger } from "pino";
import type { EndpointHealthKind } from "../domain/endpoint-health.js";
import { endpointHealth, operationalEventFor } from "../domain/endpoint-health.js";
import type { Subscription } from "../domain/subscription.js";
import type { HealthAnnouncement } from "../storage/endpoint-health-repository.js";
import {
  markActive,
  markFailing,
  switchHealthAnnouncement,
} from "../storage/endpoint-health-repository.js";
import type { RunnerContext } from "./runner-context.js";

export interface CircuitHost {
  readonly ctx: RunnerContext;
  readonly logger: Logger;
  subscription(): Subscription;
  serial<T>(write: () => Promise<T>): Promise<T>;
  /** The next probe may go now. */
  probeDue(): void;
  /** The endpoint failed for the whole disable threshold: deactivate the subscription. */
  deactivate(reason: string): void;
}

/** What an announcement means as an endpoint-health state. */
const ANNOUNCED_HEALTH: Record<"warn" | "disable", EndpointHealthKind> = {
  warn: "warn",
  disable: "disable",
};

/**
 * Switches the subscription's announced health (once per transition, whichever worker holds the
 * lease) and raises the operational event of that transition, if any.
 */
export async function announceHealth(
  host: Pick<CircuitHost, "ctx" | "subscription" | "serial">,
  next: HealthAnnouncement,
  reason: string,
): Promise<void> {
  const { ctx } = host;
  const sub = host.subscription();
  const previous = await host.serial(() =>
    switchHealthAnnouncement(ctx.db, sub.id, ctx.workerId, next, reason),
  );
  if (previous === "unchanged") return;
  const before: EndpointHealthKind = previous === null ? "failing" : ANNOUNCED_HEALTH[previous];
  const after: EndpointHealthKind = next === null ? "healthy" : ANNOUNCED_HEALTH[next];
  const type = operationalEventFor(before, after);
  if (!type) return;
  void ctx.operations.notify({
    type,
    subscriptionId: sub.id,
    entity: sub.entityName,
    reason,
    at: new Date(ctx.clock.now()),
  });
}

export class EndpointCircuit {
  /** Clock time of the first failure of the streak that opened it. */
  readonly since: number;
  /** Clock time the next probe is due (what held pushes show as their next attempt). */
  nextProbeAt: number;
  /** Failed attempts the probe schedule has counted: the next probe waits the schedule's step for it. */
  step = 0;
  /** A probe is in flight. */
  probing = false;
  /**
   * The last probe was a held push: the next one tries a fresh record first, so one record the
   * endpoint rejects cannot keep a working endpoint FAILING.
   */
  lastProbeHeld = false;
  private due = false;
  /** The disable threshold passed while a probe was in flight: its answer decides. */
  private deactivation: string | undefined;
  private probeTimer: NodeJS.Timeout | undefined;
  private readonly healthTimers: NodeJS.Timeout[] = [];

  /** Opens the circuit: FAILING since `since`, first probe after `probeInMs`. */
  constructor(
    private readonly host: CircuitHost,
    since: number,
    reason: string,
    probeInMs: number,
  ) {
    const { ctx } = host;
    this.since = since;
    this.nextProbeAt = ctx.clock.now();
    this.scheduleProbe(probeInMs);
    for (const after of [ctx.health.warnAfterMs, ctx.health.disableAfterMs])
      this.checkHealthAt(since + after);
    host.logger.warn(
      { reason, failingSince: new Date(since).toISOString(), probeInMs },
      "endpoint fails every push: subscription FAILING, probing it on the retry schedule",
    );
    const sub = host.subscription();
    void host
      .serial(() => markFailing(ctx.db, sub.id, ctx.workerId, new Date(since), reason))
      .catch((error: unknown) => host.logger.warn({ err: error }, "could not record FAILING"));
  }

  /** A probe may go (its time has come and none is in flight). */
  get probeMayGo(): boolean {
    return this.due && !this.probing;
  }

  /** The probe was sent. */
  probeSent(heldPush: boolean): void {
    this.due = false;
    this.probing = true;
    this.lastProbeHeld = heldPush;
  }

  /** The probe failed: the next one after `delayMs`. */
  probeFailed(delayMs: number): void {
    this.probing = false;
    if (this.deactivation !== undefined) {
      this.host.deactivate(this.deactivation);
      return;
    }
    this.scheduleProbe(delayMs);
  }

  private scheduleProbe(delayMs: number): void {
    const clock = this.host.ctx.clock;
    if (this.probeTimer) clock.clearTimer(this.probeTimer);
    this.nextProbeAt = clock.now() + delayMs;
    this.probeTimer = clock.setTimer(() => {
      this.probeTimer = undefined;
      this.due = true;
      this.host.probeDue();
    }, delayMs);
  }

  /** The endpoint delivered: ACTIVE again. */
  close(): void {
    this.stop();
    const { ctx, logger } = this.host;
    logger.info(
      { failedForMs: ctx.clock.now() - this.since },
      "endpoint delivers again: subscription ACTIVE, resuming from where it stopped",
    );
    const sub = this.host.subscription();
    void this.host
      .serial(() => markActive(ctx.db, sub.id, ctx.workerId))
      .catch((error: unknown) => logger.warn({ err: error }, "could not record ACTIVE"));
  }

  /** Stops its timers (closed, or the runner stops). */
  stop(): void {
    const clock = this.host.ctx.clock;
    if (this.probeTimer) clock.clearTimer(this.probeTimer);
    this.probeTimer = undefined;
    for (const timer of this.healthTimers.splice(0)) clock.clearTimer(timer);
  }

  /**
   * Checks the endpoint's health once the clock reads `at`. A timer may fire a little before its
   * time by `clock.now()` (Node counts a timer from the event loop's cached time, which lags the
   * wall clock by whatever the current turn has run; a scaled clock multiplies that lag): one that
   * comes early waits for the rest, or the warning or the deactivation would never come.
   */
  private checkHealthAt(at: number): void {
    const clock = this.host.ctx.clock;
    const timer = clock.setTimer(() => {
      this.healthTimers.splice(this.healthTimers.indexOf(timer), 1);
      if (clock.now() < at) this.checkHealthAt(at);
      else void this.checkHealth();
    }, at - clock.now());
    this.healthTimers.push(timer);
  }

  private async checkHealth(): Promise<void> {
    const { ctx } = this.host;
    const health = endpointHealth(new Date(this.since), new Date(ctx.clock.now()), ctx.health);
    if (health.kind === "disable") {
      // A probe in flight may still get through: deactivate only if it fails.
      if (this.probing) this.deactivation = health.reason;
      else this.host.deactivate(health.reason);
    } else if (health.kind === "warn") {
      const deactivateAt = new Date(this.since + ctx.health.disableAfterMs).toISOString();
      const reason = `warning: the endpoint has failed every push since ${new Date(this.since).toISOString()}; Herald keeps probing it and deactivates the subscription at ${deactivateAt} unless a push gets through`;
      await announceHealth(this.host, "warn", reason).catch((error: unknown) =>
        this.host.logger.warn({ err: error }, "could not record the endpoint's health"),
      );
    }
  }
}
