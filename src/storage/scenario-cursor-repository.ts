/**
 * SQL of the scenario starters (SPEC §7.4, DESIGN §6b, migration 027): the leases under which one
 * worker at a time reads the change log for an ACTIVE scenario, the cursor it moves in the
 * transaction that inserts the runs of what it read, and the DATE start's profiles of a day.
 *
 * A scenario whose start reads the log (DATA_EVENT, SEGMENT_ENTRY, SUBSCRIPTION) is a log consumer
 * like a subscription: `log_cursor` is the position up to which its runs exist. Leases use the
 * database's clock (every process reads the same one); the runs' times come from the caller's.
 */
import type { ScenarioDefinition } from "../domain/scenario.js";
import type { Day, DayMatch } from "../domain/scenario-start-matching.js";
import { LOG_START_TYPES } from "../domain/scenario-start-matching.js";
import type { Queryable } from "./database.js";

/** A scenario whose lease this worker holds, with the position its runs exist up to. */
export interface HeldScenario {
  id: string;
  entityId: number;
  /** The profile table's id. */
  tableId: string;
  definition: ScenarioDefinition;
  cursor: number;
}

interface HeldRow {
  id: string;
  entity_id: number;
  table_id: string;
  definition: ScenarioDefinition;
  log_cursor: number;
}

const HELD_COLUMNS = "s.id::text AS id, s.entity_id, s.table_id, s.definition, s.log_cursor";

/**
 * SQL: the scenario `s` is ACTIVE, with a start that reads the log and a cursor (set by the
 * activation). A starter follows it from its cursor; housekeeping keeps the log above that cursor.
 */
export function followedScenario(s: string): string {
  return `${s}.status = 'ACTIVE' AND ${s}.log_cursor IS NOT NULL
    AND ${s}.definition -> 'start' ->> 'type' = ANY ('{${LOG_START_TYPES.join(",")}}'::text[])`;
}

function toHeld(row: HeldRow): HeldScenario {
  return {
    id: row.id,
    entityId: row.entity_id,
    tableId: row.table_id,
    definition: row.definition,
    cursor: row.log_cursor,
  };
}

/**
 * Extends every lease this worker holds on a scenario it still follows and returns those scenarios;
 * a lease missing from the answer is lost (taken over after it expired) or its scenario is no
 * longer ACTIVE.
 */
export async function renewScenarioLeases(
  db: Queryable,
  workerId: string,
  ttlMs: number,
): Promise<HeldScenario[]> {
  const { rows } = await db.query<HeldRow>(
    `UPDATE scenarios s
        SET lease_until = now() + make_interval(secs => $2::double precision / 1000)
      WHERE s.lease_owner = $1 AND ${followedScenario("s")}
      RETURNING ${HELD_COLUMNS}`,
    [workerId, ttlMs],
  );
  return rows.map(toHeld).sort(byId);
}

/**
 * Claims up to `limit` followed scenarios whose lease is free or expired (or, with `takeOver`, held
 * by anyone else: on a database no other process shares, another holder is a process that is gone),
 * except the scenarios `except` names (the caller is still letting them go). SKIP LOCKED lets
 * workers claim at the same time without waiting on each other or taking the same scenario; a
 * scenario whose cursor is being moved is claimed at the next round.
 */
export async function claimScenarioLeases(
  db: Queryable,
  workerId: string,
  ttlMs: number,
  limit: number,
  takeOver = false,
  except: readonly string[] = [],
): Promise<HeldScenario[]> {
  if (limit <= 0) return [];
  const { rows } = await db.query<HeldRow>(
    `UPDATE scenarios s
        SET lease_owner = $1,
            lease_until = now() + make_interval(secs => $2::double precision / 1000)
      WHERE s.id IN (
              SELECT f.id FROM scenarios f
               WHERE ${followedScenario("f")}
                 AND (f.lease_owner IS NULL OR f.lease_until IS NULL OR f.lease_until < now()
                      OR $4::boolean)
                 AND f.lease_owner IS DISTINCT FROM $1
                 AND NOT (f.id = ANY ($5::bigint[]))
               ORDER BY f.id
               LIMIT $3
                 FOR UPDATE SKIP LOCKED)
      RETURNING ${HELD_COLUMNS}`,
    [workerId, ttlMs, limit, takeOver, except],
  );
  return rows.map(toHeld).sort(byId);
}

