/**
 * A profile's subscriptions and segment memberships (SPEC §3, v4 calls): read them, subscribe /
 * unsubscribe, join / leave a segment. Each change is a profile write (`updateProfile`): one
 * UPDATED_SUBSCRIPTION or UPDATED_SEGMENT event per membership that changed, none when nothing did.
 */
import type { Static } from "typebox";
import { Type } from "typebox";
import { parseProfileInput, readProfile, updateProfile } from "../../capture/profile-writer.js";
import type { DataTable, Segmentation } from "../../domain/data-table.js";
import { HeraldError } from "../../domain/errors.js";
import { parseProfileKey } from "../../domain/record-keys.js";
import type { AppDeps, HeraldApp } from "../app.js";
import { dataRouteContext, withCurrentTable } from "./data-route-context.js";
import {
  base,
  KeyParams,
  ProfileIdResponse,
  renderSegmentations,
  renderSubscriptions,
  SegmentationList,
  SubscriptionList,
  TAG,
} from "./profile-schemas.js";

export function registerProfileMembershipRoutes(app: HeraldApp, deps: AppDeps): void {
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
        return withCurrentTable(
          deps,
          request,
          params,
          "PROFILE_TABLE",
          async ({ table, origin }) => {
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
        );
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
      return withCurrentTable(
        deps,
        request,
        request.params,
        "PROFILE_TABLE",
        async ({ table, origin }) => {
          const segmentation = segmentationOf(table, request.params.segmentationName);
          const name = request.body.name ?? request.body.segment;
          const write = parseProfileInput(table, {
            segmentations: [
              {
                belongs: true,
                category: segmentation.name,
                ...(name === undefined ? {} : { name }),
              },
            ],
          });
          const key = parseProfileKey(table, request.params.profileKey);
          const result = await updateProfile(deps.db, table, key, write, origin);
          return { profileId: result.profileId };
        },
      );
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
      return withCurrentTable(
        deps,
        request,
        request.params,
        "PROFILE_TABLE",
        async ({ table, origin }) => {
          const segmentation = segmentationOf(table, request.params.segmentationName);
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
    },
  );
}

/** The table's segmentation of that name, or 404 HERALD_SEGMENTATION_NOT_FOUND. */
function segmentationOf(table: DataTable, name: string): Segmentation {
  const segmentation = table.segmentations.find((s) => s.name === name);
  if (!segmentation)
    throw new HeraldError("HERALD_SEGMENTATION_NOT_FOUND", {
      segmentation: name,
      table: table.name,
    });
  return segmentation;
}
