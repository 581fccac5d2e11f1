/**
 * Numbered-SQL migrations: `migrations/NNN_name.sql`, applied in order, each in its own transaction,
 * never edited after they land. Safe when several processes start at once: every migration's
 * transaction first takes a transaction-scoped advisory lock, then re-checks whether it was applied.
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Database } from "./database.js";
import { ADVISORY_LOCKS } from "./database.js";

export const MIGRATIONS_DIR = join(dirname(fileURLToPath(import.meta.url)), "migrations");

export interface Migration {
  id: number;
  name: string;
  sql: string;
}

export function listMigrations(dir = MIGRATIONS_DIR): Migration[] {
  return readdirSync(dir)
    .filter((file) => /^\d{3}_[\w-]+\.sql$/.test(file))
    .sort()
    .map((file) => ({
      id: Number(file.slice(0, 3)),
      name: file,
      sql: readFileSync(join(dir, file), "utf8"),
    }));
}

/** Applies every pending migration; returns the names applied by this call. */
export async function migrate(db: Database, migrations = listMigrations()): Promise<string[]> {
  const applied: string[] = [];
  for (const migration of migrations) {
    const ran = await db.transaction(async (tx) => {
      // Serialises concurrent migrators; released at commit.
      await tx.query("SELECT pg_advisory_xact_lock($1)", [ADVISORY_LOCKS.migrations]);
      await tx.query(
        `CREATE TABLE IF NOT EXISTS herald_migrations (
           id integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
      );
      const done = await tx.query("SELECT 1 FROM herald_migrations WHERE id = $1", [migration.id]);
      if (done.rowCount > 0) return false;
      await tx.exec(migration.sql);
      await tx.query("INSERT INTO herald_migrations (id, name) VALUES ($1, $2)", [
        migration.id,
        migration.name,
      ]);
      return true;
    });
    if (ran) applied.push(migration.name);
  }
  return applied;
}

/** True when every known migration has been applied (used by /readyz). */
export async function migrationsApplied(
  db: Database,
  migrations = listMigrations(),
): Promise<boolean> {
  try {
    const { rows } = await db.query<{ id: number }>("SELECT id FROM herald_migrations");
    const have = new Set(rows.map((r) => r.id));
    return migrations.every((m) => have.has(m.id));
  } catch {
    return false;
  }
}
