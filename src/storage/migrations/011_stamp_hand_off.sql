-- A stamping round can hand the events it stamped to the delivery workers of its own process, so
-- they need not read them back from the log a round trip later (src/storage/log-channels.ts).
--
-- herald_stamp_events(batch_size, hand_off) stamps exactly as herald_stamp_batch did under 009 (the
-- same unlocked look, the same advisory lock, the same second look, the same log_head row lock, the
-- same UPDATE), and when it stamped between 1 and `hand_off` events it also returns them, as a JSON
-- array in position order: every event with a position in (head - stamped, head]. Those positions
-- were all given by this transaction (it holds the log_head row lock and read start_head under it),
-- and it reads them after its own UPDATE, so the array holds the whole range, as it will be once the
-- transaction has committed. The caller uses them only after the commit (the call's result), never
-- instead of the log: it is the same data a read of the log would return.
--
-- The read is one index range scan of the position index over rows this transaction just wrote, so
-- it costs little inside the stamp lock; beyond `hand_off` events (a backlog) nothing is returned
-- and workers read the log as before. hand_off 0 returns nothing (no worker in this process).
--
-- herald_stamp_batch keeps its signature and becomes this function with hand_off 0, so every
-- process, whatever its version, stamps through one definition (see 009).
CREATE FUNCTION herald_stamp_events(
  batch_size integer,
  hand_off integer,
  OUT stamped integer,
  OUT head bigint,
  OUT max_lag_ms double precision,
  OUT events json
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

  -- occurredAt in whole milliseconds since the epoch, rounded down: the value the pg driver's
  -- timestamptz parser and readLogWindow's text give (both drop the microseconds).
  IF stamped > 0 AND stamped <= hand_off THEN
    SELECT json_agg(json_build_object(
             'id', e.id, 'position', e.position, 'entityId', e.entity_id, 'source', e.source,
             'sourceId', e.source_id, 'eventType', e.event_type, 'recordKey', e.record_key,
             'keys', e.keys, 'state', e.state, 'fields', e.fields, 'previous', e.previous,
             'extra', e.extra, 'version', e.version, 'declaredEvents', e.declared_events,
             'origin', e.origin,
             'occurredAt', floor(extract(epoch FROM e.occurred_at) * 1000))
           ORDER BY e.position)
      INTO events
      FROM change_events e
     WHERE e.position > head - stamped AND e.position <= head;
  END IF;
END;
$$;

CREATE OR REPLACE FUNCTION herald_stamp_batch(
  batch_size integer,
  OUT stamped integer,
  OUT head bigint,
  OUT max_lag_ms double precision
) LANGUAGE sql VOLATILE AS $$
  SELECT s.stamped, s.head, s.max_lag_ms FROM herald_stamp_events(batch_size, 0) AS s;
$$;
