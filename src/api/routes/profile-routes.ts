/**
 * Profiles, one by one (SPEC §3, v4 calls): create / upsert, update, read, search, delete, and a
 * profile's subscriptions and segment memberships. Writes go through `capture/profile-writer.ts`
 * (one transaction: record row, then change events).
 */
import type { Static } from "typebox";
import { Type } from "typebox";
import {
  deleteProfile,
  parseProfileInput,
  readProfile,
  updateProfile,
  upsertProfile,
} from "../../capture/profile-writer.js";
import { checkValue, renderValue } from "../../domain/attribute-values.js";
import type { DataTable } from "../../domain/data-table.js";
import { HeraldError } from "../../domain/errors.js";
import { parseProfileKey } from "../../domain/record-keys.js";
import type { StoredRecord } from "../../storage/record-repository.js";
import { searchRecords } from "../../storage/record-repository.js";
import { dataRouteContext } from "./data-route-context.js";
import type { RouteModule } from "./index.js";

const TAG = "profiles";
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
const ProfileBody = Type.Object({
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
const SubscriptionList = Type.Array(
  Type.Object({ name: Type.String(), subscribe: Type.Boolean() }),
);
const SegmentationList = Type.Array(
  Type.Object({
    belongs: Type.Boolean(),
    segmentation: Type.Object({ category: Type.String(), name: Type.String() }),
  }),
);
const Profile = Type.Object({
  attributes: Type.Array(Type.Object({ name: Type.String(), value: RenderedValue })),
  subscriptions: SubscriptionList,
  segmentations: SegmentationList,
});
const ProfileIdResponse = Type.Object({ profileId: Type.Integer() });

const TableParams = Type.Object({ entity: Type.String(), table: Type.String() });
const KeyParams = Type.Object({
  entity: Type.String(),
  table: Type.String(),
  profileKey: Type.String({ description: "A profileId, or attribute=value of a unique attribute" }),
});
const base = "/v4/entity/:entity/table/:table/profile";

function renderSubscriptions(table: DataTable, record: StoredRecord) {
  return table.subscriptions.map((s) => ({
    name: s.name,
    subscribe: record.subscriptions[s.name] === true,
  }));
}

function renderSegmentations(table: DataTable, record: StoredRecord) {
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

const profileRoutes: RouteModule = async (app, deps) => {
  app.post(
    base,
    {
      schema: {
        tags: [TAG],
        summary:
          "Create a profile (with allowUpdate=true: update the one holding a given unique value)",
        params: TableParams,
        querystring: Type.Object({ allowUpdate: Type.Optional(Type.Boolean()) }),
        body: ProfileBody,
        response: { 200: ProfileIdResponse },
      },
    },
    async (request) => {
      const { table, origin } = await dataRouteContext(
        deps,
        request,
        request.params,
        "PROFILE_TABLE",
      );
      const write = parseProfileInput(table, request.body);
      const result = await upsertProfile(deps.db, table, write, {
        allowUpdate: request.query.allowUpdate === true,
        origin,
      });
      return { profileId: result.profileId };
    },
  );

  app.get(
    base,
    {
      schema: {
        tags: [TAG],
        summary: "Search profiles by one attribute value",
        params: TableParams,
        querystring: Type.Object({
          search: Type.String({ description: "attribute=value" }),
          number: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
        }),
        response: { 200: Type.Object({ profiles: Type.Array(Profile) }) },
      },
    },
    async (request) => {
      const { table } = await dataRouteContext(deps, request, request.params, "PROFILE_TABLE");
      const { search, number = 100 } = request.query;
      const eq = search.indexOf("=");
      const name = eq > 0 ? search.slice(0, eq) : "";
      const attribute = table.attributes.find((a) => a.name === name);
      const invalidSearch = (reason: string) =>
        new HeraldError("HERALD_INVALID_QUERY", { parameter: "search", reason }, [
          { path: "querystring.search", message: reason },
        ]);
      if (name === "profileId") {
        const key = parseProfileKey(table, search);
        const record = await readProfile(deps.db, table, key).catch(() => undefined);
        return { profiles: record ? [renderProfile(table, record)] : [] };
      }
      if (!attribute) throw invalidSearch("must be attribute=value with an attribute of the table");
      const checked = checkValue(attribute, search.slice(eq + 1));
      if (checked.kind === "invalid" || checked.value === null)
        throw invalidSearch(checked.kind === "invalid" ? checked.message : "needs a value");
      // A multi-valued attribute checks as a one-item list: containment finds lists holding it.
      const value = checked.value;
      const records = await searchRecords(deps.db, table.id, {
        match: { attribute: attribute.name, value },
        ascending: true,
        limit: number,
      });
      return { profiles: records.map((r) => renderProfile(table, r)) };
    },
  );

  app.get(
    `${base}/:profileKey`,
    {
      schema: {
        tags: [TAG],
        summary: "Read a profile",
        params: KeyParams,
        response: { 200: Profile },
      },
    },
    async (request) => {
      const { table } = await dataRouteContext(deps, request, request.params, "PROFILE_TABLE");
      const record = await readProfile(
        deps.db,
        table,
        parseProfileKey(table, request.params.profileKey),
      );
      return renderProfile(table, record);
    },
  );

  app.put(
    `${base}/:profileKey`,
    {
      schema: {
        tags: [TAG],
        summary: "Update a profile (only the attributes given change; null clears a value)",
        params: KeyParams,
        body: ProfileBody,
        response: { 200: ProfileIdResponse },
      },
    },
    async (request) => {
      const { table, origin } = await dataRouteContext(
        deps,
        request,
        request.params,
        "PROFILE_TABLE",
      );
      const key = parseProfileKey(table, request.params.profileKey);
      const write = parseProfileInput(table, request.body);
      const result = await updateProfile(deps.db, table, key, write, origin);
      return { profileId: result.profileId };
    },
  );

  app.delete(
    `${base}/:profileKey`,
    {
      schema: {
        tags: [TAG],
        summary: "Delete a profile",
        params: KeyParams,
        response: { 204: Type.Null() },
      },
    },
    async (request, reply) => {
      const { table, origin } = await dataRouteContext(
        deps,
        request,
        request.params,
        "PROFILE_TABLE",
      );
      await deleteProfile(
        deps.db,
        table,
        parseProfileKey(table, request.params.profileKey),
        origin,
      );
      return reply.code(204).send(null);
    },
  );

  // --- Subscriptions ---------------------------------------------------------------------------
  app.get(
    `${base}/:profileKey/subscription`,
    {
      schema: {
        tags: [TAG],
        summary: "A profile's subscriptions",
        params: KeyParams,
        response: { 200: Type.Object({ subscriptions: SubscriptionList }) },
      },
    },
    async (request) => {
      const { table } = await dataRouteContext(deps, request, request.params, "PROFILE_TABLE");
      const record = await readProfile(
        deps.db,
        table,
        parseProfileKey(table, request.params.profileKey),
      );
      return { subscriptions: renderSubscriptions(table, record) };
    },
  );

  const SubscriptionParams = Type.Object({
    entity: Type.String(),
    table: Type.String(),
    profileKey: Type.String(),
    subscriptionName: Type.String(),
  });
  for (const [method, subscribe] of [
    ["POST", true],
    ["DELETE", false],
  ] as const) {
    app.route({
      method,
      url: `${base}/:profileKey/subscription/:subscriptionName`,
      schema: {
        tags: [TAG],
        summary: subscribe ? "Subscribe a profile" : "Unsubscribe a profile",
        params: SubscriptionParams,
        response: subscribe ? { 200: ProfileIdResponse } : { 204: Type.Null() },
      },
      handler: async (request, reply) => {
        const params = request.params as Static<typeof SubscriptionParams>;
        const { table, origin } = await dataRouteContext(deps, request, params, "PROFILE_TABLE");
        if (!table.subscriptions.some((s) => s.name === params.subscriptionName))
          throw new HeraldError("HERALD_PROFILE_SUBSCRIPTION_NOT_FOUND", {
            subscription: params.subscriptionName,
            table: table.name,
          });
        const result = await updateProfile(
          deps.db,
          table,
          parseProfileKey(table, params.profileKey),
          {
            attributes: {},
            subscriptions: [{ subscriptionName: params.subscriptionName, subscribe }],
            segments: [],
          },
          origin,
        );
        return subscribe ? { profileId: result.profileId } : reply.code(204).send(null);
      },
    });
  }

  // --- Segmentations ---------------------------------------------------------------------------
  app.get(
    `${base}/:profileKey/segmentation`,
    {
      schema: {
        tags: [TAG],
        summary: "A profile's segment memberships",
        params: KeyParams,
        response: { 200: Type.Object({ segmentations: SegmentationList }) },
      },
    },
    async (request) => {
      const { table } = await dataRouteContext(deps, request, request.params, "PROFILE_TABLE");
      const record = await readProfile(
        deps.db,
        table,
        parseProfileKey(table, request.params.profileKey),
      );
      return { segmentations: renderSegmentations(table, record) };
    },
  );

  const SegmentationParams = Type.Object({
    entity: Type.String(),
    table: Type.String(),
    profileKey: Type.String(),
    segmentationName: Type.String(),
  });
  app.put(
    `${base}/:profileKey/segmentation/:segmentationName`,
    {
      schema: {
        tags: [TAG],
        summary: "Put a profile in a segment (EXCLUSIVE: leaves the segment it was in)",
        params: SegmentationParams,
        body: Type.Object({
          name: Type.Optional(
            Type.String({ description: "The segment (SIMPLE: may be left out)" }),
          ),
          segment: Type.Optional(Type.String({ description: "Same as name" })),
        }),
        response: { 200: ProfileIdResponse },
      },
    },
    async (request) => {
      const { table, origin } = await dataRouteContext(
        deps,
        request,
        request.params,
        "PROFILE_TABLE",
      );
      const segmentation = table.segmentations.find(
        (s) => s.name === request.params.segmentationName,
      );
      if (!segmentation)
        throw new HeraldError("HERALD_SEGMENTATION_NOT_FOUND", {
          segmentation: request.params.segmentationName,
          table: table.name,
        });
      const name = request.body.name ?? request.body.segment;
      const write = parseProfileInput(table, {
        segmentations: [
          { belongs: true, category: segmentation.name, ...(name === undefined ? {} : { name }) },
        ],
      });
      const key = parseProfileKey(table, request.params.profileKey);
      const result = await updateProfile(deps.db, table, key, write, origin);
      return { profileId: result.profileId };
    },
  );

  app.delete(
    `${base}/:profileKey/segmentation/:segmentationName`,
    {
      schema: {
        tags: [TAG],
        summary: "Take a profile out of a segmentation",
        params: SegmentationParams,
        response: { 204: Type.Null() },
      },
    },
    async (request, reply) => {
      const { table, origin } = await dataRouteContext(
        deps,
        request,
        request.params,
        "PROFILE_TABLE",
      );
      const segmentation = table.segmentations.find(
        (s) => s.name === request.params.segmentationName,
      );
      if (!segmentation)
        throw new HeraldError("HERALD_SEGMENTATION_NOT_FOUND", {
          segmentation: request.params.segmentationName,
          table: table.name,
        });
      const key = parseProfileKey(table, request.params.profileKey);
      const current = await readProfile(deps.db, table, key);
      const segment = current.segments[segmentation.name];
      if (segment !== undefined)
        await updateProfile(
          deps.db,
          table,
          key,
          {
            attributes: {},
            subscriptions: [],
            segments: [{ segmentation: segmentation.name, segment, belongs: false }],
          },
          origin,
        );
      return reply.code(204).send(null);
    },
  );
};
export default profileRoutes;
