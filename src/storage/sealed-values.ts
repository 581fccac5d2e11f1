/**
 * Secrets at rest, the database's side (docs/files-and-exports.md "Secrets at rest"). The columns
 * below hold values sealed by SecretBox (src/domain/secret-box.ts) with HERALD_SECRET_KEY. At every
 * start, before any role runs, `prepareSealedValues`:
 *
 * 1. checks the key against `secret_key_check` (migration 026): a known text sealed with the key
 *    the database was first used with. A key that does not open it is refused (WrongSecretKey), so
 *    nothing is read with, or sealed under, a key the other processes do not share;
 * 2. rewrites every value that is not sealed with the current key: plain text (a database from
 *    before secrets at rest) and values sealed with HERALD_SECRET_KEY_PREVIOUS (a rotation). A value
 *    no key of this process opens refuses the start, naming the key id it was sealed with;
 * 3. then seals the check with the current key, so that after a rotation the old key is refused.
 *
 * Safe with several processes starting at once: every rewrite is a compare-and-set on the value
 * read (`WHERE column = <old value>`), so a value another process rewrote meanwhile is left as it
 * is; running it again finds nothing to do.
 */
import { SecretBox, SecretKeyMismatch } from "../domain/secret-box.js";
import type { Queryable } from "./database.js";

/** A text column whose values are sealed (NULL = no value), of a table keyed by `id`. */
export interface SealedColumn {
  table: string;
  column: string;
}

/**
 * Every sealed column. `file_references.credentials` comes with file references (migration 024);
 * a column that does not exist (yet) is skipped.
 */
export const SEALED_COLUMNS: readonly SealedColumn[] = [
  { table: "webhook_subscriptions", column: "secret" },
  { table: "webhook_subscriptions", column: "previous_secret" },
  { table: "file_references", column: "credentials" },
];

/** What the check row holds, sealed. */
const CHECK_TEXT = "herald secret key check";

/** Values read and rewritten per statement. */
const DEFAULT_BATCH = 200;

/** The key of this process does not open what the database holds. */
export class WrongSecretKey extends Error {
  override name = "WrongSecretKey";
}

/**
 * The plain text of a stored value. A value that is not sealed (written before secrets at rest, or
 * by an older Herald still running during an upgrade) is taken as it is: the next start seals it.
 */
export function openStored(secrets: SecretBox, value: string): string;
export function openStored(secrets: SecretBox, value: string | null): string | null;
export function openStored(secrets: SecretBox, value: string | null): string | null {
  if (value === null || !SecretBox.isSealed(value)) return value;
  return secrets.open(value);
}

function keysOf(secrets: SecretBox): string {
  return secrets.previousKeyId
    ? `key ids ${secrets.currentKeyId} (HERALD_SECRET_KEY) and ${secrets.previousKeyId} (HERALD_SECRET_KEY_PREVIOUS)`
    : `key id ${secrets.currentKeyId}`;
}

export type KeyCheck = "recorded" | "matched" | "matched-previous";

/**
 * Checks the process's key against the database's: "recorded" on the first start with a key,
 * "matched" when the current key opens the check, "matched-previous" when only the previous one
 * does (a rotation). WrongSecretKey otherwise.
 */
export async function checkSecretKey(db: Queryable, secrets: SecretBox): Promise<KeyCheck> {
  return (await recordOrCheck(db, secrets)).key;
}

/** checkSecretKey, and the check's sealed value when this call recorded it. */
async function recordOrCheck(
  db: Queryable,
  secrets: SecretBox,
): Promise<{ key: KeyCheck; recorded?: string }> {
  const recorded = secrets.seal(CHECK_TEXT);
  const inserted = await db.query(
    `INSERT INTO secret_key_check (sealed) VALUES ($1) ON CONFLICT (id) DO NOTHING RETURNING id`,
    [recorded],
  );
  if (inserted.rowCount > 0) return { key: "recorded", recorded };
  const { rows } = await db.query<{ sealed: string }>("SELECT sealed FROM secret_key_check");
  const sealed = rows[0]!.sealed;
  let opened: string;
  try {
    opened = secrets.open(sealed);
  } catch (error) {
    if (!(error instanceof SecretKeyMismatch)) throw error;
    throw new WrongSecretKey(
      `HERALD_SECRET_KEY is not the key of this database: its secrets are encrypted with the key of id ${error.keyId}, and this process has ${keysOf(secrets)}. Start Herald with the key it ran with; to change keys, set the new one as HERALD_SECRET_KEY and the old one as HERALD_SECRET_KEY_PREVIOUS for one start`,
    );
  }
  if (opened !== CHECK_TEXT)
    throw new WrongSecretKey("the database's key check holds another text");
  return { key: secrets.sealedWithCurrent(sealed) ? "matched" : "matched-previous" };
}

