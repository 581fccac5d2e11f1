/**
 * The log invariant (DESIGN §4) under real concurrency, on a real PostgreSQL server: many writers,
 * some slow (pg_sleep while holding their record locks and inbox ids), some rolled back, all
 * interleaved on the same few records, while the sequencer stamps — and hands over leadership
 * halfway. Afterwards every committed change is in the log exactly once, no rolled-back one is,
 * positions are 1..N without a gap, and each record's events are in version order.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { NewChangeEvent } from "../../src/domain/change-event.js";
import { createLogger } from "../../src/logger.js";
import { startSequencer } from "../../src/sequencer/sequencer.js";
import { LogSignals } from "../../src/storage/log-signals.js";
import { appendChangeEvents, readLogHead } from "../../src/storage/change-event-repository.js";
import type { Database } from "../../src/storage/database.js";
import { countUnstamped } from "../../src/storage/sequencer-repository.js";
import type { TestDatabase } from "../helpers/test-database.js";
import { createTestDatabase, testBackends } from "../helpers/test-database.js";

const LOAD_MS = 3000;
const WRITERS = 12;
const RECORDS = 6;
const logger = createLogger("silent");

/** Small seeded PRNG so a failing run can be replayed with HERALD_TEST_SEED. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Outcome {
  committed: Set<string>;
  rolledBack: Set<string>;
}

async function setUp(db: Database): Promise<{ entityId: number; recordIds: number[] }> {
  const { rows: licence } = await db.query<{ id: number }>(
    "INSERT INTO licences (name) VALUES ('invariant') RETURNING id",
  );
  const { rows: entity } = await db.query<{ id: number }>(
    "INSERT INTO entities (licence_id, name) VALUES ($1, 'invariant') RETURNING id",
    [licence[0]!.id],
  );
  const entityId = entity[0]!.id;
  await db.query(
    `INSERT INTO data_tables (id, entity_id, kind, name, definition)
     VALUES ('inv', $1, 'PROFILE_TABLE', 'Invariant', '{}')`,
    [entityId],
  );
  const { rows } = await db.query<{ record_id: number }>(
    `INSERT INTO records (table_id, attributes)
     SELECT 'inv', '{}' FROM generate_series(1, $1) RETURNING record_id`,
    [RECORDS],
  );
  return { entityId, recordIds: rows.map((r) => r.record_id) };
}

function changeOf(
  entityId: number,
  recordId: number,
  version: number,
  tag: string,
): NewChangeEvent {
  return {
    entityId,
    source: "PROFILE_TABLE",
    sourceId: "inv",
    eventType: "UPDATE",
    recordKey: String(recordId),
    keys: { profileId: recordId },
    state: { tag },
    fields: ["tag"],
    previous: {},
    extra: {},
    version,
    declaredEvents: [],
    origin: { kind: "SYSTEM" },
  };
}

/** One writer: transactions over 1–3 records (locked in id order), some slow, some rolled back. */
async function writer(
  db: Database,
  notifyTurns: LogSignals,
  entityId: number,
  recordIds: number[],
  random: () => number,
  id: number,
  until: number,
  outcome: Outcome,
): Promise<void> {
  for (let n = 0; Date.now() < until; n++) {
    const picked = [
      ...new Set(
        Array.from(
          { length: 1 + Math.floor(random() * 3) },
          () => recordIds[Math.floor(random() * recordIds.length)]!,
        ),
      ),
    ].sort((a, b) => a - b);
    const slow = random() < 0.15;
    const rollBack = random() < 0.2;
    const tag = `w${id}-${n}`;
    try {
      await db.transaction(async (tx) => {
        for (const recordId of picked) {
          // Locks the record row first (DESIGN §3), then appends with the new version.
          const { rows } = await tx.query<{ version: number }>(
            "UPDATE records SET version = version + 1 WHERE record_id = $1 RETURNING version",
            [recordId],
          );
          await appendChangeEvents(
            tx,
            [changeOf(entityId, recordId, rows[0]!.version, tag)],
            notifyTurns,
          );
          // A slow transaction holds its inbox ids while faster ones commit past it.
          if (slow) await tx.query("SELECT pg_sleep($1)", [0.02 + random() * 0.08]);
        }
        if (rollBack) throw new Error("deliberate rollback");
      });
      outcome.committed.add(tag);
    } catch (error) {
      if ((error as Error).message !== "deliberate rollback") throw error;
      outcome.rolledBack.add(tag);
    }
  }
}

