-- change_events.position was declared UNIQUE, and a unique constraint's index holds an entry for
-- every row, NULL included: each event entered it twice, once unstamped at insert and once more when
-- the sequencer stamped it. Only stamped positions need to be unique (and only they are ever looked
-- up: every position query compares it, so it implies NOT NULL), so a partial unique index over the
-- stamped events keeps the guarantee with one entry per event instead of two.
-- On a large existing log this builds the indexes once at upgrade (writes wait for it).
CREATE UNIQUE INDEX change_events_position ON change_events (position) WHERE position IS NOT NULL;
ALTER TABLE change_events DROP CONSTRAINT change_events_position_key;

-- change_events_occurred (replays from a moment, housekeeping, lag figures) is only ever read for
-- stamped events, and an unstamped event's entry is replaced when the sequencer stamps it (a stamp
-- writes a new row version): over stamped events only, it too takes one entry per event, not two.
DROP INDEX change_events_occurred;
CREATE INDEX change_events_occurred ON change_events (occurred_at) WHERE position IS NOT NULL;
