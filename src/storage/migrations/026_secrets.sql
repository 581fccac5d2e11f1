-- Secrets at rest (docs/files-and-exports.md "Secrets at rest"): a known text sealed with
-- HERALD_SECRET_KEY when Herald first starts with a key. Every later start opens it before reading
-- anything else, so a wrong key is refused at once (exit code 2), even on a database that holds no
-- sealed value yet, instead of sealing new values with a key the others do not share.
-- One row at most (id is always true).
CREATE TABLE secret_key_check (
  id          boolean PRIMARY KEY DEFAULT true CHECK (id),
  sealed      text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);
