import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { RequestAdmission } from "../../src/api/database-admission.js";
import { HeraldError } from "../../src/domain/errors.js";

const LIMITS = { maxConcurrent: 2, maxWaitMs: 200, retryAfterSeconds: 1 };

describe("RequestAdmission", () => {
  test("lets in up to maxConcurrent at once; the others wait, first come first served", async () => {
    const door = new RequestAdmission(LIMITS);
    const first = await door.enter();
    const second = await door.enter();
    const admitted: string[] = [];
    const third = Promise.resolve(door.enter()).then((exit) => (admitted.push("third"), exit));
    const fourth = Promise.resolve(door.enter()).then((exit) => (admitted.push("fourth"), exit));
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(door.counts, { inside: 2, waiting: 2 });
    assert.deepEqual(admitted, []);

    second();
    second(); // leaving twice frees one place only
    const thirdExit = await third;
    assert.deepEqual(admitted, ["third"]);
    assert.deepEqual(door.counts, { inside: 2, waiting: 1 });
    first();
    (await fourth)();
    thirdExit();
    assert.deepEqual(admitted, ["third", "fourth"]);
    assert.deepEqual(door.counts, { inside: 0, waiting: 0 });
  });

  test("a request that waits maxWaitMs is refused with 503, HERALD_DATABASE_BUSY and Retry-After", async () => {
    const door = new RequestAdmission(LIMITS);
    const a = await door.enter();
    await door.enter();
    const began = Date.now();
    const refused = await Promise.resolve(door.enter()).then(
      () => assert.fail("admitted although nobody left"),
      (error: unknown) => error,
    );
    assert.ok(Date.now() - began >= 150, "it waited its turn first");
    assert.ok(refused instanceof HeraldError);
    assert.equal(refused.code, "HERALD_DATABASE_BUSY");
    assert.equal(refused.status, 503);
    assert.deepEqual(refused.headers, { "retry-after": "1" });
    assert.match(refused.message, /retry after 1 s/);
    // The refused request left no place behind: the next one waits for a real exit.
    assert.deepEqual(door.counts, { inside: 2, waiting: 0 });
    const next = door.enter();
    a();
    assert.equal(typeof (await next), "function");
  });
});
