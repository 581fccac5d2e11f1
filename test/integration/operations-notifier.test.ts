/**
 * The operations notifier against a real loopback receiver: the JSON it POSTs, bounded retries on
 * 5xx and on a dropped connection, no retry on 4xx, a timeout, and a log line even without a URL.
 * No database: this file has no backend legs.
 */
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { after, before, describe, test } from "node:test";
import pino from "pino";
import type { OperationalEvent } from "../../src/delivery/operations-notifier.js";
import { createOperationsNotifier } from "../../src/delivery/operations-notifier.js";
import type { WebhookReceiver } from "../helpers/webhook-receiver.js";
import { startWebhookReceiver } from "../helpers/webhook-receiver.js";

function capturingLogger() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString("utf8").split("\n"))
        if (line.trim()) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level: "info" }, stream), lines };
}

const event: OperationalEvent = {
  type: "SUBSCRIPTION_DISABLED",
  subscriptionId: 7,
  entity: "acme",
  reason: "the endpoint failed every push for 3 days",
  at: new Date("2026-11-30T03:00:00Z"),
};

describe("operations notifier", () => {
  let receiver: WebhookReceiver;
  before(async () => {
    receiver = await startWebhookReceiver();
  });
  after(async () => {
    await receiver.close();
  });

  test("POSTs the event as JSON and logs it at error for a deactivation", async () => {
    const { logger, lines } = capturingLogger();
    const notifier = createOperationsNotifier({
      config: { operationsWebhookUrl: receiver.url },
      logger,
    });
    const count = receiver.requests.length;
    const result = await notifier.notify(event);
    assert.deepEqual(result, { kind: "posted", attempts: 1, status: 200 });
    assert.equal(receiver.requests.length, count + 1);
    const received = receiver.requests.at(-1)!;
    assert.equal(received.method, "POST");
    assert.equal(received.headers["content-type"], "application/json");
    assert.deepEqual(
      { ...(received.json as Record<string, unknown>), herald: undefined },
      {
        type: "SUBSCRIPTION_DISABLED",
        subscriptionId: 7,
        entity: "acme",
        reason: "the endpoint failed every push for 3 days",
        at: "2026-11-30T03:00:00.000Z",
        herald: undefined,
      },
    );
    const line = lines.find((l) => l.operationalEvent === "SUBSCRIPTION_DISABLED");
    assert.equal(line?.level, 50);
    assert.equal(line?.subscriptionId, 7);
    await notifier.close();
  });

  test("retries 5xx and dropped connections a bounded number of times, then gives up without throwing", async () => {
    const { logger, lines } = capturingLogger();
    const notifier = createOperationsNotifier({
      config: { operationsWebhookUrl: receiver.url },
      logger,
      retryDelaysMs: [10, 10],
    });
    let calls = 0;
    receiver.respondWith(() => (++calls === 1 ? { destroy: true } : { status: 503 }));
    const result = await notifier.notify({ ...event, type: "SUBSCRIPTION_FAILING_WARNING" });
    assert.equal(result.kind, "gave-up");
    assert.equal(calls, 3);
    assert.equal((result as { attempts: number }).attempts, 3);
    assert.ok(
      lines.some((l) => l.level === 40 && l.operationalEvent === "SUBSCRIPTION_FAILING_WARNING"),
    );
    assert.ok(lines.some((l) => l.level === 50 && /could not POST/.test(String(l.msg))));

    calls = 0;
    receiver.respondWith(() => (++calls < 3 ? { status: 500 } : { status: 202 }));
    assert.deepEqual(await notifier.notify(event), { kind: "posted", attempts: 3, status: 202 });
    receiver.respondWith(() => undefined);
  });

  test("a 4xx answer is final: no retry", async () => {
    const { logger } = capturingLogger();
    const notifier = createOperationsNotifier({
      config: { operationsWebhookUrl: receiver.url },
      logger,
      retryDelaysMs: [10, 10],
    });
    let calls = 0;
    receiver.respondWith(() => (++calls, { status: 404 }));
    const result = await notifier.notify(event);
    assert.deepEqual(result, { kind: "gave-up", attempts: 1, lastError: "HTTP 404" });
    assert.equal(calls, 1);
    receiver.respondWith(() => undefined);
  });

  test("a receiver slower than the timeout is abandoned", async () => {
    const { logger } = capturingLogger();
    const notifier = createOperationsNotifier({
      config: { operationsWebhookUrl: receiver.url },
      logger,
      timeoutMs: 100,
      retryDelaysMs: [],
    });
    receiver.respondWith(() => ({ delayMs: 1_000 }));
    const started = Date.now();
    const result = await notifier.notify(event);
    assert.equal(result.kind, "gave-up");
    assert.match((result as { lastError: string }).lastError, /Timeout|Abort/i);
    assert.ok(Date.now() - started < 900, "did not wait for the slow answer");
    receiver.respondWith(() => undefined);
  });

  test("without HERALD_OPERATIONS_WEBHOOK_URL the event is only logged", async () => {
    const { logger, lines } = capturingLogger();
    const notifier = createOperationsNotifier({
      config: { operationsWebhookUrl: undefined },
      logger,
    });
    const count = receiver.requests.length;
    const result = await notifier.notify({ ...event, type: "SUBSCRIPTION_RECOVERED" });
    assert.deepEqual(result, { kind: "logged-only" });
    assert.equal(receiver.requests.length, count);
    assert.ok(lines.some((l) => l.operationalEvent === "SUBSCRIPTION_RECOVERED" && l.level === 40));
  });

  test("an unreachable URL never throws", async () => {
    const { logger } = capturingLogger();
    const closed = await startWebhookReceiver();
    const url = closed.url;
    await closed.close();
    const notifier = createOperationsNotifier({
      config: { operationsWebhookUrl: url },
      logger,
      retryDelaysMs: [5],
    });
    const result = await notifier.notify(event);
    assert.equal(result.kind, "gave-up");
    assert.equal((result as { attempts: number }).attempts, 2);
  });
});
