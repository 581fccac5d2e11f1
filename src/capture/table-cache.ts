/**
 * A short-lived in-process cache of table definitions for the write path: a profile upsert should
 * not read its table's definition from the database every time. Entries live a few seconds and a
 * table change made through this process forgets them at once, and one made through another
 * process as soon as its notice arrives (TABLES_CHANNEL, api/app.ts); TABLE_CACHE_MS bounds what a
 * lost notice costs reads. Writes never use an outdated copy: the table write gate stops them and
 * they run again (api/routes/data-route-context.ts, withCurrentTable; docs/data-model.md).
 * Only hits are cached, so a table created elsewhere is found on the next call.
 */
import type { DataTable, TableKind } from "../domain/data-table.js";
import { findTable } from "../storage/data-table-repository.js";
import type { Queryable } from "../storage/database.js";

export const TABLE_CACHE_MS = 3_000;
const MAX_ENTRIES = 1_000;

interface Entry {
  table: DataTable;
  until: number;
}

interface Cache {
  entries: Map<string, Entry>;
  /** Lookups in progress: concurrent misses of one table share one query. */
  pending: Map<string, Promise<DataTable | undefined>>;
  /** Bumped by forgetCachedTables: a lookup that started before does not store its answer. */
  generation: number;
}

/** One cache per database handle (tests open many databases in one process). */
const caches = new WeakMap<Queryable, Cache>();

function cacheOf(db: Queryable): Cache {
  let cache = caches.get(db);
  if (!cache) {
    cache = { entries: new Map(), pending: new Map(), generation: 0 };
    caches.set(db, cache);
  }
  return cache;
}

export async function findTableCached(
  db: Queryable,
  entityId: number,
  kind: TableKind,
  idOrName: string,
): Promise<DataTable | undefined> {
  const cache = cacheOf(db);
  const key = `${entityId}\u0000${kind}\u0000${idOrName}`;
  const hit = cache.entries.get(key);
  if (hit && hit.until > Date.now()) return hit.table;
  let pending = cache.pending.get(key);
  if (!pending) {
    const generation = cache.generation;
    pending = findTable(db, entityId, kind, idOrName).then(
      (table) => {
        if (cache.pending.get(key) === pending) cache.pending.delete(key);
        if (generation !== cache.generation) return table;
        if (!table) cache.entries.delete(key);
        else {
          if (cache.entries.size >= MAX_ENTRIES) cache.entries.clear();
          cache.entries.set(key, { table, until: Date.now() + TABLE_CACHE_MS });
        }
        return table;
      },
      (error: unknown) => {
        if (cache.pending.get(key) === pending) cache.pending.delete(key);
        throw error;
      },
    );
    cache.pending.set(key, pending);
  }
  return pending;
}

/** Forgets every cached definition of this database (after a table is created, changed or deleted). */
export function forgetCachedTables(db: Queryable): void {
  const cache = caches.get(db);
  if (!cache) return;
  cache.entries.clear();
  cache.pending.clear();
  cache.generation++;
}
