/**
 * Profile tables and custom tables as the rest of Herald sees them (SPEC §3). The full definition
 * rules (validation of a posted definition, value validation) live beside this file; this is the
 * shared shape that capture, subscriptions and delivery read.
 */
import type { MatchingConditions } from "./conditions.js";

export const TABLE_KINDS = ["PROFILE_TABLE", "CUSTOM_TABLE"] as const;
export type TableKind = (typeof TABLE_KINDS)[number];

export const VALUE_TYPES = [
  "STRING",
  "INTEGER",
  "LONG",
  "NUMBER",
  "BOOLEAN",
  "DATE",
  "TIMESTAMP",
] as const;
export type ValueType = (typeof VALUE_TYPES)[number];

export interface ValueRestriction {
  minLength?: number;
  maxLength?: number;
  acceptedValues?: string[];
}

export interface AttributeDefinition {
  name: string;
  /** Profile tables: CUSTOM, LASTNAME, FIRSTNAME, EMAIL_ADDRESS, …; custom tables: absent. */
  type?: string;
  valueType: ValueType;
  unique: boolean;
  mandatory: boolean;
  multiValued: boolean;
  indexed?: boolean;
  valueRestriction?: ValueRestriction;
  /** Kept as given and returned (Actito's definition files carry it); Herald does not read it. */
  displayOptions?: Record<string, unknown>;
}

export interface TriggerRule {
  onOperation: "CREATE" | "UPDATE" | "DELETE";
  onAnyAttribute?: string[];
  matchingConditions?: MatchingConditions;
}

export interface DeclaredEvent {
  name: string;
  triggerRules: TriggerRule[];
}

export interface Segmentation {
  name: string;
  type: "SIMPLE" | "EXCLUSIVE";
  /** EXCLUSIVE: the category's segments; SIMPLE: absent (the one segment has the segmentation's name). */
  segments?: string[];
}

export interface DataTable {
  id: string;
  entityId: number;
  kind: TableKind;
  name: string;
  /**
   * Bumped by every change of the definition. A record write validated against one version writes
   * only if the table is still at it (storage: herald_table_write_gate).
   */
  version: number;
  attributes: AttributeDefinition[];
  /** Profile tables. */
  subscriptions: { name: string }[];
  segmentations: Segmentation[];
  /** Custom tables. */
  customTableType?: "INTERACTIONS" | "LINKED_DATA" | "REPOSITORY";
  primaryKeyAttribute?: string;
  creationTimeAttribute?: string;
  /** Custom tables: references to other tables' records (domain/foreign-keys.ts). */
  foreignKeys?: ForeignKey[];
  eventsToTrigger: DeclaredEvent[];
  /*
   * Keys of Actito's definition files, kept as given and returned by the structure reads; Herald
   * does not act on them (SPEC §3, "Table definitions are read leniently").
   */
  entityName?: string;
  displayOptions?: Record<string, unknown>;
  /** Custom tables: Actito's composite key (attribute names) and big-table flag. */
  compositeKey?: string[];
  bigTable?: boolean;
  /** Custom tables: the attribute Actito reads as the record's value (an amount…). */
  valueAttribute?: string;
}

/**
 * The primary key of a custom table defined without `primaryKeyAttribute` (SPEC §3): a STRING
 * attribute `id`, added to the definition when it declares none, whose value Herald generates
 * (a UUID) for a record written without it.
 */
export const GENERATED_KEY_ATTRIBUTE = "id";

/** Technical attributes Herald maintains on profiles; clients cannot write them. */
export const PROFILE_TECHNICAL_ATTRIBUTES = [
  "profileId",
  "creationMoment",
  "updateMoment",
] as const;

/** True when the custom table declares at least one event that fires on UPDATE. */
export function hasDeclaredUpdateEvent(table: DataTable): boolean {
  return table.eventsToTrigger.some((event) =>
    event.triggerRules.some((rule) => rule.onOperation === "UPDATE"),
  );
}

/** Attribute names a subscription's `onFields` or `conditions` may name. */
export function attributeNames(table: DataTable): string[] {
  const names = table.attributes.map((a) => a.name);
  return table.kind === "PROFILE_TABLE" ? [...PROFILE_TECHNICAL_ATTRIBUTES, ...names] : names;
}

export const ON_DELETE_ACTIONS = ["RESTRICT", "CASCADE", "SET_NULL"] as const;
export type OnDeleteAction = (typeof ON_DELETE_ACTIONS)[number];

export interface ForeignKey {
  /** Actito's name of the foreign key, kept as given. */
  name?: string;
  /** The attribute of this (custom) table that holds the reference. */
  attribute: string;
  /** The referenced table; `id` is stored as the table's id even when a definition gave its name. */
  referencedTable: { kind: TableKind; id: string };
  /**
   * The referenced table's attribute: its identity (`profileId`, or the custom table's primary
   * key: the default) or another unique attribute of it.
   */
  referencedAttribute: string;
  onDelete: OnDeleteAction;
  /** Actito's `valueAttribute`, kept as given and returned. */
  valueAttribute?: string;
  /**
   * Set (by resolveForeignKeys) when `referencedAttribute` is a unique attribute other than the
   * identity: the reference is then looked up by that value's key row. Not part of the public shape.
   */
  byUniqueValue?: true;
}
