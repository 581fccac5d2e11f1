/**
 * DATE starts (SPEC §7.4, docs/scenarios.md): an ACTIVE scenario with a DATE start has a schedule
 * of kind SCENARIO, due every day at the start's `at` in its time zone (the activation saves it).
 * At each due time the scheduler (jobs/scheduler.ts) calls this handler in its transaction, which
 * inserts a run for every profile whose date attribute is that day (or, for an anniversary, that
 * month and day of any year; 29 February on 28 February in other years) and commits them with the
 * schedule's move to the next day: each day starts its runs once, whatever the number of processes,
 * and a crash before the commit leaves the day due, to start once the next worker looks.
 *
 * The day is the due time's day in the start's time zone, not the day the handler happens to run
 * (a day missed while no worker ran starts late, for the day it was due). The profiles are chosen
 * and the runs inserted by one INSERT … SELECT: none is loaded into memory.
 */
import type { Logger } from "pino";
import { DEFAULT_TIMEZONE } from "../../domain/schedule.js";
import { firstBlock } from "../../domain/scenario.js";
import { dateStartMatch, dayIn, entryKeyPrefix } from "../../domain/scenario-start-matching.js";
import { findDateStartScenario, insertDateRuns } from "../../storage/scenario-cursor-repository.js";
import type { ScheduleHandler } from "../scheduler.js";

export interface ScenarioScheduleOptions {
  /** The runs' clock (tests: the scheduler's test clock). */
  now?: () => Date;
  /** Told how many runs each day started. */
  logger?: Logger;
}

/**
 * The SCENARIO kind's schedule handler. A scenario deactivated or deleted since its schedule was
 * read, or whose start is no longer DATE, starts nothing. The scheduler NOTIFYs the run workers at
 * commit and wakes this process's.
 */
export function scenarioScheduleHandler(options: ScenarioScheduleOptions = {}): ScheduleHandler {
  const now = options.now ?? (() => new Date());
  return async (tx, due) => {
    const scenario = await findDateStartScenario(tx, due.ownerId, due.entityId);
    const start = scenario?.definition.start;
    if (!scenario || start?.type !== "DATE") return;
    const timezone = start.timezone || DEFAULT_TIMEZONE;
    const day = dayIn(timezone, due.dueAt);
    const at = now();
    const created = await insertDateRuns(tx, {
      scenario,
      attribute: start.attribute,
      timezone,
      match: dateStartMatch(start, day),
      date: day,
      blockId: firstBlock(scenario.definition).id,
      entryKeyPrefix: entryKeyPrefix(scenario.definition.reentry),
      dueAt: at,
      now: at,
    });
    options.logger?.info(
      { scenarioId: scenario.id, day, attribute: start.attribute, created },
      `DATE start of scenario ${scenario.id}: ${created} run(s) for ${day}`,
    );
  };
}
