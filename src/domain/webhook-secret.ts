/**
 * Subscription signing secrets (SPEC §4 [ext] `secret`): Standard Webhooks' `whsec_<base64>` form,
 * where the base64 part is the HMAC key. Herald generates 32 random bytes; a client may bring its own
 * secret, which must decode to 24–64 bytes (shorter keys are too weak, longer ones buy nothing).
 */
import { randomBytes } from "node:crypto";

/** Standard Webhooks' secret prefix (the same one `webhook-signature.ts` strips). */
export const SECRET_PREFIX = "whsec_";

export const GENERATED_SECRET_BYTES = 32;
export const SECRET_KEY_BYTES = { min: 24, max: 64 } as const;

/** Standard base64 (not base64url), with its padding. */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export function generateWebhookSecret(): string {
  return `${SECRET_PREFIX}${randomBytes(GENERATED_SECRET_BYTES).toString("base64")}`;
}

/** Why a client-given secret is not acceptable, or undefined when it is. */
export function webhookSecretProblem(secret: string): string | undefined {
  if (!secret.startsWith(SECRET_PREFIX))
    return `must start with '${SECRET_PREFIX}' followed by base64 (omit it to let Herald generate one)`;
  const encoded = secret.slice(SECRET_PREFIX.length);
  if (!BASE64.test(encoded)) return `must be '${SECRET_PREFIX}' followed by standard base64`;
  const bytes = Buffer.from(encoded, "base64").length;
  if (bytes < SECRET_KEY_BYTES.min || bytes > SECRET_KEY_BYTES.max) {
    return `must encode ${SECRET_KEY_BYTES.min} to ${SECRET_KEY_BYTES.max} bytes; it encodes ${bytes}`;
  }
  return undefined;
}
