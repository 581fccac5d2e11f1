/**
 * The notification channels of the change log, how often writers may wake the sequencer, and the
 * in-process shortcuts beside them.
 */
import type { ChangeEvent } from "../domain/change-event.js";
import type { Database } from "./database.js";

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

// In-process wake-ups ---------------------------------------------------------------------------------

/**
 * When writer, sequencer and delivery worker share a process (`herald start` runs all three), they
 * tell each other directly instead of waiting for a poll or a NOTIFY round trip through the server:
 * a writer calls `inboxCommitted(db)` after its transaction committed, the sequencer calls
 * `logStamped(db, head)` after its stamping transaction committed. Both are only shortcuts: the
 * NOTIFYs still go out for other processes and the polls still run, so a missed or absent local
 * wake-up only costs time.
 *
 * Listeners are kept per Database object (one pool or one embedded database), never process-wide:
 * a head announced for one database must never reach a worker reading another, where positions up
 * to it may not be stamped yet.
 */
interface LocalListeners {
  inbox: Set<() => void>;
  /** Each stamp listener, and whether it wants the stamped events now. */
  log: Map<(head: number, stamped?: StampedEvents) => void, () => boolean>;
  /** Stamping rounds of this process's sequencer that have not ended yet (see stampingRound). */
  roundsInFlight: number;
  roundsEnded: Set<() => void>;
}

/**
 * The events a stamping round stamped, handed over with its head: every position in
 * (after, after + events.length], in order, as the log holds them (the round has committed).
 */
export interface StampedEvents {
  after: number;
  events: readonly ChangeEvent[];
}

const localListeners = new WeakMap<Database, LocalListeners>();

function listenersOf(db: Database): LocalListeners {
  let listeners = localListeners.get(db);
  if (!listeners) {
    listeners = { inbox: new Set(), log: new Map(), roundsInFlight: 0, roundsEnded: new Set() };
    localListeners.set(db, listeners);
  }
  return listeners;
}

/**
 * A transaction that appended change events has committed (call it after the commit returned, never
 * before: the sequencer may look at once). Wakes a sequencer of this process, if any.
 */
export function inboxCommitted(db: Database): void {
  for (const listener of localListeners.get(db)?.inbox ?? []) listener();
}

/**
 * Runs a write that appends change events in its own transaction and, once it has committed
 * (resolved), wakes a sequencer of this process. A write that fails committed nothing: no wake-up.
 */
export async function committingEvents<T>(db: Database, write: () => Promise<T>): Promise<T> {
  const result = await write();
  inboxCommitted(db);
  return result;
}

/** The sequencer of this process listens for local commits; returns the way to stop listening. */
export function onInboxCommitted(db: Database, listener: () => void): () => void {
  const set = listenersOf(db).inbox;
  set.add(listener);
  return () => set.delete(listener);
}

/**
 * Every position up to `head` is stamped and committed (the same promise as the NOTIFY payload on
 * LOG_CHANNEL). Wakes the delivery workers of this process, if any. `stamped`, when given, holds the
 * events of the round's positions, so that a worker whose reading has reached them need not read
 * them back (the log stays the source of truth: a worker uses them only for exactly that range).
 */
export function logStamped(db: Database, head: number, stamped?: StampedEvents): void {
  for (const listener of localListeners.get(db)?.log.keys() ?? []) listener(head, stamped);
}

/**
 * Delivery workers of this process listen for stamps; returns the way to stop listening.
 * `wantsEvents` says whether the listener has a use for the stamped events right now (a worker
 * driving no subscription has none): the sequencer reads them only for someone.
 */
export function onLogStamped(
  db: Database,
  listener: (head: number, stamped?: StampedEvents) => void,
  wantsEvents: () => boolean = () => true,
): () => void {
  const map = listenersOf(db).log;
  map.set(listener, wantsEvents);
  return () => map.delete(listener);
}

/** Some delivery worker of this process would use the events of a stamp now. */
export function wantsStampedEvents(db: Database): boolean {
  for (const wants of localListeners.get(db)?.log.values() ?? []) if (wants()) return true;
  return false;
}

/**
 * The sequencer of this process starts a stamping round; call the function it returns when the round
 * has ended, committed or failed, after its `logStamped`. While a round runs, its NOTIFY may reach
 * this process's workers before the round's own result (the server sends both at commit): a worker
 * that waits for the round (see stampingRoundsInFlight) gets the head with its events instead of
 * reading them back.
 */
export function stampingRound(db: Database): () => void {
  const listeners = listenersOf(db);
  listeners.roundsInFlight++;
  let ended = false;
  return () => {
    if (ended) return;
    ended = true;
    if (--listeners.roundsInFlight > 0) return;
    for (const listener of listeners.roundsEnded) listener();
  };
}

/** Stamping rounds of this process's sequencer running now. */
export function stampingRoundsInFlight(db: Database): number {
  return localListeners.get(db)?.roundsInFlight ?? 0;
}

/** Called each time no stamping round of this process is running any more; returns the way to stop. */
export function onStampingRoundsEnded(db: Database, listener: () => void): () => void {
  const set = listenersOf(db).roundsEnded;
  set.add(listener);
  return () => set.delete(listener);
}
