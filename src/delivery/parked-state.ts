/**
 * A parked record as its runner holds it in memory: the `parked_records` row plus what is in
 * flight. A parked record's head push points at it (push.ts), and parked-records.ts drives it.
 */
import type { ParkedRecord } from "../storage/parking-repository.js";

export interface ParkedState extends Omit<ParkedRecord, "nextAttemptAt"> {
  /** Clock time of the next attempt. */
  nextAttemptAt: number;
  timer: NodeJS.Timeout | undefined;
  /** Its head push is being loaded, waits for a slot, or is in flight. */
  busy: boolean;
}
