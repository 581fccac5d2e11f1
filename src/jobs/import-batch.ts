/**
 * One batch of an import, in one transaction (DESIGN §6b): the table write gate, the records the
 * rows name locked, each row planned in file order exactly as the API would write it (create,
 * update, unchanged, or rejected with the API's code and message), every write and event in one
 * statement, the rejected rows, and the execution's checkpoint. A batch ends early, to keep file
 * order, where a row names a key an earlier row of the batch wrote, or a unique value an earlier
 * row gave up: such a row goes first in the next batch, which sees this one committed.
 */
import {
  createEvent,
  planRecordUpdate,
  primaryKeyOf,
  withCreationTime,
  withGeneratedKey,
} from "../capture/custom-record-writer.js";
import type { ValueReference } from "../capture/foreign-key-enforcement.js";
import {
  hasForeignKeys,
  lockReferences,
  referencedValueInUse,
  valueReferencesTo,
} from "../capture/foreign-key-enforcement.js";
import {
  planProfileCreate,
  planProfileUpdate,
  stillHolds,
  uniqueKeyTaken,
} from "../capture/profile-writer.js";
import { enterTableWriteGate } from "../capture/write-retry.js";
import type { AttributeMap, NewChangeEvent, Origin } from "../domain/change-event.js";
import type { DataTable } from "../domain/data-table.js";
import { HeraldError } from "../domain/errors.js";
import type { KeyValue } from "../domain/record-change.js";
import { applyAttributes } from "../domain/record-change.js";
import { keyText, uniqueKeysOf } from "../domain/record-keys.js";
import { checkMandatory } from "../domain/record-input.js";
import type { Queryable } from "../storage/database.js";
import type { ExecutionCounts } from "../storage/etl-execution-repository.js";
import type { RejectedRow } from "../storage/etl-rejected-rows.js";
import { recordBatchProgress } from "../storage/etl-execution-repository.js";
import { insertRejectedRows } from "../storage/etl-rejected-rows.js";
import type { ImportCreate, ImportUpdate } from "../storage/import-batch-writes.js";
import {
  findKeyOwners,
  lockRecordsByKey,
  notifyInbox,
  writeImportBatch,
} from "../storage/import-batch-writes.js";
import type { RecordUpdate, StoredRecord } from "../storage/record-repository.js";
import type { FileRow } from "./import-file-reader.js";
import type { BoundImport, MappedRow } from "./import-rows.js";

/** A row of the file with its mapping, waiting for its batch. */
export interface PendingRow {
  row: FileRow;
  mapped: MappedRow;
  /** Bytes of the file read when the row was parsed (progress). */
  bytesRead: number;
}

export interface BatchContext {
  bound: BoundImport;
  executionId: string;
  etlId: string | null;
  owner: string;
  /** Rejected rows before this batch and the limit (undefined: none). */
  rejectedSoFar: number;
  maxRejectedRows: number | undefined;
}

export type BatchOutcome = {
  kind: "committed";
  /** Rows of the pending list the batch consumed (applied or rejected), from its start. */
  consumed: number;
  counts: ExecutionCounts;
  cancelRequested: boolean;
  tooManyRejected: boolean;
};

/** A concurrent writer changed what the batch planned on: thrown to roll it back and run it again. */
export class BatchRaced extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = "BatchRaced";
  }
}

/** Another worker holds the execution now: thrown to roll the batch back (nothing is written). */
export class LostLease extends Error {
  constructor(executionId: string) {
    super(`execution ${executionId} is held by another worker now`);
    this.name = "LostLease";
  }
}

/** What a row does, decided under the batch's locks. */
type RowPlan =
  | { kind: "rejected"; reject: RejectedRow }
  | { kind: "unchanged" }
  | {
      kind: "create";
      write: ImportCreate;
      claims: KeyValue[];
    }
  | {
      kind: "update";
      write: ImportUpdate;
      recordId: number;
      claims: KeyValue[];
      releases: KeyValue[];
    };

function keyId(key: KeyValue): string {
  return `${key.attribute}\u0000${key.value}`;
}

function rejectRow(row: FileRow, column: string | undefined, code: string, message: string) {
  return {
    kind: "rejected" as const,
    reject: { line: row.line, column: column ?? null, code, message, raw: row.raw },
  };
}

