/** Generation and hashing of API keys and access tokens. Raw values are never stored. */
import { createHash, randomBytes } from "node:crypto";

export function newApiKey(): string {
  return `hk_${randomBytes(32).toString("base64url")}`;
}

export function newAccessToken(): string {
  return `hat_${randomBytes(32).toString("base64url")}`;
}

export function hashSecret(raw: string): string {
  return createHash("sha256").update(raw).digest("hex");
}

/** What may be shown of a key: enough to recognise it, not to use it. */
export function keyPrefix(raw: string): string {
  return raw.slice(0, 10);
}
