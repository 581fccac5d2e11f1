-- Stamping rounds may now overlap (the sequencer sends the next round while the previous one
-- commits, see src/sequencer/sequencer-service.ts): herald_stamp_batch is replaced, in place, so
-- that a round which finds nothing left once it may stamp ends without writing anything.
--
-- Under 005 a round that saw waiting events took the log_head row lock at once. A row lock writes
-- WAL and gives the transaction an id, so its commit waits for a WAL flush even when, once the lock
-- was granted, the previous stamper had stamped everything already. Now:
-- 1. The same unlocked look at the partial index change_events_unsequenced: nothing waits, return.
-- 2. Take the transaction-scoped advisory lock ADVISORY_LOCKS.sequencerStamp (src/storage/
--    database.ts): stampers run one after another. It writes no WAL and assigns no transaction id.
--    It is released after the holder's commit is visible.
-- 3. Look again, with a new snapshot (the function is VOLATILE, so in READ COMMITTED each statement
--    takes one): everything a previous stamper committed is visible now. Nothing waits: return,
--    having written nothing (a read-only commit needs no flush).
-- 4. Lock the log_head row and stamp exactly as 005 did (the row lock stays: every stamper takes
--    both locks in the same order, so 005's argument for dense positions holds unchanged), move
--    log_head and NOTIFY herald_log with the new head (delivered at commit).
-- Replacing the function in place means every process, whatever its version, stamps through this
-- one definition: no stamper can skip the advisory lock.
CREATE OR REPLACE FUNCTION herald_stamp_batch(
  batch_size integer,
  OUT stamped integer,
  OUT head bigint,
  OUT max_lag_ms double precision
) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  start_head bigint;
BEGIN
  stamped := 0;
  max_lag_ms := 0;
  IF NOT EXISTS (SELECT 1 FROM change_events WHERE position IS NULL) THEN
    SELECT position INTO head FROM log_head;
    RETURN;
  END IF;

  PERFORM pg_advisory_xact_lock(72630003);

  IF NOT EXISTS (SELECT 1 FROM change_events WHERE position IS NULL) THEN
    SELECT position INTO head FROM log_head;
    RETURN;
  END IF;

  SELECT position INTO start_head FROM log_head FOR UPDATE;

  WITH pending AS (
    SELECT id, start_head + row_number() OVER (ORDER BY id) AS pos
      FROM change_events
     WHERE position IS NULL
     ORDER BY id
     LIMIT batch_size
  ), done AS (
    UPDATE change_events c
       SET position = p.pos, sequenced_at = clock_timestamp()
      FROM pending p
     WHERE c.id = p.id
       AND c.position IS NULL
    RETURNING c.position, c.occurred_at, c.sequenced_at
  )
  SELECT count(*)::integer,
         coalesce(max(done.position), start_head),
         coalesce(max(extract(epoch FROM done.sequenced_at - done.occurred_at) * 1000), 0)::double precision
    INTO stamped, head, max_lag_ms
    FROM done;

  IF stamped > 0 THEN
    UPDATE log_head SET position = head;
    PERFORM pg_notify('herald_log', head::text);
  END IF;
END;
$$;
