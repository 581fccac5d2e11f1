/**
 * Everything about FAILING for one subscription (DESIGN §5 "circuit breaker", SPEC §6): the
 * evidence the failure decision reads (live failures in a row, pushes delivered since a push first
 * failed), the open circuit (an EndpointCircuit: the FAILING row, the probe timer, the health
 * timers), the live pushes it holds, which push goes as the probe and how long the next one waits,
 * and closing on the first delivery, after which every held push goes again.
 */
import type { AttemptOutcome, AttemptResult } from "../domain/delivery-outcome.js";
import { parseRetryAfter } from "../domain/delivery-outcome.js";
import type { FailureFacts } from "../domain/failure-decision.js";
import { jitteredDelay, nextRetry } from "../domain/retry-policy.js";
import type { Subscription } from "../domain/subscription.js";
import type { CircuitHost } from "./endpoint-circuit.js";
import { announceHealth, EndpointCircuit } from "./endpoint-circuit.js";
import type { Push } from "./push.js";
import { firstPosition } from "./push.js";

/** A failed attempt's outcome (what the retry policy decided). */
type Failure = Extract<AttemptOutcome, { kind: "retry" | "failed" }>;

export interface BreakerHost extends CircuitHost {
  /** A push of the stream's next ready events (a fresh probe); undefined when none is ready. */
  freshPush(): Push | undefined;
}

const byFirstPosition = (a: Push, b: Push): number => firstPosition(a) - firstPosition(b);

export class CircuitBreaker {
  private deliveredPushes = 0;
  private failureStreak = 0;
  /** Clock time of the first failure of the current streak. */
  private streakStartedAt = 0;
  private circuit: EndpointCircuit | undefined;
  /** Live pushes that failed while the circuit is open: sent again when it closes. */
  private held: Push[] = [];
  /** The recovery of an earlier warning or deactivation has been checked since the last failure. */
  private healthSettled = false;

  constructor(private readonly host: BreakerHost) {}

  /** The circuit is open: the endpoint fails everything (status FAILING). */
  get isOpen(): boolean {
    return this.circuit !== undefined;
  }

  /** Clock time the next probe is due; undefined while the circuit is closed. */
  get nextProbeAt(): number | undefined {
    return this.circuit?.nextProbeAt;
  }

  /** A live push failed, the streak grows: what the failure decision reads about it. */
  liveFailure(push: Push, startedAt: number): FailureFacts {
    if (this.failureStreak++ === 0) this.streakStartedAt = startedAt;
    push.deliveriesAtFirstFailure ??= this.deliveredPushes;
    return {
      failureStreak: this.failureStreak,
      attempts: push.attempts,
      othersDelivered: this.deliveredPushes > push.deliveriesAtFirstFailure,
      circuitOpen: this.circuit !== undefined,
      probe: push.probe === true,
      parked: false,
    };
  }

  /**
   * A parked record's head push failed: what the failure decision reads about it. It runs on its
   * own schedule outside the stream, so it is no evidence about the endpoint (the streak stays).
   */
  parkedFailure(push: Push): FailureFacts {
    return {
      failureStreak: this.failureStreak,
      attempts: push.attempts,
      othersDelivered: false,
      circuitOpen: this.circuit !== undefined,
      probe: false,
      parked: true,
    };
  }

  /**
   * A push was delivered: the streak ends and an open circuit closes. Returns the pushes it held,
   * oldest first, to go again at once; undefined when it was not open.
   */
  delivered(): Push[] | undefined {
    this.deliveredPushes++;
    this.failureStreak = 0;
    const released = this.close();
    if (!this.healthSettled) {
      this.healthSettled = true;
      this.announce(null, "the endpoint accepts pushes again");
    }
    return released;
  }

