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
  key: string;
  items: T[];
  busy: boolean;
  /** Items of the batch being completed (complete's tally; 0 outside it). */
  completing: number;
}

export class RecordScheduler<T extends KeyedItem> {
  private readonly records = new Map<string, RecordQueue<T>>();
  private ready: string[] = [];
  private readyHead = 0;
  private buffered = 0;
  /** complete's list of the records it touches, reused from call to call. */
  private readonly touched: RecordQueue<T>[] = [];

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
    this.records.set(item.key, { key: item.key, items: [item], busy: false, completing: 0 });
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

  /**
   * The items of a taken batch are done: their records drop them and become ready again. A batch
   * holds each record's items one after the other (take), so a record is looked up once per run of
   * its items, and the tally lives on the record itself (no map is built per batch: a BULK block
   * completes hundreds of records at a time).
   */
  complete(items: readonly T[]): void {
    const touched = this.touched;
    let record: RecordQueue<T> | undefined;
    let key: string | undefined;
    for (const item of items) {
      if (item.key !== key) {
        key = item.key;
        record = this.records.get(key);
        if (record && record.completing === 0) touched.push(record);
      }
      if (record) record.completing++;
    }
    for (let i = 0; i < touched.length; i++) {
      const done = touched[i] as RecordQueue<T>;
      const count = done.completing;
      done.completing = 0;
      this.buffered -= count;
      done.busy = false;
      // Mostly the record's last items: it goes, with no array spliced out of it.
      if (count >= done.items.length) this.records.delete(done.key);
      else {
        done.items.splice(0, count);
        this.ready.push(done.key);
      }
    }
    touched.length = 0;
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
