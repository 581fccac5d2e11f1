/**
 * The table structures the console reads from the API (GET /v5/entities/{entity}/profile-tables,
 * …/custom-tables and one table of each), and the two kinds as the console's addresses name them.
 */
import type { RecordCount } from "../../storage/console-table-reads.js";
import { sourceKey } from "../../storage/console-table-reads.js";
import type { ConsoleApi } from "../console-api.js";
import { pathPart } from "../html.js";
import type { KnownTable } from "./change-log-events.js";

export const TABLE_KINDS = {
  profile: { collection: "profile-tables", source: "PROFILE_TABLE", words: "Profile table" },
  custom: { collection: "custom-tables", source: "CUSTOM_TABLE", words: "Custom table" },
} as const;

export type TableKindName = keyof typeof TABLE_KINDS;

export function isTableKind(kind: string): kind is TableKindName {
  return Object.prototype.hasOwnProperty.call(TABLE_KINDS, kind);
}

export interface AttributeBody {
  name: string;
  type?: string;
  valueType: string;
  unique: boolean;
  mandatory: boolean;
  multiValued: boolean;
  indexed?: boolean;
  valueRestriction?: {
    minLength?: number;
    maxLength?: number;
    acceptedValues?: (string | number | boolean)[];
  } | null;
}

export interface ProfileTableBody {
  id: string;
  name: string;
  attributes: AttributeBody[];
  subscriptions: { name: string }[];
  segmentations: { name: string; type?: string; segments?: string[] }[];
}

export interface ForeignKeyBody {
  name?: string;
  attribute: string;
  referencedTable: { kind: string; id: string };
  referencedAttribute?: string;
  onDelete?: string;
}

export interface CustomTableBody {
  id: string;
  name: string;
  type: string;
  primaryKeyAttribute: string;
  creationTimeAttribute?: string;
  attributes: AttributeBody[];
  foreignKeys: ForeignKeyBody[];
  eventsToTrigger: { name: string; triggerRules: { onOperation: string }[] }[];
}

export interface EntityTables {
  profile: ProfileTableBody[];
  custom: CustomTableBody[];
}

export function tablesPath(entity: string, kind: TableKindName, table?: string): string {
  const base = `/v5/entities/${pathPart(entity)}/${TABLE_KINDS[kind].collection}`;
  return table === undefined ? base : `${base}/${pathPart(table)}`;
}

export async function listEntityTables(api: ConsoleApi, entity: string): Promise<EntityTables> {
  const [profile, custom] = await Promise.all([
    api.get<{ profileTables: ProfileTableBody[] }>(tablesPath(entity, "profile")),
    api.get<{ customTables: CustomTableBody[] }>(tablesPath(entity, "custom")),
  ]);
  return { profile: profile.profileTables, custom: custom.customTables };
}

/** The entity's tables keyed as change events name their source (sourceKey). */
export function knownTables(tables: EntityTables): Map<string, KnownTable> {
  const known = new Map<string, KnownTable>();
  for (const t of tables.profile)
    known.set(sourceKey(TABLE_KINDS.profile.source, t.id), {
      kind: "profile",
      id: t.id,
      name: t.name,
    });
  for (const t of tables.custom)
    known.set(sourceKey(TABLE_KINDS.custom.source, t.id), {
      kind: "custom",
      id: t.id,
      name: t.name,
    });
  return known;
}

/** A record count in words: "1,234", "about 1,200,000" or "more than 1,000". */
export function countText(count: RecordCount | undefined): string {
  if (!count) return "—";
  switch (count.kind) {
    case "exact":
      return count.count.toLocaleString("en");
    case "about":
      // An estimate: two significant figures are all it is worth.
      return `about ${Number(count.count.toPrecision(2)).toLocaleString("en")}`;
    case "more":
      return `more than ${count.count.toLocaleString("en")}`;
  }
}
