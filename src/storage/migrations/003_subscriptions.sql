-- Webhook subscriptions (SPEC §4) and their delivery cursor (DESIGN §5).
CREATE TABLE webhook_subscriptions (
  id                          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  entity_id                   bigint NOT NULL REFERENCES entities (id),
  source                      text NOT NULL,          -- the `on` field
  element_id                  text,                   -- `onElementId`; NULL = every element (trigger sources)
  event_type                  text NOT NULL,
  on_fields                   jsonb NOT NULL DEFAULT '[]',
  target_url                  text NOT NULL,
  headers                     jsonb NOT NULL DEFAULT '{}',
  is_active                   boolean NOT NULL DEFAULT true,
  push_mode                   text NOT NULL DEFAULT 'ONE_BY_ONE',
  max_block_size              integer NOT NULL DEFAULT 100,
  linger_ms                   integer NOT NULL DEFAULT 1000,
  max_wait_ms                 integer NOT NULL DEFAULT 5000,
  max_concurrency             integer NOT NULL DEFAULT 8,
  include_previous            boolean NOT NULL DEFAULT false,
  conditions                  jsonb,
  secret                      text NOT NULL,
  previous_secret             text,
  previous_secret_expires_at  timestamptz,
  -- Delivery state. watermark: every matching event at or below it is delivered, parked or failed.
  -- It starts at the log head when the subscription is created.
  watermark                   bigint NOT NULL DEFAULT 0,
  state                       text NOT NULL DEFAULT 'ACTIVE',   -- ACTIVE, FAILING, DISABLED
  state_reason                text,
  failing_since               timestamptz,
  -- Lease: the worker driving this subscription, until lease_expires_at.
  lease_owner                 text,
  lease_expires_at            timestamptz,
  created_at                  timestamptz NOT NULL DEFAULT now(),
  updated_at                  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_subscriptions_entity ON webhook_subscriptions (entity_id, id);
CREATE INDEX webhook_subscriptions_active ON webhook_subscriptions (is_active, lease_expires_at);
