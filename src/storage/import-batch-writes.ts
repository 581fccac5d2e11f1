/**
 * The set-based SQL of an import batch (DESIGN §6b): inside the batch's transaction, after the
 * table write gate, the batch locks the records its rows name (one statement), asks who holds the
 * unique values it wants to write (one statement), then writes every create and update with its
 * key rows and change events (one statement). The execution's checkpoint goes in the same
 * transaction (etl-repository.ts), so a batch is applied and recorded together or not at all.
 */
import type { NewChangeEvent } from "../domain/change-event.js";
import type { KeyValue } from "../domain/record-change.js";
import { INBOX_CHANNEL, insertEventDraftsSql } from "./change-event-repository.js";
import type { Queryable } from "./database.js";
import type { RecordRow, StoredRecord } from "./record-repository.js";
import { qualified } from "./record-event-writes.js";
import { RECORD_COLUMNS, toRecord } from "./record-repository.js";

/**
 * Locks (FOR UPDATE) the records whose `attribute` holds one of `values` (its record_keys rows;
 * `byBusinessKey`: the custom table's primary key column instead), in record id order so two
 * batches locking overlapping records never wait for each other in opposite orders. Returns them
 * by the value they were found by. Locked, they cannot change until the batch commits: its plan
 * (create, update, unchanged) stays true.
 */
export async function lockRecordsByKey(
  tx: Queryable,
  tableId: string,
  key: { attribute: string; byBusinessKey: boolean },
  values: readonly string[],
): Promise<Map<string, StoredRecord>> {
  const found = new Map<string, StoredRecord>();
  if (values.length === 0) return found;
  const { rows } = key.byBusinessKey
    ? await tx.query<RecordRow & { found_by: string }>(
        // records_business_key (unique) serves each value.
        `SELECT business_key AS found_by, ${RECORD_COLUMNS} FROM records
          WHERE table_id = $1 AND business_key = ANY($2::text[])
          ORDER BY record_id FOR UPDATE`,
        [tableId, values],
      )
    : await tx.query<RecordRow & { found_by: string }>(
        // Each value one probe of record_keys' primary key (LATERAL … LIMIT 1), each record one of
        // its own: on a table the planner has no statistics for yet (a first import, autovacuum
        // off or not run yet), a join was planned as a hash of every key row, spilling to disk.
        `SELECT k.found_by, ${qualified("records")} FROM records
           JOIN (SELECT w.value AS found_by, p.record_id
                   FROM unnest($3::text[]) AS w(value)
                  CROSS JOIN LATERAL (
                    SELECT record_id FROM record_keys
                     WHERE table_id = $1 AND attribute = $2 AND value = w.value LIMIT 1) AS p
                ) AS k ON records.record_id = k.record_id
          ORDER BY records.record_id FOR UPDATE OF records`,
        [tableId, key.attribute, values],
      );
  for (const row of rows) found.set(row.found_by, toRecord(row));
  return found;
}

/** Which record holds each of these unique values now (`attribute\0value` → record id). */
export async function findKeyOwners(
  tx: Queryable,
  tableId: string,
  keys: readonly KeyValue[],
): Promise<Map<string, number>> {
  const owners = new Map<string, number>();
  if (keys.length === 0) return owners;
  // LATERAL … LIMIT 1: each value one probe of record_keys' primary key (as a join, the planner
  // hashed every key row of the table: 18 ms a batch at 40,000 records).
  const { rows } = await tx.query<{ attribute: string; value: string; record_id: number }>(
    `SELECT w.attribute, w.value, k.record_id
       FROM unnest($2::text[], $3::text[]) AS w(attribute, value)
      CROSS JOIN LATERAL (
        SELECT record_id FROM record_keys
         WHERE table_id = $1 AND attribute = w.attribute AND value = w.value LIMIT 1) AS k`,
    [tableId, keys.map((k) => k.attribute), keys.map((k) => k.value)],
  );
  for (const row of rows) owners.set(`${row.attribute}\u0000${row.value}`, row.record_id);
  return owners;
}

/** A record an import creates. */
export interface ImportCreate {
  businessKey: string | null;
  attributes: Record<string, unknown>;
  subscriptions: Record<string, unknown>;
  segments: Record<string, unknown>;
  keys: readonly KeyValue[];
  events: readonly NewChangeEvent[];
}

/** A locked record an import updates. */
export interface ImportUpdate {
  recordId: number;
  attributes: Record<string, unknown>;
  subscriptions: Record<string, unknown>;
  segments: Record<string, unknown>;
  /** Unique attributes whose key rows go. */
  dropKeys: readonly string[];
  /** Key rows that come. */
  addKeys: readonly KeyValue[];
  events: readonly NewChangeEvent[];
}

