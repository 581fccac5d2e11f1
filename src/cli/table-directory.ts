/**
 * The entity's tables as the CLI needs them: one table named on the command line (`--table`, by id
 * or name, among profile and custom tables), and table names for the ids that events and
 * subscriptions carry, read once and read again when an id is new (a table created meanwhile).
 */
import type { TableKind } from "../domain/data-table.js";
import { TABLE_KINDS } from "../domain/data-table.js";
import type { HeraldClient } from "./api-client.js";
import { HeraldApiError } from "./api-client.js";
import { entitySegment, isApiError } from "./cli-support.js";

export interface TableInfo {
  kind: TableKind;
  id: string;
  name: string;
  /** Attributes that name a record, in the order shown: profileId or the primary key, then unique ones. */
  keyAttributes: string[];
  /** A custom table emits UPDATE events only when one of its declared events fires on UPDATE. */
  emitsUpdates: boolean;
}

/** A table as GET …/profile-tables/{table} or …/custom-tables/{table} answers it, read leniently. */
interface TableJson {
  id?: unknown;
  name?: unknown;
  primaryKeyAttribute?: unknown;
  attributes?: { name?: unknown; unique?: unknown }[];
  eventsToTrigger?: { triggerRules?: { onOperation?: unknown }[] }[];
}

const COLLECTIONS: Record<TableKind, { path: string; listKey: string; label: string }> = {
  PROFILE_TABLE: { path: "profile-tables", listKey: "profileTables", label: "profile" },
  CUSTOM_TABLE: { path: "custom-tables", listKey: "customTables", label: "custom" },
};

/** How a table is called in output: `Customers` alone reads well; its kind shows where it helps. */
export function tableKindLabel(kind: TableKind): string {
  return COLLECTIONS[kind].label;
}

function toTableInfo(kind: TableKind, json: TableJson): TableInfo {
  const unique = (json.attributes ?? [])
    .filter((a) => a.unique === true && typeof a.name === "string")
    .map((a) => a.name as string);
  const first =
    kind === "PROFILE_TABLE"
      ? "profileId"
      : typeof json.primaryKeyAttribute === "string"
        ? json.primaryKeyAttribute
        : undefined;
  const keyAttributes = first ? [first, ...unique.filter((n) => n !== first)] : unique;
  const emitsUpdates =
    kind === "PROFILE_TABLE" ||
    (json.eventsToTrigger ?? []).some((e) =>
      (e.triggerRules ?? []).some((r) => r.onOperation === "UPDATE"),
    );
  return { kind, id: String(json.id), name: String(json.name), keyAttributes, emitsUpdates };
}

export class TableDirectory {
  #byId = new Map<string, TableInfo>();
  #loaded: Promise<void> | undefined;
  #loadedAt = 0;

  constructor(
    private readonly client: HeraldClient,
    private readonly entity: string,
  ) {}

  #base(kind: TableKind): string {
    return `/v5/entities/${entitySegment(this.entity)}/${COLLECTIONS[kind].path}`;
  }

  /**
   * The table `idOrName` names, looked for among profile tables, then custom tables. One that
   * neither has is a 404 HERALD_TABLE_NOT_FOUND naming the entity (exit 2).
   */
  async find(idOrName: string, signal?: AbortSignal): Promise<TableInfo> {
    for (const kind of TABLE_KINDS) {
      try {
        const path = `${this.#base(kind)}/${encodeURIComponent(idOrName)}`;
        const table = toTableInfo(kind, (await this.client.getJson<TableJson>(path, signal)).json);
        this.#byId.set(table.id, table);
        return table;
      } catch (error) {
        // An unknown entity is also a 404, with its own code and message: that one is the answer.
        if (!isApiError(error, 404, "HERALD_TABLE_NOT_FOUND")) throw error;
      }
    }
    throw new HeraldApiError(
      404,
      "HERALD_TABLE_NOT_FOUND",
      `no profile or custom table '${idOrName}' in entity '${this.entity}' (name or id)`,
      [],
    );
  }

  /**
   * The table with this id, reading the lists again (at most every 5 s) when it is not known;
   * undefined when Herald does not know it (a table deleted since) or cannot say right now. Only
   * labels depend on it, so a failed read is no reason to stop printing events.
   */
  async byId(id: string): Promise<TableInfo | undefined> {
    const known = this.#byId.get(id);
    if (known) return known;
    if (!this.#loaded || Date.now() - this.#loadedAt > 5_000) {
      this.#loadedAt = Date.now();
      this.#loaded = this.#loadAll().catch(() => {});
    }
    await this.#loaded;
    return this.#byId.get(id);
  }

  async #loadAll(): Promise<void> {
    for (const kind of TABLE_KINDS) {
      const { listKey } = COLLECTIONS[kind];
      const answer = await this.client.getJson<Record<string, TableJson[] | undefined>>(
        this.#base(kind),
      );
      for (const json of answer.json[listKey] ?? []) {
        const table = toTableInfo(kind, json);
        this.#byId.set(table.id, table);
      }
    }
  }
}
