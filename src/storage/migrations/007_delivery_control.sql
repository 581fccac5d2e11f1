-- Delivery control (SPEC §4 [ext] …/replay): replay requests a client made, executed by the delivery
-- worker that holds the subscription's lease. A replay re-sends the log positions
-- [from_position, to_position] that match the subscription, as ordinary new pushes, without moving
-- the subscription's watermark. `cursor` is the replay's own progress: every matching event at or
-- below it has been re-sent, so a replay interrupted by a crash or a lease hand-over resumes there.
CREATE TABLE subscription_replays (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  subscription_id  bigint NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
  from_position    bigint NOT NULL CHECK (from_position >= 1),
  to_position      bigint NOT NULL CHECK (to_position >= from_position),   -- the log head at request time, or the client's toPosition
  cursor           bigint NOT NULL,                 -- from_position - 1 until the first event is re-sent
  from_time        timestamptz,                     -- what the client asked, when it asked by time
  status           text NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'RUNNING', 'DONE', 'CANCELLED')),
  status_reason    text,
  events_sent      bigint NOT NULL DEFAULT 0,
  requested_at     timestamptz NOT NULL DEFAULT now(),
  started_at       timestamptz,
  finished_at      timestamptz,
  worker_id        text
);
-- The engine looks for a subscription's open replays (oldest first); housekeeping reads their cursors.
CREATE INDEX subscription_replays_open ON subscription_replays (subscription_id, id)
  WHERE status IN ('PENDING', 'RUNNING');

-- Endpoint health (SPEC §6): the last operational event announced for a subscription's endpoint
-- ('warn' after 24 h of failure, 'disable' after 3 days; NULL = nothing announced or recovered since).
-- Kept in the row so a warning goes out once, whichever worker holds the lease and across restarts.
ALTER TABLE webhook_subscriptions ADD COLUMN health_announced text
  CHECK (health_announced IN ('warn', 'disable'));
