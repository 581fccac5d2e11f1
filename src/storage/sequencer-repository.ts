/**
 * SQL of the sequencer (DESIGN §4): stamping committed inbox events with dense log positions, and
 * the lag figures read back from the stamps.
 */
import type { ChangeEvent } from "../domain/change-event.js";
import type { Database, Queryable } from "./database.js";

/** Most events stamped per transaction: keeps each stamping transaction short (a few ms). */
export const DEFAULT_STAMP_BATCH = 5000;

export interface StampResult {
  /** Events stamped by this call (0 = the inbox was empty). */
  stamped: number;
  /** The log head after the call. */
  head: number;
  /** Largest delay (ms) between an event's insertion and its stamp in this batch; 0 when none. */
  maxLagMs: number;
  /**
   * When asked for (`handOff`) and the call stamped at most that many: every event it stamped, in
   * position order (positions head - stamped + 1 … head), as the log holds them now that the call
   * has committed. Frozen: shared by every reader it is handed to.
   */
  events?: readonly ChangeEvent[];
}

/** A stamped event as herald_stamp_events returns it (JSON; occurredAt in ms since the epoch). */
type StampedEventJson = Omit<ChangeEvent, "occurredAt"> & { occurredAt: number };

/**
 * Stamps up to `batchSize` committed, unstamped events, in id order, with positions head+1, head+2…,
 * advances `log_head` and notifies LOG_CHANNEL with the new head — in one autocommit call of
 * `herald_stamp_events` (migration 011; 005 explains why this is safe with overlapping stampers and
 * keeps each record's events in commit order, 009 why a call which queued behind another stamper and
 * finds nothing left writes nothing). When nothing waits it returns at once without taking a lock,
 * so the sequencer may call it every few ms. With `handOff` > 0, a call that stamps between 1 and
 * `handOff` events also returns them (see StampResult.events), read inside the stamping
 * transaction: the delivery workers of this process need not read them back.
 */
export async function stampPendingEvents(
  db: Queryable,
  batchSize = DEFAULT_STAMP_BATCH,
  handOff = 0,
): Promise<StampResult> {
  const { rows } = await db.query<{
    stamped: number;
    head: number | null;
    max_lag_ms: number;
    events: StampedEventJson[] | null;
  }>(
    "SELECT stamped, head, max_lag_ms, events FROM herald_stamp_events($1, $2)",
    [batchSize, handOff],
    // Sent every few ms while busy: prepared once per connection (the plan is a function call).
    "sequencer_stamp_events",
  );
  const row = rows[0];
  const result: StampResult = {
    stamped: row?.stamped ?? 0,
    head: row?.head ?? 0,
    maxLagMs: row?.max_lag_ms ?? 0,
  };
  if (row?.events) result.events = Object.freeze(row.events.map(stampedEvent));
  return result;
}

function stampedEvent(json: StampedEventJson): ChangeEvent {
  return Object.freeze({ ...json, occurredAt: new Date(json.occurredAt) });
}

/**
 * True when some committed event waits for a position. A plain read on the small partial index
 * change_events_unsequenced: unlike a stamping attempt it takes no row lock, so it assigns no
 * transaction id and flushes no WAL, and the sequencer can ask it every few ms.
 */
export async function hasUnstampedEvents(db: Database): Promise<boolean> {
  const { rows } = await db.query<{ waiting: boolean }>(
    "SELECT EXISTS (SELECT 1 FROM change_events WHERE position IS NULL) AS waiting",
  );
  return rows[0]?.waiting ?? false;
}

/** Committed events still waiting for a position (the sequencer's backlog). */
export async function countUnstamped(db: Database): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    "SELECT count(*)::integer AS n FROM change_events WHERE position IS NULL",
  );
  return rows[0]?.n ?? 0;
}

export interface LagPercentiles {
  events: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

/**
 * Stamp lag (sequenced_at − occurred_at) over the stamped events inserted in [since, until)
 * (benchmarks, operations). Scans by occurred_at (index change_events_occurred).
 */
export async function logLagPercentiles(
  db: Database,
  since: Date,
  until: Date = new Date(8.64e15),
): Promise<LagPercentiles> {
  const { rows } = await db.query<{
    events: number;
    p50: number | null;
    p99: number | null;
    max: number | null;
  }>(
    `SELECT count(*)::integer AS events,
            percentile_cont(0.5) WITHIN GROUP (ORDER BY lag)::float8 AS p50,
            percentile_cont(0.99) WITHIN GROUP (ORDER BY lag)::float8 AS p99,
            max(lag)::float8 AS max
       FROM (SELECT (extract(epoch FROM sequenced_at - occurred_at) * 1000)::float8 AS lag
               FROM change_events
              WHERE occurred_at >= $1 AND occurred_at < $2 AND position IS NOT NULL) AS lags`,
    [since, until],
  );
  const row = rows[0];
  return {
    events: row?.events ?? 0,
    p50Ms: row?.p50 ?? 0,
    p99Ms: row?.p99 ?? 0,
    maxMs: row?.max ?? 0,
  };
}
