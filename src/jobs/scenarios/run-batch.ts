/**
 * One transaction's moves of scenario runs (DESIGN §6b): each run taken goes through its blocks one
 * after another (domain/scenario-steps.ts says what each does) until it waits in a WAIT whose end
 * is later or leaves the scenario, and everything the moves decide is written in the same
 * transaction: the blocks' effects (TRIGGER events, profile writes through capture), the runs' new
 * states and the block counts. A crash before the commit leaves every run where it was, with no
 * effect written; after it, every effect and the states that say they happened. So a block takes
 * effect once, whatever dies when.
 *
 * Set-based where the runs are many: the batch's scenarios, tables and profiles are read once, its
 * TRIGGER events appended together (held until a profile write, so that the log keeps the order in
 * which the blocks ran), its states written in one statement and its counts in one more. A profile
 * write goes one profile at a time, as the API's does, under the table's write gate.
 */
import type { Logger } from "pino";
import { profileState } from "../../capture/change-event-builders.js";
import type { ProfileWrite } from "../../capture/profile-writer.js";
import { applyToProfile } from "../../capture/profile-writer.js";
import { enterTableWriteGate } from "../../capture/write-retry.js";
import type { AttributeMap, NewChangeEvent, Origin } from "../../domain/change-event.js";
import type { CustomAction } from "../../domain/custom-action.js";
import { checkActionParameters, renderActionParameters } from "../../domain/custom-action.js";
import type { DataTable } from "../../domain/data-table.js";
import { HeraldError } from "../../domain/errors.js";
import type { RunStatus, ScenarioBlock } from "../../domain/scenario.js";
import { entryKeyAfterEnd } from "../../domain/scenario.js";
import type {
  BlockEffect,
  BlockOutcome,
  CustomActionBlock,
  UpdateProfileBlock,
} from "../../domain/scenario-steps.js";
import { MAX_BLOCKS_PER_MOVE, runBlock, spinningReason } from "../../domain/scenario-steps.js";
import { appendChangeEvents } from "../../storage/change-event-repository.js";
import { findCustomAction } from "../../storage/custom-action-repository.js";
import { findTableById } from "../../storage/data-table-repository.js";
import type { Queryable } from "../../storage/database.js";
import type { LogSignals } from "../../storage/log-signals.js";
import type { StoredRecord } from "../../storage/record-repository.js";
import { findRecordById } from "../../storage/record-repository.js";
import type {
  BlockCountChange,
  RunScenario,
  RunState,
  StoredRun,
} from "../../storage/scenario-run-repository.js";
import {
  addBlockCounts,
  loadRunProfiles,
  loadRunScenarios,
  writeRunStates,
} from "../../storage/scenario-run-repository.js";
import { customActionTriggerEvent } from "../custom-action-events.js";
import { profileWriteOf } from "./run-profile-update.js";

/** What a batch works with besides its transaction. */
export interface RunBatchContext {
  /** Paces the inbox NOTIFY of the events the batch appends. */
  logSignals: LogSignals;
  logger: Logger;
}

/** What a committed batch did. */
export interface BatchResult {
  /** Runs taken and moved. */
  moved: number;
  /** TRIGGER events appended. */
  triggers: number;
  /** Profiles written (each with its UPDATE or membership events). */
  profileWrites: number;
}

/** A run the batch ended FAILED because it went round without waiting (spinningReason). */
export interface GivenUpRun {
  run: StoredRun;
  /** The block it ended in. */
  blockId: string;
  reason: string;
}

/** What a batch did, and the runs it gave up, to be told once it committed. */
export interface BatchOutcome extends BatchResult {
  givenUp: GivenUpRun[];
}