const postgres = (await testBackends()).find((b) => b.backend === "postgres")!;

describe("log invariant on PostgreSQL under concurrent writers", { skip: postgres.skip }, () => {
  let t: TestDatabase;
  before(async () => {
    t = await createTestDatabase("postgres");
  });
  after(() => t?.drop());

  test("every committed change exactly once, nothing rolled back, dense positions, per-record order", async () => {
    const seed = Number(process.env.HERALD_TEST_SEED ?? Date.now() % 1_000_000);
    const { entityId, recordIds } = await setUp(t.db);
    // Writers and each sequencer have a pool of their own: three processes, with signals each.
    const writers = await t.connect(WRITERS + 2);
    const writerSignals = new LogSignals();
    const first = await startSequencer({
      db: await t.connect(4),
      logSignals: new LogSignals(),
      logger,
    });
    const second = await startSequencer({
      db: await t.connect(4),
      logSignals: new LogSignals(),
      logger,
      followerRetryMs: 100,
    });
    const outcome: Outcome = { committed: new Set(), rolledBack: new Set() };
    const until = Date.now() + LOAD_MS;
    const load = Promise.all(
      Array.from({ length: WRITERS }, (_, i) =>
        writer(writers, writerSignals, entityId, recordIds, prng(seed + i + 1), i, until, outcome),
      ),
    );
    // Halfway through, the leader steps down and the other sequencer takes over under load.
    await new Promise((r) => setTimeout(r, LOAD_MS / 2));
    const headAtHandover = await readLogHead(t.db);
    const leader = first.isLeader() ? first : second;
    const follower = leader === first ? second : first;
    await leader.stop();
    await load;

    // Drain (bounded): the remaining sequencer stamps what is left.
    const deadline = Date.now() + 10_000;
    while ((await countUnstamped(t.db)) > 0) {
      assert.ok(Date.now() < deadline, "the sequencer did not drain the inbox");
      await new Promise((r) => setTimeout(r, 50));
    }
    const summary = `seed ${seed}: ${outcome.committed.size} committed, ${outcome.rolledBack.size} rolled back, head ${headAtHandover} at handover`;
    assert.ok(follower.isLeader(), `the follower took over (${summary})`);
    await follower.stop();
    assert.ok(headAtHandover > 0, `the sequencer stamped while writers were running (${summary})`);
    // Enough traffic for the check to mean something, even on a loaded machine.
    assert.ok(outcome.rolledBack.size > 0 && outcome.committed.size > 20, summary);

    const { rows: events } = await t.db.query<{
      position: number;
      record_key: string;
      version: number;
      tag: string;
    }>(
      `SELECT position, record_key, version, state->>'tag' AS tag
         FROM change_events ORDER BY position`,
    );
    // Dense: 1..N, no gap, no duplicate.
    assert.deepEqual(
      events.map((e) => e.position),
      Array.from({ length: events.length }, (_, i) => i + 1),
      `seed ${seed}`,
    );
    assert.equal(await readLogHead(t.db), events.length);
    // Nothing rolled back; every committed transaction's events, once each.
    const tags = new Set(events.map((e) => e.tag));
    for (const tag of outcome.rolledBack)
      assert.ok(!tags.has(tag), `rolled back ${tag} in the log`);
    for (const tag of outcome.committed) assert.ok(tags.has(tag), `committed ${tag} missing`);
    assert.equal(tags.size, outcome.committed.size);
    const seen = new Set<string>();
    for (const e of events) {
      const key = `${e.tag}/${e.record_key}`;
      assert.ok(!seen.has(key), `${key} appears twice`);
      seen.add(key);
    }
    // Per record, in log order, versions are exactly 2, 3, 4, … up to the record's final version.
    const { rows: finals } = await t.db.query<{ record_id: number; version: number }>(
      "SELECT record_id, version FROM records WHERE table_id = 'inv'",
    );
    for (const { record_id: recordId, version } of finals) {
      const versions = events
        .filter((e) => e.record_key === String(recordId))
        .map((e) => e.version);
      assert.deepEqual(
        versions,
        Array.from({ length: version - 1 }, (_, i) => i + 2),
        `record ${recordId}, seed ${seed}`,
      );
    }
  });
});
