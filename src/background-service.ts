import { hostname } from "node:os";
/** A component that runs in the background until stopped (sequencer, delivery worker, housekeeping). */
export interface BackgroundService {
  readonly name: string;
  /** Stops taking work, finishes or hands back what is in flight, then resolves. */
  stop(): Promise<void>;
}

/** A process's name in leases and logs when HERALD_WORKER_ID is unset: host name and process id. */
export function defaultWorkerId(): string {
  return `${hostname()}:${process.pid}`;
}
