-- Record writes and table definition changes meet at a gate, so that no record is written with a
-- definition that is no longer the table's (docs/data-model.md, "Definition changes and record writes").
--
-- Before: an API process validated a write against its cached copy of the table's definition (up
-- to 3 s old for a change made in another process), and a write that had read the previous
-- definition could commit beside a PUT. A foreign key or a unique attribute added by PUT could then
-- be bypassed by a record the PUT's checks never saw.
--
-- Now every definition change bumps data_tables.version, and every record write passes the gate
-- first, inside its own transaction or statement:
-- 1. herald_table_write_gate takes a transaction-scoped SHARED advisory lock per table it writes to
--    (ADVISORY_LOCKS.tableWrites, hashtext(table id); sorted, so two writers never wait in
--    opposite orders). It writes no WAL and assigns no transaction id.
-- 2. It then compares the versions the write was validated against with the tables' rows. The
--    function is VOLATILE, so in READ COMMITTED this SELECT takes a snapshot of its own, after the
--    locks: a change committed while the write waited is seen. false = a definition changed (or
--    the table is gone): the caller writes nothing, reads the definition again and starts over.
-- 3. A definition change (PUT, DELETE of a table) takes the same locks EXCLUSIVE with
--    herald_lock_table_writes before its checks: it waits until every write that passed the gate
--    has committed or rolled back, so its checks (records present, references held) see them all;
--    writes arriving meanwhile wait, then find the new version and start over.
ALTER TABLE data_tables ADD COLUMN version bigint NOT NULL DEFAULT 1;

CREATE FUNCTION herald_table_write_gate(table_ids text[], versions bigint[])
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
       SELECT 1 FROM data_tables d WHERE d.id = w.id AND d.version = w.version));
END;
$$;

CREATE FUNCTION herald_lock_table_writes(table_ids text[])
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  t text;
BEGIN
  FOR t IN SELECT DISTINCT u.id FROM unnest(table_ids) AS u(id) ORDER BY u.id LOOP
    PERFORM pg_advisory_xact_lock(72630007, hashtext(t));
  END LOOP;
END;
$$;
