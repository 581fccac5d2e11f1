/**
 * The capture statements (and the delivery's log reads) are prepared once per connection and keep the plan PostgreSQL picks then,
 * often while the tables are still empty. Whatever that plan is, it must reach records, key rows
 * and events through their indexes: a sequential scan planned for a small table is kept while the
 * table grows, and then reads every row on every write. This checks the generic plan of each
 * statement on an empty, never-analysed database (the worst case) for sequential scans of the
 * tables that grow.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { Queryable } from "../../src/storage/database.js";
import {
  createRecordWithEvents,
  findRecordsByKeys,
  updateRecordWithEvents,
  writeRecordsWithEvents,
} from "../../src/storage/record-event-writes.js";
import { LogSignals } from "../../src/storage/log-signals.js";
import { readLogWindow } from "../../src/storage/log-window-reader.js";
import { findKeyOwners, lockRecordsByKey } from "../../src/storage/import-batch-writes.js";
import type { TestDatabase } from "../helpers/test-database.js";
import { createTestDatabase, testBackends } from "../helpers/test-database.js";

/** Tables that grow with the data: none of them may be scanned whole by a write. */
const GROWING = ["records", "record_keys", "change_events"];

interface Statement {
  sql: string;
  params: unknown[];
}

/** The statements a write sends, without running them (each recorded with its parameters). */
async function statementsOf(write: (db: Queryable) => Promise<unknown>): Promise<Statement[]> {
  const sent: Statement[] = [];
  const recorder = {
    query: async (sql: string, params: unknown[] = []) => {
      sent.push({ sql, params });
      return { rows: [], rowCount: 0 };
    },
  } as unknown as Queryable;
  // The recorder answers no rows, which some writes take as an error once the statement is sent.
  await write(recorder).catch(() => {});
  return sent;
}

const record = {
  tableId: "1",
  attributes: { emailAddress: "a@example.com" },
  subscriptions: {},
  segments: {},
  keys: [{ attribute: "emailAddress", value: "a@example.com" }],
};
const update = {
  recordId: 1,
  tableId: "1",
  attributes: { emailAddress: "b@example.com" },
  subscriptions: {},
  segments: {},
  dropKeys: ["emailAddress"],
  addKeys: [{ attribute: "emailAddress", value: "b@example.com" }],
};

/** No write here appends events, so none takes a NOTIFY turn. */
const notifyTurns = new LogSignals();

const WRITES: Record<string, (db: Queryable) => Promise<unknown>> = {
  "batch lookup": (db) => findRecordsByKeys(db, [{ tableId: "1", keys: record.keys }]),
  "batch write": (db) =>
    writeRecordsWithEvents(
      db,
      [{ record, events: [], tableVersion: 1 }],
      [{ update, expectedVersion: 1, events: [], tableVersion: 1 }],
      notifyTurns,
    ),
  "single create": (db) =>
    createRecordWithEvents(
      db,
      {
        record: { ...record, businessKey: null },
        lookupKeys: record.keys,
        insert: true,
        events: [],
        rowValues: "PROFILE",
        tableVersion: 1,
      },
      notifyTurns,
    ),
  "single update": (db) =>
    updateRecordWithEvents(
      db,
      {
        update,
        expectedVersion: 1,
        events: [],
        rowValues: "PROFILE",
        tableVersion: 1,
      },
      notifyTurns,
    ),
  "import: lock records by a unique attribute": (db) =>
    lockRecordsByKey(db, "1", { attribute: "emailAddress", byBusinessKey: false }, ["a@b.c"]),
  "import: lock records by business key": (db) =>
    lockRecordsByKey(db, "1", { attribute: "orderId", byBusinessKey: true }, ["O1"]),
  "import: owners of unique values": (db) => findKeyOwners(db, "1", record.keys),
  // The import's batch write is not prepared: it is planned for each batch with its real sizes.
  "delivery read, lean": (db) =>
    readLogWindow(db, 0, 500, 500, {
      entityId: 1,
      source: "PROFILE_TABLE",
      sourceId: "1",
      eventType: "UPDATE",
      onFields: ["firstName"],
      conditions: null,
      includePrevious: false,
    }),
  "delivery read, whole events": (db) =>
    readLogWindow(db, 0, 500, 500, {
      entityId: 1,
      source: "PROFILE_TABLE",
      sourceId: null,
      eventType: "CREATE",
    }),
  // A window wider than the page: the page is the first events in position order.
  "delivery read, lean, wide window": (db) =>
    readLogWindow(db, 0, 5_000, 1_000, {
      entityId: 1,
      source: "PROFILE_TABLE",
      sourceId: "1",
      eventType: "UPDATE",
      onFields: null,
      conditions: null,
      includePrevious: false,
    }),
  "delivery read, whole events, wide window": (db) =>
    readLogWindow(db, 0, 5_000, 1_000, {
      entityId: 1,
      source: "PROFILE_TABLE",
      sourceId: null,
      eventType: "UPDATE",
    }),
};

/** A SQL literal of a parameter value (the statements cast every parameter themselves). */
function literal(value: unknown): string {
  if (value === null || value === undefined) return "NULL";
  if (typeof value === "boolean" || typeof value === "number") return String(value);
  if (Array.isArray(value))
    return `'{${value.map((v) => `"${String(v).replace(/["\\]/g, "\\$&")}"`).join(",")}}'`;
  return `'${String(value).replace(/'/g, "''")}'`;
}

for (const { backend, skip } of await testBackends()) {
  describe(`capture statement plans on ${backend}`, { skip }, () => {
    let database: TestDatabase;
    before(async () => {
      database = await createTestDatabase(backend);
    });
    after(() => database?.drop());

    for (const [name, write] of Object.entries(WRITES)) {
      test(`${name}: the generic plan on empty tables scans none of ${GROWING.join(", ")} whole`, async () => {
        const statements = await statementsOf(write);
        assert.ok(statements.length > 0, "the write sent no statement");
        await database.db.transaction(async (tx) => {
          await tx.query("SET LOCAL plan_cache_mode = force_generic_plan");
          for (const [i, { sql, params }] of statements.entries()) {
            await tx.query(`PREPARE plan_check_${i} AS ${sql}`);
            const { rows } = await tx.query<{ "QUERY PLAN": string }>(
              `EXPLAIN EXECUTE plan_check_${i}(${params.map(literal).join(", ")})`,
            );
            await tx.query(`DEALLOCATE plan_check_${i}`);
            const plan = rows.map((row) => row["QUERY PLAN"]).join("\n");
            for (const table of GROWING)
              assert.doesNotMatch(
                plan,
                new RegExp(`Seq Scan on ${table}\\b`),
                `${name} scans ${table} sequentially:\n${plan}`,
              );
          }
        });
      });
    }
  });
}
