/** SQL of an import execution's rejected rows (written in the batch's transaction). */
import { storableText } from "../domain/safe-text.js";
import type { Queryable } from "./database.js";

export interface RejectedRow {
  line: number;
  column: string | null;
  code: string;
  message: string;
  raw: string;
}

/** Inserts a batch's rejected rows (in its transaction). */
/** Most characters of a rejected line kept (the rest is cut, marked with " […]"). */
export const REJECTED_LINE_CHARACTERS = 65_536;

/**
 * A rejected line as kept: at most REJECTED_LINE_CHARACTERS (cut between characters, never inside
 * a surrogate pair), with what PostgreSQL cannot store (a NUL, a lone surrogate: the reasons such a
 * line is rejected) replaced by U+FFFD.
 */
function kept(raw: string): string {
  if (raw.length <= REJECTED_LINE_CHARACTERS) return storableText(raw);
  let end = REJECTED_LINE_CHARACTERS;
  const last = raw.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--;
  return `${storableText(raw.slice(0, end))} […]`;
}

export async function insertRejectedRows(
  tx: Queryable,
  executionId: string,
  rows: readonly RejectedRow[],
): Promise<void> {
  if (rows.length === 0) return;
  await tx.query(
    `INSERT INTO etl_rejected_rows (execution_id, line, column_name, code, message, raw)
     SELECT $1, r.line, r.column_name, r.code, r.message, r.raw
       FROM jsonb_to_recordset($2::jsonb)
            AS r(line bigint, column_name text, code text, message text, raw text)`,
    [
      Number(executionId),
      JSON.stringify(
        rows.map((r) => ({
          line: r.line,
          column_name: r.column === null ? null : storableText(r.column),
          code: r.code,
          message: storableText(r.message),
          raw: kept(r.raw),
        })),
      ),
    ],
  );
}

/** Rejected rows in line order, from `afterLine`, at most `limit`. */
export async function readRejectedRows(
  db: Queryable,
  executionId: string,
  afterLine: number,
  limit: number,
): Promise<RejectedRow[]> {
  const { rows } = await db.query<{
    line: number;
    column_name: string | null;
    code: string;
    message: string;
    raw: string;
  }>(
    `SELECT line, column_name, code, message, raw FROM etl_rejected_rows
      WHERE execution_id = $1 AND line > $2 ORDER BY line LIMIT $3`,
    [Number(executionId), afterLine, limit],
  );
  return rows.map((r) => ({
    line: r.line,
    column: r.column_name,
    code: r.code,
    message: r.message,
    raw: r.raw,
  }));
}
