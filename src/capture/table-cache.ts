/**
 * A short-lived in-process cache of table definitions for the write path: a profile upsert should
 * not read its table's definition from the database every time. Entries live a few seconds and a
 * table change made through this process forgets them at once; another process's change is seen
 * within TABLE_CACHE_MS (multi-process deployments accept that short staleness; docs/data-model.md).
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

/** One cache per database handle (tests open many databases in one process). */
const caches = new WeakMap<Queryable, Map<string, Entry>>();

function cacheOf(db: Queryable): Map<string, Entry> {
  let cache = caches.get(db);
  if (!cache) {
    cache = new Map();
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
  const now = Date.now();
  const hit = cache.get(key);
  if (hit && hit.until > now) return hit.table;
  const table = await findTable(db, entityId, kind, idOrName);
  if (!table) {
    cache.delete(key);
    return undefined;
  }
  if (cache.size >= MAX_ENTRIES) cache.clear();
  cache.set(key, { table, until: now + TABLE_CACHE_MS });
  return table;
}

/** Forgets every cached definition of this database (after a table is created, changed or deleted). */
export function forgetCachedTables(db: Queryable): void {
  caches.get(db)?.clear();
}
