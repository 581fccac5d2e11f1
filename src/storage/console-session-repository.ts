/** SQL of console sessions (migration 020): one row per signed-in browser. */
import type { Queryable } from "./database.js";

export interface ConsoleSessionRow {
  apiKeyId: number;
  licenceId: number;
  csrfToken: string;
  expiresAt: Date;
}

export async function insertConsoleSession(
  db: Queryable,
  session: { tokenHash: string; apiKeyId: number; csrfToken: string; ttlSeconds: number },
): Promise<void> {
  await db.query(
    `INSERT INTO console_sessions (token_hash, api_key_id, csrf_token, expires_at)
     VALUES ($1, $2, $3, now() + make_interval(secs => $4))`,
    [session.tokenHash, session.apiKeyId, session.csrfToken, session.ttlSeconds],
  );
}

/** The session behind a token, while it is unexpired and its key is not revoked. */
export async function findConsoleSession(
  db: Queryable,
  tokenHash: string,
): Promise<ConsoleSessionRow | undefined> {
  const { rows } = await db.query<ConsoleSessionRow>(
    `SELECT s.api_key_id AS "apiKeyId", k.licence_id AS "licenceId", s.csrf_token AS "csrfToken",
            s.expires_at AS "expiresAt"
       FROM console_sessions s JOIN api_keys k ON k.id = s.api_key_id AND k.revoked_at IS NULL
      WHERE s.token_hash = $1 AND s.expires_at > now()`,
    [tokenHash],
  );
  return rows[0];
}

export async function deleteConsoleSession(db: Queryable, tokenHash: string): Promise<void> {
  await db.query("DELETE FROM console_sessions WHERE token_hash = $1", [tokenHash]);
}

export async function deleteExpiredConsoleSessions(db: Queryable): Promise<number> {
  const { rowCount } = await db.query("DELETE FROM console_sessions WHERE expires_at < now()");
  return rowCount;
}
