/**
 * SQL of schedules (migration 023, DESIGN §6b, docs/files-and-exports.md "Schedules"). The owners
 * (file references, ETLs, exports, scenarios with a DATE start: migration 027) save their schedule
 * with their own row and remove it with it;
 * the scheduler (jobs/scheduler.ts) claims due rows one at a time and advances them in the
 * transaction that creates the run.
 */
import type { Schedule } from "../domain/schedule.js";
import { nextDueAfter } from "../domain/schedule.js";
import type { Queryable } from "./database.js";

export const SCHEDULE_KINDS = ["FILE_SYNCHRONIZATION", "ETL", "EXPORT", "SCENARIO"] as const;
export type ScheduleKind = (typeof SCHEDULE_KINDS)[number];

export interface ScheduleEntry {
  kind: ScheduleKind;
  ownerId: string;
  entityId: number;
  schedule: Schedule;
}

/** A due row, locked by the transaction that claimed it. */
export interface ClaimedSchedule extends ScheduleEntry {
  dueAt: Date;
}

/**
 * Creates or replaces the owner's schedule. Its next due time is the schedule's first after `now`,
 * except when the cron and time zone are those already stored: then the stored due time stays, so
 * that saving an owner for another reason a moment after its due time neither loses nor repeats
 * that run. Call it in the transaction that saves the owner.
 */
export async function saveSchedule(db: Queryable, entry: ScheduleEntry, now: Date): Promise<void> {
  const next = nextDueAfter(entry.schedule, now);
  await db.query(
    `INSERT INTO schedules AS s (kind, owner_id, entity_id, cron, timezone, next_due_at)
     VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (kind, owner_id) DO UPDATE
        SET entity_id = EXCLUDED.entity_id,
            next_due_at = CASE WHEN s.cron = EXCLUDED.cron AND s.timezone = EXCLUDED.timezone
                               THEN s.next_due_at ELSE EXCLUDED.next_due_at END,
            cron = EXCLUDED.cron,
            timezone = EXCLUDED.timezone,
            updated_at = now()`,
    [entry.kind, entry.ownerId, entry.entityId, entry.schedule.cron, entry.schedule.timezone, next],
  );
}

/** Stops the owner's schedule (the owner is deleted or no longer scheduled); no-op when none. */
export async function removeSchedule(
  db: Queryable,
  kind: ScheduleKind,
  ownerId: string,
): Promise<void> {
  await db.query(`DELETE FROM schedules WHERE kind = $1 AND owner_id = $2`, [kind, ownerId]);
}

/**
 * Saves the owner's schedule (saveSchedule, from now) or, when it has none (`null`), removes it.
 * Call it in the transaction that saves the owner.
 */
export async function saveOrRemoveSchedule(
  db: Queryable,
  owner: Omit<ScheduleEntry, "schedule">,
  schedule: Schedule | null,
): Promise<void> {
  if (schedule === null) await removeSchedule(db, owner.kind, owner.ownerId);
  else await saveSchedule(db, { ...owner, schedule }, new Date());
}

/** When the owner's next run is due (its `nextRunAt`), or undefined when it has no schedule. */
export async function nextDueAt(
  db: Queryable,
  kind: ScheduleKind,
  ownerId: string,
): Promise<Date | undefined> {
  return (await nextDueTimes(db, kind, [ownerId])).get(ownerId);
}

/** nextDueAt for a page of owners at once: owner id → next due time (owners without a schedule are left out). */
export async function nextDueTimes(
  db: Queryable,
  kind: ScheduleKind,
  ownerIds: readonly string[],
): Promise<Map<string, Date>> {
  if (ownerIds.length === 0) return new Map();
  const { rows } = await db.query<{ owner_id: string; next_due_at: Date }>(
    `SELECT owner_id, next_due_at FROM schedules
      WHERE kind = $1 AND owner_id = ANY($2::text[])`,
    [kind, ownerIds],
  );
  return new Map(rows.map((row) => [row.owner_id, row.next_due_at]));
}

/**
 * One schedule of `kinds` due at `now`, the earliest first, locked until the transaction `tx` ends;
 * undefined when none is due. SKIP LOCKED: a row another scheduler holds is its run, not a wait;
 * once that one commits, the row's next_due_at is past `now` and no longer matches (READ COMMITTED
 * checks a row updated meanwhile against the WHERE again before locking it), so a due time is
 * claimed by one scheduler only.
 */
export async function claimDueSchedule(
  tx: Queryable,
  kinds: readonly ScheduleKind[],
  now: Date,
): Promise<ClaimedSchedule | undefined> {
  const { rows } = await tx.query<{
    kind: ScheduleKind;
    owner_id: string;
    entity_id: number;
    cron: string;
    timezone: string;
    next_due_at: Date;
  }>(
    `SELECT kind, owner_id, entity_id, cron, timezone, next_due_at
       FROM schedules
      WHERE next_due_at <= $2 AND kind = ANY($1::text[])
      ORDER BY next_due_at
      LIMIT 1
        FOR UPDATE SKIP LOCKED`,
    [kinds, now],
  );
  const row = rows[0];
  if (!row) return undefined;
  return {
    kind: row.kind,
    ownerId: row.owner_id,
    entityId: row.entity_id,
    schedule: { cron: row.cron, timezone: row.timezone },
    dueAt: row.next_due_at,
  };
}

/**
 * Moves a claimed schedule on to `nextDue` and records what became of `dueAt`: run at `ranAt`, or
 * skipped with `error`.
 */
export async function advanceSchedule(
  tx: Queryable,
  claimed: ClaimedSchedule,
  nextDue: Date,
  ranAt: Date,
  error: string | null,
): Promise<void> {
  await tx.query(
    `UPDATE schedules
        SET next_due_at = $3, last_due_at = $4, last_run_at = $5, last_error = $6
      WHERE kind = $1 AND owner_id = $2`,
    [claimed.kind, claimed.ownerId, nextDue, claimed.dueAt, ranAt, error],
  );
}

/**
 * Runs `step` so that its failure undoes only its own statements, not the claim around it: the
 * scheduler then records the due time as skipped in the same transaction (a savepoint).
 */
export async function withinSavepoint<T>(
  tx: Queryable,
  step: () => Promise<T>,
): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  await tx.query("SAVEPOINT schedule_run");
  try {
    const value = await step();
    await tx.query("RELEASE SAVEPOINT schedule_run");
    return { ok: true, value };
  } catch (error) {
    await tx.query("ROLLBACK TO SAVEPOINT schedule_run");
    return { ok: false, error };
  }
}

/** The earliest next due time of `kinds`, for the scheduler's timer; undefined when none. */
export async function earliestDueAt(
  db: Queryable,
  kinds: readonly ScheduleKind[],
): Promise<Date | undefined> {
  const { rows } = await db.query<{ due: Date | null }>(
    `SELECT min(next_due_at) AS due FROM schedules WHERE kind = ANY($1::text[])`,
    [kinds],
  );
  return rows[0]?.due ?? undefined;
}
