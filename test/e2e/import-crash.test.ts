/**
 * An import across a worker crash (issue #13, PostgreSQL): a large file is uploaded to an API
 * process, a worker process (`herald start --role worker`) is killed with SIGKILL in the middle of
 * the import, and another worker resumes it from its checkpoint; that one is stopped with SIGTERM
 * midway and hands the import to a third at once. Afterwards the table holds exactly
 * the file's rows, the log holds exactly one event per changed row (checked by origin line), and a
 * BULK subscriber received every one of them, with STARTED and FINISHED around them.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createTestDatabase, postgresUnavailable } from "../helpers/test-database.js";
import type { ReceivedRequest } from "../helpers/webhook-receiver.js";
import { startWebhookReceiver } from "../helpers/webhook-receiver.js";
import type { HeraldProcess } from "./delivery-fixtures.js";
import { apiUrlOf, dataObjects, eventually, startHeraldProcess } from "./delivery-fixtures.js";

const unavailable = await postgresUnavailable();
if (unavailable) console.log(`# SKIPPING import crash test: ${unavailable}`);

const ADMIN_KEY = "hk_delivery_tests_admin_key_0123456789";
/** Rows of the file; keys repeat after KEYS rows, so the tail updates earlier rows. */
const ROWS = 120_000;
const KEYS = 100_000;

