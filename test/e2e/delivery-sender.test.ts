/** The outbound HTTP sender against a real loopback receiver: SSRF guard, redirects, timeouts, caps. */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { EXCERPT_BYTES, createHttpSender } from "../../src/delivery/http-sender.js";
import type { WebhookReceiver } from "../helpers/webhook-receiver.js";
import { startWebhookReceiver } from "../helpers/webhook-receiver.js";

const push = (url: string, headers: Record<string, string> = {}) => ({
  url,
  body: '{"id":"p1","data":{}}',
  headers,
  signatureHeaders: { "webhook-id": "p1", "webhook-timestamp": "1", "webhook-signature": "v1,x" },
});

describe("http sender", () => {
  let receiver: WebhookReceiver;
  before(async () => {
    receiver = await startWebhookReceiver();
  });
  after(() => receiver.close());

  test("without allowInsecureTargets: http, loopback, private and metadata targets are refused before any request", async () => {
    const sender = createHttpSender({
      timeoutMs: 2_000,
      allowInsecureTargets: false,
      workerId: "w",
    });
    try {
      const port = new URL(receiver.url).port;
      const before = receiver.requests.length;
      for (const url of [
        receiver.url, // http
        `https://127.0.0.1:${port}/hook`,
        `https://localhost:${port}/hook`, // a name resolving to loopback: checked at connect
        `https://[::1]:${port}/hook`,
        `https://[::ffff:127.0.0.1]:${port}/hook`,
        "https://169.254.169.254/latest/meta-data",
        "https://[fd00:ec2::254]/latest",
        "https://10.0.0.1/hook",
      ]) {
        const result = await sender.send(push(url));
        assert.equal(result.kind, "error", url);
        if (result.kind === "error") assert.equal(result.errorClass, "blocked_target", url);
      }
      assert.equal(receiver.requests.length, before, "nothing reached the receiver");
    } finally {
      await sender.close();
    }
  });

  test("redirects are not followed; reserved headers cannot be overridden; the body excerpt is capped", async () => {
    const sender = createHttpSender({
      timeoutMs: 2_000,
      allowInsecureTargets: true,
      workerId: "w-9",
    });
    try {
      receiver.respondWith((q) =>
        q.path === "/redirect"
          ? { status: 302, headers: { location: "/elsewhere" } }
          : { status: 500, body: "x".repeat(100_000) },
      );
      const base = new URL(receiver.url).origin;
      const before = receiver.requests.length;
      const redirected = await sender.send(push(`${base}/redirect`));
      assert.equal(redirected.kind, "response");
      if (redirected.kind === "response") assert.equal(redirected.status, 302);
      assert.equal(receiver.requests.length, before + 1, "the redirect was not followed");

      const big = await sender.send(
        push(`${base}/big`, { "Content-Type": "text/plain", "webhook-id": "forged", "x-ok": "1" }),
      );
      assert.equal(big.kind, "response");
      if (big.kind === "response") assert.equal(big.excerpt.length, EXCERPT_BYTES);
      const sent = receiver.requests.at(-1)!;
      assert.equal(sent.headers["content-type"], "application/json");
      assert.equal(sent.headers["webhook-id"], "p1");
      assert.equal(sent.headers["x-ok"], "1");
      assert.equal(sent.headers["herald-worker"], "w-9");
      assert.match(String(sent.headers["user-agent"]), /^Herald\//);
    } finally {
      receiver.respondWith(() => undefined);
      await sender.close();
    }
  });

  test("a slow endpoint times out; a closed socket is a reset", async () => {
    const sender = createHttpSender({ timeoutMs: 300, allowInsecureTargets: true, workerId: "w" });
    try {
      receiver.respondWith((q) => (q.path === "/slow" ? { delayMs: 1_500 } : { destroy: true }));
      const base = new URL(receiver.url).origin;
      const slow = await sender.send(push(`${base}/slow`));
      assert.equal(slow.kind, "error");
      if (slow.kind === "error") {
        assert.equal(slow.errorClass, "timeout");
        assert.ok(slow.durationMs < 1_200, `gave up after ${slow.durationMs} ms`);
      }
      const reset = await sender.send(push(`${base}/close`));
      assert.equal(reset.kind, "error");
      if (reset.kind === "error") assert.equal(reset.errorClass, "connection_reset");
    } finally {
      receiver.respondWith(() => undefined);
      await sender.close();
    }
  });
});
