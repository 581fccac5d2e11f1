-- The sequencer's stamping step (DESIGN §4) as one function, so that one round trip does what
-- otherwise takes four (BEGIN, lock, stamp, COMMIT): the leader calls it every few ms while busy.
--
-- Called as a single autocommit statement: SELECT * FROM herald_stamp_batch(5000).
-- 1. An unlocked look at the partial index change_events_unsequenced: when nothing waits, return
--    at once, without a row lock, so an idle poll assigns no transaction id and flushes no WAL.
-- 2. Lock the log_head row: stampers run one after another.
-- 3. Stamp. The function is VOLATILE, so in READ COMMITTED this statement takes a NEW snapshot,
--    after the lock was granted: it sees everything a previous stamper committed and never reuses a
--    position. Only committed events are visible, and a record's later event always has a larger id
--    than its earlier one and is only visible once the earlier one is, so id order keeps each
--    record's events in commit order. Positions are head+1 … head+n: dense.
--    The extra `c.position IS NULL` lets the planner reach rows through the partial index instead
--    of hash-joining against a sequential scan of the whole log.
-- 4. Move log_head and NOTIFY herald_log with the new head (delivered at commit).
CREATE FUNCTION herald_stamp_batch(
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
