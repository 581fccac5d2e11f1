/**
 * Schemas and rendering of the v5 profile calls (SPEC §3, "Profiles (v5)"): attributes,
 * subscriptions and segmentations as objects keyed by name instead of v4's lists.
 */
import { Type } from "typebox";
import type { TypedValue } from "../../domain/attribute-values.js";
import type { DataTable } from "../../domain/data-table.js";
import type { StoredRecord } from "../../storage/record-repository.js";
import { DataCollectionInformation, typedAttributes, TypedValueSchema } from "./profile-schemas.js";

export const TAG = "profiles";
export const base = "/v5/entities/:entity/profile-tables/:table/profiles";

const Scalar = Type.Union([Type.String(), Type.Number(), Type.Boolean()]);
const WrittenValue = Type.Union([
  Type.String(),
  Type.Number(),
  Type.Boolean(),
  Type.Null(),
  Type.Array(Scalar),
]);

export const TableParams = Type.Object({ entity: Type.String(), table: Type.String() });
export const KeyParams = Type.Object({
  entity: Type.String(),
  table: Type.String(),
  profileKey: Type.String({ description: "A profileId, or attribute=value of a unique attribute" }),
});

export const V5ProfileWrite = Type.Object({
  key: Type.Record(Type.String(), Scalar, {
    description:
      'Exactly one unique attribute and its value, e.g. {"emailAddress": "a@b.c"}: the profile holding it is updated, or created when none does. {"profileId": 7} updates profile 7 (404 if none).',
  }),
  attributes: Type.Optional(
    Type.Record(Type.String(), WrittenValue, {
      description: "Attribute values, typed or as text; null clears one",
    }),
  ),
  subscriptions: Type.Optional(
    Type.Record(Type.String(), Type.Boolean(), { description: "Subscription name → subscribed" }),
  ),
  segmentations: Type.Optional(
    Type.Record(Type.String(), Type.Union([Type.String(), Type.Boolean(), Type.Null()]), {
      description:
        "Segmentation → the segment to be in; a SIMPLE segmentation also takes true; false or null takes the profile out",
    }),
  ),
  dataCollectionInformation: Type.Optional(DataCollectionInformation),
});

export const V5UpsertResponse = Type.Object({
  profileId: Type.Integer(),
  created: Type.Boolean(),
});

export const V5Profile = Type.Object({
  profileId: Type.Integer(),
  creationMoment: Type.String(),
  updateMoment: Type.String(),
  attributes: Type.Record(Type.String(), TypedValueSchema, {
    description: "Every attribute that has a value, typed",
  }),
  subscriptions: Type.Record(Type.String(), Type.Boolean()),
  segmentations: Type.Record(Type.String(), Type.Union([Type.String(), Type.Boolean()]), {
    description:
      "SIMPLE segmentations: true / false; EXCLUSIVE ones: the segment the profile is in (left out when in none)",
  }),
  dataCollectionInformation: Type.Optional(DataCollectionInformation),
});

export const V5ProfilePage = Type.Object({
  profiles: Type.Array(V5Profile),
  page: Type.Integer(),
  pageSize: Type.Integer(),
  totalElements: Type.Integer(),
});

export function renderV5Profile(table: DataTable, record: StoredRecord) {
  const attributes: Record<string, TypedValue> = {};
  for (const [name, value] of typedAttributes(table, record)) attributes[name] = value;
  const subscriptions: Record<string, boolean> = {};
  for (const s of table.subscriptions)
    subscriptions[s.name] = record.subscriptions[s.name] === true;
  const segmentations: Record<string, string | boolean> = {};
  for (const s of table.segmentations) {
    const segment = record.segments[s.name];
    if (s.type === "SIMPLE") segmentations[s.name] = segment !== undefined;
    else if (segment !== undefined) segmentations[s.name] = segment;
  }
  return {
    profileId: record.recordId,
    creationMoment: record.createdAt.toISOString(),
    updateMoment: record.updatedAt.toISOString(),
    attributes,
    subscriptions,
    segmentations,
    ...(record.dataCollection ? { dataCollectionInformation: record.dataCollection } : {}),
  };
}