/** Moves `runs`, which `tx` holds locked, and writes what the moves did; commit with the caller's transaction. */
export async function moveRunBatch(
  tx: Queryable,
  context: RunBatchContext,
  runs: readonly StoredRun[],
  now: Date,
): Promise<BatchOutcome> {
  const batch = new RunBatch(tx, context, now);
  await batch.load(runs);
  // In profile order, so that the profile rows a batch locks are locked in one order by every
  // batch (two workers' batches never wait for each other the opposite way round).
  const ordered = [...runs].sort(
    (a, b) => a.profileId - b.profileId || Number(a.id) - Number(b.id),
  );
  const states: RunState[] = [];
  for (const run of ordered) {
    const state = await batch.move(run);
    if (state) states.push(state);
  }
  await batch.flushEvents();
  await writeRunStates(tx, states, now);
  await addBlockCounts(tx, batch.counts());
  return {
    moved: states.length,
    triggers: batch.triggers,
    profileWrites: batch.profileWrites,
    givenUp: batch.givenUp,
  };
}

/** The state of a run that goes on: due at `dueAt` at `blockId`, its key kept, its failures over. */
function going(
  run: StoredRun,
  status: "WAITING" | "RUNNING",
  blockId: string,
  dueAt: Date,
  steps: number,
): RunState {
  const { id, entryKey } = run;
  return {
    id,
    status,
    blockId,
    dueAt,
    entryKey,
    steps,
    failures: 0,
    lastError: null,
    endedAt: null,
  };
}

/** What every run of a CUSTOM_ACTION block triggers. */
interface BlockTrigger {
  action: CustomAction;
  parameters: Record<string, string>;
}

/** Why a run cannot go on, once the block it is in cannot do its work any more. */
class RunCancelled extends Error {}

/**
 * A block of a run failed on an unexpected error (`cause`): the batch rolls back. It names the
 * block that failed, which a move through several blocks may have reached from the block the run
 * is stored at (`storedBlockId`): nothing of the blocks between was written either.
 */
export class BlockFailed extends Error {
  constructor(
    readonly runId: string,
    readonly blockId: string,
    readonly storedBlockId: string,
    cause: unknown,
  ) {
    super(
      `run ${runId} failed at block '${blockId}': ${cause instanceof Error ? cause.message : String(cause)}`,
      { cause },
    );
    this.name = "BlockFailed";
  }
}

class RunBatch {
  private scenarios = new Map<string, RunScenario>();
  private readonly blocks = new Map<string, Map<string, ScenarioBlock>>();
  private profiles = new Map<number, StoredRecord>();
  private readonly states = new WeakMap<StoredRecord, AttributeMap>();
  /** By table id; null: the table is gone. */
  private readonly tables = new Map<string, DataTable | null>();
  /** By scenario and block id. */
  private readonly blockTriggers = new Map<string, BlockTrigger | string>();
  private readonly blockCounts = new Map<string, BlockCountChange>();
  private pending: NewChangeEvent[] = [];
  readonly givenUp: GivenUpRun[] = [];
  triggers = 0;
  profileWrites = 0;

  constructor(
    private readonly tx: Queryable,
    private readonly context: RunBatchContext,
    private readonly now: Date,
  ) {}

  /** Reads what the runs need: their scenarios, tables and profiles; passes the write gates. */
  async load(runs: readonly StoredRun[]): Promise<void> {
    this.scenarios = await loadRunScenarios(this.tx, [...new Set(runs.map((r) => r.scenarioId))]);
    const writing: DataTable[] = [];
    for (const scenario of this.scenarios.values()) {
      const table = await this.tableOf(scenario.tableId);
      const writes = scenario.definition.blocks.some((b) => b.type === "UPDATE_PROFILE");
      if (table && writes && !writing.includes(table)) writing.push(table);
    }
    // The gates of every table the batch may write, in one call (sorted inside: two writers never
    // take them in opposite orders), before any profile row is locked.
    if (writing.length > 0) await enterTableWriteGate(this.tx, writing);
    this.profiles = await loadRunProfiles(
      this.tx,
      runs.map((r) => r.profileId),
    );
  }

