/**
 * test/schema.sql is the schema the migrations produce: a fresh database is migrated and read back
 * the way scripts/schema-dump.ts writes the file, on each backend (the two read the same). A
 * migration that changes the schema must come with the regenerated file, so that the live
 * definitions stay readable in one place and a change to them shows in review.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { freshPgliteSchema, freshPostgresSchema, SCHEMA_PATH } from "../../scripts/schema-dump.js";
import { ADMIN_URL, testBackends } from "../helpers/test-database.js";

/** The first line where the two texts part, to say where to look. */
function firstDifference(committed: string, current: string): string {
  const before = committed.split("\n");
  const after = current.split("\n");
  const line = before.findIndex((text, index) => text !== after[index]);
  const at = line === -1 ? before.length : line;
  return `line ${at + 1}:\n  test/schema.sql: ${before[at] ?? "(end of file)"}\n  migrated:        ${after[at] ?? "(end of file)"}`;
}

for (const { backend, skip } of await testBackends()) {
  test(
    `test/schema.sql is the schema a fresh migration produces on ${backend}`,
    { skip },
    async () => {
      const current =
        backend === "postgres" ? await freshPostgresSchema(ADMIN_URL) : await freshPgliteSchema();
      const committed = readFileSync(SCHEMA_PATH, "utf8");
      if (current !== committed)
        assert.fail(
          "test/schema.sql is not the schema the migrations produce: run `npm run schema:dump`, " +
            "review the diff (git diff test/schema.sql) and commit it with the migration.\n" +
            `First difference at ${firstDifference(committed, current)}`,
        );
    },
  );
}
