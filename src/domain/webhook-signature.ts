/**
 * Standard Webhooks signatures (SPEC §6): `webhook-signature: v1,<base64 HMAC-SHA256>` over
 * `"<webhook-id>.<webhook-timestamp>.<body>"`, keyed by the bytes the secret's base64 part decodes to.
 * During a secret rotation the previous secret signs too, so a receiver that still has the old secret
 * keeps verifying; the two signatures are separated by a space.
 */
import { createHmac } from "node:crypto";

export const SECRET_PREFIX = "whsec_";

export interface SigningSecrets {
  secret: string;
  previousSecret: string | null;
  previousSecretExpiresAt: Date | null;
}

/** The HMAC key: the base64 part after `whsec_` (a secret without the prefix is taken as base64 too). */
export function secretKey(secret: string): Buffer {
  const encoded = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret;
  return Buffer.from(encoded, "base64");
}

/** One `v1,<base64>` signature of a message. */
export function signatureOf(
  secret: string,
  webhookId: string,
  timestampSeconds: number,
  body: string | Uint8Array,
): string {
  // Two updates hash the same bytes as one over the joined text, without copying a large body.
  const mac = createHmac("sha256", secretKey(secret))
    .update(`${webhookId}.${timestampSeconds}.`)
    .update(body)
    .digest("base64");
  return `v1,${mac}`;
}

/** The secrets that sign at `now`: the current one, plus the previous one inside its grace period. */
export function activeSecrets(secrets: SigningSecrets, now: Date): string[] {
  const list = [secrets.secret];
  if (
    secrets.previousSecret &&
    secrets.previousSecretExpiresAt &&
    secrets.previousSecretExpiresAt.getTime() > now.getTime()
  ) {
    list.push(secrets.previousSecret);
  }
  return list;
}

/** The three Standard Webhooks headers of one attempt (the timestamp is the attempt's time). */
export function webhookSignatureHeaders(
  secrets: SigningSecrets,
  webhookId: string,
  body: string | Uint8Array,
  now: Date,
): { "webhook-id": string; "webhook-timestamp": string; "webhook-signature": string } {
  const timestamp = Math.floor(now.getTime() / 1000);
  const signature = activeSecrets(secrets, now)
    .map((secret) => signatureOf(secret, webhookId, timestamp, body))
    .join(" ");
  return {
    "webhook-id": webhookId,
    "webhook-timestamp": String(timestamp),
    "webhook-signature": signature,
  };
}
