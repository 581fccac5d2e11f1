/**
 * What a capture write works with besides its input: the database, and the process's log signals,
 * which pace the inbox NOTIFY and wake this process's sequencer once the write has committed. The
 * API's deps are one (AppDeps has both); tests make one from a test database.
 */
import type { Database } from "../storage/database.js";
import type { LogSignals } from "../storage/log-signals.js";

export interface CaptureContext {
  readonly db: Database;
  readonly logSignals: LogSignals;
}
