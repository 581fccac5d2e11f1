/**
 * One ACTIVE scenario's start from the change log (SPEC §7.4, DESIGN §6b), driven by the scenario
 * starter (start-worker.ts) while it holds the scenario's lease. A LogFollower reads the log after
 * the scenario's cursor, pre-filtered in SQL to the events its start can want; each event the start
 * matches (scenario-start-matching.ts) becomes a run, and the runs of what was read are written IN
 * ONE TRANSACTION with the move of the cursor past it:
 *
 *   move the cursor from where it is to the end of what was read (only if the lease is still this
 *   worker's, the scenario still ACTIVE and the cursor still where this follower left it), insert
 *   the runs (insertRuns: one per re-entry key), NOTIFY the job workers; then wake this process's.
 *
 * So each matching event starts its run at most once whatever crashes or takes over, events before
 * the activation start nothing (the activation put the cursor at the log's head), and a crash
 * before the commit repeats nothing: the next holder reads the same window again. When the move
 * finds the lease or the scenario changed, the transaction rolls back and the follower stops.
 *
 * Runs are written as soon as a window holds some; windows with nothing to start only move the
 * cursor, at most every `progressMs`. The runs of windows read but not yet written are kept in
 * memory (at most a few pages): reading stops while they wait for a write the database refuses, and
 * goes on once it is written.
 */
import type { Logger } from "pino";
import { DatabaseOutageLog } from "../../database-outage-log.js";
import type { ChangeEvent } from "../../domain/change-event.js";
import { eventPublicId } from "../../domain/change-event.js";
import { entryKey, firstBlock } from "../../domain/scenario.js";
import type { LogStart, StartCriteria } from "../../domain/scenario-start-matching.js";
import {
  startedProfileId,
  startEventType,
  startMatches,
  startReadsState,
} from "../../domain/scenario-start-matching.js";
import { readLogHead } from "../../storage/change-event-repository.js";
import type { Database } from "../../storage/database.js";
import { notifyJobs } from "../../storage/job-channels.js";
import type { JobSignals } from "../../storage/job-signals.js";
import type { StampedEvents } from "../../storage/log-channels.js";
import { readLogWindow } from "../../storage/log-window-reader.js";
import type { HeldScenario } from "../../storage/scenario-cursor-repository.js";
import { advanceScenarioCursor } from "../../storage/scenario-cursor-repository.js";
import type { NewRun } from "../../storage/scenario-run-repository.js";
import { insertRuns } from "../../storage/scenario-run-repository.js";
import type { LogConsumer, LogCursor, LogSource } from "../../delivery/log-follower.js";
import { LogFollower } from "../../delivery/log-follower.js";

/** What every follower of one starter shares. */
export interface StartFollowerContext {
  db: Database;
  jobSignals: JobSignals;
  logger: Logger;
  workerId: string;
  now: () => Date;
  /** Log events per read. */
  pageSize: number;
  /** Windows with nothing to start move the cursor at most this often. */
  progressMs: number;
  /** After a write that failed (the database away), the next try. */
  retryMs: number;
  /**
   * The scenario is no longer this worker's to start: the starter stops this follower (and only
   * this one: by then it may follow the scenario again with another).
   */
  onLost(follower: ScenarioStartFollower, why: string): void;
}

/** A matching event, waiting for its run to be written. */
interface PendingStart {
  profileId: number;
  position: number;
  eventId: string;
}

/** The move found the lease, the status or the cursor changed: nothing was written. */
class StartLost extends Error {}

/** Runs of windows read but not yet written, as a multiple of a page: past it reading waits. */
const MAX_PENDING_PAGES = 4;

export class ScenarioStartFollower implements LogSource<HeldScenario>, LogCursor, LogConsumer {
  readonly id: string;
  private readonly follower: LogFollower<HeldScenario>;
  private readonly criteria: StartCriteria;
  private readonly logger: Logger;
  private readonly outage: DatabaseOutageLog;
  /** Every position up to it has been read (its runs are pending or written). */
  private readPosition: number;
  /** Every position up to it has its runs committed: the scenario's log_cursor as last written. */
  private written: number;
  private pending: PendingStart[] = [];
  private writing: Promise<void> | undefined;
  private progressTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private lost = false;

  constructor(
    readonly held: HeldScenario,
    private readonly ctx: StartFollowerContext,
  ) {
    this.id = held.id;
    const start = held.definition.start as LogStart;
    this.criteria = { entityId: held.entityId, tableId: held.tableId, start };
    this.readPosition = held.cursor;
    this.written = held.cursor;
    this.logger = ctx.logger.child({ scenarioId: held.id });
    this.outage = new DatabaseOutageLog(this.logger, "the start of this scenario's runs");
    this.follower = new LogFollower<HeldScenario>(this, this, this, {
      pageSize: ctx.pageSize,
      outage: this.outage,
    });
  }

  /** Every position up to it has been read (LogCursor): its runs are pending or written. */
  get cursor(): number {
    return this.readPosition;
  }

  /** Every position up to it has its runs committed. */
  get committed(): number {
    return this.written;
  }

  /** New events may be in the log (see LogFollower.poke). */
  poke(head?: number, stamped?: StampedEvents): void {
    if (!this.stopped) this.follower.poke(head, stamped);
  }

