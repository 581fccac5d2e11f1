/**
 * Scenarios (SPEC §7.4, docs/scenarios.md): a start and a graph of blocks over one profile table.
 * These are the stored shapes (what parseScenario keeps of a request body, and what the engine
 * reads); the parsing and the graph checks are in scenario-definition.ts.
 */
import type { Condition } from "./conditions.js";

export const REENTRY_POLICIES = ["NEVER", "AFTER_EXIT", "ALWAYS"] as const;
export type Reentry = (typeof REENTRY_POLICIES)[number];

export const START_TYPES = ["DATA_EVENT", "API", "SEGMENT_ENTRY", "SUBSCRIPTION", "DATE"] as const;
export type StartType = (typeof START_TYPES)[number];

export const BLOCK_TYPES = ["WAIT", "FILTER", "CUSTOM_ACTION", "UPDATE_PROFILE", "EXIT"] as const;
export type BlockType = (typeof BLOCK_TYPES)[number];

export type ScenarioStart =
  /** A change of a profile of the table: CREATE or UPDATE, with the subscriptions' onFields and conditions. */
  | {
      type: "DATA_EVENT";
      eventType: "CREATE" | "UPDATE";
      onFields: string[];
      conditions: { stateBeforeOperation?: Condition[]; stateAfterOperation?: Condition[] };
    }
  /** `POST …/scenarios/{id}/start` with a profile key. */
  | { type: "API" }
  /** The profile enters `segment` of `segmentation` (an UPDATED_SEGMENT event with belongs true). */
  | { type: "SEGMENT_ENTRY"; segmentation: string; segment: string }
  /** The profile subscribes (`subscribe` true) to or unsubscribes from `subscription`. */
  | { type: "SUBSCRIPTION"; subscription: string; subscribe: boolean }
  /**
   * Every day at `at` (HH:mm) in `timezone`, the profiles whose date `attribute` is that day
   * (`anniversary`: the same month and day, any year).
   */
  | { type: "DATE"; attribute: string; anniversary: boolean; at: string; timezone: string };

export type ScenarioBlock =
  /**
   * Waits `duration` (ISO 8601: PT0S, PT1H, P1D, P1M, …), or until the profile's date (or
   * timestamp) attribute `untilAttribute` (a date at midnight in `timezone`, default UTC), plus
   * `duration` when both are given. A time already past moves the run on at once.
   */
  | {
      id: string;
      type: "WAIT";
      duration?: string;
      untilAttribute?: string;
      timezone?: string;
      next: string;
    }
  /** Goes on to `next` when every condition holds on the profile's current attributes, else to `otherwise` (absent: the run leaves the scenario here). */
  | { id: string; type: "FILTER"; conditions: Condition[]; next: string; otherwise?: string }
  /** Triggers the custom action (stored by id) with these parameters. */
  | {
      id: string;
      type: "CUSTOM_ACTION";
      customActionId: string;
      parameters: Record<string, string | number | boolean>;
      next: string;
    }
  /**
   * Writes the profile through the same capture path as the API: attribute values (null clears),
   * subscriptions (name → subscribe) and segmentations (name → segment name, or false to leave;
   * true is read as "the segment of the same name").
   */
  | {
      id: string;
      type: "UPDATE_PROFILE";
      attributes: Record<string, string | number | boolean | null>;
      subscriptions: Record<string, boolean>;
      segmentations: Record<string, string | false>;
      next: string;
    }
  | { id: string; type: "EXIT" };

/** A scenario's definition as stored: the blocks in the order given; the first block is where runs begin. */
export interface ScenarioDefinition {
  name: string;
  /** The profile table's id (the body names it by name or id). */
  tableId: string;
  reentry: Reentry;
  start: ScenarioStart;
  blocks: ScenarioBlock[];
}

export const SCENARIO_STATUSES = ["INACTIVE", "ACTIVE"] as const;
export type ScenarioStatus = (typeof SCENARIO_STATUSES)[number];

export interface Scenario {
  id: string;
  entityId: number;
  definition: ScenarioDefinition;
  status: ScenarioStatus;
  activatedAt: Date | null;
  deactivatedAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

export const RUN_STATUSES = ["WAITING", "RUNNING", "FINISHED", "CANCELLED", "FAILED"] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

/** What started a run. */
export type RunStart =
  | { type: "DATA_EVENT" | "SEGMENT_ENTRY" | "SUBSCRIPTION"; position: number; eventId: string }
  | { type: "API"; apiKeyId: number; apiKeyName: string }
  | { type: "DATE"; date: string };

export interface ScenarioRun {
  id: string;
  scenarioId: string;
  entityId: number;
  profileId: number;
  status: RunStatus;
  blockId: string;
  dueAt: Date | null;
  start: RunStart;
  steps: number;
  failures: number;
  lastError: string | null;
  startedAt: Date;
  updatedAt: Date;
  endedAt: Date | null;
}

/** Per block: runs that entered it, wait in it now, passed it, and left the scenario in it. */
export interface BlockStatistics {
  blockId: string;
  type: BlockType;
  entered: number;
  waiting: number;
  passed: number;
  left: number;
}

/** The block where every run of the definition begins: the first of the list. */
export function firstBlock(definition: Pick<ScenarioDefinition, "blocks">): ScenarioBlock {
  const first = definition.blocks[0];
  if (!first)
    throw new Error("a scenario definition has at least one block (parseScenario checks it)");
  return first;
}

/**
 * A new run's re-entry key (scenario_runs.entry_key, unique per scenario): NEVER keeps the profile's
 * key for good, AFTER_EXIT until the run ends (the engine clears it then), ALWAYS sets none.
 */
export function entryKey(reentry: Reentry, profileId: number): string | null {
  return reentry === "ALWAYS" ? null : `profile:${profileId}`;
}

/** The key a run keeps once it ended: NEVER's stays, AFTER_EXIT's is released. */
export function entryKeyAfterEnd(reentry: Reentry, key: string | null): string | null {
  return reentry === "NEVER" ? key : null;
}
