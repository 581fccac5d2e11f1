/**
 * Per-record ordering (DESIGN §5): the events of one record leave strictly in log order, one batch
 * at a time, while different records go in parallel. A record is "busy" from the moment a batch of
 * its events is taken until that batch is completed (delivered or given up), including every retry
 * in between, so a later event of that record can never overtake an earlier one.
 *
 * Records become ready in FIFO order, so no record starves behind a chatty one.
 */

export interface KeyedItem {
  /** The ordering key: source + source id + record key. */
  key: string;
}

interface RecordQueue<T> {
  items: T[];
  busy: boolean;
}

export class RecordScheduler<T extends KeyedItem> {
  private readonly records = new Map<string, RecordQueue<T>>();
  private ready: string[] = [];
  private readyHead = 0;
  private buffered = 0;

  /** Items held: queued plus taken and not yet completed. */
  get size(): number {
    return this.buffered;
  }

  /** Records with a queued item that may be taken now. */
  get readyRecords(): number {
    return this.ready.length - this.readyHead;
  }

  enqueue(item: T): void {
    this.buffered++;
    const record = this.records.get(item.key);
    if (record) {
      record.items.push(item);
      return;
    }
    this.records.set(item.key, { items: [item], busy: false });
    this.ready.push(item.key);
  }

  /**
   * Takes up to `max` items from ready records, in order: all of one record's queued items (as many
   * as fit) before the next record's. Every record taken from is busy until `complete`.
   */
  take(max: number): T[] {
    const taken: T[] = [];
    while (taken.length < max && this.readyHead < this.ready.length) {
      const key = this.ready[this.readyHead++] as string;
      const record = this.records.get(key);
      if (!record || record.busy) continue;
      record.busy = true;
      const count = Math.min(record.items.length, max - taken.length);
      for (let i = 0; i < count; i++) taken.push(record.items[i] as T);
      this.compactReady();
    }
    return taken;
  }

  /** The items of a taken batch are done: their records drop them and become ready again. */
  complete(items: readonly T[]): void {
    const counts = new Map<string, number>();
    for (const item of items) counts.set(item.key, (counts.get(item.key) ?? 0) + 1);
    for (const [key, count] of counts) {
      const record = this.records.get(key);
      if (!record) continue;
      record.items.splice(0, count);
      this.buffered -= count;
      record.busy = false;
      if (record.items.length === 0) this.records.delete(key);
      else this.ready.push(key);
    }
  }

  /**
   * Removes a record that is not busy and returns its queued items in order (the record is being
   * parked: its events leave the in-memory stream). Empty when the record holds nothing.
   */
  drain(key: string): T[] {
    const record = this.records.get(key);
    if (!record) return [];
    if (record.busy) throw new Error("a busy record cannot be drained; complete its batch first");
    this.records.delete(key);
    this.buffered -= record.items.length;
    return record.items;
  }

  private compactReady(): void {
    if (this.readyHead > 1024 && this.readyHead * 2 > this.ready.length) {
      this.ready = this.ready.slice(this.readyHead);
      this.readyHead = 0;
    }
  }
}
