/**
 * Liveness locks of delivery workers (migration 018, docs/delivery.md "Workers, leases and
 * scale-out"). On PostgreSQL a worker holds a session advisory lock on a connection of its own for
 * as long as it lives, and records the lock's key in `delivery_workers.liveness_key`. The server
 * drops the lock the moment that session ends (the process was killed, the connection died), so
 * "the key recorded for the holder of a lease is not held" is how other workers learn, within a
 * second, that the lease's holder is gone. The lease row stays the authority on who may drive a
 * subscription: the lock only decides how soon a lease may be taken over.
 */
import type { Queryable } from "./database.js";
import { ADVISORY_LOCKS } from "./database.js";

const LOW_BITS = 4_294_967_296;

/**
 * SQL: the keys of the bigint advisory locks held in this database right now (pg_locks shows a
 * bigint key as its high 32 bits in classid and its low 32 bits in objid, with objsubid 1).
 * pg_locks is the lock manager's live state, not a snapshot: a lock released a moment ago is gone.
 */
export const HELD_LIVENESS_KEYS = `SELECT l.classid::bigint * ${LOW_BITS} + l.objid::bigint AS key
    FROM pg_locks l
   WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted
     AND l.classid::bigint = ${ADVISORY_LOCKS.workerLiveness}
     AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`;

/** A fresh key for a worker's liveness lock (a key is never taken twice until the sequence cycles). */
export async function allocateLivenessKey(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ key: number }>(
    `SELECT $1::bigint * ${LOW_BITS} + nextval('delivery_worker_liveness_keys') AS key`,
    [ADVISORY_LOCKS.workerLiveness],
  );
  const key = rows[0]?.key;
  if (key === undefined) throw new Error("no liveness key allocated");
  return key;
}

/** Whether some session of this database holds the liveness lock `key` right now. */
export async function livenessKeyHeld(db: Queryable, key: number): Promise<boolean> {
  const { rows } = await db.query<{ held: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM (${HELD_LIVENESS_KEYS}) h WHERE h.key = $1) AS held`,
    [key],
  );
  return rows[0]?.held === true;
}
