-- Deleting a table (SPEC §3, docs/data-model.md "Deleting a table"). Before: DELETE removed the
-- table and, by cascade, its records, with no event; subscribers never heard of those records going.
-- Now the request only marks the table deleted, and a durable job (DESIGN §6b,
-- jobs/table-deletion-worker.ts) deletes its records in batches, each record with the DELETE event a
-- one-by-one delete gives, then disables the subscriptions on the table (reason TABLE_DELETED) once
-- they have passed those events, and only then removes the table's row.

-- deleted_at: when the DELETE request was committed. From then on every lookup of
-- data-table-repository.ts skips the table (the API answers 404 for it), its write gate stays shut
-- (below), and its name is free for a new table: names are unique among live tables only.
ALTER TABLE data_tables ADD COLUMN deleted_at timestamptz;
ALTER TABLE data_tables DROP CONSTRAINT data_tables_entity_id_kind_name_key;
CREATE UNIQUE INDEX data_tables_live_name ON data_tables (entity_id, kind, name)
  WHERE deleted_at IS NULL;

-- The write gate of migration 013, also shut for a table being deleted: a write validated against
-- the table before the DELETE writes nothing, whatever copy of the definition it holds.
CREATE OR REPLACE FUNCTION herald_table_write_gate(table_ids text[], versions bigint[])
RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  t text;
BEGIN
  FOR t IN SELECT DISTINCT u.id FROM unnest(table_ids) AS u(id) ORDER BY u.id LOOP
    PERFORM pg_advisory_xact_lock_shared(72630007, hashtext(t));
  END LOOP;
  RETURN NOT EXISTS (
    SELECT 1
      FROM unnest(table_ids, versions) AS w(id, version)
     WHERE NOT EXISTS (
       SELECT 1 FROM data_tables d
        WHERE d.id = w.id AND d.version = w.version AND d.deleted_at IS NULL));
END;
$$;

-- One row per deleted table: the job, claimed by a worker under a lease like an import execution.
-- Each batch deletes records, appends their DELETE events and moves this row's progress in one
-- transaction, so a worker that dies loses nothing and repeats nothing: the next one goes on with
-- the records that are left. The row outlives the table's own (no foreign key): it says what
-- happened to the table and when.
--   DELETING_RECORDS   batches run until the table holds no record;
--   AWAITING_DELIVERY  every record is gone; waiting until each active subscription on the table
--                      has its watermark at or past last_position (delivered, parked or failed);
--   DONE               subscriptions disabled, the table's row removed.
CREATE TABLE table_deletions (
  table_id                text PRIMARY KEY,          -- data_tables.id of the deleted table
  entity_id               bigint NOT NULL REFERENCES entities (id),
  kind                    text NOT NULL,
  table_name              text NOT NULL,
  definition              jsonb NOT NULL,            -- the table as deleted: the DELETE events are built from it
  origin                  jsonb NOT NULL,            -- _event.origin of the DELETE events
  status                  text NOT NULL DEFAULT 'DELETING_RECORDS'
                          CHECK (status IN ('DELETING_RECORDS', 'AWAITING_DELIVERY', 'DONE')),
  requested_at            timestamptz NOT NULL DEFAULT now(),
  finished_at             timestamptz,
  lease_owner             text,
  lease_until             timestamptz,
  not_before              timestamptz,               -- claimed again no earlier (waiting, backing off)
  runs                    integer NOT NULL DEFAULT 0,
  failures                integer NOT NULL DEFAULT 0,
  last_error              text,
  delivery_checks         integer NOT NULL DEFAULT 0, -- AWAITING_DELIVERY looks so far (spaces them out)
  records_deleted         bigint NOT NULL DEFAULT 0,
  last_event_id           bigint,                    -- change_events.id of the last DELETE event appended
  last_position           bigint,                    -- its log position, once stamped
  subscriptions_disabled  integer
);
-- What workers look for: deletions not finished (a handful at any time).
CREATE INDEX table_deletions_open ON table_deletions (not_before) WHERE status <> 'DONE';