describe(
  "an import across a worker crash (PostgreSQL)",
  { skip: unavailable ? `needs PostgreSQL: ${unavailable}` : false },
  () => {
    test(
      "SIGKILL mid-import, restart: exactly the file's rows, one event per changed row, all delivered",
      { timeout: 240_000 },
      async () => {
        const t = await createTestDatabase("postgres");
        const processes: HeraldProcess[] = [];
        const seen = new Map<string, Record<string, unknown>>();
        const receiver = await startWebhookReceiver({
          onRequest: (q: ReceivedRequest) => {
            for (const d of dataObjects(q.json)) seen.set((d._event as { id: string }).id, d);
          },
        });
        try {
          const api = startHeraldProcess(t.url!, "api,sequencer", { HERALD_LOG_LEVEL: "info" });
          processes.push(api);
          const url = await apiUrlOf(api);
          const token = (
            (await (
              await fetch(`${url}/auth/token`, { headers: { authorization: ADMIN_KEY } })
            ).json()) as {
              accessToken: string;
            }
          ).accessToken;
          const call = async (method: string, path: string, body?: unknown) => {
            const response = await fetch(`${url}${path}`, {
              method,
              headers: {
                authorization: `Bearer ${token}`,
                ...(body === undefined ? {} : { "content-type": "application/json" }),
              },
              ...(body === undefined ? {} : { body: JSON.stringify(body) }),
            });
            const json = (await response.json()) as Record<string, unknown>;
            assert.ok(
              response.status < 300,
              `${method} ${path}: ${response.status} ${JSON.stringify(json)}`,
            );
            return json;
          };
          const table = await call("POST", "/v5/entities/acme/profile-tables", {
            name: "Customers",
            attributes: [
              { name: "customerId", type: "CUSTOM", valueType: "STRING", unique: true },
              { name: "emailAddress", type: "EMAIL_ADDRESS", unique: true },
              { name: "points", type: "CUSTOM", valueType: "INTEGER" },
            ],
          });
          for (const eventType of ["CREATE", "UPDATE"])
            await call("POST", "/v4/entity/acme/webhookSubscription", {
              on: "PROFILE_TABLE",
              onElementId: table.id,
              eventType,
              targetUrl: `${receiver.url}/rows`,
              pushMode: "BULK",
              maxBlockSize: 500,
              lingerMs: 50,
            });
          for (const eventType of ["STARTED", "FINISHED"])
            await call("POST", "/v4/entity/acme/webhookSubscription", {
              on: "ETL",
              eventType,
              targetUrl: `${receiver.url}/etl`,
            });

          const lines = ["customerId,emailAddress,points"];
          for (let i = 0; i < ROWS; i++) lines.push(`C${i % KEYS},c${i % KEYS}@x.io,${i}`);
          const form = new FormData();
          form.append(
            "etlDefinition",
            JSON.stringify({ target: { table: "Customers" }, keyAttribute: "customerId" }),
          );
          form.append("inputFile", new Blob([`${lines.join("\n")}\n`]), "big.csv");
          const upload = await fetch(`${url}/mass-imports/v5/entities/acme/etl-executions`, {
            method: "POST",
            headers: { authorization: `Bearer ${token}` },
            body: form,
          });
          assert.equal(upload.status, 202, await upload.clone().text());
          const id = ((await upload.json()) as { executionId: string }).executionId;
          const execution = () =>
            call("GET", `/mass-imports/v5/entities/acme/etl-executions/${id}`);

          const first = startHeraldProcess(t.url!, "worker");
          processes.push(first);
          let atKill = 0;
          await eventually(
            async () => {
              atKill = ((await execution()).counts as { read: number }).read;
              return atKill >= 20_000;
            },
            120_000,
            "the import to be well under way",
          );
          assert.equal(await first.kill("SIGKILL"), null, "killed by the signal");
          const before = (await execution()) as { status: string; counts: { read: number } };
          assert.equal(before.status, "RUNNING");
          assert.ok(before.counts.read < ROWS, `killed mid-import (${before.counts.read} rows)`);
          // Its lease would expire within 30 s; the dead worker's time is up now.
          await t.db.query("UPDATE etl_executions SET lease_until = now() WHERE id = $1", [
            Number(id),
          ]);

          const second = startHeraldProcess(t.url!, "worker");
          processes.push(second);
          // A worker stopped with SIGTERM finishes its batch and hands the execution back at once:
          // the next worker resumes it without waiting for the lease to run out.
          await eventually(
            async () =>
              ((await execution()).counts as { read: number }).read >= before.counts.read + 20_000,
            120_000,
            "the second worker to make progress",
          );
          assert.equal(await second.kill("SIGTERM"), 0, "SIGTERM exits cleanly mid-import");
          const handedBack = await t.db.query<{ lease_owner: string | null; status: string }>(
            "SELECT lease_owner, status FROM etl_executions WHERE id = $1",
            [Number(id)],
          );
          assert.deepEqual(handedBack.rows[0], { lease_owner: null, status: "RUNNING" });
          const third = startHeraldProcess(t.url!, "worker");
          processes.push(third);
          await eventually(
            async () => !["PENDING", "RUNNING"].includes((await execution()).status as string),
            150_000,
            "the import to finish",
          );
          const done = (await execution()) as { status: string; counts: Record<string, number> };
          assert.equal(done.status, "SUCCESS", JSON.stringify(done));
          assert.deepEqual(done.counts, {
            read: ROWS,
            created: KEYS,
            updated: ROWS - KEYS,
            unchanged: 0,
            rejected: 0,
          });

          const { rows: records } = await t.db.query<{ n: number; total: string }>(
            `SELECT count(*)::integer AS n, sum((attributes->>'points')::bigint)::text AS total
               FROM records WHERE table_id = $1`,
            [table.id],
          );
          // The last row of each key wins: key k holds points k + KEYS when a second row has it.
          let expected = 0n;
          for (let k = 0; k < KEYS; k++) expected += BigInt(k + KEYS < ROWS ? k + KEYS : k);
          assert.equal(records[0]!.n, KEYS);
          assert.equal(records[0]!.total, expected.toString());

          const { rows: perLine } = await t.db.query<{
            events: number;
            lines: number;
            most: number;
          }>(
            `SELECT count(*)::integer AS events, count(DISTINCT origin->>'line')::integer AS lines,
                    coalesce(max(c), 0)::integer AS most
               FROM (SELECT origin->>'line' AS line, origin, count(*) OVER (PARTITION BY origin->>'line') AS c
                       FROM change_events WHERE origin->>'id' = $1 AND source = 'PROFILE_TABLE') AS e`,
            [id],
          );
          assert.deepEqual(
            perLine[0],
            { events: ROWS, lines: ROWS, most: 1 },
            "one event per line",
          );

          await eventually(
            () => seen.size >= ROWS + 2,
            120_000,
            `every event at the receiver (${seen.size} of ${ROWS + 2})`,
          );
          const etl = [...seen.values()].filter((d) => "etl.executionStatus" in d);
          assert.deepEqual(
            etl.map((d) => d["etl.executionStatus"]),
            ["RUNNING", "SUCCESS"],
            "one STARTED, one FINISHED, across the crash",
          );
          const blocks = receiver.requests.filter((q) => q.path === "/rows");
          assert.ok(
            blocks.length < ROWS / 10,
            `rows arrive in blocks (${blocks.length} requests for ${ROWS} events)`,
          );
          console.log(
            `# import crash test: killed at ${before.counts.read} of ${ROWS} rows; ${receiver.requests.length} pushes delivered ${seen.size} distinct events`,
          );
          assert.equal(await third.kill("SIGTERM"), 0, "SIGTERM exits cleanly");
        } finally {
          for (const p of processes) if (p.child.exitCode === null) await p.kill("SIGKILL");
          if (process.env.HERALD_E2E_DEBUG) for (const p of processes) console.log(p.output());
          await receiver.close();
          await t.drop();
        }
      },
    );
  },
);
