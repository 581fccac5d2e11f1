-- [ext] payloadVersion of webhook subscriptions (SPEC §4; docs/subscriptions.md "Payload versions"):
-- 2 is the current payload (SPEC §5), 1 the older Actito push format. Existing subscriptions keep
-- what they were sent so far (2).
ALTER TABLE webhook_subscriptions
  ADD COLUMN payload_version integer NOT NULL DEFAULT 2
  CONSTRAINT webhook_subscriptions_payload_version CHECK (payload_version IN (1, 2));
