import assert from "node:assert/strict";
import { test } from "node:test";
import pino from "pino";
import { startJobLoop } from "../../src/jobs/job-loop.js";
import type { Database } from "../../src/storage/database.js";
import { JobSignals } from "../../src/storage/job-signals.js";

/** Just what the loop asks of a database: LISTEN (a no-op here). */
const db = { kind: "pglite", listen: async () => async () => {} } as unknown as Database;

test("a job claimed while the loop stops is run and waited for before the leases go back", async () => {
  const order: string[] = [];
  let claimed = false;
  let answerClaim!: () => void;
  const loop = await startJobLoop<string>({
    db,
    jobSignals: new JobSignals(),
    logger: pino({ level: "silent" }),
    name: "jobs",
    pollMs: 60_000,
    concurrency: 2,
    claim: () => {
      if (claimed) return Promise.resolve(undefined);
      claimed = true;
      order.push("claiming");
      return new Promise<string | undefined>((resolve) => (answerClaim = () => resolve("job-1")));
    },
    keyOf: (job) => job,
    run: async (job) => {
      order.push(`run ${job}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
      order.push(`done ${job}`);
    },
    releaseAll: async () => order.push("released"),
  });
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(order, ["claiming"]);
  const stopped = loop.stop();
  assert.equal(loop.stopping(), true);
  // The claim answers after stop began waiting.
  await new Promise((resolve) => setTimeout(resolve, 20));
  answerClaim();
  await stopped;
  assert.deepEqual(order, ["claiming", "run job-1", "done job-1", "released"]);
});
