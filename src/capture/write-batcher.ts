/**
 * Group commit for writes that arrive together. Each write waits in a queue until the next event
 * loop turn (or until a batch in flight finishes), then goes out with the writes queued beside it,
 * as one statement that one commit makes durable: under load, a round trip, a commit and a WAL
 * flush serve many requests instead of one each, and with a single request nothing waits longer
 * than one loop turn.
 *
 * Writes that share a key (a unique value, a record) never go in the same batch, nor in two batches
 * in flight at once: the later one waits for the next batch. So a batch never conflicts with itself,
 * and two batches of this process never conflict with each other.
 *
 * What a batch does with its writes is the runner's business (profile-upsert.ts). It must settle
 * every entry it is given; if it fails or forgets one, that entry is rejected with the error.
 */

export interface BatchEntry<I, R> {
  readonly item: I;
  resolve(result: R): void;
  reject(error: unknown): void;
}

export type BatchRunner<I, R> = (entries: BatchEntry<I, R>[]) => Promise<void>;

export interface WriteBatcherOptions {
  /** Most writes in one statement. */
  maxBatch: number;
  /** Batches in flight at once (each holds a connection until it is done). */
  maxInFlight: number;
}

interface Queued<I, R> extends BatchEntry<I, R> {
  keys: readonly string[];
  settled: boolean;
}

export class WriteBatcher<I, R> {
  private queue: Queued<I, R>[] = [];
  /** Keys of the writes in the batches in flight. */
  private readonly busyKeys = new Set<string>();
  private inFlight = 0;
  private flushScheduled = false;

  constructor(
    private readonly run: BatchRunner<I, R>,
    /** The keys of a write: two writes that share one are never batched together. */
    private readonly keysOf: (item: I) => readonly string[],
    private readonly options: WriteBatcherOptions,
  ) {}

  submit(item: I): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      const entry: Queued<I, R> = {
        item,
        keys: this.keysOf(item),
        settled: false,
        resolve: (result) => {
          entry.settled = true;
          resolve(result);
        },
        reject: (error) => {
          entry.settled = true;
          reject(error);
        },
      };
      this.queue.push(entry);
      this.scheduleFlush();
    });
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.inFlight >= this.options.maxInFlight) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  /** Starts batches while there is room and a queued write that can go. */
  private flush(): void {
    while (this.inFlight < this.options.maxInFlight && this.queue.length > 0) {
      const batch = this.takeBatch();
      if (batch.length === 0) return;
      this.inFlight++;
      void this.runBatch(batch);
    }
  }

  /** The oldest queued writes (queue order) whose keys are free, up to maxBatch. */
  private takeBatch(): Queued<I, R>[] {
    const batch: Queued<I, R>[] = [];
    const rest: Queued<I, R>[] = [];
    for (const entry of this.queue) {
      const free =
        batch.length < this.options.maxBatch && entry.keys.every((k) => !this.busyKeys.has(k));
      if (!free) {
        rest.push(entry);
        continue;
      }
      for (const key of entry.keys) this.busyKeys.add(key);
      batch.push(entry);
    }
    this.queue = rest;
    return batch;
  }

  private async runBatch(batch: Queued<I, R>[]): Promise<void> {
    try {
      await this.run(batch);
    } catch (error) {
      for (const entry of batch) if (!entry.settled) entry.reject(error);
    } finally {
      for (const entry of batch) {
        if (!entry.settled)
          entry.reject(new Error("internal error: a write batch left a write unanswered"));
        for (const key of entry.keys) this.busyKeys.delete(key);
      }
      this.inFlight--;
      if (this.queue.length > 0) this.scheduleFlush();
    }
  }
}
