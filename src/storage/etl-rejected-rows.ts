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
interface RejectedRowRow {
  execution_id: number;
  line: number;
  column_name: string | null;
  code: string;
  message: string;
  raw: string;
}

function toRejectedRow(r: RejectedRowRow): RejectedRow {
  return { line: r.line, column: r.column_name, code: r.code, message: r.message, raw: r.raw };
}

/** Rejected rows in line order, from `afterLine`, at most `limit`. */
export async function readRejectedRows(
  db: Queryable,
  executionId: string,
  afterLine: number,
  limit: number,
): Promise<RejectedRow[]> {
  const { rows } = await db.query<RejectedRowRow>(
    `SELECT execution_id, line, column_name, code, message, raw FROM etl_rejected_rows
      WHERE execution_id = $1 AND line > $2 ORDER BY line LIMIT $3`,
    [Number(executionId), afterLine, limit],
  );
  return rows.map(toRejectedRow);
}

/**
 * The first `limit` rejected rows of each of these executions, in one statement (a page of the
 * executions list): execution id → its rows in line order.
 */
export async function readFirstRejectedRows(
  db: Queryable,
  executionIds: readonly string[],
  limit: number,
): Promise<Map<string, RejectedRow[]>> {
  const out = new Map<string, RejectedRow[]>();
  if (executionIds.length === 0) return out;
  // LATERAL … LIMIT: each execution a range read of the primary key (execution_id, line).
  const { rows } = await db.query<RejectedRowRow>(
    `SELECT r.execution_id, r.line, r.column_name, r.code, r.message, r.raw
       FROM unnest($1::bigint[]) AS e(id)
      CROSS JOIN LATERAL (
        SELECT * FROM etl_rejected_rows WHERE execution_id = e.id ORDER BY line LIMIT $2) AS r`,
    [executionIds.map(Number), limit],
  );
  for (const row of rows) {
    const id = String(row.execution_id);
    const list = out.get(id) ?? [];
    list.push(toRejectedRow(row));
    out.set(id, list);
  }
  return out;
}
