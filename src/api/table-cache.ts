/**
 * A short-lived in-process cache of table definitions for the API's write path: a profile upsert
 * should not read its table's definition from the database every time. Entries live a few seconds
 * and a table change made through this process forgets them at once, and one made through another
 * process as soon as its notice arrives (TABLES_CHANNEL, api/plugins/table-changes.ts);
 * TABLE_CACHE_MS bounds what a lost notice costs reads. Writes never use an outdated copy: the
 * table write gate stops them and they run again (api/routes/data-route-context.ts,
 * withCurrentTable; docs/data-model.md). Only hits are cached, so a table created elsewhere is
 * found on the next call.
 *
 * One cache per app (buildApp makes it, as it makes the app's other caches): tests open many
 * databases in one process, and a definition of one must never answer for another.
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

export class TableCache {
  private readonly entries = new Map<string, Entry>();
  /** Lookups in progress: concurrent misses of one table share one query. */
  private readonly pending = new Map<string, Promise<DataTable | undefined>>();
  /** Bumped by forget: a lookup that started before does not store its answer. */
  private generation = 0;

  constructor(private readonly db: Queryable) {}

  async find(entityId: number, kind: TableKind, idOrName: string): Promise<DataTable | undefined> {
    const key = `${entityId}\u0000${kind}\u0000${idOrName}`;
    const hit = this.entries.get(key);
    if (hit && hit.until > Date.now()) return hit.table;
    let pending = this.pending.get(key);
    if (!pending) {
      const generation = this.generation;
      pending = findTable(this.db, entityId, kind, idOrName).then(
        (table) => {
          if (this.pending.get(key) === pending) this.pending.delete(key);
          if (generation !== this.generation) return table;
          if (!table) this.entries.delete(key);
          else {
            if (this.entries.size >= MAX_ENTRIES) this.entries.clear();
            this.entries.set(key, { table, until: Date.now() + TABLE_CACHE_MS });
          }
          return table;
        },
        (error: unknown) => {
          if (this.pending.get(key) === pending) this.pending.delete(key);
          throw error;
        },
      );
      this.pending.set(key, pending);
    }
    return pending;
  }

  /** Forgets every cached definition (after a table is created, changed or deleted). */
  forget(): void {
    this.entries.clear();
    this.pending.clear();
    this.generation++;
  }
}
