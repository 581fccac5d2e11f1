/**
 * Mapping between `webhook_subscriptions` rows and the domain `Subscription`. The row's `secret` and
 * `previous_secret` are sealed (src/storage/sealed-values.ts); the Subscription holds them opened.
 */
import type { SecretBox } from "../domain/secret-box.js";
import type { EventSource, EventType } from "../domain/change-event.js";
import type { MatchingConditions } from "../domain/conditions.js";
import type {
  PayloadVersion,
  PushMode,
  Subscription,
  SubscriptionState,
} from "../domain/subscription.js";
import { openStored } from "./sealed-values.js";

export const SUBSCRIPTION_COLUMNS = `s.id, s.entity_id, e.name AS entity_name, s.source, s.element_id, s.event_type, s.on_fields,
  s.target_url, s.headers, s.is_active, s.push_mode, s.max_block_size, s.linger_ms, s.max_wait_ms, s.max_concurrency,
  s.include_previous, s.conditions, s.payload_version, s.secret, s.previous_secret, s.previous_secret_expires_at, s.state, s.state_reason,
  s.failing_since, s.expires_at, s.created_at, s.updated_at`;

/** FROM clause matching SUBSCRIPTION_COLUMNS. */
export const SUBSCRIPTION_FROM = "webhook_subscriptions s JOIN entities e ON e.id = s.entity_id";

export interface SubscriptionRow {
  id: number;
  entity_id: number;
  entity_name: string;
  source: string;
  element_id: string | null;
  event_type: string;
  on_fields: string[];
  target_url: string;
  headers: Record<string, string>;
  is_active: boolean;
  push_mode: string;
  max_block_size: number;
  linger_ms: number;
  max_wait_ms: number;
  max_concurrency: number;
  include_previous: boolean;
  conditions: MatchingConditions | null;
  payload_version: number;
  secret: string;
  previous_secret: string | null;
  previous_secret_expires_at: Date | null;
  state: string;
  state_reason: string | null;
  failing_since: Date | null;
  expires_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

export function toSubscription(row: SubscriptionRow, secrets: SecretBox): Subscription {
  return {
    id: row.id,
    entityId: row.entity_id,
    entityName: row.entity_name,
    on: row.source as EventSource,
    onElementId: row.element_id,
    eventType: row.event_type as EventType,
    onFields: row.on_fields,
    targetUrl: row.target_url,
    headers: row.headers,
    isActive: row.is_active,
    pushMode: row.push_mode as PushMode,
    maxBlockSize: row.max_block_size,
    lingerMs: row.linger_ms,
    maxWaitMs: row.max_wait_ms,
    maxConcurrency: row.max_concurrency,
    includePrevious: row.include_previous,
    conditions: row.conditions,
    payloadVersion: row.payload_version as PayloadVersion,
    secret: openStored(secrets, row.secret),
    previousSecret: openStored(secrets, row.previous_secret),
    previousSecretExpiresAt: row.previous_secret_expires_at,
    state: row.state as SubscriptionState,
    stateReason: row.state_reason,
    failingSince: row.failing_since,
    expiresAt: row.expires_at,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}
