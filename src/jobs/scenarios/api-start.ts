/**
 * The API start of a scenario (SPEC §7.4, `POST …/scenarios/{id}/start` with `{"profileKey"}`): one
 * run for one profile of the scenario's table, created under the scenario's re-entry policy in a
 * transaction that NOTIFYs the run workers of every process, and this process's woken once it
 * committed. The run starts at the first block, due at once. The scenario (under a share lock) and
 * the profile are read in that transaction, so the run is started under the definition and for the
 * profile as they are when it commits.
 *
 * Refused with nothing written: a scenario that is not ACTIVE or whose start is not API (409
 * HERALD_SCENARIO_NOT_STARTABLE), a profile key that is not one (400), a profile that does not
 * exist (404), a profile the re-entry policy keeps out (409, naming the run that holds it).
 */
import { profileNotFound } from "../../capture/profile-writer.js";
import type { DataTable } from "../../domain/data-table.js";
import { HeraldError } from "../../domain/errors.js";
import type { ProfileKey } from "../../domain/record-keys.js";
import { parseProfileKey } from "../../domain/record-keys.js";
import type { Reentry, Scenario, ScenarioDefinition } from "../../domain/scenario.js";
import { entryKey, firstBlock } from "../../domain/scenario.js";
import type { Database, Queryable } from "../../storage/database.js";
import { createJob } from "../../storage/job-channels.js";
import type { JobSignals } from "../../storage/job-signals.js";
import type { StoredRecord } from "../../storage/record-repository.js";
import { findRecordById, findRecordByKey } from "../../storage/record-repository.js";
import type { StoredRun } from "../../storage/scenario-run-repository.js";
import { insertRunsReturningIds } from "../../storage/scenario-run-repository.js";
import {
  findEntryHolder,
  findRun,
  lockScenarioForStart,
} from "../../storage/scenario-run-reads.js";

/** The API key that asked for the run (its start says so). */
export interface StartingKey {
  apiKeyId: number;
  apiKeyName: string;
}

export async function startRunByApi(
  target: { db: Database; jobSignals: JobSignals },
  scenario: Pick<Scenario, "id" | "entityId" | "status" | "definition">,
  table: DataTable,
  profileKey: string,
  apiKey: StartingKey,
  now: Date,
): Promise<StoredRun> {
  // Refused at once on the scenario as the caller read it; decided in the transaction below, on
  // the scenario as it is then.
  startable(scenario.id, scenario.status, scenario.definition);
  const key = parseProfileKey(table, profileKey);
  return createJob(target, async (tx) => {
    // Under a share lock of the scenario: a deactivation or a change of definition waits for this
    // run, or this sees it (a deactivate → PUT → activate since the caller's read starts the run
    // at the first block of the definition that is ACTIVE now).
    const locked = await lockScenarioForStart(tx, scenario.id);
    const definition = startable(scenario.id, locked?.status ?? "deleted", locked?.definition);
    if (definition.tableId !== table.id)
      throw notStartable(
        scenario.id,
        "its profile table was changed while the call was made; retry the call",
      );
    const profile = await findProfile(tx, table, key);
    if (!profile) throw profileNotFound(table, key);
    const keyOfEntry = entryKey(definition.reentry, profile.recordId);
    const [id] = await insertRunsReturningIds(
      tx,
      [
        {
          scenarioId: scenario.id,
          entityId: scenario.entityId,
          profileId: profile.recordId,
          blockId: firstBlock(definition).id,
          dueAt: now,
          entryKey: keyOfEntry,
          start: { type: "API", apiKeyId: apiKey.apiKeyId, apiKeyName: apiKey.apiKeyName },
        },
      ],
      now,
    );
    if (id === undefined)
      throw await refusedEntry(tx, scenario.id, definition.reentry, keyOfEntry, profile);
    const run = await findRun(tx, scenario.id, id);
    if (!run)
      throw new Error(
        `internal error: run ${id} is not visible to the transaction that inserted it`,
      );
    return run;
  });
}

/** The definition of a scenario that may start a run, or the 409 of one that may not. */
function startable(
  scenarioId: string,
  status: string,
  definition: ScenarioDefinition | undefined,
): ScenarioDefinition {
  if (status !== "ACTIVE" || !definition) throw notActive(scenarioId, status);
  const start = definition.start;
  if (start.type !== "API")
    throw notStartable(
      scenarioId,
      `its start is ${start.type}, which starts runs by itself; only a scenario with an API start is started by this call`,
    );
  return definition;
}

async function findProfile(
  db: Queryable,
  table: DataTable,
  key: ProfileKey,
): Promise<StoredRecord | undefined> {
  return key.kind === "profileId"
    ? findRecordById(db, table.id, key.profileId)
    : findRecordByKey(db, table.id, key.key);
}

/** The 409 of a profile the re-entry policy keeps out, naming the run that holds its key. */
async function refusedEntry(
  tx: Queryable,
  scenarioId: string,
  reentry: Reentry,
  keyOfEntry: string | null,
  profile: StoredRecord,
): Promise<HeraldError> {
  const holder =
    keyOfEntry === null ? undefined : await findEntryHolder(tx, scenarioId, keyOfEntry);
  if (!holder)
    return notStartable(
      scenarioId,
      `profile ${profile.recordId} was kept out by its re-entry policy; retry the call`,
    );
  const policy =
    reentry === "NEVER"
      ? "its re-entry policy NEVER lets a profile in once"
      : "its re-entry policy AFTER_EXIT lets the profile in again once that run has ended";
  const reason =
    holder.endedAt === null
      ? `profile ${profile.recordId} is already in it: run ${holder.id} is ${holder.status} at block '${holder.blockId}'; ${policy}`
      : `profile ${profile.recordId} already went through it in run ${holder.id} (${holder.status}); ${policy}`;
  return new HeraldError("HERALD_SCENARIO_NOT_STARTABLE", { id: scenarioId, reason }, [
    { path: "profileKey", message: reason },
  ]);
}

function notActive(scenarioId: string, status: string): HeraldError {
  return notStartable(scenarioId, `it is ${status}; activate it first (POST …/activate)`);
}

function notStartable(scenarioId: string, reason: string): HeraldError {
  return new HeraldError("HERALD_SCENARIO_NOT_STARTABLE", { id: scenarioId, reason });
}
