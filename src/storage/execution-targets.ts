/**
 * What the console shows of import executions beyond their JSON (SPEC §8): the table each one
 * writes into, its mode and the name of its predefined ETL. The console reads the executions
 * through the API first (which applies the key's entity scope) and asks only for those ids here.
 */
import type { Queryable } from "./database.js";

export interface ExecutionTarget {
  /** The table's name now, or as the definition named it when the table was deleted since. */
  table: string;
  tableKind: string | null;
  mode: string;
  etlName: string | null;
}

interface TargetRow {
  id: number;
  table_name: string | null;
  table_kind: string | null;
  named_table: string | null;
  mode: string | null;
  etl_name: string | null;
}

/** Execution id → its target, for these executions of the entity (at most a page of them). */
export async function readExecutionTargets(
  db: Queryable,
  entityName: string,
  executionIds: readonly string[],
): Promise<Map<string, ExecutionTarget>> {
  const out = new Map<string, ExecutionTarget>();
  const ids = executionIds.filter((id) => /^\d{1,15}$/.test(id)).map(Number);
  if (ids.length === 0) return out;
  // Primary-key reads of the listed ids; the entity's unique name keeps them to that entity.
  const { rows } = await db.query<TargetRow>(
    `SELECT e.id, t.name AS table_name, t.kind AS table_kind,
            e.definition -> 'target' ->> 'table' AS named_table,
            e.definition ->> 'mode' AS mode, e.etl_name
       FROM etl_executions e
       JOIN entities n ON n.id = e.entity_id AND n.name = $1
       LEFT JOIN data_tables t ON t.id = e.table_id AND t.entity_id = e.entity_id
      WHERE e.id = ANY($2::bigint[])`,
    [entityName, ids],
  );
  for (const row of rows)
    out.set(String(row.id), {
      table: row.table_name ?? row.named_table ?? "",
      tableKind: row.table_kind,
      mode: row.mode ?? "CREATE_UPDATE",
      etlName: row.etl_name,
    });
  return out;
}
