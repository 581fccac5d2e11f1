/**
 * The daily error log (GET …/webhookSubscription/{id}/{yyyy-MM-dd}), which the console's
 * subscription page loads on every view, finds a subscription's failed attempts through
 * delivery_attempts_failed (migration 022) instead of reading all of its attempts of the day and
 * keeping the failed ones: a healthy ONE_BY_ONE subscription delivers about a million a day. The
 * statements listSubscriptionAttempts really sends are run again under EXPLAIN ANALYZE, with their
 * parameters, and must neither read the delivered attempts nor skip the index.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { listSubscriptionAttempts } from "../../src/storage/attempt-repository.js";
import type { Queryable } from "../../src/storage/database.js";
import { entityId, subscribe } from "../e2e/delivery-fixtures.js";
import type { TestDatabase } from "../helpers/test-database.js";
import { createTestDatabase, testBackends } from "../helpers/test-database.js";

const DAY = new Date(Date.UTC(2026, 11, 1));
const DAY_MS = 86_400_000;
const DELIVERED = 20_000;

interface PlanNode {
  "Node Type": string;
  "Relation Name"?: string;
  "Index Name"?: string;
  "Actual Rows"?: number;
  "Actual Loops"?: number;
  "Rows Removed by Filter"?: number;
  "Rows Removed by Index Recheck"?: number;
  Plans?: PlanNode[];
}

function nodesOf(node: PlanNode): PlanNode[] {
  return [node, ...(node.Plans ?? []).flatMap(nodesOf)];
}

/** Inserts `count` attempts of `subscription` spread over DAY, with the given outcome. */
async function insertAttempts(
  db: Queryable,
  subscription: number,
  count: number,
  outcome: string,
): Promise<void> {
  await db.query(
    `INSERT INTO delivery_attempts
       (subscription_id, push_id, attempt, event_ids, first_position, last_position, attempted_at,
        duration_ms, outcome, status_code, error_class, error_message, worker_id)
     SELECT $1, gen_random_uuid(), 1, ARRAY[i], i, i,
            $3::timestamptz + (i * ($4::bigint / ($2::bigint + 1))) * interval '1 millisecond',
            5, $5, CASE WHEN $5 = 'DELIVERED' THEN 200 ELSE 500 END,
            CASE WHEN $5 = 'DELIVERED' THEN NULL ELSE 'http_5xx' END,
            CASE WHEN $5 = 'DELIVERED' THEN NULL ELSE 'the endpoint answered 500' END, 'w1'
       FROM generate_series(1, $2::integer) AS i`,
    [subscription, count, DAY.toISOString(), DAY_MS, outcome],
  );
}

for (const { backend, skip } of await testBackends()) {
  describe(`the daily error log's index on ${backend}`, { skip }, () => {
    let t: TestDatabase;
    before(async () => {
      t = await createTestDatabase(backend);
    });
    after(() => t?.drop());

    test("a day's failures are found without reading the day's delivered attempts", async () => {
      const entity = await entityId(t.db);
      const busy = await subscribe(t.db, entity, { targetUrl: "https://example.com/busy" });
      const other = await subscribe(t.db, entity, { targetUrl: "https://example.com/other" });
      await insertAttempts(t.db, busy.id, DELIVERED, "DELIVERED");
      await insertAttempts(t.db, busy.id, 3, "RETRY");
      await insertAttempts(t.db, busy.id, 1, "FAILED");
      await insertAttempts(t.db, other.id, 50, "RETRY");
      await t.db.query("ANALYZE delivery_attempts");

      const sent: { sql: string; params: readonly unknown[] }[] = [];
      const recording: Queryable = {
        query: (sql, params = [], name) => {
          sent.push({ sql, params });
          return t.db.query(sql, params, name);
        },
        exec: (sql) => t.db.exec(sql),
      };
      const log = await listSubscriptionAttempts(
        recording,
        busy.id,
        { from: DAY, to: new Date(DAY.getTime() + DAY_MS), failedOnly: true },
        { page: 0, pageSize: 100 },
        "oldest",
      );
      // What the log holds: only the busy subscription's four failures, oldest first.
      assert.equal(log.total, 4);
      assert.deepEqual(log.items.map((a) => a.outcome).sort(), [
        "FAILED",
        "RETRY",
        "RETRY",
        "RETRY",
      ]);
      const times = log.items.map((a) => new Date(a.attemptedAt).getTime());
      assert.deepEqual(
        times,
        [...times].sort((a, b) => a - b),
      );

      // How it was found: each statement sent, run again under EXPLAIN ANALYZE with its parameters.
      assert.equal(sent.length, 2, "the page of attempts and its capped count");
      for (const { sql, params } of sent) {
        const { rows } = await t.db.query<{ "QUERY PLAN": unknown }>(
          `EXPLAIN (ANALYZE, FORMAT JSON) ${sql}`,
          params,
        );
        const raw = rows[0]!["QUERY PLAN"];
        const [explained] = (typeof raw === "string" ? JSON.parse(raw) : raw) as [
          { Plan: PlanNode },
        ];
        const nodes = nodesOf(explained.Plan);
        const shown = JSON.stringify(explained.Plan, null, 1);
        assert.ok(
          nodes.some((n) => n["Index Name"] === "delivery_attempts_failed"),
          `not through delivery_attempts_failed:\n${shown}`,
        );
        for (const node of nodes.filter((n) => n["Relation Name"] === "delivery_attempts")) {
          const loops = node["Actual Loops"] ?? 1;
          const read =
            ((node["Actual Rows"] ?? 0) +
              (node["Rows Removed by Filter"] ?? 0) +
              (node["Rows Removed by Index Recheck"] ?? 0)) *
            loops;
          assert.ok(
            read <= 10,
            `${node["Node Type"]} read ${read} attempts for 4 failures:\n${shown}`,
          );
        }
      }
    });
  });
}