function rejectError(row: FileRow, error: unknown): RowPlan {
  if (!(error instanceof HeraldError)) throw error;
  const path = error.details[0]?.path ?? "";
  const attribute = /^(?:attributes|properties)\.(\w+)/.exec(path)?.[1];
  return rejectRow(row, attribute, error.code, error.message);
}

function originOf(ctx: BatchContext, row: FileRow): Origin {
  return {
    kind: "ETL_EXECUTION",
    type: "ETL_EXECUTION",
    id: ctx.executionId,
    line: row.line,
    ...(ctx.etlId !== null ? { etlId: ctx.etlId } : {}),
  };
}

/** The events a profile create drafts: the statement fills in the id and moments (profiles). */
function placeholder(businessKey: string | null, attributes: AttributeMap) {
  return { recordId: 0, businessKey, attributes, createdAt: new Date(0), updatedAt: new Date(0) };
}

function notFoundRejection(table: DataTable, pending: PendingRow, key: string): RowPlan {
  const attribute = table.kind === "PROFILE_TABLE" ? "profile" : "record";
  return rejectRow(
    pending.row,
    undefined,
    table.kind === "PROFILE_TABLE" ? "HERALD_PROFILE_NOT_FOUND" : "HERALD_RECORD_NOT_FOUND",
    `No ${attribute} of table '${table.name}' has this key ('${key}') and the mode is UPDATE_ONLY`,
  );
}

/**
 * The foreign keys that refer to the batch's table by a unique value, read at most once a batch
 * (after its write gate, so a definition change cannot slip in between) and only when a row
 * changes a unique value.
 */
type ValueReferences = () => Promise<readonly ValueReference[]>;

function valueReferencesOnce(tx: Queryable, table: DataTable): ValueReferences {
  let read: Promise<ValueReference[]> | undefined;
  return () => (read ??= valueReferencesTo(tx, table));
}

/**
 * A row that changes or clears a unique value that another table's records still refer to is
 * rejected (HERALD_REFERENCED_VALUE_IN_USE, the API's 409), naming that attribute; undefined when
 * the update may go ahead. The record is locked by the batch.
 */
async function referencedValueRejection(
  tx: Queryable,
  table: DataTable,
  pending: PendingRow,
  found: StoredRecord,
  update: RecordUpdate,
  references: ValueReferences,
): Promise<RowPlan | undefined> {
  if (update.dropKeys.length === 0) return undefined;
  const refused = await referencedValueInUse(tx, table, found, update.dropKeys, await references());
  if (!refused) return undefined;
  return rejectRow(
    pending.row,
    refused.attribute,
    refused.error.code,
    `${refused.error.message}; change or delete those records first, or leave '${refused.attribute}' as it is`,
  );
}

/** The plan of an update: the record's new state, the unique values it takes and gives up. */
function updateOf(
  found: StoredRecord,
  update: RecordUpdate,
  events: readonly NewChangeEvent[],
): RowPlan {
  const releases = update.dropKeys.flatMap((attribute) => {
    const value = keyText(found.attributes[attribute]);
    return value === undefined ? [] : [{ attribute, value }];
  });
  return {
    kind: "update",
    recordId: found.recordId,
    claims: update.addKeys,
    releases,
    write: {
      recordId: found.recordId,
      attributes: update.attributes,
      subscriptions: update.subscriptions,
      segments: update.segments,
      dropKeys: update.dropKeys,
      addKeys: update.addKeys,
      events,
    },
  };
}

