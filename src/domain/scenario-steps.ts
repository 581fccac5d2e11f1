/**
 * What one block of a scenario does to a run (SPEC §7.4, DESIGN §6b, docs/scenarios.md), as a pure
 * function of the block, the profile's current attributes and the time: the run goes on to the next
 * block (with the block's effect to write, if it has one), waits in a WAIT until a later time, or
 * leaves the scenario in this block. The run worker (jobs/scenarios/run-worker.ts) calls it block
 * after block and writes the effects, the run's new state and the block counts in one transaction.
 *
 * Also here: what a run that keeps failing becomes (a retry after a backoff, then FAILED), as data.
 */
import type { AttributeMap, AttributeValue } from "./change-event.js";
import { conditionHolds } from "./conditions.js";
import type { IsoDuration } from "./iso-duration.js";
import { addIsoDuration, parseIsoDuration, zonedTime } from "./iso-duration.js";
import type { ScenarioBlock } from "./scenario.js";

export type WaitBlock = Extract<ScenarioBlock, { type: "WAIT" }>;
export type CustomActionBlock = Extract<ScenarioBlock, { type: "CUSTOM_ACTION" }>;
export type UpdateProfileBlock = Extract<ScenarioBlock, { type: "UPDATE_PROFILE" }>;

/** What a block writes besides the run's own state, in the run's transaction. */
export type BlockEffect =
  /** A TRIGGER event of the block's custom action, with the block's parameters and the profile. */
  | { kind: "TRIGGER"; block: CustomActionBlock }
  /** A write of the profile through the capture path (its events have origin SCENARIO_RUN). */
  | { kind: "UPDATE_PROFILE"; block: UpdateProfileBlock };

export type BlockOutcome =
  /** The block ran: write `effect` (if any) and go on to `next`, at once. */
  | { kind: "pass"; next: string; effect?: BlockEffect }
  /** The run stays in this WAIT until `until` (later than now). */
  | { kind: "wait"; until: Date }
  /**
   * The run leaves the scenario in this block, FINISHED: an EXIT, a FILTER that does not hold and
   * has no `otherwise`, a WAIT until a date the profile does not have. `reason` says why when it is
   * not the ordinary end (the operator reads it as the run's last_error).
   */
  | { kind: "leave"; reason: string | null };

export interface BlockInput {
  /** The profile as events show it: profileId, creationMoment, updateMoment and its attributes. */
  profile: AttributeMap;
  now: Date;
  /**
   * True when the run was waiting in this block (status WAITING) and has been taken because its
   * time came: the WAIT is over and the run goes on. False when the run arrives at the block.
   */
  waitOver: boolean;
}

/**
 * The most blocks one move of a run may go through. A definition has no cycle without a WAIT, but
 * a WAIT may not wait when the run comes back to it (a date already past): such a run passes that
 * WAIT twice in one move and ends FAILED there (spinningReason). This bound is the backstop behind
 * that check: five times the blocks a definition may have, far more than any way through a
 * definition that passes no WAIT twice needs, and few enough that the move's transaction ends.
 */
export const MAX_BLOCKS_PER_MOVE = 1_000;

/**
 * Why a run that goes round without waiting is stopped (FAILED, this as its last error, so that it
 * does not spin): it came back to WAIT `waitId` after `blocks` blocks in this move, or (without a
 * WAIT) went through MAX_BLOCKS_PER_MOVE blocks.
 */
export function spinningReason(blocks: number, waitId?: string): string {
  const what =
    waitId === undefined
      ? `the run went through ${blocks} blocks in one move without waiting`
      : `the run came back to WAIT '${waitId}' after ${blocks} blocks in one move without waiting`;
  return `${what}: a loop whose WAIT does not wait (a date already past, or no duration); FAILED so it does not spin`;
}

/** What `block` does to a run now. Throws only for a stored definition that parseScenario refuses. */
export function runBlock(block: ScenarioBlock, input: BlockInput): BlockOutcome {
  switch (block.type) {
    case "WAIT":
      return input.waitOver ? { kind: "pass", next: block.next } : enterWait(block, input);
    case "FILTER": {
      const holds = block.conditions.every((c) => conditionHolds(c, input.profile, input.profile));
      if (holds) return { kind: "pass", next: block.next };
      return block.otherwise === undefined
        ? { kind: "leave", reason: null }
        : { kind: "pass", next: block.otherwise };
    }
    case "CUSTOM_ACTION":
      return { kind: "pass", next: block.next, effect: { kind: "TRIGGER", block } };
    case "UPDATE_PROFILE":
      return { kind: "pass", next: block.next, effect: { kind: "UPDATE_PROFILE", block } };
    case "EXIT":
      return { kind: "leave", reason: null };
  }
}

