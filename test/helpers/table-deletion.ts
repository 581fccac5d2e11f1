/** Table deletion tests: tables with records written through the API, and the deletion worker. */
import assert from "node:assert/strict";
import type { TableDeletionWorker } from "../../src/jobs/table-deletion-worker.js";
import { startTableDeletionWorker } from "../../src/jobs/table-deletion-worker.js";
import { createLogger } from "../../src/logger.js";
import type { Database } from "../../src/storage/database.js";
import type { TableDeletion } from "../../src/storage/table-deletion-repository.js";
import { findDeletion } from "../../src/storage/table-deletion-repository.js";
import type { TestApp } from "./test-app.js";
import type { TestDatabase } from "./test-database.js";

export const CUSTOM_TABLES = "/v5/entities/acme/custom-tables";
export const PROFILE_TABLES = "/v5/entities/acme/profile-tables";
export const SUBSCRIPTIONS = "/v4/entity/acme/webhookSubscription";

/** A custom table with a second unique attribute and a declared event with a DELETE rule. */
export function ordersTable(name: string) {
  return {
    name,
    type: "INTERACTIONS",
    primaryKeyAttribute: "orderId",
    attributes: [
      { name: "orderId", valueType: "STRING" },
      { name: "reference", valueType: "STRING", unique: true },
      { name: "status", valueType: "STRING" },
      { name: "amount", valueType: "NUMBER" },
    ],
    eventsToTrigger: [
      {
        name: "open-order-dropped",
        triggerRules: [
          {
            onOperation: "DELETE",
            matchingConditions: {
              stateBeforeOperation: [{ attribute: "status", operator: "=", value: "OPEN" }],
            },
          },
        ],
      },
    ],
  };
}

export function peopleTable(name: string) {
  return {
    name,
    attributes: [
      { name: "emailAddress", type: "EMAIL_ADDRESS", unique: true, mandatory: true },
      { name: "points", type: "CUSTOM", valueType: "INTEGER" },
    ],
    subscriptions: [{ name: "newsletter" }],
  };
}

/** Creates a table; its id. */
export async function createTable(t: TestApp, collection: string, body: unknown): Promise<string> {
  const res = await t.request("POST", collection, body);
  assert.equal(res.statusCode, 201, res.body);
  return (res.json() as { id: string }).id;
}

/** Writes `count` orders o-0 … (every third one OPEN); their business keys. */
export async function writeOrders(t: TestApp, table: string, count: number): Promise<string[]> {
  const keys: string[] = [];
  for (let i = 0; i < count; i++) {
    const res = await t.request("POST", `/v4/entity/acme/customTable/${table}/record`, {
      properties: [
        { name: "orderId", value: `o-${i}` },
        { name: "reference", value: `REF-${i}` },
        { name: "status", value: i % 3 === 0 ? "OPEN" : "SHIPPED" },
        { name: "amount", value: i * 1.5 },
      ],
    });
    assert.equal(res.statusCode, 200, res.body);
    keys.push(`o-${i}`);
  }
  return keys;
}

/** Writes `count` profiles p0@example.com …; their profile ids. */
export async function writePeople(t: TestApp, table: string, count: number): Promise<number[]> {
  const ids: number[] = [];
  for (let i = 0; i < count; i++) {
    const res = await t.request("POST", `/v4/entity/acme/table/${table}/profile`, {
      attributes: [
        { name: "emailAddress", value: `p${i}@example.com` },
        { name: "points", value: i },
      ],
      subscriptions: [{ name: "newsletter", subscribe: i % 2 === 0 }],
    });
    assert.equal(res.statusCode, 200, res.body);
    ids.push((res.json() as { profileId: number }).profileId);
  }
  return ids;
}

/** Creates a subscription through the API; its id. */
export async function subscribeTo(
  t: TestApp,
  settings: Record<string, unknown> & { on: string; onElementId: string },
): Promise<number> {
  const res = await t.request("POST", SUBSCRIPTIONS, {
    eventType: "DELETE",
    targetUrl: "http://127.0.0.1:9/hook",
    ...settings,
  });
  assert.equal(res.statusCode, 201, res.body);
  return (res.json() as { id: number }).id;
}

export function startWorker(
  database: Pick<TestDatabase, "db" | "logSignals" | "jobSignals">,
  workerId: string,
  options: { batchRows?: number; leaseMs?: number } = {},
): Promise<TableDeletionWorker> {
  return startTableDeletionWorker({
    db: database.db,
    logSignals: database.logSignals,
    jobSignals: database.jobSignals,
    logger: createLogger("silent"),
    config: { workerId },
    pollMs: 50,
    leaseMs: options.leaseMs ?? 5_000,
    deliveryChecks: { firstMs: 20, maxMs: 100 },
    ...(options.batchRows ? { batchRows: options.batchRows } : {}),
  });
}

/** Polls the deletion of `tableId` until `predicate` holds; returns it. */
export async function deletionWhen(
  db: Database,
  tableId: string,
  predicate: (deletion: TableDeletion) => boolean,
  timeoutMs = 30_000,
): Promise<TableDeletion> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const deletion = await findDeletion(db, tableId);
    if (deletion && predicate(deletion)) return deletion;
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for the deletion of table ${tableId} (now: ${JSON.stringify(deletion && { status: deletion.status, recordsDeleted: deletion.recordsDeleted, lastPosition: deletion.lastPosition, lastError: deletion.lastError })})`,
      );
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

export const done = (db: Database, tableId: string, timeoutMs?: number) =>
  deletionWhen(db, tableId, (d) => d.status === "DONE", timeoutMs);

/** What a table leaves in the database: records, key rows, its own row. */
export async function leftovers(db: Database, tableId: string) {
  const count = async (sql: string) => (await db.query<{ n: number }>(sql, [tableId])).rows[0]!.n;
  return {
    records: await count("SELECT count(*)::int AS n FROM records WHERE table_id = $1"),
    keys: await count("SELECT count(*)::int AS n FROM record_keys WHERE table_id = $1"),
    tableRows: await count("SELECT count(*)::int AS n FROM data_tables WHERE id = $1"),
  };
}

export interface LoggedEvent {
  id: number;
  position: number | null;
  event_type: string;
  record_key: string;
  keys: Record<string, unknown>;
  state: Record<string, unknown>;
  fields: string[];
  version: number;
  declared_events: string[];
  origin: Record<string, unknown>;
}

/** The table's events in the log, in inbox order. */
export async function eventsOf(db: Database, tableId: string): Promise<LoggedEvent[]> {
  return (
    await db.query<LoggedEvent>(
      `SELECT id, position, event_type, record_key, keys, state, fields, version, declared_events,
              origin
         FROM change_events WHERE source_id = $1 ORDER BY id`,
      [tableId],
    )
  ).rows;
}
