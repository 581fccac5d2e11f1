/**
 * BULK blocks (SPEC §4, DESIGN §5): one open block of up to `maxBlockSize` items, sent when full,
 * when `lingerMs` passed since the last item joined it, or when its oldest item waited `maxWaitMs`.
 * Pure: the caller passes the time, so tests drive it with a fake clock.
 */
export interface BulkLimits {
  maxBlockSize: number;
  lingerMs: number;
  maxWaitMs: number;
}

export class BulkBatcher<T> {
  private block: T[] = [];
  private firstAt = 0;
  private lastAt = 0;

  constructor(private limits: BulkLimits) {}

  /** New limits (the subscription was edited); they apply from the next check. */
  setLimits(limits: BulkLimits): void {
    this.limits = limits;
  }

  get length(): number {
    return this.block.length;
  }

  /** Free places in the open block. */
  get room(): number {
    return Math.max(0, this.limits.maxBlockSize - this.block.length);
  }

  get isFull(): boolean {
    return this.block.length >= this.limits.maxBlockSize;
  }

  add(items: readonly T[], now: number): void {
    if (items.length === 0) return;
    if (items.length > this.room) throw new RangeError("the block has no room for these items");
    if (this.block.length === 0) this.firstAt = now;
    this.lastAt = now;
    this.block.push(...items);
  }

  /** When the open block must leave even if not full; undefined when empty. */
  dueAt(): number | undefined {
    if (this.block.length === 0) return undefined;
    return Math.min(this.lastAt + this.limits.lingerMs, this.firstAt + this.limits.maxWaitMs);
  }

  /** True when the open block should be sent at `now`. */
  isDue(now: number): boolean {
    const due = this.dueAt();
    return this.isFull || (due !== undefined && now >= due);
  }

  /** Closes the open block and returns it (empty when nothing was waiting). */
  take(): T[] {
    const block = this.block;
    this.block = [];
    return block;
  }
}
