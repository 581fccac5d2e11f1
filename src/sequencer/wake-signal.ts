/**
 * A coalescing wake-up: any number of `wake()` calls between two waits count as one, and a wake-up
 * that arrives while the sleeper is busy is not lost (the next `wait` returns at once).
 */
export class WakeSignal {
  private pending = false;
  private waiter: (() => void) | undefined;

  wake(): void {
    this.pending = true;
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.();
  }

  /** Forgets wake-ups received so far: call it just before doing the work they asked for. */
  consume(): void {
    this.pending = false;
  }

  /** Resolves `true` at the next wake-up (at once if one is pending), or `false` after `timeoutMs`. */
  wait(timeoutMs: number): Promise<boolean> {
    if (this.pending) {
      this.pending = false;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        resolve(false);
      }, timeoutMs);
      this.waiter = () => {
        clearTimeout(timer);
        this.pending = false;
        resolve(true);
      };
    });
  }
}
