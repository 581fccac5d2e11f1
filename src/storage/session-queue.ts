/**
 * The queue in front of the embedded database's one session: every query, script and transaction
 * of the process takes its turn here, first come first served, API requests and background roles
 * alike (so none is starved).
 *
 * Why it exists: PGlite runs each statement synchronously in WebAssembly and hands its session to
 * the next waiter in a promise callback. Node runs every pending promise callback after each I/O
 * callback, before the next one; under load the hand-offs made a chain that did not end while work
 * kept coming, so the process accepted about one new connection per chain (the rest waited in the
 * kernel's accept queue until the burst ended) and `/healthz`, which touches no database, waited
 * behind hundreds of milliseconds to seconds of database work. Here the session goes to the next waiter at once only while the current slice of
 * work is shorter than `sliceMs`; after that it goes through `setImmediate`, which lets the event
 * loop accept connections, read requests and answer the ones that need no database in between.
 *
 * The queue itself has no bound: the API keeps it short by letting in a bounded number of requests
 * at a time and answering 503 beyond (src/api/database-admission.ts).
 */
export interface SessionQueueOptions {
  /** Most milliseconds of database work between two turns of the event loop. */
  sliceMs: number;
}

const SESSION_QUEUE_DEFAULTS: SessionQueueOptions = { sliceMs: 5 };

interface Waiter {
  grant: () => void;
  since: number;
}

export class SessionQueue {
  /** Waiting operations in arrival order; `head` is the index of the oldest. */
  private waiting: Waiter[] = [];
  private head = 0;
  private busy = false;
  /** The session is free but promised to the oldest waiter at the next turn of the event loop. */
  private handOffScheduled = false;
  /**
   * The current slice: database work since the event loop last had a turn. A slice stays open
   * until a `setImmediate` scheduled at its start has run: work that comes back to an idle session
   * within the same turn (the next statement of the request that just finished one) counts in it.
   */
  private sliceOpen = false;
  private sliceStartedAt = 0;
  private slices = 0;

  constructor(
    private readonly options: SessionQueueOptions = SESSION_QUEUE_DEFAULTS,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Runs `work` when the session is this caller's, and frees it when `work` settles. */
  async run<T>(work: () => Promise<T>): Promise<T> {
    await this.acquire();
    try {
      return await work();
    } finally {
      this.release();
    }
  }

  /** Milliseconds the oldest waiting operation has waited; 0 when none waits. */
  oldestWaitMs(): number {
    const oldest = this.waiting[this.head];
    return oldest ? this.now() - oldest.since : 0;
  }

  /** Operations waiting for the session (not counting the one that holds it). */
  get length(): number {
    return this.waiting.length - this.head;
  }

  private acquire(): Promise<void> | void {
    if (!this.busy && !this.handOffScheduled && this.length === 0) {
      if (!this.sliceOpen) this.openSlice();
      if (!this.sliceSpent()) {
        this.busy = true;
        return;
      }
    }
    const waiting = new Promise<void>((grant) => this.waiting.push({ grant, since: this.now() }));
    if (!this.busy) this.scheduleHandOff();
    return waiting;
  }

  private release(): void {
    this.busy = false;
    if (this.length === 0) return;
    if (this.sliceSpent()) this.scheduleHandOff();
    else this.grantNext();
  }

  private sliceSpent(): boolean {
    return this.now() - this.sliceStartedAt >= this.options.sliceMs;
  }

  private openSlice(): void {
    const slice = ++this.slices;
    this.sliceOpen = true;
    this.sliceStartedAt = this.now();
    setImmediate(() => {
      if (this.slices === slice) this.sliceOpen = false;
    });
  }

  private scheduleHandOff(): void {
    if (this.handOffScheduled) return;
    this.handOffScheduled = true;
    setImmediate(() => {
      this.handOffScheduled = false;
      this.openSlice();
      this.grantNext();
    });
  }

  private grantNext(): void {
    const next = this.waiting[this.head];
    if (!next) return;
    this.waiting[this.head] = undefined as unknown as Waiter;
    this.head++;
    // Compact now and then, so a long-lived queue does not keep every waiter it ever had.
    if (this.head >= 1024 && this.head * 2 >= this.waiting.length) {
      this.waiting = this.waiting.slice(this.head);
      this.head = 0;
    }
    this.busy = true;
    next.grant();
  }
}