/**
 * Gives this worker's leases back (`ids`, or all of them), so another worker goes on from the
 * cursor at once instead of after the lease's life. Also clears the leases of scenarios that are
 * no longer ACTIVE.
 */
export async function releaseScenarioLeases(
  db: Queryable,
  workerId: string,
  ids: readonly string[] | "all",
): Promise<void> {
  await db.query(
    `UPDATE scenarios SET lease_owner = NULL, lease_until = NULL
      WHERE lease_owner = $1 AND ($2::bigint[] IS NULL OR id = ANY ($2::bigint[]))`,
    [workerId, ids === "all" ? null : ids],
  );
}

/**
 * Moves the scenario's cursor from `from` to `to`, in the transaction that inserts the runs of the
 * events in between, and locks the scenario's row until it commits. False, and nothing moved, when
 * the lease is no longer this worker's, the scenario is no longer ACTIVE (deactivated: it starts
 * nothing more), or the cursor is not at `from` (another worker moved it, or a new activation
 * reset it): the caller rolls back, so each event starts its runs at most once.
 */
export async function advanceScenarioCursor(
  tx: Queryable,
  move: { scenarioId: string; workerId: string; from: number; to: number },
): Promise<boolean> {
  const { rowCount } = await tx.query(
    `UPDATE scenarios SET log_cursor = $4
      WHERE id = $1 AND lease_owner = $2 AND status = 'ACTIVE' AND log_cursor = $3`,
    [move.scenarioId, move.workerId, move.from, move.to],
    "scenario_advance_cursor",
  );
  return rowCount === 1;
}

/** An ACTIVE scenario with a DATE start, as its schedule's handler reads it. */
export interface DateStartScenario {
  id: string;
  entityId: number;
  tableId: string;
  definition: ScenarioDefinition;
}

/**
 * The scenario of a DATE schedule when it is ACTIVE with a DATE start; undefined otherwise. Read
 * without a lock: the scheduler's transaction holds the schedule's row, which a deactivation
 * removes after it updated the scenario, so a deactivation that commits first leaves no schedule to
 * claim, and one that runs meanwhile waits for this transaction's runs and then sees them (to
 * cancel them, when asked). Locking the scenario here as well would take the two rows in the
 * opposite order to the deactivation's: a deadlock.
 */
export async function findDateStartScenario(
  tx: Queryable,
  scenarioId: string,
  entityId: number,
): Promise<DateStartScenario | undefined> {
  const { rows } = await tx.query<Omit<HeldRow, "log_cursor">>(
    `SELECT s.id::text AS id, s.entity_id, s.table_id, s.definition FROM scenarios s
      WHERE s.id = $1 AND s.entity_id = $2 AND s.status = 'ACTIVE'
        AND s.definition -> 'start' ->> 'type' = 'DATE'`,
    [scenarioId, entityId],
  );
  const row = rows[0];
  if (!row) return undefined;
  return { id: row.id, entityId: row.entity_id, tableId: row.table_id, definition: row.definition };
}

/**
 * A TIMESTAMP value as the DATE start casts it: ISO 8601, each field in its range (a month 01-12,
 * a day 01-31, an hour 00-23…), an optional offset. A regular expression of SQL.
 */
const ISO_TIMESTAMP =
  "^\\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\\d|3[01])T([01]\\d|2[0-3]):[0-5]\\d(:[0-5]\\d(\\.\\d{1,9})?)?(Z|[+-]([01]\\d|2[0-3])(:?[0-5]\\d)?)?$";

/** The day of `v` (an ISO_TIMESTAMP) exists in its month: no 31 April, no 29 February but in leap years. */
const DAY_IN_MONTH = `substr(v, 9, 2)::integer <= CASE
        WHEN substr(v, 6, 2) IN ('04', '06', '09', '11') THEN 30
        WHEN substr(v, 6, 2) <> '02' THEN 31
        WHEN substr(v, 1, 4)::integer % 4 = 0
             AND (substr(v, 1, 4)::integer % 100 <> 0 OR substr(v, 1, 4)::integer % 400 = 0) THEN 29
        ELSE 28
      END`;

