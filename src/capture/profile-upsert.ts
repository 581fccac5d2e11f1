/**
 * POST …/profile[?allowUpdate=true] (SPEC §3): creates a profile; with `allowUpdate`, a profile that
 * already holds one of the given unique values is updated instead. Without it, a taken unique value
 * is 409. Two concurrent upserts of the same new key end as one create and one update.
 *
 * Upserts are group-committed (write-batcher.ts): the upserts that arrive together go to the
 * database as two statements (storage/record-event-writes.ts): a read-only lookup of the profiles
 * holding their unique values (findRecordsByKeys; it writes nothing, so it waits for no WAL flush),
 * then ONE version-checked statement that creates the new profiles and updates the existing ones,
 * with their key rows and events (writeRecordsWithEvents). That statement is its own autocommit
 * transaction, so every row is committed with its events or not at all (DESIGN §3), and the whole
 * batch costs one commit. An upsert that the batch cannot settle runs on its own, on the path below:
 * when the write failed (a value taken by a concurrent writer, a deleted table, a deadlock, or a bad
 * item, since one failing item fails the statement for all), when its profile moved between the
 * read and the write, or when two upserts of the batch found the same profile. An update that
 * changes or clears a unique value goes straight to the transactional path: a custom table's
 * foreign key may refer to the profile by that value, which is checked there under the row lock
 * (409 HERALD_REFERENCED_VALUE_IN_USE for that upsert alone).
 *
 * On its own, an upsert takes the single-statement path first: a create is ONE autocommit statement,
 * an update two (the read, then a version-checked UPDATE with its events; retried when the version
 * moved). A taken unique value, a deadlock or a record that keeps moving hands over to the
 * transactional path (BEGIN, find-or-insert with row locks, UPDATE, events, COMMIT), which reports
 * exactly which value is taken (409).
 */
import type { NewChangeEvent, Origin } from "../domain/change-event.js";
import type { DataTable } from "../domain/data-table.js";
import type { KeyValue } from "../domain/record-change.js";
import { appendChangeEvents } from "../storage/change-event-repository.js";
import type { BatchCreate, BatchUpdate } from "../storage/record-event-writes.js";
import {
  createRecordWithEvents,
  findRecordsByKeys,
  updateRecordWithEvents,
  writeRecordsWithEvents,
} from "../storage/record-event-writes.js";
import type { NewRecord, StoredRecord } from "../storage/record-repository.js";
import { findOrInsertRecord, setDataCollection } from "../storage/record-repository.js";
import type { CaptureContext } from "./capture-context.js";
import type { RecordSnapshot } from "./change-event-builders.js";
import type { ProfileWrite, ProfileWriteResult } from "./profile-writer.js";
import {
  applyToProfile,
  hasUniqueValueChange,
  onlyRecord,
  planProfileCreate,
  planProfileUpdate,
  stillHolds,
  uniqueKeyTaken,
} from "./profile-writer.js";
import type { BatchEntry } from "./write-batcher.js";
import { WriteBatcher } from "./write-batcher.js";
import { gatedTransaction } from "./capture-transaction.js";
import { inOneStatement, RetryWrite, StaleTableDefinition } from "./write-retry.js";

/**
 * Batch sizes: at 16 concurrent clients a batch holds what arrived during the previous one; two
 * batches in flight keep the database busy while the API process prepares the next.
 */
export const UPSERT_BATCH = { maxBatch: 64, maxInFlight: 2 } as const;

/** An upsert checked and drafted, before any statement runs. */
interface PreparedUpsert {
  table: DataTable;
  write: ProfileWrite;
  origin: Origin;
  /** The profile to create when no profile holds the lookup values. */
  record: NewRecord;
  /** Unique values to find an existing profile by (none without allowUpdate). */
  lookup: KeyValue[];
  /** Why the write cannot create a profile (a missing mandatory value), if it cannot. */
  mandatoryProblem: unknown;
  /** The events of creating `record` as `created` (the statement fills in placeholders). */
  createEvents(created: RecordSnapshot): NewChangeEvent[];
}

/**
 * How an upsert finds the profile to update: `allowUpdate` by any unique value the write gives (v4
 * POST); `lookupBy` by that one unique value only (v5 PUT …/profiles, upsert by key), so another
 * profile holding another value the write gives makes it 409 instead of updating that profile.
 */
export interface UpsertOptions {
  allowUpdate: boolean;
  origin: Origin;
  lookupBy?: KeyValue;
}

