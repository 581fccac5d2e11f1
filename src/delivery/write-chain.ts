/**
 * One subscription runner's database writes, in order: every write (attempt rows, parked events,
 * the watermark, the FAILING and health rows, a deactivation) waits for the ones queued before it,
 * so writes never cross. Parking relies on it: a record is unparked only in a turn where nothing of
 * it waits to be written, so its later events cannot overtake parked ones.
 */
export class WriteChain {
  private last: Promise<void> = Promise.resolve();

  /** Runs `write` after every write queued before it; a failed write does not stop the chain. */
  serial<T>(write: () => Promise<T>): Promise<T> {
    const result = this.last.then(write);
    this.last = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}

/** Thrown from a write when this worker no longer holds the subscription's lease. */
export class LeaseLostError extends Error {
  constructor() {
    super("this worker no longer holds the subscription's lease");
  }
}