/** Whether the table has the column (a part's migration may not have run yet). */
async function columnExists(db: Queryable, { table, column }: SealedColumn): Promise<boolean> {
  const { rowCount } = await db.query(
    `SELECT 1 FROM information_schema.columns
      WHERE table_schema = current_schema() AND table_name = $1 AND column_name = $2`,
    [table, column],
  );
  return rowCount > 0;
}

/**
 * Rewrites every value of `sealed` that is not sealed with the current key; the number of rows
 * rewritten. Rows are read in batches in id order (each one once), each batch written by one
 * statement that replaces a row's value only if it is still the one read (compare-and-set).
 */
export async function resealColumn(
  db: Queryable,
  secrets: SecretBox,
  sealed: SealedColumn,
  batchSize = DEFAULT_BATCH,
): Promise<number> {
  const { table, column } = sealed;
  const prefix = secrets.currentPrefix;
  let after = 0;
  let rewritten = 0;
  for (;;) {
    const { rows }: { rows: { id: number; value: string }[] } = await db.query<{
      id: number;
      value: string;
    }>(
      `SELECT id, ${column} AS value FROM ${table}
        WHERE id > $1 AND ${column} IS NOT NULL AND left(${column}, $2) <> $3
        ORDER BY id LIMIT $4`,
      [after, prefix.length, prefix, batchSize],
    );
    if (rows.length === 0) return rewritten;
    const resealed = rows.map(({ value }) => {
      try {
        return secrets.seal(openStored(secrets, value));
      } catch (error) {
        if (error instanceof SecretKeyMismatch && !error.altered)
          throw new WrongSecretKey(
            `a value of ${table}.${column} was encrypted with the key of id ${error.keyId}, which this process does not have (it has ${keysOf(secrets)}). If that is the former key, set it as HERALD_SECRET_KEY_PREVIOUS for one start`,
          );
        // An altered value stops the start as clearly as a wrong key (exit 2, one line).
        throw new WrongSecretKey(
          `a value of ${table}.${column} cannot be read: ${(error as Error).message}. Restore it from a backup, or write a new secret (PUT or rotate-secret for a subscription, PUT with credentials for a file reference) once Herald runs`,
          { cause: error },
        );
      }
    });
    const { rowCount } = await db.query(
      `UPDATE ${table} t SET ${column} = v.sealed
         FROM unnest($1::bigint[], $2::text[], $3::text[]) AS v(id, old, sealed)
        WHERE t.id = v.id AND t.${column} = v.old`,
      [rows.map((r) => r.id), rows.map((r) => r.value), resealed],
    );
    rewritten += rowCount;
    after = rows[rows.length - 1]!.id;
  }
}

export interface SealedValuesReport {
  key: KeyCheck;
  /** Rows rewritten per column (`table.column`), only those with some. */
  rewritten: Record<string, number>;
}

/**
 * The start-time step: checks the key, rewrites every value not sealed with the current key, then
 * seals the check with the current key. Idempotent.
 */
export async function prepareSealedValues(
  db: Queryable,
  secrets: SecretBox,
  options: { columns?: readonly SealedColumn[]; batchSize?: number } = {},
): Promise<SealedValuesReport> {
  const { key, recorded } = await recordOrCheck(db, secrets);
  const rewritten: Record<string, number> = {};
  try {
    for (const sealed of options.columns ?? SEALED_COLUMNS) {
      if (!(await columnExists(db, sealed))) continue;
      const n = await resealColumn(db, secrets, sealed, options.batchSize);
      if (n > 0) rewritten[`${sealed.table}.${sealed.column}`] = n;
    }
  } catch (error) {
    // The check this start recorded goes with it: a value under another key means this key may
    // not be the database's, and the right one must still be accepted at the next start. (A
    // database outage is waited out and this step run again: the check stays.)
    if (recorded !== undefined && error instanceof WrongSecretKey)
      await db.query("DELETE FROM secret_key_check WHERE sealed = $1", [recorded]);
    throw error;
  }
  if (key === "matched-previous") {
    // Only once every value opens with the current key: a start cut short before this point
    // still finds the check sealed with the previous key, and rewrites again.
    const { rows } = await db.query<{ sealed: string }>("SELECT sealed FROM secret_key_check");
    const old = rows[0]!.sealed;
    if (!secrets.sealedWithCurrent(old))
      await db.query(
        "UPDATE secret_key_check SET sealed = $1, updated_at = now() WHERE sealed = $2",
        [secrets.seal(CHECK_TEXT), old],
      );
  }
  return { key, rewritten };
}