// Not prepared (no statement name): each batch is planned with its real sizes, so the plan
// follows the tables as they grow instead of keeping one made while they were empty.
// Items are numbered by their row's place in the batch (`n`), which orders the events' ids: file
// order. Creates take their ids from the identity sequence first, so each inserted row is known to
// be its item's. Updates reach their (locked) record by a probe of its primary key (LATERAL …
// LIMIT 1: never planned as a join over every record). Key rows: a create inserts all of its own;
// an update drops those of the attributes in drop_keys and inserts its new ones.
const WRITE_BATCH_SQL = `WITH input AS MATERIALIZED (
       SELECT * FROM jsonb_to_recordset($1::jsonb) AS i(
         n integer, record_id bigint, business_key text, attributes jsonb, subscriptions jsonb,
         segments jsonb, keys jsonb, drop_keys jsonb, events jsonb)),
     fresh AS MATERIALIZED (
       SELECT i.n, i.business_key, i.attributes, i.subscriptions, i.segments, i.keys, i.events,
              nextval((SELECT pg_get_serial_sequence('records', 'record_id'))) AS new_id
         FROM input i
        WHERE i.record_id IS NULL
        ORDER BY i.n),
     inserted AS (
       INSERT INTO records (record_id, table_id, business_key, attributes, subscriptions, segments)
       OVERRIDING SYSTEM VALUE
       SELECT new_id, $2, business_key, attributes, subscriptions, segments FROM fresh ORDER BY n
       RETURNING 1),
     targets AS (
       SELECT i.*, t.row_ctid
         FROM input i
        CROSS JOIN LATERAL (
          SELECT ctid AS row_ctid FROM records WHERE record_id = i.record_id LIMIT 1) AS t
        WHERE i.record_id IS NOT NULL),
     updated AS (
       UPDATE records r
          SET attributes = i.attributes, subscriptions = i.subscriptions, segments = i.segments,
              version = r.version + 1, updated_at = now()
         FROM targets i
        WHERE r.ctid = i.row_ctid
        RETURNING i.n, i.keys, i.drop_keys, i.events, r.record_id, r.version, r.created_at,
                  r.updated_at),
     -- A create is written as fresh drafted it (its id taken above, version 1, both moments the
     -- statement's now()); joining fresh with inserted's RETURNING instead was planned as a nested
     -- loop over both (CTEs are estimated at one row): 100 of a 1,000-row batch's 130 ms.
     written AS (
       SELECT f.n, f.keys, f.events, f.new_id AS record_id, 1 AS version, now() AS created_at,
              now() AS updated_at
         FROM fresh f
       UNION ALL
       SELECT n, keys, events, record_id, version, created_at, updated_at FROM updated),
     dropped AS (
       DELETE FROM record_keys k USING updated u
        WHERE k.record_id = u.record_id
          AND k.attribute IN (SELECT jsonb_array_elements_text(u.drop_keys))),
     new_keys AS (
       INSERT INTO record_keys (table_id, attribute, value, record_id)
       SELECT $2, k.attribute, k.value, w.record_id
         FROM written w, jsonb_to_recordset(w.keys) AS k(attribute text, value text)
       RETURNING 1),
     events AS (${insertEventDraftsSql("written", "w.events", "$3::boolean", "w.n, t.n")})
     SELECT (SELECT count(*)::integer FROM inserted) + (SELECT count(*)::integer FROM updated)
              AS written,
            (SELECT count(*)::integer FROM events) AS events`;

/**
 * Writes a batch's creates and updates (their records already locked) with their key rows and
 * events, as one statement. `n` orders everything: give each item its row's place in the batch.
 */
export async function writeImportBatch(
  tx: Queryable,
  tableId: string,
  profile: boolean,
  items: readonly ({ n: number } & (ImportCreate | ImportUpdate))[],
): Promise<{ written: number; events: number }> {
  if (items.length === 0) return { written: 0, events: 0 };
  const input = items.map((item) =>
    "recordId" in item
      ? {
          n: item.n,
          record_id: item.recordId,
          business_key: null,
          attributes: item.attributes,
          subscriptions: item.subscriptions,
          segments: item.segments,
          keys: item.addKeys,
          drop_keys: item.dropKeys,
          events: item.events,
        }
      : {
          n: item.n,
          record_id: null,
          business_key: item.businessKey,
          attributes: item.attributes,
          subscriptions: item.subscriptions,
          segments: item.segments,
          keys: item.keys,
          drop_keys: [],
          events: item.events,
        },
  );
  const { rows } = await tx.query<{ written: number; events: number }>(WRITE_BATCH_SQL, [
    JSON.stringify(input),
    tableId,
    profile,
  ]);
  const result = rows[0]!;
  if (result.written !== items.length)
    throw new Error(
      `internal error: an import batch wrote ${result.written} of its ${items.length} records`,
    );
  return result;
}

/** Wakes the sequencer when the batch commits (one NOTIFY per batch, delivered at commit). */
export async function notifyInbox(tx: Queryable): Promise<void> {
  await tx.query(`SELECT pg_notify('${INBOX_CHANNEL}', '')`);
}
