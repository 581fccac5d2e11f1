// PLACEHOLDER (owned by the sequencer work): replaced by the real sequencer.
import type { Logger } from "pino";
import type { BackgroundService } from "../background-service.js";
import type { Database } from "../storage/database.js";

export interface SequencerOptions {
  db: Database;
  logger: Logger;
}

export async function startSequencer(_options: SequencerOptions): Promise<BackgroundService> {
  return { name: "sequencer", stop: async () => {} };
}