async function planRow(
  tx: Queryable,
  ctx: BatchContext,
  pending: PendingRow,
  found: StoredRecord | undefined,
  references: ValueReferences,
): Promise<RowPlan> {
  const { bound } = ctx;
  const { table, mode, keyAttribute } = bound;
  const { row, mapped } = pending;
  if (row.problem) return rejectRow(row, undefined, row.problem.code, row.problem.message);
  if (mapped.kind === "rejected") return rejectRow(row, mapped.column, mapped.code, mapped.message);
  const origin = originOf(ctx, row);
  const key = mapped.key;
  if (key === undefined && keyAttribute !== undefined && mode !== "CREATE_ONLY")
    return rejectRow(
      row,
      keyAttribute,
      "HERALD_MISSING_MANDATORY",
      `The key attribute '${keyAttribute}' has no value on this line`,
    );
  if (found && mode === "CREATE_ONLY")
    return rejectRow(
      row,
      keyAttribute,
      "HERALD_RECORD_EXISTS",
      new HeraldError("HERALD_RECORD_EXISTS", { attribute: keyAttribute ?? "", value: key ?? "" })
        .message,
    );
  if (!found && mode === "UPDATE_ONLY") return notFoundRejection(table, pending, key ?? "");
  try {
    if (mapped.kind === "profile") {
      if (found) {
        const plan = planProfileUpdate(table, found, mapped.write, origin);
        if (plan.kind === "unchanged") return { kind: "unchanged" };
        const refused = await referencedValueRejection(
          tx,
          table,
          pending,
          found,
          plan.update,
          references,
        );
        if (refused) return refused;
        return updateOf(found, plan.update, plan.events(found.version + 1, found.updatedAt));
      }
      const plan = planProfileCreate(table, mapped.write, origin);
      if (plan.mandatoryProblem) throw plan.mandatoryProblem;
      return {
        kind: "create",
        claims: plan.keys,
        write: {
          businessKey: null,
          attributes: plan.attributes,
          subscriptions: plan.subscriptions,
          segments: plan.segments,
          keys: plan.keys,
          events: plan.events(placeholder(null, plan.attributes)),
        },
      };
    }
    // A custom-table record, matched on its primary key. A row without one (CREATE_ONLY: other
    // modes rejected it above) gets a generated key when the key attribute takes one, as the API's
    // POST does; otherwise it is rejected below, as the API would.
    const provided =
      found || key !== undefined ? mapped.provided : withGeneratedKey(table, mapped.provided);
    if (hasForeignKeys(table))
      await lockReferences(
        tx,
        table,
        found ? provided : withCreationTime(table, provided),
        "properties",
      );
    if (found) {
      const plan = planRecordUpdate(table, found, provided, origin);
      if (plan.kind === "unchanged") return { kind: "unchanged" };
      const refused = await referencedValueRejection(
        tx,
        table,
        pending,
        found,
        plan.update,
        references,
      );
      if (refused) return refused;
      return updateOf(found, plan.update, [plan.event(found.version + 1, found.updatedAt)]);
    }
    const pk = primaryKeyOf(table);
    const created = withCreationTime(table, applyAttributes({}, provided).after);
    checkMandatory(table, created, "properties");
    const businessKey = keyText(created[pk]);
    if (businessKey === undefined)
      return rejectRow(
        row,
        pk,
        "HERALD_MISSING_MANDATORY",
        `The primary key attribute '${pk}' has no value on this line (Herald generates one only for a STRING key that accepts a UUID)`,
      );
    const keys = uniqueKeysOf(table, created).filter((k) => k.attribute !== pk);
    const event: NewChangeEvent = createEvent(
      table,
      placeholder(businessKey, created),
      created,
      origin,
    );
    return {
      kind: "create",
      claims: keys,
      write: {
        businessKey,
        attributes: created,
        subscriptions: {},
        segments: {},
        keys,
        events: [event],
      },
    };
  } catch (error) {
    return rejectError(row, error);
  }
}

/**
 * How many of `pending` can go in one batch before a row names a key an earlier one of them names
 * (the later row must see the earlier one committed).
 */
function distinctKeyPrefix(pending: readonly PendingRow[]): number {
  const keys = new Set<string>();
  for (let i = 0; i < pending.length; i++) {
    const mapped = pending[i]!.mapped;
    const key = mapped.kind === "rejected" || pending[i]!.row.problem ? undefined : mapped.key;
    if (key === undefined) continue;
    if (keys.has(key)) return i;
    keys.add(key);
  }
  return pending.length;
}

/**
 * Runs one batch from the start of `pending` in `tx` (the caller opens and commits it, and runs it
 * again when it lost a race). Throws StaleTableDefinition when the table changed.
 */
