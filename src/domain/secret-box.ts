/**
 * Secrets at rest (SPEC §7.2 "stored encrypted"): source credentials and webhook signing secrets
 * are sealed with AES-256-GCM under HERALD_SECRET_KEY before they reach the database, and opened
 * only where they are used (a push's signature, a connection to a file server).
 *
 * A sealed value is text: `hs1.<key id>.<iv>.<ciphertext and tag>` (base64url parts). The key id is
 * the first 8 hex digits of the key's SHA-256, so a value says which key sealed it: during a
 * rotation the previous key still opens what it sealed, and `sealedWithCurrent` tells which rows
 * remain to be rewritten. GCM authenticates: a value sealed with another key, or altered, does not
 * open (SecretKeyMismatch) instead of yielding garbage.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";

const PREFIX = "hs1";
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** A key that is not 32 bytes in hex or base64. */
export class InvalidSecretKey extends Error {
  override name = "InvalidSecretKey";
}

/** A sealed value that no key of this process opens (another key sealed it, or it was altered). */
export class SecretKeyMismatch extends Error {
  override name = "SecretKeyMismatch";
  /** `altered`: this process has a key of that id, but the value does not open with it. */
  constructor(
    readonly keyId: string,
    readonly altered = false,
  ) {
    super(
      altered
        ? `a value in the database does not open with the key of id ${keyId}: it was altered or cut short`
        : `a value in the database was encrypted with a key this process does not have (key id ${keyId}); set HERALD_SECRET_KEY to the key Herald ran with (or HERALD_SECRET_KEY_PREVIOUS during a rotation)`,
    );
  }
}

/** Reads a 32-byte key written as 64 hex digits or as base64 (standard or url-safe). */
export function parseSecretKey(text: string, name = "HERALD_SECRET_KEY"): Buffer {
  const trimmed = text.trim();
  const key = /^[0-9a-fA-F]{64}$/.test(trimmed)
    ? Buffer.from(trimmed, "hex")
    : /^[A-Za-z0-9+/_-]{43}=?$/.test(trimmed)
      ? Buffer.from(trimmed.replace(/-/g, "+").replace(/_/g, "/"), "base64")
      : undefined;
  if (!key || key.length !== 32)
    throw new InvalidSecretKey(
      `${name} must be 32 random bytes written as 64 hex digits or as base64 (make one with: openssl rand -hex 32)`,
    );
  return key;
}

/** A fresh random key, as 64 hex digits. */
export function generateSecretKey(): string {
  return randomBytes(32).toString("hex");
}

/** The id a key's sealed values carry: the first 8 hex digits of its SHA-256 (not secret). */
export function keyIdOf(key: Buffer): string {
  return createHash("sha256").update(key).digest("hex").slice(0, 8);
}

export class SecretBox {
  readonly currentKeyId: string;
  /** The id of the previous key (a rotation under way), else undefined. */
  readonly previousKeyId: string | undefined;
  private readonly keys = new Map<string, Buffer>();

  /** `current` seals; `current` and `previous` both open. */
  constructor(current: Buffer, previous?: Buffer) {
    this.currentKeyId = keyIdOf(current);
    this.keys.set(this.currentKeyId, current);
    this.previousKeyId = previous ? keyIdOf(previous) : undefined;
    if (previous) this.keys.set(keyIdOf(previous), previous);
  }

  seal(plain: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv("aes-256-gcm", this.keys.get(this.currentKeyId)!, iv);
    const body = Buffer.concat([cipher.update(plain, "utf8"), cipher.final(), cipher.getAuthTag()]);
    return [PREFIX, this.currentKeyId, iv.toString("base64url"), body.toString("base64url")].join(
      ".",
    );
  }

  /** The plain text of a sealed value; SecretKeyMismatch when no key of this box opens it. */
  open(sealed: string): string {
    const parts = sealed.split(".");
    if (parts.length !== 4 || parts[0] !== PREFIX)
      throw new Error("not a sealed secret (expected hs1.<key id>.<iv>.<data>)");
    const [, keyId, ivText, bodyText] = parts as [string, string, string, string];
    const key = this.keys.get(keyId);
    if (!key) throw new SecretKeyMismatch(keyId);
    const body = Buffer.from(bodyText, "base64url");
    if (body.length < TAG_BYTES) throw new SecretKeyMismatch(keyId, true);
    try {
      const decipher = createDecipheriv("aes-256-gcm", key, Buffer.from(ivText, "base64url"));
      decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
      return Buffer.concat([
        decipher.update(body.subarray(0, body.length - TAG_BYTES)),
        decipher.final(),
      ]).toString("utf8");
    } catch {
      throw new SecretKeyMismatch(keyId, true);
    }
  }

  /** True when the value is sealed and with the current key (nothing to rewrite). */
  sealedWithCurrent(value: string): boolean {
    return value.startsWith(this.currentPrefix);
  }

  /** The id of the key that sealed a value; undefined when the value is not sealed. */
  static keyIdOf(value: string): string | undefined {
    return SecretBox.isSealed(value) ? value.split(".")[1] : undefined;
  }

  /** The prefix every value sealed with the current key starts with (for SQL filters). */
  get currentPrefix(): string {
    return `${PREFIX}.${this.currentKeyId}.`;
  }

  /** True when the value looks sealed (by any key). */
  static isSealed(value: string): boolean {
    return value.startsWith(`${PREFIX}.`);
  }
}
