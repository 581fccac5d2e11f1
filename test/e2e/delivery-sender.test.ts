/** The outbound HTTP sender against a real loopback receiver: SSRF guard, redirects, timeouts, caps. */
import assert from "node:assert/strict";
import { getEventListeners } from "node:events";
import { after, before, describe, test } from "node:test";
import {
  CONNECTIONS_PER_ORIGIN,
  EXCERPT_BYTES,
  createHttpSender,
} from "../../src/delivery/http-sender.js";
import { startHeldReceiver } from "../helpers/held-receiver.js";
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

  test("a push's own signal cuts it at once with its reason, and each attempt lets go of the signal", async () => {
    const sender = createHttpSender({
      timeoutMs: 5_000,
      allowInsecureTargets: true,
      workerId: "w",
    });
    const liveness = new AbortController();
    try {
      const base = new URL(receiver.url).origin;
      receiver.respondWith((q) => (q.path === "/slow" ? { delayMs: 3_000 } : undefined));
      for (let i = 0; i < 20; i++) {
        const ok = await sender.send({ ...push(`${base}/hook`), signal: liveness.signal });
        assert.equal(ok.kind, "response");
      }
      assert.equal(getEventListeners(liveness.signal, "abort").length, 0, "listeners left behind");
      const cut = sender.send({ ...push(`${base}/slow`), signal: liveness.signal });
      await receiver.waitFor((requests) => requests.some((q) => q.path === "/slow"), 5_000);
      const reason = new Error("the push was cut short: lock lost");
      reason.name = "AbortError";
      liveness.abort(reason);
      const result = await cut;
      assert.equal(result.kind, "error");
      if (result.kind === "error") {
        assert.equal(result.errorClass, "timeout");
        assert.match(result.message, /lock lost/);
        assert.ok(result.durationMs < 2_000, `cut after ${result.durationMs} ms`);
      }
      const already = await sender.send({ ...push(`${base}/hook`), signal: liveness.signal });
      assert.equal(already.kind, "error", "a push whose signal is already aborted is not sent");
    } finally {
      receiver.respondWith(() => undefined);
      await sender.close();
    }
  });

  test("bulkheads: with no cap per origin, a request never waits for the connections that another path of the origin holds", async () => {
    const endpoint = await startHeldReceiver();
    const sender = createHttpSender({
      timeoutMs: 20_000,
      allowInsecureTargets: true,
      workerId: "w",
      connectionsPerOrigin: null,
    });
    const slow: Promise<unknown>[] = [];
    try {
      endpoint.answer("/slow", "hold");
      // More held requests than a capped pool has connections.
      const held = CONNECTIONS_PER_ORIGIN + 6;
      for (let i = 0; i < held; i++) slow.push(sender.send(push(`${endpoint.origin}/slow`)));
      // A capped pool lets as many through as it has connections; the rest wait for one.
      await endpoint.waitFor(
        (requests) => requests.length >= CONNECTIONS_PER_ORIGIN,
        10_000,
        `${CONNECTIONS_PER_ORIGIN} held requests at the endpoint`,
      );
      // With a capped pool this one would queue until a held request is answered.
      const fast = await Promise.race([
        sender.send(push(`${endpoint.origin}/fast`)),
        new Promise<"still waiting">((resolve) =>
          setTimeout(() => resolve("still waiting"), 5_000),
        ),
      ]);
      assert.notEqual(fast, "still waiting", "the request waited behind the held ones");
      assert.equal((fast as { kind: string; status?: number }).status, 200);
      await endpoint.waitFor((requests) => requests.length >= held + 1, 10_000, "every request");
      assert.equal(endpoint.inFlight("/slow"), held, "the held requests are all held at once");
    } finally {
      endpoint.release("/slow");
      await Promise.all(slow);
      await sender.close();
      await endpoint.close();
    }
  });
});