  /** Moves one run as far as it goes now; undefined when its scenario is gone (and the run with it). */
  async move(run: StoredRun): Promise<RunState | undefined> {
    const scenario = this.scenarios.get(run.scenarioId);
    if (!scenario) return undefined;
    const blocks = this.blocksOf(scenario);
    const origin: Origin = {
      kind: "SCENARIO_RUN",
      type: "SCENARIO_RUN",
      id: run.id,
      scenarioId: scenario.id,
    };
    let blockId = run.blockId;
    let steps = run.steps;
    let waitOver = run.status === "WAITING";
    const end = (status: RunStatus, reason: string | null): RunState => {
      this.count(scenario.id, blockId, "exited");
      return {
        id: run.id,
        status,
        blockId,
        dueAt: null,
        entryKey: entryKeyAfterEnd(scenario.definition.reentry, run.entryKey),
        steps,
        failures: 0,
        lastError: reason,
        endedAt: this.now,
      };
    };
    /** The WAITs this move went on from: coming back to one and going on again is a spin. */
    const waitsPassed = new Set<string>();
    for (let i = 0; ; i++) {
      if (i >= MAX_BLOCKS_PER_MOVE) return this.giveUp(run, end, blockId, spinningReason(i));
      const block = blocks.get(blockId);
      if (!block)
        return end(
          "CANCELLED",
          `block '${blockId}' is no longer in the scenario's definition (it was changed while the run was in it)`,
        );
      const profile = this.profiles.get(run.profileId);
      if (!profile || profile.tableId !== scenario.tableId)
        return end(
          "CANCELLED",
          `profile ${run.profileId} was deleted; the run stopped at block '${blockId}'`,
        );
      let outcome: BlockOutcome;
      try {
        outcome = runBlock(block, { profile: this.stateOf(profile), now: this.now, waitOver });
      } catch (error) {
        throw new BlockFailed(run.id, blockId, run.blockId, error);
      }
      waitOver = false;
      if (outcome.kind === "wait") return going(run, "WAITING", blockId, outcome.until, steps);
      if (outcome.kind === "leave") {
        steps++;
        return end("FINISHED", outcome.reason);
      }
      if (block.type === "WAIT") {
        if (waitsPassed.has(blockId))
          return this.giveUp(run, end, blockId, spinningReason(i, blockId));
        waitsPassed.add(blockId);
      }
      if (outcome.effect) {
        try {
          await this.write(outcome.effect, scenario, run, profile, origin);
        } catch (error) {
          if (error instanceof RunCancelled) return end("CANCELLED", error.message);
          throw new BlockFailed(run.id, blockId, run.blockId, error);
        }
      }
      steps++;
      this.count(scenario.id, blockId, "passed");
      this.count(scenario.id, outcome.next, "entered");
      blockId = outcome.next;
    }
  }

  /**
   * A run that would go round without waiting ends FAILED in `blockId`, with the effects of the
   * blocks it went through before written (they ran), and is told after the commit.
   */
  private giveUp(
    run: StoredRun,
    end: (status: RunStatus, reason: string) => RunState,
    blockId: string,
    reason: string,
  ): RunState {
    this.givenUp.push({ run, blockId, reason });
    return end("FAILED", reason);
  }

  /** Appends the TRIGGER events held so far (before a profile write, and at the end). */
  async flushEvents(): Promise<void> {
    if (this.pending.length === 0) return;
    const events = this.pending;
    this.pending = [];
    await appendChangeEvents(this.tx, events, this.context.logSignals);
    this.triggers += events.length;
  }

  counts(): BlockCountChange[] {
    return [...this.blockCounts.values()];
  }

