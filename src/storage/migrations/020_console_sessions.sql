-- Console sessions (SPEC §8, docs/console.md): a person signs in at /ui with an API key and gets a
-- session cookie. The session is a row, so that every API process serves it and signing out (or
-- revoking the key) ends it everywhere at once. Only the token's hash is stored; the CSRF token is
-- not a secret towards the person who holds the session, so it is stored as it is.
CREATE TABLE console_sessions (
  token_hash  text PRIMARY KEY,
  api_key_id  bigint NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
  csrf_token  text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz NOT NULL
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);
