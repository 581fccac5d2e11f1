/** Schemas and renderings of the v4 profile calls (SPEC §3), shared by the profile route modules. */
import { Type } from "typebox";
import type { TypedValue } from "../../domain/attribute-values.js";
import { typedValue } from "../../domain/attribute-values.js";
import type { DataTable } from "../../domain/data-table.js";
import type { StoredRecord } from "../../storage/record-repository.js";

export const TAG = "profiles";
const Scalar = Type.Union([Type.String(), Type.Number(), Type.Boolean()]);
const Value = Type.Union([
  Type.String(),
  Type.Number(),
  Type.Boolean(),
  Type.Null(),
  Type.Array(Scalar),
]);
const NamedValue = Type.Object({ name: Type.String(), value: Type.Optional(Value) });
const SubscriptionState = Type.Object({
  name: Type.String(),
  subscribe: Type.Optional(Type.Boolean({ description: "Default true" })),
});
const SegmentRef = Type.Object({
  category: Type.String({ description: "The segmentation" }),
  name: Type.Optional(Type.String({ description: "The segment (SIMPLE: may be left out)" })),
});
const SegmentationItem = Type.Object({
  belongs: Type.Optional(Type.Boolean({ description: "Default true" })),
  segmentation: Type.Optional(SegmentRef),
  category: Type.Optional(Type.String()),
  name: Type.Optional(Type.String()),
});
export const DataCollectionInformation = Type.Object(
  {
    date: Type.Optional(Type.String()),
    source: Type.Optional(Type.String()),
    way: Type.Optional(Type.String()),
  },
  {
    description:
      "When, from where and how the profile's data was collected. Stored with the profile and " +
      "returned by reads; a change of it alone is no UPDATE (no event).",
  },
);
export const ProfileBody = Type.Object({
  attributes: Type.Optional(Type.Array(NamedValue)),
  subscriptions: Type.Optional(Type.Array(SubscriptionState)),
  segmentations: Type.Optional(Type.Array(SegmentationItem)),
  dataCollectionInformation: Type.Optional(DataCollectionInformation),
});
/** A value in an answer (SPEC §3): typed JSON (a LONG is kept within ±(2^53 − 1), so it is exact). */
export const TypedValueSchema = Type.Union(
  [Type.String(), Type.Number(), Type.Boolean(), Type.Array(Scalar)],
  {
    description: "Numbers as numbers, booleans as booleans, dates and timestamps as text",
  },
);
export const SubscriptionList = Type.Array(
  Type.Object({ name: Type.String(), subscribe: Type.Boolean() }),
);
export const SegmentationList = Type.Array(
  Type.Object({
    belongs: Type.Boolean(),
    segmentation: Type.Object({ category: Type.String(), name: Type.String() }),
  }),
);
export const Profile = Type.Object({
  attributes: Type.Array(
    Type.Object(
      { name: Type.String(), value: TypedValueSchema },
      {
        description:
          "profileId (a number), creationMoment, updateMoment, then every attribute with a value",
      },
    ),
  ),
  subscriptions: SubscriptionList,
  segmentations: SegmentationList,
  dataCollectionInformation: Type.Optional(DataCollectionInformation),
});
export const ProfileIdResponse = Type.Object({ profileId: Type.Integer() });

export const TableParams = Type.Object({ entity: Type.String(), table: Type.String() });
export const KeyParams = Type.Object({
  entity: Type.String(),
  table: Type.String(),
  profileKey: Type.String({ description: "A profileId, or attribute=value of a unique attribute" }),
});
export const base = "/v4/entity/:entity/table/:table/profile";

export function renderSubscriptions(table: DataTable, record: StoredRecord) {
  return table.subscriptions.map((s) => ({
    name: s.name,
    subscribe: record.subscriptions[s.name] === true,
  }));
}

export function renderSegmentations(table: DataTable, record: StoredRecord) {
  return table.segmentations.flatMap((s) => {
    const segment = record.segments[s.name];
    return segment === undefined
      ? []
      : [{ belongs: true, segmentation: { category: s.name, name: segment } }];
  });
}

/** The attributes a profile or record holds, typed (SPEC §3); attributes without a value are left out. */
export function typedAttributes(table: DataTable, record: StoredRecord): Map<string, TypedValue> {
  const values = new Map<string, TypedValue>();
  for (const attribute of table.attributes) {
    const value = typedValue(record.attributes[attribute.name]);
    if (value !== undefined) values.set(attribute.name, value);
  }
  return values;
}

export function renderProfile(table: DataTable, record: StoredRecord) {
  const attributes: { name: string; value: TypedValue }[] = [
    { name: "profileId", value: record.recordId },
    { name: "creationMoment", value: record.createdAt.toISOString() },
    { name: "updateMoment", value: record.updatedAt.toISOString() },
  ];
  for (const [name, value] of typedAttributes(table, record)) attributes.push({ name, value });
  return {
    attributes,
    subscriptions: renderSubscriptions(table, record),
    segmentations: renderSegmentations(table, record),
    ...(record.dataCollection ? { dataCollectionInformation: record.dataCollection } : {}),
  };
}
