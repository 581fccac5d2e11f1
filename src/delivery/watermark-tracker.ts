/**
 * The contiguous watermark (DESIGN §5): the highest log position at or below which every matching
 * event is finished. Events finish out of order (records run in parallel), so finished positions
 * above an unfinished one wait here until the gap closes.
 */
export class WatermarkTracker {
  private pending: number[] = [];
  private head = 0;
  private readonly done = new Set<number>();
  private readThrough: number;

  constructor(start: number) {
    this.readThrough = start;
  }

  /** A matching event at `position` was read and is not finished yet. Positions arrive ascending. */
  add(position: number): void {
    this.pending.push(position);
  }

  /** Everything up to `position` has been read (non-matching events there are finished by definition). */
  readUpTo(position: number): void {
    if (position > this.readThrough) this.readThrough = position;
  }

  /** Positions held: unfinished ones and the finished ones above the first unfinished. */
  get span(): number {
    void this.safe;
    return this.pending.length - this.head;
  }

  get cursor(): number {
    return this.readThrough;
  }

  finish(position: number): void {
    this.done.add(position);
  }

  /** The highest position below which nothing is unfinished. */
  get safe(): number {
    while (this.head < this.pending.length && this.done.has(this.pending[this.head] as number)) {
      this.done.delete(this.pending[this.head] as number);
      this.head++;
    }
    if (this.head > 4096 && this.head * 2 > this.pending.length) {
      this.pending = this.pending.slice(this.head);
      this.head = 0;
    }
    const first = this.pending[this.head];
    return first === undefined ? this.readThrough : first - 1;
  }
}
