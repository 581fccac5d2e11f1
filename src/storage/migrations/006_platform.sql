-- Platform: an API key's name is unique among the licence's live keys only, so the name of a
-- revoked key can be given to its replacement (the revoked row stays for the audit trail).
ALTER TABLE api_keys DROP CONSTRAINT api_keys_licence_id_name_key;
CREATE UNIQUE INDEX api_keys_live_name ON api_keys (licence_id, name) WHERE revoked_at IS NULL;
