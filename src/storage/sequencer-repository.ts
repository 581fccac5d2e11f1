/**
 * SQL of the sequencer (DESIGN §4): stamping committed inbox events with dense log positions, and
 * the lag figures read back from the stamps.
 */
import type { Database } from "./database.js";
import { LOG_CHANNEL } from "./change-event-repository.js";

/** Most events stamped per transaction: keeps each stamping transaction short (a few ms). */
export const DEFAULT_STAMP_BATCH = 5000;

export interface StampResult {
  /** Events stamped by this call (0 = the inbox was empty). */
  stamped: number;
  /** The log head after the call. */
  head: number;
  /** Largest delay (ms) between an event's insertion and its stamp in this batch; 0 when none. */
  maxLagMs: number;
}

/**
 * Stamps up to `batchSize` committed, unstamped events, in id order, with positions head+1, head+2…,
 * advances `log_head` and notifies LOG_CHANNEL with the new head — all in one transaction.
 *
 * Why it is safe with several stampers (an old leader still finishing while a new one starts): the
 * first statement locks the `log_head` row, so stamping transactions run one after another; the
 * second statement runs with a new READ COMMITTED snapshot taken after that lock is granted, so it
 * sees everything the previous stamper committed and never reuses a position.
 *
 * Why the snapshot is enough for ordering: only committed events are visible, and a record's later
 * event is written after its earlier transaction committed (the record row lock), with a larger id
 * (the sequence has no per-session cache). A snapshot that sees the later one sees the earlier one,
 * and id order stamps it first.
 */
export async function stampPendingEvents(
  db: Database,
  batchSize = DEFAULT_STAMP_BATCH,
): Promise<StampResult> {
  return db.transaction(async (tx) => {
    const locked = await tx.query<{ position: number }>("SELECT position FROM log_head FOR UPDATE");
    const head = locked.rows[0]?.position ?? 0;
    // One statement numbers the batch from head+1 (the partial index change_events_unsequenced feeds
    // it in id order without sorting), stamps it, moves log_head (already locked above) and
    // notifies LOG_CHANNEL with the new head; the NOTIFY is delivered when this commits.
    const { rows } = await tx.query<{ stamped: number; head: number | null; max_lag_ms: number }>(
      `WITH pending AS (
         SELECT id, $2::bigint + row_number() OVER (ORDER BY id) AS pos
           FROM change_events
          WHERE position IS NULL
          ORDER BY id
          LIMIT $1
       ), stamped AS (
         UPDATE change_events c
            SET position = p.pos, sequenced_at = clock_timestamp()
           FROM pending p
          WHERE c.id = p.id
            -- Redundant for the result, but lets the planner reach c through the small partial
            -- index instead of hash-joining against a sequential scan of the whole log.
            AND c.position IS NULL
         RETURNING c.position, c.occurred_at, c.sequenced_at
       ), moved AS (
         UPDATE log_head SET position = (SELECT max(position) FROM stamped)
          WHERE EXISTS (SELECT 1 FROM stamped)
         RETURNING position
       )
       SELECT count(*)::integer AS stamped,
              max(position) AS head,
              coalesce(max(extract(epoch FROM sequenced_at - occurred_at) * 1000), 0)::float8 AS max_lag_ms,
              (SELECT count(pg_notify($3, position::text)) FROM moved) AS notified
         FROM stamped`,
      [batchSize, head, LOG_CHANNEL],
    );
    const row = rows[0];
    const stamped = row?.stamped ?? 0;
    if (stamped === 0 || row?.head == null) return { stamped: 0, head, maxLagMs: 0 };
    // Dense by construction: `stamped` rows got head+1 … head+stamped.
    return { stamped, head: row.head, maxLagMs: row.max_lag_ms };
  });
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
