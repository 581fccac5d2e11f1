/** A component that runs in the background until stopped (sequencer, delivery worker, housekeeping). */
export interface BackgroundService {
  readonly name: string;
  /** Stops taking work, finishes or hands back what is in flight, then resolves. */
  stop(): Promise<void>;
}