  /**
   * Reads nothing more, writes the runs of what was read while the lease is still this worker's
   * (so that the next holder need not read it again; should that fail, it will), and resolves.
   * With `write: false` (the scenario was activated again from a new cursor, so what this follower
   * read belongs to the activation before) it writes nothing more: it only waits for a write under
   * way to end.
   */
  async stop(options: { write?: boolean } = {}): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.follower.stop();
    if (this.progressTimer) clearTimeout(this.progressTimer);
    this.progressTimer = undefined;
    await this.writing;
    if (options.write === false || this.lost || this.readPosition <= this.written) return;
    await this.writeRead().catch((error: unknown) => {
      if (!(error instanceof StartLost))
        this.logger.debug({ err: error }, "could not write the last window before stopping");
    });
  }

  // --- LogSource: the log as this scenario's start reads it ------------------------------------

  definition(): HeldScenario {
    return this.held;
  }

  read(
    after: number,
    upTo: number,
    limit: number,
    held: HeldScenario,
  ): Promise<readonly ChangeEvent[]> {
    const { start } = this.criteria;
    const readsState = startReadsState(start);
    return readLogWindow(this.ctx.db, after, upTo, limit, {
      entityId: held.entityId,
      source: "PROFILE_TABLE",
      sourceId: held.tableId,
      eventType: startEventType(start),
      onFields: start.type === "DATA_EVENT" ? start.onFields : null,
      // Without conditions nothing reads the states: events come back lean.
      conditions: readsState && start.type === "DATA_EVENT" ? start.conditions : null,
      includePrevious: false,
    });
  }

  head(): Promise<number> {
    return readLogHead(this.ctx.db);
  }

  // --- LogCursor ------------------------------------------------------------------------------

  readUpTo(position: number): void {
    this.readPosition = position;
  }

  // --- LogConsumer ----------------------------------------------------------------------------

  async prepare(): Promise<void> {}

  hasRoom(): boolean {
    return !this.lost && this.pending.length < this.ctx.pageSize * MAX_PENDING_PAGES;
  }

  hasRoomAhead(): boolean {
    return this.pending.length < (this.ctx.pageSize * MAX_PENDING_PAGES) / 2;
  }

  /** Handed-over windows are not pre-filtered: matching decides for every event. */
  accept(events: readonly ChangeEvent[]): void {
    for (const event of events) {
      if (!startMatches(this.criteria, event)) continue;
      const profileId = startedProfileId(event);
      if (profileId === undefined) continue;
      this.pending.push({ profileId, position: event.position, eventId: eventPublicId(event.id) });
    }
  }

  windowRead(): void {
    if (this.pending.length > 0) this.flush();
    else if (!this.progressTimer && !this.writing)
      this.progressTimer = setTimeout(() => {
        this.progressTimer = undefined;
        this.flush();
      }, this.ctx.progressMs).unref();
  }

  // --- Writing --------------------------------------------------------------------------------

  private flush(): void {
    if (this.writing || this.stopped || this.lost) return;
    if (this.progressTimer) clearTimeout(this.progressTimer);
    this.progressTimer = undefined;
    this.writing = this.writeAll().finally(() => {
      this.writing = undefined;
    });
  }

  /** Writes what was read until everything read is written, the follower stops, or is lost. */
  private async writeAll(): Promise<void> {
    while (this.readPosition > this.written && !this.stopped && !this.lost) {
      try {
        await this.writeRead();
        this.outage.succeeded();
      } catch (error) {
        if (error instanceof StartLost) {
          this.lost = true;
          this.follower.stop();
          this.ctx.onLost(this, error.message);
          return;
        }
        this.outage.failed(error, "could not start the scenario's runs; retrying");
        await new Promise((resolve) => setTimeout(resolve, this.ctx.retryMs).unref());
      }
      // Room was made (or the write will be tried again): read on.
      this.follower.wake();
    }
  }

  /**
   * One transaction: the cursor from `written` to what was read, and the runs of the events in
   * between. The pending runs are taken only once it committed; events read meanwhile wait for
   * the next write.
   */
  private async writeRead(): Promise<void> {
    const from = this.written;
    const upTo = this.readPosition;
    const starts = this.pending.slice();
    const definition = this.held.definition;
    const blockId = firstBlock(definition).id;
    const created = await this.ctx.db.transaction(async (tx) => {
      const moved = await advanceScenarioCursor(tx, {
        scenarioId: this.id,
        workerId: this.ctx.workerId,
        from,
        to: upTo,
      });
      if (!moved)
        throw new StartLost(
          "the scenario is no longer this worker's to start: its lease was taken over, it was deactivated, or it was activated again from a new cursor",
        );
      if (starts.length === 0) return 0;
      const now = this.ctx.now();
      const runs: NewRun[] = starts.map((s) => ({
        scenarioId: this.id,
        entityId: this.held.entityId,
        profileId: s.profileId,
        blockId,
        dueAt: now,
        entryKey: entryKey(definition.reentry, s.profileId),
        start: { type: this.criteria.start.type, position: s.position, eventId: s.eventId },
      }));
      const inserted = await insertRuns(tx, runs, now);
      if (inserted > 0) await notifyJobs(tx);
      return inserted;
    });
    this.written = upTo;
    this.pending.splice(0, starts.length);
    if (created > 0) this.ctx.jobSignals.jobsCreated();
    if (starts.length > 0)
      this.logger.debug(
        { from, upTo, matched: starts.length, created },
        "started the runs of the events read",
      );
  }
}
