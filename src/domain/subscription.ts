/** Webhook subscriptions (SPEC §4). */
import type { MatchingConditions } from "./conditions.js";
import type { EventSource, EventType } from "./change-event.js";

export const PUSH_MODES = ["ONE_BY_ONE", "BULK"] as const;
export type PushMode = (typeof PUSH_MODES)[number];

/**
 * [ext] The shape of the event objects a subscription receives (SPEC §4): 2 is SPEC §5's flat data
 * object; 1 is the older Actito push format (`{"tableType", "tableId", "eventType", "data": {"id",
 * "businessKey", …}}`), for table subscriptions whose consumers still read it.
 */
export const PAYLOAD_VERSIONS = [1, 2] as const;
export type PayloadVersion = (typeof PAYLOAD_VERSIONS)[number];

export const SUBSCRIPTION_STATES = ["ACTIVE", "FAILING", "DISABLED"] as const;
export type SubscriptionState = (typeof SUBSCRIPTION_STATES)[number];

export const SUBSCRIPTION_DEFAULTS = {
  pushMode: "ONE_BY_ONE",
  maxBlockSize: 100,
  lingerMs: 1000,
  maxWaitMs: 5000,
  maxConcurrency: 8,
  includePrevious: false,
  payloadVersion: 2,
} as const;

export interface Subscription {
  id: number;
  entityId: number;
  entityName: string;
  on: EventSource;
  /** null = every element of that source (trigger sources only). */
  onElementId: string | null;
  eventType: EventType;
  onFields: string[];
  targetUrl: string;
  headers: Record<string, string>;
  isActive: boolean;
  pushMode: PushMode;
  maxBlockSize: number;
  lingerMs: number;
  maxWaitMs: number;
  maxConcurrency: number;
  includePrevious: boolean;
  conditions: MatchingConditions | null;
  payloadVersion: PayloadVersion;
  /** Current signing secret, `whsec_<base64>`. */
  secret: string;
  /** Previous secret still accepted until `previousSecretExpiresAt` (rotation grace period). */
  previousSecret: string | null;
  previousSecretExpiresAt: Date | null;
  state: SubscriptionState;
  stateReason: string | null;
  /** When the endpoint started failing everything (set while FAILING; SPEC §6 endpoint health). */
  failingSince: Date | null;
  /**
   * [ext] When housekeeping deletes the subscription (a temporary one, such as `herald listen`
   * makes and keeps renewing); null = never.
   */
  expiresAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

/**
 * What a client sets on a subscription (create or replace); the rest is assigned or delivery state.
 * `payloadVersion` left out is the default (2); `expiresAt` left out is null (never expires).
 */
export type SubscriptionSettings = Pick<
  Subscription,
  | "on"
  | "onElementId"
  | "eventType"
  | "onFields"
  | "targetUrl"
  | "headers"
  | "isActive"
  | "pushMode"
  | "maxBlockSize"
  | "lingerMs"
  | "maxWaitMs"
  | "maxConcurrency"
  | "includePrevious"
  | "conditions"
  | "secret"
> & { payloadVersion?: PayloadVersion; expiresAt?: Date | null };

/** The read-only [ext] `status` block of a subscription (SPEC §4). */
export interface SubscriptionStatus {
  state: SubscriptionState;
  reason: string | null;
  /** Log positions not yet behind the subscription's watermark (log head − watermark). */
  lag: number;
  /** Records whose events are parked behind a failing one (DESIGN §5). */
  parkedRecords: number;
}

/**
 * The status shown to clients. A subscription switched off by a client (`isActive: false`) shows
 * DISABLED even though delivery never marked it so; delivery's own reason wins when it has one.
 */
export function subscriptionStatus(
  subscription: Pick<Subscription, "isActive" | "state" | "stateReason">,
  watermark: number,
  logHead: number,
  parkedRecords = 0,
): SubscriptionStatus {
  const lag = Math.max(0, logHead - watermark);
  if (!subscription.isActive) {
    return {
      state: "DISABLED",
      reason: subscription.stateReason ?? "deactivated (isActive is false)",
      lag,
      parkedRecords,
    };
  }
  return { state: subscription.state, reason: subscription.stateReason, lag, parkedRecords };
}
