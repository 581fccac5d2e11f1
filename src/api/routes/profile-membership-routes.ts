/**
 * A profile's subscriptions and segment memberships (SPEC §3, v4 calls): read them, subscribe /
 * unsubscribe, join / leave a segment. Each change is a profile write (`updateProfile`, under the
 * profile's row lock): one UPDATED_SUBSCRIPTION or UPDATED_SEGMENT event per membership that
 * changed, none when nothing did. Bodies are optional (SPEC §3 "Bodies", empty-write-body.ts): the
 * subscription calls take none, a SIMPLE segmentation needs none.
 */
import type { Static } from "typebox";
import { Type } from "typebox";
import { updateProfile } from "../../capture/profile-writer.js";
import { HeraldError } from "../../domain/errors.js";
import { parseProfileKey } from "../../domain/record-keys.js";
import type { AppDeps, HeraldApp } from "../app-deps.js";
import { readProfile } from "../record-reads.js";
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
import type { NamedSegment } from "./segmentation-target.js";
import { oneSegment, parseSegmentationParam, segmentationChange } from "./segmentation-target.js";

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
              deps,
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
        description:
          "The same list under both keys: clients written for Actito read either `segmentations` or `segmentation`.",
        params: KeyParams,
        response: {
          200: Type.Object({ segmentations: SegmentationList, segmentation: SegmentationList }),
        },
      },
    },
    async (request) => {
      const { table } = await dataRouteContext(deps, request, request.params, "PROFILE_TABLE");
      const record = await readProfile(
        deps.db,
        table,
        parseProfileKey(table, request.params.profileKey),
      );
      const segmentations = renderSegmentations(table, record);
      return { segmentations, segmentation: segmentations };
    },
  );

  const SegmentationParams = Type.Object({
    entity: Type.String(),
    table: Type.String(),
    profileKey: Type.String(),
    segmentationName: Type.String({
      description: "The segmentation, optionally with the segment as ;category=<segment>",
    }),
  });
  const SegmentQuery = Type.Object({
    segment: Type.Optional(Type.String({ description: "The segment (as ;category=)" })),
  });
  app.put(
    `${base}/:profileKey/segmentation/:segmentationName`,
    {
      schema: {
        tags: [TAG],
        summary:
          "Put a profile in a segment (EXCLUSIVE: leaves the segment it was in), or with belongs: false take it out",
        description:
          "The segment is the body's `name` (or `segment`), the matrix parameter `;category=<segment>` or `?segment=`; a SIMPLE segmentation needs none, and no body at all.",
        params: SegmentationParams,
        querystring: SegmentQuery,
        body: Type.Object({
          name: Type.Optional(
            Type.String({ description: "The segment (SIMPLE: may be left out)" }),
          ),
          segment: Type.Optional(Type.String({ description: "Same as name" })),
          belongs: Type.Optional(
            Type.Boolean({
              description:
                "Default true; false takes the profile out (of the segment named, or of whatever segment it is in)",
            }),
          ),
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
          const { body, query } = request;
          const target = parseSegmentationParam(table, request.params.segmentationName);
          let named = target.named;
          named = oneSegment(named, given(query.segment, "querystring.segment"));
          named = oneSegment(named, given(body.name, "body.name"));
          named = oneSegment(named, given(body.segment, "body.segment"));
          const change = segmentationChange(
            table,
            target.segmentation,
            named,
            body.belongs ?? true,
            "body.name",
          );
          const key = parseProfileKey(table, request.params.profileKey);
          const result = await updateProfile(
            deps,
            table,
            key,
            { attributes: {}, subscriptions: [], ...change },
            origin,
          );
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
        summary: "Take a profile out of a segmentation (or only out of the segment named)",
        params: SegmentationParams,
        querystring: SegmentQuery,
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
          const target = parseSegmentationParam(table, request.params.segmentationName);
          const named = oneSegment(
            target.named,
            given(request.query.segment, "querystring.segment"),
          );
          const change = segmentationChange(table, target.segmentation, named, false, "");
          const key = parseProfileKey(table, request.params.profileKey);
          await updateProfile(
            deps,
            table,
            key,
            { attributes: {}, subscriptions: [], ...change },
            origin,
          );
          return reply.code(204).send(null);
        },
      );
    },
  );
}

/** A segment named in one place of a request; an empty one names none. */
function given(segment: string | undefined, path: string): NamedSegment | undefined {
  return segment === undefined || segment === "" ? undefined : { segment, path };
}
