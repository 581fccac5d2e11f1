/**
 * The notification channels of the change log, and how often writers may wake the sequencer.
 */

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
let lastInboxNotifyAt = 0;

/** True when this write should send the inbox NOTIFY (at most once per interval per process). */
export function takeInboxNotifyTurn(): boolean {
  const now = Date.now();
  if (now - lastInboxNotifyAt < INBOX_NOTIFY_INTERVAL_MS) return false;
  lastInboxNotifyAt = now;
  return true;
}
