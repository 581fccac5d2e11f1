-- Schedules (SPEC §7, DESIGN §6b, docs/files-and-exports.md "Schedules"): one row per scheduled
-- thing (a file reference's synchronisations, a SCHEDULED ETL, an export), keyed by its kind and its
-- owner's id. The scheduler of every worker process claims the rows whose next_due_at has come with
-- FOR UPDATE SKIP LOCKED, creates the run's job row and moves next_due_at to the schedule's first
-- due time after now, all in one transaction: each due time starts exactly one run whatever the
-- number of processes, and a run missed while nothing was running starts once, not once per miss.
CREATE TABLE schedules (
  kind          text NOT NULL
    CONSTRAINT schedules_kind CHECK (kind IN ('FILE_SYNCHRONIZATION', 'ETL', 'EXPORT')),
  owner_id      text NOT NULL,                   -- the file reference's, ETL's or export's id
  entity_id     bigint NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
  cron          text NOT NULL,                   -- five fields or a nickname, as parseSchedule keeps it
  timezone      text NOT NULL,                   -- IANA name the cron's wall-clock times are read in
  next_due_at   timestamptz NOT NULL,
  last_due_at   timestamptz,                     -- the due time of the last run started (or skipped)
  last_run_at   timestamptz,                     -- when that run was started, by the scheduler's clock
  last_error    text,                            -- why the last due time was skipped; NULL when it ran
  updated_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (kind, owner_id)
);
-- What every scheduler looks at each second: the earliest due rows.
CREATE INDEX schedules_next_due ON schedules (next_due_at);
