/**
 * The notification channels of the change log, how often writers may wake the sequencer, and what
 * a stamping round hands over in process (the in-process shortcuts themselves: log-signals.ts).
 */
import type { ChangeEvent } from "../domain/change-event.js";

export const INBOX_CHANNEL = "herald_inbox";
/** Sent by the sequencer with the new head; the name is also written in migration 005. */
export const LOG_CHANNEL = "herald_log";

/**
 * Writers wake the sequencer with a NOTIFY, but at most once per this many ms per process. On
 * PostgreSQL a transaction that notifies takes a database-wide lock from its pre-commit until its
 * commit record is flushed, so notifying on every write would serialise all commits (no group
 * commit) and cap write throughput at one WAL flush per transaction. A skipped notification costs
 * nothing: the leader keeps polling every few ms for a while after it last found work (see the
 * sequencer's busy mode), which always covers this interval.
 */
export const INBOX_NOTIFY_INTERVAL_MS = 10;

/**
 * Whether a write that appends change events sends the inbox NOTIFY this time (at most once per
 * INBOX_NOTIFY_INTERVAL_MS: the process's LogSignals keeps the count).
 */
export interface InboxNotifyTurns {
  takeInboxNotifyTurn(): boolean;
}

/**
 * The events a stamping round stamped, handed over with its head: every position in
 * (after, after + events.length], in order, as the log holds them (the round has committed).
 */
export interface StampedEvents {
  after: number;
  events: readonly ChangeEvent[];
}
