-- Delivery worker liveness (DESIGN §5, docs/delivery.md "Workers, leases and scale-out"): on
-- PostgreSQL every delivery worker holds a session advisory lock for as long as it lives, and
-- records its key here. A lease whose holder's lock is gone (the process was killed, its session
-- ended) is taken over within a few seconds instead of when it expires. NULL: the worker holds no
-- such lock (the embedded database, or a Herald from before this migration): its leases only move
-- when they expire.
ALTER TABLE delivery_workers ADD COLUMN liveness_key bigint;
-- The low 32 bits of the keys (the high ones are ADVISORY_LOCKS.workerLiveness): a worker takes a
-- fresh key each time it (re)acquires its lock, so a key, once gone, never comes back.
CREATE SEQUENCE delivery_worker_liveness_keys AS bigint MINVALUE 1 MAXVALUE 4294967295 CYCLE;