/** A run arriving at a WAIT: waits until its end, or goes on at once when the end is not later. */
function enterWait(block: WaitBlock, input: BlockInput): BlockOutcome {
  const end = waitEnd(block, input.profile, input.now);
  if (end.kind === "no-date")
    return {
      kind: "leave",
      reason: `WAIT '${block.id}' waits until the profile's '${block.untilAttribute}', which holds no date (${end.found}); the run left the scenario there`,
    };
  return end.at.getTime() > input.now.getTime()
    ? { kind: "wait", until: end.at }
    : { kind: "pass", next: block.next };
}

export type WaitEnd = { kind: "at"; at: Date } | { kind: "no-date"; found: string };

/**
 * When a run that arrives at `block` now may go on: now + `duration`, or the profile's date in
 * `untilAttribute` (a DATE at midnight in the block's time zone, a TIMESTAMP as it is) +
 * `duration`. Calendar units of the duration are read in the block's time zone (default UTC).
 */
export function waitEnd(block: WaitBlock, profile: AttributeMap, now: Date): WaitEnd {
  const timeZone = block.timezone ?? "UTC";
  let base = now;
  if (block.untilAttribute !== undefined) {
    const value = profile[block.untilAttribute];
    const date = dateOf(value, timeZone);
    if (!date) return { kind: "no-date", found: describe(value) };
    base = date;
  }
  if (block.duration === undefined) return { kind: "at", at: base };
  return { kind: "at", at: addIsoDuration(base, durationOf(block), timeZone) };
}

function durationOf(block: WaitBlock): IsoDuration {
  const duration = parseIsoDuration(block.duration ?? "");
  if (!duration)
    throw new Error(
      `WAIT '${block.id}' has duration '${block.duration}', which is not an ISO 8601 duration; save the scenario again with a valid one`,
    );
  return duration;
}

const DATE_VALUE = /^(\d{4})-(\d{2})-(\d{2})$/;

/** A stored DATE ("YYYY-MM-DD", at midnight in `timeZone`) or TIMESTAMP (ISO 8601) value as an instant. */
export function dateOf(value: AttributeValue | undefined, timeZone: string): Date | undefined {
  if (typeof value !== "string") return undefined;
  const text = value.trim();
  const day = DATE_VALUE.exec(text);
  if (day) {
    const [, year, month, dayOfMonth] = day;
    return zonedTime(
      { year: Number(year), month: Number(month), day: Number(dayOfMonth), hour: 0, minute: 0 },
      timeZone,
    );
  }
  if (!/^\d{4}-\d{2}-\d{2}T/.test(text)) return undefined;
  const at = new Date(text);
  return Number.isNaN(at.getTime()) ? undefined : at;
}

function describe(value: AttributeValue | undefined): string {
  if (value === undefined || value === null) return "no value";
  return `'${Array.isArray(value) ? value.join(",") : String(value)}'`;
}

/** How often a run's move may fail on an unexpected error, and how long it waits between tries. */
export const RUN_FAILURE_POLICY = {
  /** Failed moves of one block before the run is given up (FAILED, left in that block). */
  maxFailures: 5,
  /** The wait before the next try: this many ms times the failures so far (30 s, 60 s, …). */
  backoffMs: 30_000,
} as const;

export type FailureOutcome =
  { kind: "retry"; failures: number; at: Date } | { kind: "failed"; failures: number };

/** A run whose move failed `failuresBefore` times already failed once more, now. */
export function afterRunFailure(
  failuresBefore: number,
  now: Date,
  policy: { maxFailures: number; backoffMs: number } = RUN_FAILURE_POLICY,
): FailureOutcome {
  const failures = failuresBefore + 1;
  if (failures >= policy.maxFailures) return { kind: "failed", failures };
  return { kind: "retry", failures, at: new Date(now.getTime() + policy.backoffMs * failures) };
}
