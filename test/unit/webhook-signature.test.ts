import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, test } from "node:test";
import { Webhook } from "standardwebhooks";
import { signatureOf, webhookSignatureHeaders } from "../../src/domain/webhook-signature.js";

const newSecret = () => `whsec_${randomBytes(24).toString("base64")}`;
const body = JSON.stringify({ id: "push-1", data: { emailAddress: "a@b.c" } });

describe("webhook signatures (Standard Webhooks)", () => {
  test("a receiver using the standardwebhooks package verifies a signed push", () => {
    const secret = newSecret();
    const headers = webhookSignatureHeaders(
      { secret, previousSecret: null, previousSecretExpiresAt: null },
      "push-1",
      body,
      new Date(),
    );
    assert.equal(headers["webhook-id"], "push-1");
    assert.match(headers["webhook-signature"], /^v1,[A-Za-z0-9+/=]+$/);
    const verified = new Webhook(secret).verify(body, headers);
    assert.deepEqual(verified, JSON.parse(body));
  });

  test("a changed body, id or another secret fails verification", () => {
    const secret = newSecret();
    const headers = webhookSignatureHeaders(
      { secret, previousSecret: null, previousSecretExpiresAt: null },
      "push-1",
      body,
      new Date(),
    );
    assert.throws(() => new Webhook(secret).verify(body.replace("a@b.c", "x@b.c"), headers));
    assert.throws(() => new Webhook(secret).verify(body, { ...headers, "webhook-id": "push-2" }));
    assert.throws(() => new Webhook(newSecret()).verify(body, headers));
  });

  test("during rotation both secrets verify; after the grace period only the new one signs", () => {
    const current = newSecret();
    const previous = newSecret();
    const now = new Date();
    const during = webhookSignatureHeaders(
      {
        secret: current,
        previousSecret: previous,
        previousSecretExpiresAt: new Date(now.getTime() + 60_000),
      },
      "push-9",
      body,
      now,
    );
    assert.equal(during["webhook-signature"].split(" ").length, 2);
    new Webhook(current).verify(body, during);
    new Webhook(previous).verify(body, during);

    const after = webhookSignatureHeaders(
      {
        secret: current,
        previousSecret: previous,
        previousSecretExpiresAt: new Date(now.getTime() - 1),
      },
      "push-9",
      body,
      now,
    );
    assert.equal(after["webhook-signature"].split(" ").length, 1);
    new Webhook(current).verify(body, after);
    assert.throws(() => new Webhook(previous).verify(body, after));
  });

  test("the signature is the base64 HMAC-SHA256 of id.timestamp.body keyed by the decoded secret", () => {
    // Known vector from the Standard Webhooks reference implementations.
    const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const payload = '{"test": 2432232314}';
    assert.equal(
      signatureOf(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, payload),
      "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    );
  });
});
