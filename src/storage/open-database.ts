import type { Database } from "./database.js";
import { PgliteDatabase } from "./pglite-database.js";
import { PostgresDatabase } from "./postgres-database.js";

export interface DatabaseSettings {
  databaseUrl: string | undefined;
  dataDir: string;
  maxConnections?: number;
}

/** Opens PostgreSQL when a URL is given, else the embedded database in `dataDir`. */
export async function openDatabase(settings: DatabaseSettings): Promise<Database> {
  if (settings.databaseUrl) {
    const db = new PostgresDatabase({
      connectionString: settings.databaseUrl,
      maxConnections: settings.maxConnections,
    });
    await db.query("SELECT 1");
    return db;
  }
  return PgliteDatabase.open(settings.dataDir);
}