  private async write(
    effect: BlockEffect,
    scenario: RunScenario,
    run: StoredRun,
    profile: StoredRecord,
    origin: Origin,
  ): Promise<void> {
    const table = await this.tableOf(scenario.tableId);
    if (!table) throw new RunCancelled(`the scenario's profile table was deleted`);
    if (effect.kind === "TRIGGER") {
      const trigger = await this.triggerOf(scenario, effect.block);
      if (typeof trigger === "string") throw new RunCancelled(trigger);
      this.pending.push(
        customActionTriggerEvent({
          action: trigger.action,
          entityName: scenario.entityName,
          table,
          profile,
          parameters: trigger.parameters,
          run: { scenarioId: scenario.id, runId: run.id },
          origin,
        }),
      );
      return;
    }
    const write = this.profileWrite(table, effect.block);
    await this.flushEvents();
    const locked = await findRecordById(this.tx, table.id, profile.recordId, true);
    if (!locked) throw new RunCancelled(`profile ${profile.recordId} was deleted`);
    const result = await applyToProfile(
      this.tx,
      table,
      locked,
      write,
      origin,
      this.context.logSignals,
    );
    if (result.outcome === "UNCHANGED") {
      this.profiles.set(locked.recordId, locked);
      return;
    }
    // What the write made of the profile, for the blocks after this one (and the batch's other
    // runs of the same profile).
    const written = await findRecordById(this.tx, table.id, profile.recordId);
    if (written) this.profiles.set(written.recordId, written);
    this.profileWrites++;
  }

  /**
   * The write of an UPDATE_PROFILE block, checked against the table as it is now. A block that no
   * longer fits the table (an attribute, subscription or segment removed or renamed since the
   * scenario was saved) will not fit it on any retry either: the run is cancelled at once, saying
   * why, rather than failing five times over minutes.
   */
  private profileWrite(table: DataTable, block: UpdateProfileBlock): ProfileWrite {
    try {
      return profileWriteOf(table, block);
    } catch (error) {
      if (!(error instanceof HeraldError)) throw error;
      const problems = error.details.map((d) => `${d.path} ${d.message}`).join("; ");
      throw new RunCancelled(
        `block '${block.id}' no longer fits profile table '${table.name}', which changed since the scenario was saved: ${problems || error.message}; save the scenario again against the table as it is`,
      );
    }
  }

  /** The profile as events show it, made once per profile version the batch reads. */
  private stateOf(profile: StoredRecord): AttributeMap {
    let state = this.states.get(profile);
    if (!state) {
      state = profileState(profile);
      this.states.set(profile, state);
    }
    return state;
  }

  private blocksOf(scenario: RunScenario): Map<string, ScenarioBlock> {
    let blocks = this.blocks.get(scenario.id);
    if (!blocks) {
      blocks = new Map(scenario.definition.blocks.map((b) => [b.id, b]));
      this.blocks.set(scenario.id, blocks);
    }
    return blocks;
  }

  private async tableOf(tableId: string): Promise<DataTable | undefined> {
    if (!this.tables.has(tableId))
      this.tables.set(tableId, (await findTableById(this.tx, tableId)) ?? null);
    return this.tables.get(tableId) ?? undefined;
  }

  /**
   * The action of a CUSTOM_ACTION block and its parameters rendered, the same for every run of the
   * block (worked out once a batch); or why the block cannot trigger it any more.
   */
  private async triggerOf(
    scenario: RunScenario,
    block: CustomActionBlock,
  ): Promise<BlockTrigger | string> {
    const key = `${scenario.id}\u0000${block.id}`;
    let trigger = this.blockTriggers.get(key);
    if (trigger === undefined) {
      const action = await findCustomAction(this.tx, scenario.entityId, block.customActionId);
      const problems = action ? checkActionParameters(action, block.parameters, "parameters") : [];
      trigger = !action
        ? `custom action ${block.customActionId} of block '${block.id}' no longer exists`
        : problems.length > 0
          ? `the parameters of block '${block.id}' no longer suit custom action '${action.name}': ${problems.map((p) => `${p.path} ${p.message}`).join("; ")}`
          : { action, parameters: renderActionParameters(action, block.parameters) };
      this.blockTriggers.set(key, trigger);
    }
    return trigger;
  }

  private count(scenarioId: string, blockId: string, what: "entered" | "passed" | "exited"): void {
    const key = `${scenarioId}\u0000${blockId}`;
    let change = this.blockCounts.get(key);
    if (!change) {
      change = { scenarioId, blockId, entered: 0, passed: 0, exited: 0 };
      this.blockCounts.set(key, change);
    }
    change[what]++;
  }
}
