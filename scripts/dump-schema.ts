/**
 * `npm run schema:dump`: writes test/schema.sql, the schema a fresh migration produces (see
 * scripts/schema-dump.ts). It migrates a new database on the PostgreSQL server of
 * HERALD_TEST_DATABASE_URL (default: postgres@127.0.0.1:5432, as the tests use); without a server it
 * says so and migrates an embedded database instead, whose schema reads the same (the drift test
 * checks both).
 */
import { writeFileSync } from "node:fs";
import pg from "pg";
import { freshPgliteSchema, freshPostgresSchema, SCHEMA_PATH } from "./schema-dump.js";

const ADMIN_URL =
  process.env.HERALD_TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

/** undefined when the server answers, else why not. */
async function postgresUnreachable(): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: ADMIN_URL, connectionTimeoutMillis: 2_000 });
  try {
    await client.connect();
    await client.query("SELECT 1");
    return undefined;
  } catch (error) {
    return (error as Error).message;
  } finally {
    await client.end().catch(() => {});
  }
}

const unreachable = await postgresUnreachable();
if (unreachable)
  console.warn(
    `PostgreSQL is not reachable (${unreachable}): dumping an embedded database instead`,
  );
writeFileSync(
  SCHEMA_PATH,
  unreachable ? await freshPgliteSchema() : await freshPostgresSchema(ADMIN_URL),
);
console.log(`wrote ${SCHEMA_PATH}: review the change with git diff test/schema.sql`);
