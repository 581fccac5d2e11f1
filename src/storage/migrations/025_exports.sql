-- Exports (SPEC §7.3, docs/files-and-exports.md): definitions and their executions.

-- An export: a name and a definition (the §7.3 JSON, as checked and normalised). An INCREMENTAL
-- export also keeps where its last successful execution ended in the change log:
--   incremental_position  every event of the table at or below it is in an execution already
--                          (NULL: no successful execution yet, the next one writes every row);
--   incremental_skip       ids of the table's events above it that are in an execution already
--                          (events committed before that execution's snapshot but not yet stamped
--                          by the sequencer: they get positions above incremental_position).
-- Housekeeping never prunes the log past incremental_position (housekeeping-repository.ts).
CREATE TABLE exports (
  id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  entity_id             bigint NOT NULL REFERENCES entities (id),
  name                  text NOT NULL,
  definition            jsonb NOT NULL,
  table_id              text NOT NULL,
  incremental_position  bigint,
  incremental_skip      bigint[] NOT NULL DEFAULT '{}',
  created_at            timestamptz NOT NULL DEFAULT now(),
  updated_at            timestamptz NOT NULL DEFAULT now(),
  UNIQUE (entity_id, name)
);
CREATE INDEX exports_incremental ON exports (incremental_position)
  WHERE incremental_position IS NOT NULL;

-- An execution is a durable job (DESIGN §6b) claimed under a lease. It has no checkpoint: an
-- execution interrupted by a crash runs again from the start (its snapshot transaction rolled back
-- with the file it was writing). Executions of one export run one at a time, in order.
CREATE TABLE export_executions (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  entity_id       bigint NOT NULL REFERENCES entities (id),
  export_id       bigint NOT NULL REFERENCES exports (id) ON DELETE CASCADE,
  status          text NOT NULL DEFAULT 'PENDING'
                  CHECK (status IN ('PENDING', 'RUNNING', 'SUCCESS', 'ERROR')),
  origin          jsonb NOT NULL DEFAULT '{}',
  created_at      timestamptz NOT NULL DEFAULT now(),
  started_at      timestamptz,
  finished_at     timestamptz,
  lease_owner     text,
  lease_until     timestamptz,
  runs            integer NOT NULL DEFAULT 0,
  failures        integer NOT NULL DEFAULT 0,
  mode            text,
  file_id         uuid REFERENCES stored_files (id) ON DELETE SET NULL,
  file_name       text,
  row_count       bigint,
  bytes           bigint,
  from_position   bigint,
  to_position     bigint,
  skip_event_ids  bigint[],
  destination     text,
  error           jsonb
);
CREATE INDEX export_executions_unfinished ON export_executions (export_id, id)
  WHERE status IN ('PENDING', 'RUNNING');
CREATE INDEX export_executions_export ON export_executions (export_id, id);