function prepareUpsert(
  table: DataTable,
  write: ProfileWrite,
  options: UpsertOptions,
): PreparedUpsert {
  const plan = planProfileCreate(table, write, options.origin);
  const lookup = options.lookupBy ? [options.lookupBy] : options.allowUpdate ? plan.keys : [];
  // Nothing to update and nothing to create: 400 before any statement.
  if (plan.mandatoryProblem && lookup.length === 0) throw plan.mandatoryProblem;
  return {
    table,
    write,
    origin: options.origin,
    record: {
      tableId: table.id,
      businessKey: null,
      attributes: plan.attributes,
      subscriptions: plan.subscriptions,
      segments: plan.segments,
      keys: plan.keys,
      ...(plan.dataCollection ? { dataCollection: plan.dataCollection } : {}),
    },
    lookup,
    mandatoryProblem: plan.mandatoryProblem,
    createEvents: plan.events,
  };
}

/** What the single statements draft a create's events from: they fill in the id and moments. */
function unwritten(item: PreparedUpsert): RecordSnapshot {
  return {
    recordId: 0,
    businessKey: null,
    attributes: item.record.attributes,
    createdAt: new Date(0),
    updatedAt: new Date(0),
  };
}

// Group commit --------------------------------------------------------------------------------------

type UpsertEntry = BatchEntry<PreparedUpsert, ProfileWriteResult>;

/**
 * The profile upserts of one database, group-committed: whoever serves that database makes one and
 * sends every upsert through it (the API makes its own in buildApp), so that upserts arriving
 * together share statements.
 */
export class ProfileUpserts {
  private readonly batcher: WriteBatcher<PreparedUpsert, ProfileWriteResult>;

  constructor(capture: CaptureContext) {
    this.batcher = new WriteBatcher(
      (entries) => capture.logSignals.committingEvents(() => runUpsertBatch(capture, entries)),
      // Upserts of one unique value (written or looked up) go one after the other, never in one
      // statement.
      (item) =>
        [...item.record.keys, ...item.lookup].map(
          (k) => `${item.table.id}\u0000${k.attribute}\u0000${k.value}`,
        ),
      UPSERT_BATCH,
    );
  }

  async upsert(
    table: DataTable,
    write: ProfileWrite,
    options: UpsertOptions,
  ): Promise<ProfileWriteResult> {
    return this.batcher.submit(prepareUpsert(table, write, options));
  }
}

async function runUpsertBatch(capture: CaptureContext, entries: UpsertEntry[]): Promise<void> {
  const { db } = capture;
  const alone: Promise<void>[] = [];
  const runAlone = (entry: UpsertEntry) =>
    alone.push(upsertAlone(capture, entry.item).then(entry.resolve, entry.reject));
  const runLocked = (entry: UpsertEntry) =>
    alone.push(upsertLocked(capture, entry.item).then(entry.resolve, entry.reject));

  let found: StoredRecord[][];
  try {
    found = await findRecordsByKeys(
      db,
      entries.map(({ item }) => ({ tableId: item.record.tableId, keys: item.lookup })),
    );
  } catch {
    // Nothing was written; each upsert runs alone and meets its own fate.
    entries.forEach(runAlone);
    await Promise.all(alone);
    return;
  }

  const creates: { entry: UpsertEntry; write: BatchCreate }[] = [];
  const updates: { entry: UpsertEntry; record: StoredRecord; write: BatchUpdate }[] = [];
  const updating = new Set<number>();
  entries.forEach((entry, i) => {
    const records = found[i]!;
    const { item } = entry;
    try {
      if (records.length === 0) {
        // Nothing to update: a create, unless the write cannot create a profile.
        if (item.mandatoryProblem) entry.reject(item.mandatoryProblem);
        else
          creates.push({
            entry,
            write: {
              record: item.record,
              events: item.createEvents(unwritten(item)),
              tableVersion: item.table.version,
            },
          });
        return;
      }
      const record = onlyRecord(records);
      if (!stillHolds(record, item.lookup) || updating.has(record.recordId)) {
        runAlone(entry);
        return;
      }
      const plan = planProfileUpdate(item.table, record, item.write, item.origin);
      if (plan.kind === "unchanged" && plan.dataCollection) {
        // Only the dataCollectionInformation changes: its own statement, no event.
        runAlone(entry);
        return;
      }
      if (plan.kind === "unchanged") {
        // A no-op writes nothing: the version read was committed, so it is a state it had.
        entry.resolve({
          profileId: record.recordId,
          outcome: "UNCHANGED",
          version: record.version,
        });
        return;
      }
      if (hasUniqueValueChange(plan)) {
        // References by that value are checked under the profile's row lock.
        runLocked(entry);
        return;
      }
      updating.add(record.recordId);
      updates.push({
        entry,
        record,
        write: {
          update: plan.update,
          expectedVersion: record.version,
          events: plan.events(record.version + 1, record.updatedAt),
          tableVersion: item.table.version,
        },
      });
    } catch (error) {
      entry.reject(error);
    }
  });

  if (creates.length > 0 || updates.length > 0) {
    try {
      const written = await writeRecordsWithEvents(
        db,
        creates.map((c) => c.write),
        updates.map((u) => u.write),
        capture.logSignals,
      );
      if (!written.current) {
        // A table of the batch changed its definition since these upserts were checked against
        // it: nothing was written. Each starts over from its request (api: withCurrentTable).
        for (const { entry } of [...creates, ...updates])
          entry.reject(new StaleTableDefinition([entry.item.table]));
      } else {
        creates.forEach(({ entry }, i) =>
          entry.resolve({ profileId: written.created[i]!, outcome: "CREATED", version: 1 }),
        );
        updates.forEach(({ entry, record }, i) => {
          const version = written.updated[i];
          // Moved on since the read: nothing was written for it; it runs alone (reads again).
          if (version === undefined) runAlone(entry);
          else entry.resolve({ profileId: record.recordId, outcome: "UPDATED", version });
        });
      }
    } catch {
      // The statement wrote nothing for anyone (a value taken meanwhile, a bad item, a deadlock):
      // each of its upserts runs alone and meets its own fate.
      for (const { entry } of creates) runAlone(entry);
      for (const { entry } of updates) runAlone(entry);
    }
  }
  await Promise.all(alone);
}

