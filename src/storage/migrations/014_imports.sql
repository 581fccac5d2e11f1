-- Imports (SPEC §7.1, DESIGN §6b): the file store, predefined ETLs, executions and their rejected
-- rows. See docs/imports.md.

-- The file store: a file is a row and its content chunks of about 1 MiB, so that every process can
-- read what another received, streamed both ways, never whole in memory. A file is usable once
-- `complete` (an upload that failed midway leaves an incomplete row that housekeeping removes).
CREATE TABLE stored_files (
  id          uuid PRIMARY KEY,
  entity_id   bigint NOT NULL REFERENCES entities (id),
  name        text NOT NULL,
  bytes       bigint NOT NULL DEFAULT 0,
  sha256      text,
  complete    boolean NOT NULL DEFAULT false,
  created_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz NOT NULL
);
CREATE INDEX stored_files_expiry ON stored_files (expires_at);

-- start_offset: the chunk's first byte in the file, so a reader can seek (ZIP reads its directory
-- at the end first) with one primary-key probe per chunk.
CREATE TABLE stored_file_chunks (
  file_id       uuid NOT NULL REFERENCES stored_files (id) ON DELETE CASCADE,
  seq           integer NOT NULL,
  start_offset  bigint NOT NULL,
  data          bytea NOT NULL,
  PRIMARY KEY (file_id, seq)
);

-- Predefined ETLs: a name and a definition (the §7.1 JSON, as checked and normalised).
CREATE TABLE etls (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  entity_id   bigint NOT NULL REFERENCES entities (id),
  name        text NOT NULL,
  definition  jsonb NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (entity_id, name)
);

-- An execution is a durable job (DESIGN §6b): claimed by a worker under a lease, and its progress
-- (checkpoint_records: data records of the file consumed, applied or rejected; the counts; the
-- rejected rows) is committed in the same transaction as the rows it describes. A worker that
-- resumes another's execution skips the first checkpoint_records records of the file unapplied.
CREATE TABLE etl_executions (
  id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  entity_id           bigint NOT NULL REFERENCES entities (id),
  etl_id              bigint REFERENCES etls (id) ON DELETE SET NULL,
  etl_name            text,
  definition          jsonb NOT NULL,
  table_id            text NOT NULL,
  file_id             uuid REFERENCES stored_files (id) ON DELETE SET NULL,
  file_name           text NOT NULL,
  file_bytes          bigint NOT NULL,
  file_sha256         text NOT NULL,
  status              text NOT NULL DEFAULT 'PENDING'
                      CHECK (status IN ('PENDING', 'RUNNING', 'SUCCESS', 'WITH_ERROR', 'ERROR', 'CANCELLED')),
  origin              jsonb NOT NULL DEFAULT '{}',
  created_at          timestamptz NOT NULL DEFAULT now(),
  started_at          timestamptz,
  finished_at         timestamptz,
  lease_owner         text,
  lease_until         timestamptz,
  runs                integer NOT NULL DEFAULT 0,   -- claims (a resumed execution has several)
  failures            integer NOT NULL DEFAULT 0,   -- runs ended by an unexpected error
  cancel_requested    boolean NOT NULL DEFAULT false,
  checkpoint_records  bigint NOT NULL DEFAULT 0,
  checkpoint_line     bigint NOT NULL DEFAULT 0,
  bytes_read          bigint NOT NULL DEFAULT 0,
  rows_read           bigint NOT NULL DEFAULT 0,
  rows_created        bigint NOT NULL DEFAULT 0,
  rows_updated        bigint NOT NULL DEFAULT 0,
  rows_unchanged      bigint NOT NULL DEFAULT 0,
  rows_rejected       bigint NOT NULL DEFAULT 0,
  error               jsonb
);
-- What workers look for: executions not finished (a handful at any time).
CREATE INDEX etl_executions_unfinished ON etl_executions (id) WHERE status IN ('PENDING', 'RUNNING');
CREATE INDEX etl_executions_entity ON etl_executions (entity_id, id);

CREATE TABLE etl_rejected_rows (
  execution_id  bigint NOT NULL REFERENCES etl_executions (id) ON DELETE CASCADE,
  line          bigint NOT NULL,
  column_name   text,
  code          text NOT NULL,
  message       text NOT NULL,
  raw           text NOT NULL,
  PRIMARY KEY (execution_id, line)
);
