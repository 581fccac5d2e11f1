import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { describe, test } from "node:test";
import {
  generateSecretKey,
  InvalidSecretKey,
  keyIdOf,
  parseSecretKey,
  SecretBox,
  SecretKeyMismatch,
} from "../../src/domain/secret-box.js";

const key = () => parseSecretKey(generateSecretKey());
const SECRET = `whsec_${randomBytes(24).toString("base64")}`;

describe("SecretBox (AES-256-GCM)", () => {
  test("seals into hs1.<key id>.<iv>.<data> that opens to the same text, without the text in it", () => {
    const box = new SecretBox(key());
    const sealed = box.seal(SECRET);
    assert.match(sealed, /^hs1\.[0-9a-f]{8}\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+$/);
    assert.equal(sealed.split(".")[1], box.currentKeyId);
    assert.ok(!sealed.includes(SECRET.slice(6)), "the secret's base64 does not appear");
    assert.equal(box.open(sealed), SECRET);
    assert.equal(SecretBox.isSealed(sealed), true);
    assert.equal(SecretBox.isSealed(SECRET), false);
    assert.equal(SecretBox.keyIdOf(sealed), box.currentKeyId);
    assert.equal(SecretBox.keyIdOf(SECRET), undefined);
  });

  test("each seal is different (random IV), and every one opens", () => {
    const box = new SecretBox(key());
    const sealed = Array.from({ length: 20 }, () => box.seal(SECRET));
    assert.equal(new Set(sealed).size, 20);
    for (const s of sealed) assert.equal(box.open(s), SECRET);
  });

  test("text of any length and script round-trips, the empty string and JSON included", () => {
    const box = new SecretBox(key());
    for (const plain of ["", "é😀 ü", JSON.stringify({ password: "p\u0000w" }), "x".repeat(10_000)])
      assert.equal(box.open(box.seal(plain)), plain);
  });

  test("the key id is the first 8 hex digits of the key's SHA-256", () => {
    const k = key();
    assert.equal(keyIdOf(k), createHash("sha256").update(k).digest("hex").slice(0, 8));
    assert.equal(new SecretBox(k).currentKeyId, keyIdOf(k));
  });

  test("another key does not open a value: SecretKeyMismatch naming the value's key id", () => {
    const sealer = new SecretBox(key());
    const sealed = sealer.seal(SECRET);
    const other = new SecretBox(key());
    assert.throws(
      () => other.open(sealed),
      (error: unknown) =>
        error instanceof SecretKeyMismatch &&
        error.keyId === sealer.currentKeyId &&
        !error.altered &&
        /HERALD_SECRET_KEY/.test(error.message),
    );
  });

  test("an altered value does not open (GCM authenticates), instead of opening to garbage", () => {
    const box = new SecretBox(key());
    const sealed = box.seal(SECRET);
    const [prefix, id, iv, data] = sealed.split(".") as [string, string, string, string];
    const flipped = Buffer.from(data, "base64url");
    flipped[0]! ^= 1;
    for (const bad of [
      [prefix, id, iv, flipped.toString("base64url")].join("."),
      [prefix, id, iv, data.slice(0, 10)].join("."),
      [prefix, id, Buffer.alloc(12).toString("base64url"), data].join("."),
      [prefix, id, iv, ""].join("."),
    ])
      assert.throws(
        () => box.open(bad),
        (error: unknown) => error instanceof SecretKeyMismatch && error.altered,
        bad,
      );
  });

  test("a value that is not sealed is refused with what a sealed one looks like", () => {
    const box = new SecretBox(key());
    assert.throws(() => box.open(SECRET), /not a sealed secret/);
    assert.throws(() => box.open("hs2.a.b.c"), /not a sealed secret/);
  });

  test("during a rotation the previous key opens what it sealed; the current key seals", () => {
    const oldKey = key();
    const newKey = key();
    const before = new SecretBox(oldKey).seal(SECRET);
    const rotating = new SecretBox(newKey, oldKey);
    assert.equal(rotating.previousKeyId, keyIdOf(oldKey));
    assert.equal(rotating.open(before), SECRET);
    assert.equal(rotating.sealedWithCurrent(before), false);
    const after = rotating.seal(SECRET);
    assert.equal(rotating.sealedWithCurrent(after), true);
    assert.ok(after.startsWith(rotating.currentPrefix));
    assert.equal(new SecretBox(newKey).open(after), SECRET);
    assert.throws(() => new SecretBox(oldKey).open(after), SecretKeyMismatch);
    assert.equal(new SecretBox(newKey).previousKeyId, undefined);
  });
});

describe("parseSecretKey", () => {
  const raw = randomBytes(32);

  test("reads 64 hex digits, base64 and base64url, with surrounding blanks", () => {
    for (const text of [
      raw.toString("hex"),
      raw.toString("hex").toUpperCase(),
      raw.toString("base64"),
      raw.toString("base64").replace(/=$/, ""),
      raw.toString("base64url"),
      ` ${raw.toString("hex")}\n`,
    ])
      assert.deepEqual(parseSecretKey(text), raw, text);
  });

  test("refuses anything that is not 32 bytes, naming the setting and how to make a key", () => {
    for (const text of [
      "",
      "hunter2",
      raw.toString("hex").slice(2),
      `${raw.toString("hex")}00`,
      randomBytes(31).toString("base64"),
      randomBytes(33).toString("base64"),
      "z".repeat(64),
    ])
      assert.throws(
        () => parseSecretKey(text, "HERALD_SECRET_KEY_PREVIOUS"),
        (error: unknown) =>
          error instanceof InvalidSecretKey &&
          /HERALD_SECRET_KEY_PREVIOUS must be 32 random bytes/.test(error.message) &&
          /openssl rand -hex 32/.test(error.message),
        text,
      );
  });

  test("generateSecretKey makes a fresh key in a form parseSecretKey reads", () => {
    const a = generateSecretKey();
    assert.match(a, /^[0-9a-f]{64}$/);
    assert.notEqual(a, generateSecretKey());
    assert.equal(parseSecretKey(a).length, 32);
  });
});