/** What the day's runs of a DATE start are. */
export interface DateRuns {
  scenario: DateStartScenario;
  /** The date attribute of the start. */
  attribute: string;
  /** The start's time zone: a timestamp attribute's day is its day there. */
  timezone: string;
  match: DayMatch;
  /** The run's start: `{type: "DATE", date}`. */
  date: Day;
  blockId: string;
  /** Each run's re-entry key is this prefix and the profile's id; null: none (ALWAYS). */
  entryKeyPrefix: string | null;
  dueAt: Date;
  now: Date;
}

/**
 * Inserts, in one INSERT … SELECT, a run for every profile of the scenario's table whose date
 * attribute falls on the day (a DATE value `YYYY-MM-DD` as stored, or a TIMESTAMP's day in the
 * start's time zone), except those whose re-entry key is taken, and counts them as entering the
 * first block. The profiles never leave the database: a large table costs one statement, not one
 * row in memory per profile. Returns how many runs were created. The runs are what insertRuns
 * (scenario-run-repository.ts) makes of one: RUNNING at their first block, due at `dueAt`.
 */
export async function insertDateRuns(tx: Queryable, runs: DateRuns): Promise<number> {
  const { scenario, match } = runs;
  // The stored value's day: a DATE as it is; a TIMESTAMP (ISO 8601) seen in the start's zone. Only
  // a value the cast is sure to read is cast (one that throws would skip the whole day for every
  // profile); any other value has no day, as dateOf (domain/scenario-steps.ts) has none for it.
  const day = `CASE
      WHEN v ~ '^\\d{4}-\\d{2}-\\d{2}$' THEN v
      WHEN v ~ '${ISO_TIMESTAMP}' THEN CASE
        WHEN substr(v, 1, 4) <> '0000' AND ${DAY_IN_MONTH}
          THEN to_char(v::timestamptz AT TIME ZONE $4::text, 'YYYY-MM-DD')
      END
    END`;
  const picked =
    match.kind === "exact" ? `${day} = $5::text` : `substr(${day}, 6) = ANY ($5::text[])`;
  const { rows } = await tx.query<{ created: number }>(
    `WITH profiles AS (
       SELECT r.record_id, r.attributes ->> $3 AS v
         FROM records r
        WHERE r.table_id = $2 AND jsonb_typeof(r.attributes -> $3) = 'string'),
     inserted AS (
       INSERT INTO scenario_runs
         (scenario_id, entity_id, profile_id, status, block_id, due_at, entry_key, start,
          started_at, updated_at)
       SELECT $1::bigint, $6::bigint, p.record_id, 'RUNNING', $7::text, $8::timestamptz,
              $9::text || p.record_id,
              jsonb_build_object('type', 'DATE', 'date', $10::text), $11::timestamptz,
              $11::timestamptz
         FROM profiles p
        WHERE ${picked}
        ORDER BY p.record_id
       ON CONFLICT (scenario_id, entry_key) WHERE entry_key IS NOT NULL DO NOTHING
       RETURNING scenario_id, block_id),
     counted AS (
       INSERT INTO scenario_block_counts AS c (scenario_id, block_id, entered)
       SELECT scenario_id, block_id, count(*) FROM inserted
        GROUP BY scenario_id, block_id
       ON CONFLICT (scenario_id, block_id) DO UPDATE SET entered = c.entered + excluded.entered
       RETURNING 1)
     SELECT (SELECT count(*)::integer FROM inserted) AS created`,
    [
      scenario.id,
      scenario.tableId,
      runs.attribute,
      runs.timezone,
      match.kind === "exact" ? match.day : match.monthDays,
      scenario.entityId,
      runs.blockId,
      runs.dueAt,
      runs.entryKeyPrefix,
      runs.date,
      runs.now,
    ],
  );
  return rows[0]?.created ?? 0;
}

function byId(a: HeldScenario, b: HeldScenario): number {
  return Number(a.id) - Number(b.id);
}
