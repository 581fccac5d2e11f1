/**
 * The capture bench's second ceiling: what Herald's own HTTP stack does when each request is a
 * single statement. A route added to Herald's app for the bench only, so the request meets the same
 * Fastify instance, hooks, token check (entity resolution through the bearer token) and JSON schema
 * validation as `POST …/profile?allowUpdate=true`, then upserts the same profile row and its unique
 * key row in ONE statement, with no change event, no group commit and no write gate. Herald's
 * ratio to it says what capture (events, ordering, gate, batching) costs on top of a write that
 * already pays for HTTP.
 */
import { Type } from "typebox";
import type { HeraldApp } from "../src/api/app.js";
import { authOf, EntityCache, resolveEntity } from "../src/api/auth.js";
import type { Database } from "../src/storage/database.js";
import { SQLSTATE, sqlState } from "../src/storage/sql-errors.js";

export const CEILING_PREFIX = "/bench-ceiling";

const Body = Type.Object({
  attributes: Type.Array(Type.Object({ name: Type.String(), value: Type.Optional(Type.String()) })),
});

// Finds the profile by its key row; updates it, or inserts it and its key row. The records and
// record_keys rows are the ones a profile upsert writes (no events, no inbox notification).
const UPSERT_SQL = `WITH found AS (
       SELECT record_id FROM record_keys
        WHERE table_id = $1 AND attribute = 'emailAddress' AND value = $2),
     updated AS (
       UPDATE records
          SET attributes = attributes || jsonb_build_object('firstName', $3::text),
              version = version + 1, updated_at = now()
        WHERE record_id IN (SELECT record_id FROM found)
       RETURNING record_id),
     inserted AS (
       INSERT INTO records (table_id, attributes)
       SELECT $1, jsonb_build_object('emailAddress', $2::text, 'firstName', $3::text)
        WHERE NOT EXISTS (SELECT 1 FROM found)
       RETURNING record_id),
     key_row AS (
       INSERT INTO record_keys (table_id, attribute, value, record_id)
       SELECT $1, 'emailAddress', $2, record_id FROM inserted)
     SELECT record_id FROM updated UNION ALL SELECT record_id FROM inserted`;

/** Adds `POST /bench-ceiling/v4/entity/:entity/table/:table/profile` to Herald's app (before listen). */
export function registerCeilingRoute(app: HeraldApp, db: Database): void {
  // As the API resolves entities: through a cache of its own.
  const entities = new EntityCache(db);
  app.post(
    `${CEILING_PREFIX}/v4/entity/:entity/table/:table/profile`,
    {
      schema: {
        hide: true,
        params: Type.Object({ entity: Type.String(), table: Type.String() }),
        body: Body,
      },
    },
    async (request) => {
      await resolveEntity(entities, authOf(request), request.params.entity);
      const value = (name: string) =>
        request.body.attributes.find((a) => a.name === name)?.value ?? null;
      const email = value("emailAddress");
      const params = [request.params.table, email, value("firstName")];
      for (let attempt = 1; ; attempt++) {
        try {
          const { rows } = await db.query<{ record_id: number }>(UPSERT_SQL, params);
          return { profileId: Number(rows[0]?.record_id) };
        } catch (error) {
          // Two clients created one key at once: the second finds it on its next try.
          if (attempt >= 3 || sqlState(error) !== SQLSTATE.uniqueViolation) throw error;
        }
      }
    },
  );
}
