-- Custom actions and scenarios (SPEC §7.4, DESIGN §6b, docs/scenarios.md).

-- A custom action: a named call to an outside system, with typed parameters. Triggering it (the
-- trigger call, or a scenario's CUSTOM_ACTION block) appends a TRIGGER event (source CUSTOM_ACTION,
-- the action's id as element) in the transaction that decided it.
CREATE TABLE custom_actions (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  entity_id     bigint NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
  name          text NOT NULL,
  description   text,
  parameters    jsonb NOT NULL DEFAULT '[]',   -- [{name, valueType, mandatory}], as parseCustomAction keeps them
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT custom_actions_name UNIQUE (entity_id, name)
);

-- A scenario: a start and a graph of blocks over one profile table. An ACTIVE scenario whose start
-- reads the change log (DATA_EVENT, SEGMENT_ENTRY, SUBSCRIPTION) is a log consumer like a
-- subscription: `log_cursor` is the position up to which the log has been read for it (runs for
-- the events up to it are created in the transaction that moves it), claimed by one worker at a
-- time under `lease_owner`/`lease_until`. Activation sets the cursor to the log head: events
-- before activation start nothing.
CREATE TABLE scenarios (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  entity_id        bigint NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
  name             text NOT NULL,
  table_id         text NOT NULL REFERENCES data_tables (id) ON DELETE CASCADE,
  definition       jsonb NOT NULL,                  -- the definition as parseScenario keeps it
  status           text NOT NULL DEFAULT 'INACTIVE'
    CONSTRAINT scenarios_status CHECK (status IN ('INACTIVE', 'ACTIVE')),
  activated_at     timestamptz,
  deactivated_at   timestamptz,
  log_cursor       bigint,                          -- NULL while the scenario never was active
  lease_owner      text,
  lease_until      timestamptz,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT scenarios_name UNIQUE (entity_id, name)
);
-- What the starters look at: the active scenarios.
CREATE INDEX scenarios_active ON scenarios (id) WHERE status = 'ACTIVE';

-- The custom actions a scenario's blocks use (kept with the definition): deleting a custom action
-- that an ACTIVE scenario uses is refused (409), and activation locks the actions it uses, so the
-- two cannot pass each other.
CREATE TABLE scenario_custom_actions (
  scenario_id       bigint NOT NULL REFERENCES scenarios (id) ON DELETE CASCADE,
  custom_action_id  bigint NOT NULL,
  PRIMARY KEY (scenario_id, custom_action_id)
);
CREATE INDEX scenario_custom_actions_action ON scenario_custom_actions (custom_action_id);

-- A run: one profile's way through a scenario. While it runs, `block_id` is the block it is to run
-- next and `due_at` when (a WAIT's end; the start time for any other block). A worker takes due
-- runs with FOR UPDATE SKIP LOCKED and, in one transaction, runs their blocks (the block's effect:
-- a TRIGGER event, a profile write), moves each run to its next block (or ends it) and counts the
-- blocks in scenario_block_counts: a crash repeats nothing and skips nothing.
-- `entry_key` enforces the re-entry policy: NEVER keeps the profile's id for good; AFTER_EXIT keeps
-- it until the run ends (then NULL); ALWAYS never sets it. At most one row per key and scenario.
CREATE TABLE scenario_runs (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  scenario_id   bigint NOT NULL REFERENCES scenarios (id) ON DELETE CASCADE,
  entity_id     bigint NOT NULL,
  profile_id    bigint NOT NULL,                 -- the profile's record id (no foreign key: a run
                                                 -- outlives its profile's deletion and ends at its next block)
  status        text NOT NULL
    CONSTRAINT scenario_runs_status CHECK (status IN ('WAITING', 'RUNNING', 'FINISHED', 'CANCELLED', 'FAILED')),
  block_id      text NOT NULL,                   -- the next block to run; once ended, the block it ended in
  due_at        timestamptz,                     -- NULL once ended
  entry_key     text,
  start         jsonb NOT NULL,                  -- what started it: {type, position, eventId} | {type: "API", …} | {type: "DATE", date}
  steps         integer NOT NULL DEFAULT 0,      -- blocks run so far
  failures      integer NOT NULL DEFAULT 0,      -- attempts of the current block that failed
  last_error    text,
  started_at    timestamptz NOT NULL,
  updated_at    timestamptz NOT NULL,
  ended_at      timestamptz
);
CREATE UNIQUE INDEX scenario_runs_entry ON scenario_runs (scenario_id, entry_key) WHERE entry_key IS NOT NULL;
-- What every run worker looks at: the earliest due runs.
CREATE INDEX scenario_runs_due ON scenario_runs (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX scenario_runs_list ON scenario_runs (scenario_id, id);
CREATE INDEX scenario_runs_profile ON scenario_runs (scenario_id, profile_id);

-- Per block of a scenario: runs that entered it, passed it (went on to a next block) and left the
-- scenario in it (an EXIT, a FILTER with no way on, a cancellation, a failure). Runs waiting in a
-- block are counted from scenario_runs.
CREATE TABLE scenario_block_counts (
  scenario_id  bigint NOT NULL REFERENCES scenarios (id) ON DELETE CASCADE,
  block_id     text NOT NULL,
  entered      bigint NOT NULL DEFAULT 0,
  passed       bigint NOT NULL DEFAULT 0,
  exited       bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (scenario_id, block_id)
);

-- DATE starts are schedules (one row per scenario, kind SCENARIO): each day at the start's time,
-- in its time zone, exactly one worker starts the day's runs.
ALTER TABLE schedules DROP CONSTRAINT schedules_kind;
ALTER TABLE schedules ADD CONSTRAINT schedules_kind
  CHECK (kind IN ('FILE_SYNCHRONIZATION', 'ETL', 'EXPORT', 'SCENARIO'));