  /**
   * Opens the circuit, FAILING since the streak began, the first probe after `probeInMs`; `step`
   * failed attempts are counted on the probe schedule. False when it was open already.
   */
  open(reason: string, probeInMs: number, step: number): boolean {
    if (this.circuit) return false;
    const since = this.streakStartedAt || this.host.ctx.clock.now();
    this.healthSettled = false;
    this.circuit = new EndpointCircuit(this.host, since, reason, probeInMs);
    this.circuit.step = step;
    return true;
  }

  /** A subscription taken over while FAILING stays failing: the circuit opens again as it was. */
  restore(subscription: Subscription): boolean {
    if (subscription.state !== "FAILING") return false;
    const { clock, policy } = this.host.ctx;
    this.streakStartedAt = subscription.failingSince?.getTime() ?? clock.now();
    const probeInMs = policy.scheduleMs[1] ?? 5_000;
    return this.open(subscription.stateReason ?? "the endpoint failed every push", probeInMs, 1);
  }

  /** A live push waits for the circuit to close (it goes again after the probe that closes it). */
  hold(push: Push): void {
    this.held.push(push);
  }

  /** Live pushes that waited for a retry when the circuit opened wait for it to close. */
  holdAll(pushes: readonly Push[]): void {
    for (const push of pushes) this.held.push(push);
  }

  /**
   * The probe to send now, if one may go: the oldest held push, or the next push the stream has;
   * they take turns while both exist (a push of one rejected record must not be the only probe).
   */
  nextProbe(): Push | undefined {
    const circuit = this.circuit;
    if (!circuit?.probeMayGo) return undefined;
    let push = circuit.lastProbeHeld ? this.host.freshPush() : undefined;
    let fromHeld = false;
    if (!push && this.held.length > 0) {
      this.held.sort(byFirstPosition);
      push = this.held.shift();
      fromHeld = true;
    }
    push ??= this.host.freshPush();
    if (!push) return undefined;
    circuit.probeSent(fromHeld);
    push.probe = true;
    return push;
  }

  /** The probe failed: the next one waits the schedule's next step. Returns that delay. */
  probeFailed(probe: Push, outcome: Failure, result: AttemptResult): number {
    const circuit = this.circuit as EndpointCircuit;
    probe.probe = false;
    // The schedule follows the probes, not the probing push (held and fresh ones take turns).
    const delayMs = this.probeDelay(++circuit.step, outcome, result);
    circuit.probeFailed(delayMs);
    return delayMs;
  }

  /**
   * The delay before the next probe after `step` failures: the retry schedule's step (its last one
   * once used up, so probes never stop), with the error class's floor and the receiver's
   * `Retry-After`, like any retry.
   */
  probeDelay(step: number, outcome: Failure, result: AttemptResult): number {
    const { policy, random, clock } = this.host.ctx;
    const retryAfterMs =
      result.kind === "response"
        ? parseRetryAfter(result.retryAfter, new Date(clock.now()))
        : undefined;
    const index = Math.min(step, policy.scheduleMs.length - 1);
    const next = nextRetry(index, { errorClass: outcome.errorClass, retryAfterMs }, random, policy);
    if (next.kind === "retry") return next.delayMs;
    return jitteredDelay(policy.scheduleMs.at(-1) ?? 60_000, policy.jitter, random);
  }

  /** Records the subscription's deactivation as its announced health. */
  announceDisabled(reason: string): Promise<void> {
    return announceHealth(this.host, "disable", reason);
  }

  /** Stops the circuit's timers and forgets the held pushes (the runner stops). */
  stop(): void {
    this.circuit?.stop();
    this.held = [];
  }

  /** The endpoint delivered: ACTIVE again; the held pushes, oldest first. */
  private close(): Push[] | undefined {
    const circuit = this.circuit;
    if (!circuit) return undefined;
    this.circuit = undefined;
    circuit.close();
    const held = this.held.sort(byFirstPosition);
    this.held = [];
    for (const push of held) push.probe = false;
    return held;
  }

  private announce(next: "warn" | null, reason: string): void {
    void announceHealth(this.host, next, reason).catch((error: unknown) =>
      this.host.logger.warn({ err: error }, "could not record the endpoint's health"),
    );
  }
}
