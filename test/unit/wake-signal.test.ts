import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { WakeSignal } from "../../src/sequencer/wake-signal.js";

describe("WakeSignal", () => {
  test("a wake-up during work is kept: the next wait returns at once", async () => {
    const signal = new WakeSignal();
    signal.wake();
    signal.wake();
    assert.equal(await signal.wait(10_000), true);
    // Both wake-ups were coalesced into that one.
    assert.equal(await signal.wait(10), false);
  });

  test("consume() forgets wake-ups that the coming work answers", async () => {
    const signal = new WakeSignal();
    signal.wake();
    signal.consume();
    assert.equal(await signal.wait(10), false);
  });

  test("a sleeping waiter is woken, and times out without a wake-up", async () => {
    const signal = new WakeSignal();
    const waiting = signal.wait(10_000);
    signal.wake();
    assert.equal(await waiting, true);
    const began = Date.now();
    assert.equal(await signal.wait(30), false);
    assert.ok(Date.now() - began >= 25);
  });
});