// One upsert on its own -----------------------------------------------------------------------------

/**
 * Writes a profile read without a lock if it is still at the version read (one statement).
 * `undefined` hands a change of a unique value over to the transactional path (hasUniqueValueChange).
 */
async function updateUnlocked(
  capture: CaptureContext,
  item: PreparedUpsert,
  record: StoredRecord,
): Promise<ProfileWriteResult | undefined> {
  const { db } = capture;
  const plan = planProfileUpdate(item.table, record, item.write, item.origin);
  if (hasUniqueValueChange(plan)) return undefined;
  // A no-op writes nothing: the version read was committed, so it is a state the record had.
  if (plan.kind === "unchanged") {
    if (
      plan.dataCollection &&
      !(await setDataCollection(db, item.table.id, record.recordId, plan.dataCollection))
    )
      throw new RetryWrite("the profile was deleted since it was read");
    return { profileId: record.recordId, outcome: "UNCHANGED", version: record.version };
  }
  const written = await updateRecordWithEvents(
    db,
    {
      update: plan.update,
      expectedVersion: record.version,
      events: plan.events(record.version + 1, record.updatedAt),
      rowValues: "PROFILE",
      tableVersion: item.table.version,
    },
    capture.logSignals,
  );
  if (!written) throw new RetryWrite("the profile changed since it was read");
  return { profileId: record.recordId, outcome: "UPDATED", version: written.version };
}

async function upsertAlone(
  capture: CaptureContext,
  item: PreparedUpsert,
): Promise<ProfileWriteResult> {
  const { table, lookup, mandatoryProblem } = item;
  const fast = await inOneStatement(async () => {
    const result = await createRecordWithEvents(
      capture.db,
      {
        record: item.record,
        lookupKeys: lookup,
        insert: mandatoryProblem === undefined,
        events: item.createEvents(unwritten(item)),
        rowValues: "PROFILE",
        tableVersion: table.version,
      },
      capture.logSignals,
    );
    if (result.kind === "none") throw mandatoryProblem ?? new RetryWrite("nothing found");
    if (result.kind === "inserted")
      return { profileId: result.record.recordId, outcome: "CREATED", version: 1 } as const;
    const record = onlyRecord(result.records);
    if (!stillHolds(record, lookup)) throw new RetryWrite("key moved to another profile");
    return updateUnlocked(capture, item, record);
  });
  if (fast) return fast;
  return upsertLocked(capture, item);
}

/** The transactional path: find-or-insert under row locks, then applyToProfile or the create. */
async function upsertLocked(
  capture: CaptureContext,
  item: PreparedUpsert,
): Promise<ProfileWriteResult> {
  const { table, lookup, mandatoryProblem } = item;
  const { logSignals } = capture;
  // The batch it belongs to wakes the sequencer once (ProfileUpserts).
  return gatedTransaction(capture, table, async (tx) => {
    const result = await findOrInsertRecord(
      tx,
      { businessKey: null, keys: lookup },
      item.record,
      mandatoryProblem === undefined,
    );
    if (result.kind === "none") throw mandatoryProblem ?? new RetryWrite("nothing found");
    if (result.kind === "found") {
      const record = onlyRecord(result.records);
      if (!stillHolds(record, lookup)) throw new RetryWrite("key moved to another profile");
      return applyToProfile(tx, table, record, item.write, item.origin, logSignals);
    }
    const taken = result.takenKeys[0];
    if (taken) {
      // A concurrent upsert created a value we look up by after our lookup: run again to
      // update that profile. Any other value taken is a 409.
      if (lookup.some((k) => k.attribute === taken.attribute && k.value === taken.value))
        throw new RetryWrite("unique key created concurrently");
      throw uniqueKeyTaken(taken);
    }
    await appendChangeEvents(tx, item.createEvents(result.record), logSignals);
    return { profileId: result.record.recordId, outcome: "CREATED", version: 1 };
  });
}
