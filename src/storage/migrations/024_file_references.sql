-- File references and their synchronisations (SPEC §7.2, DESIGN §6b). See docs/files-and-exports.md.

-- A file reference: where a file is fetched from. `source` is the source object as checked, without
-- its credentials; `credentials` holds them sealed with HERALD_SECRET_KEY (SecretBox: the JSON of
-- {password, privateKey}), NULL when the source has none. `schedule` ({cron, timezone}) is shown
-- back as given; the schedules table (migration 023) is what the scheduler claims.
CREATE TABLE file_references (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  entity_id    bigint NOT NULL REFERENCES entities (id),
  name         text NOT NULL,
  source       jsonb NOT NULL,
  credentials  text,
  schedule     jsonb,
  -- The zone date placeholders ($yyyyMMdd…) expand in.
  time_zone    text NOT NULL DEFAULT 'UTC',
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now(),
  UNIQUE (entity_id, name)
);

-- A synchronisation is a durable job like an import execution: claimed by a worker under a lease,
-- run again from its start when its worker died (a fetch has no useful checkpoint: the partial
-- file of an interrupted run is never marked complete and goes with housekeeping). Its final
-- status, its file and its FINISHED event commit together.
CREATE TABLE file_synchronizations (
  id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  entity_id          bigint NOT NULL REFERENCES entities (id),
  file_reference_id  bigint NOT NULL REFERENCES file_references (id) ON DELETE CASCADE,
  status             text NOT NULL DEFAULT 'PENDING'
                     CHECK (status IN ('PENDING', 'RUNNING', 'SUCCESS', 'UNCHANGED', 'NOT_FOUND', 'ERROR')),
  origin             jsonb NOT NULL DEFAULT '{}',
  -- The moment date placeholders expand at: the due time of a scheduled run, else the request's.
  fetch_at           timestamptz NOT NULL DEFAULT now(),
  -- A SCHEDULED ETL's run asked for this synchronisation: the ETL runs on the file it brings.
  run_etl_id         bigint REFERENCES etls (id) ON DELETE SET NULL,
  created_at         timestamptz NOT NULL DEFAULT now(),
  started_at         timestamptz,
  finished_at        timestamptz,
  lease_owner        text,
  lease_until        timestamptz,
  runs               integer NOT NULL DEFAULT 0,   -- claims (a resumed synchronisation has several)
  failures           integer NOT NULL DEFAULT 0,   -- runs ended by an unexpected error
  file_id            uuid REFERENCES stored_files (id) ON DELETE SET NULL,
  file_name          text,
  bytes              bigint,
  sha256             text,
  error              jsonb
);
-- What workers look for: synchronisations not finished (a handful at any time).
CREATE INDEX file_synchronizations_unfinished ON file_synchronizations (id)
  WHERE status IN ('PENDING', 'RUNNING');
-- A reference's synchronisations, newest first (lists, and the last file received).
CREATE INDEX file_synchronizations_reference ON file_synchronizations (file_reference_id, id);
-- deleteExpiredFiles asks whether an unfinished synchronisation holds a file.
CREATE INDEX file_synchronizations_file ON file_synchronizations (file_id) WHERE file_id IS NOT NULL;