export async function runImportBatch(
  tx: Queryable,
  ctx: BatchContext,
  pending: readonly PendingRow[],
): Promise<BatchOutcome> {
  const { table, keyAttribute } = ctx.bound;
  await enterTableWriteGate(tx, [table]);
  let end = distinctKeyPrefix(pending);
  const candidates = pending.slice(0, end);

  const keys = candidates.flatMap((p) =>
    p.mapped.kind !== "rejected" && !p.row.problem && p.mapped.key !== undefined
      ? [p.mapped.key]
      : [],
  );
  const locked =
    keyAttribute === undefined
      ? new Map<string, StoredRecord>()
      : await lockRecordsByKey(
          tx,
          table.id,
          { attribute: keyAttribute, byBusinessKey: table.kind === "CUSTOM_TABLE" },
          keys,
        );

  const references = valueReferencesOnce(tx, table);
  const plans: RowPlan[] = [];
  for (const p of candidates) {
    const key = p.mapped.kind === "rejected" ? undefined : p.mapped.key;
    let found = key === undefined ? undefined : locked.get(key);
    // Found by a key value it no longer holds (changed before our lock): plan as not found would be
    // wrong; treat it as found only while it still holds the value.
    if (
      found &&
      keyAttribute &&
      table.kind === "PROFILE_TABLE" &&
      !stillHolds(found, [{ attribute: keyAttribute, value: key! }])
    )
      found = undefined;
    plans.push(await planRow(tx, ctx, p, found, references));
  }

  // Unique values: who holds them now, then each claim in file order (first claimant wins, as the
  // same writes made one after the other through the API would).
  const claims = plans.flatMap((plan) =>
    plan.kind === "create" || plan.kind === "update" ? plan.claims : [],
  );
  const owners = await findKeyOwners(tx, table.id, claims);
  const claimed = new Set<string>();
  const released = new Set<string>();
  let rejectedSoFar = ctx.rejectedSoFar;
  let tooManyRejected = false;
  for (let i = 0; i < plans.length; i++) {
    const plan = plans[i]!;
    if (plan.kind === "create" || plan.kind === "update") {
      const self = plan.kind === "update" ? plan.recordId : undefined;
      if (plan.claims.some((k) => released.has(keyId(k)))) {
        end = i; // a value a row of this batch gave up: this row goes in the next batch
        break;
      }
      const taken = plan.claims.find((k) => {
        const owner = owners.get(keyId(k));
        return claimed.has(keyId(k)) || (owner !== undefined && owner !== self);
      });
      // The row's own key, created by a concurrent writer after our records were locked: the
      // row is an update now. Roll back and run the batch again (it will find the record).
      if (taken && taken.attribute === keyAttribute && !claimed.has(keyId(taken)))
        throw new BatchRaced(`'${taken.value}' was created by a concurrent writer`);
      if (taken) {
        const error = uniqueKeyTaken(
          taken,
          table.kind === "PROFILE_TABLE" ? "attributes" : "properties",
        );
        plans[i] = rejectRow(candidates[i]!.row, taken.attribute, error.code, error.message);
      } else {
        for (const k of plan.claims) claimed.add(keyId(k));
        if (plan.kind === "update") for (const k of plan.releases) released.add(keyId(k));
      }
    }
    if (plans[i]!.kind === "rejected") {
      rejectedSoFar++;
      if (ctx.maxRejectedRows !== undefined && rejectedSoFar > ctx.maxRejectedRows) {
        tooManyRejected = true;
        end = i + 1;
        break;
      }
    }
  }
  end = Math.min(end, plans.length);

  const used = plans.slice(0, end);
  const counts: ExecutionCounts = { read: end, created: 0, updated: 0, unchanged: 0, rejected: 0 };
  const writes: ({ n: number } & (ImportCreate | ImportUpdate))[] = [];
  const rejected: RejectedRow[] = [];
  used.forEach((plan, n) => {
    if (plan.kind === "rejected") {
      counts.rejected++;
      rejected.push(plan.reject);
    } else if (plan.kind === "unchanged") counts.unchanged++;
    else {
      if (plan.kind === "create") counts.created++;
      else counts.updated++;
      writes.push({ n, ...plan.write });
    }
  });
  const written = await writeImportBatch(tx, table.id, table.kind === "PROFILE_TABLE", writes);
  await insertRejectedRows(tx, ctx.executionId, rejected);
  const last = candidates[end - 1] ?? candidates[0]!;
  const progress = await recordBatchProgress(tx, ctx.executionId, ctx.owner, {
    records: end,
    line: last.row.line,
    bytesRead: last.bytesRead,
    counts,
  });
  if (!progress) throw new LostLease(ctx.executionId);
  if (written.events > 0) await notifyInbox(tx);
  return {
    kind: "committed",
    consumed: end,
    counts: progress.counts,
    cancelRequested: progress.cancelRequested,
    tooManyRejected,
  };
}
