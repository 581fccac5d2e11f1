/** Schemas and renderings of the v4 profile calls (SPEC §3), shared by the profile route modules. */
import { Type } from "typebox";
import { renderValue } from "../../domain/attribute-values.js";
import type { DataTable } from "../../domain/data-table.js";
import type { StoredRecord } from "../../storage/record-repository.js";

export const TAG = "profiles";
const Value = Type.Union([
  Type.String(),
  Type.Number(),
  Type.Boolean(),
  Type.Null(),
  Type.Array(Type.Union([Type.String(), Type.Number(), Type.Boolean()])),
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
export const ProfileBody = Type.Object({
  attributes: Type.Optional(Type.Array(NamedValue)),
  subscriptions: Type.Optional(Type.Array(SubscriptionState)),
  segmentations: Type.Optional(Type.Array(SegmentationItem)),
  dataCollectionInformation: Type.Optional(
    Type.Object(
      {
        date: Type.Optional(Type.String()),
        source: Type.Optional(Type.String()),
        way: Type.Optional(Type.String()),
      },
      { description: "Accepted and ignored" },
    ),
  ),
});
const RenderedValue = Type.Union([Type.String(), Type.Array(Type.String()), Type.Null()]);
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
  attributes: Type.Array(Type.Object({ name: Type.String(), value: RenderedValue })),
  subscriptions: SubscriptionList,
  segmentations: SegmentationList,
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

export function renderProfile(table: DataTable, record: StoredRecord) {
  const attributes: { name: string; value: string | string[] | null }[] = [
    { name: "profileId", value: String(record.recordId) },
    { name: "creationMoment", value: record.createdAt.toISOString() },
    { name: "updateMoment", value: record.updatedAt.toISOString() },
  ];
  for (const attribute of table.attributes) {
    const value = renderValue(record.attributes[attribute.name]);
    if (value !== null) attributes.push({ name: attribute.name, value });
  }
  return {
    attributes,
    subscriptions: renderSubscriptions(table, record),
    segmentations: renderSegmentations(table, record),
  };
}
