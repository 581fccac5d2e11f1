/**
 * Profiles, v5 (SPEC §3, "Profiles (v5)"): upsert by key, the paged list with search, read and
 * delete by key. Also answers under Actito's service prefix (`/profiles/v5/…`, service-prefixes.ts).
 * Writes go through the same capture path as the v4 calls (capture/profile-upsert.ts,
 * capture/profile-writer.ts): the same events, foreign keys, table write gate and group commit.
 */
import { Type } from "typebox";
import { deleteProfile, updateProfile } from "../../capture/profile-writer.js";
import { parseProfileKey } from "../../domain/record-keys.js";
import { pageRecords } from "../../storage/record-repository.js";
import { dataRouteContext, withCurrentTable } from "./data-route-context.js";
import { acceptEmptyWriteBodies } from "./empty-write-body.js";
import { readProfile } from "../record-reads.js";
import type { RouteModule } from "./route-module.js";
import { parseProfileSearch, profileSearchedById } from "./profile-search.js";
import {
  base,
  KeyParams,
  renderV5Profile,
  TableParams,
  TAG,
  V5Profile,
  V5ProfilePage,
  V5ProfileWrite,
  V5UpsertResponse,
} from "./profile-v5-schemas.js";
import { parseV5ProfileWrite } from "./profile-v5-write.js";
import { PageParameter } from "./paging.js";

const profileV5Routes: RouteModule = async (app, deps) => {
  acceptEmptyWriteBodies(app);

  app.put(
    base,
    {
      // Its own validation refuses text PostgreSQL cannot store, naming the field.
      config: { textCheckedByRoute: true },
      schema: {
        tags: [TAG],
        summary: "Create or update the profile holding a unique value (upsert by key)",
        description:
          "200 with created: false when a profile held the key's value, 201 with created: true when it created one. Only the attributes, subscriptions and segmentations given change.",
        params: TableParams,
        body: V5ProfileWrite,
        response: { 200: V5UpsertResponse, 201: V5UpsertResponse },
      },
    },
    async (request, reply) => {
      return withCurrentTable(
        deps,
        request,
        request.params,
        "PROFILE_TABLE",
        async ({ table, origin }) => {
          const { target, write } = parseV5ProfileWrite(table, request.body);
          const result =
            target.kind === "profileId"
              ? await updateProfile(deps, table, target, write, origin)
              : await deps.profileUpserts.upsert(table, write, {
                  allowUpdate: true,
                  origin,
                  lookupBy: target.key,
                });
          const created = result.outcome === "CREATED";
          return reply.code(created ? 201 : 200).send({ profileId: result.profileId, created });
        },
      );
    },
  );

  app.get(
    base,
    {
      schema: {
        tags: [TAG],
        summary: "List profiles, a page at a time, optionally those with one attribute value",
        description: "Without search: every profile of the table, in profileId order.",
        params: TableParams,
        querystring: Type.Object({
          search: Type.Optional(Type.String({ description: "attribute=value" })),
          page: PageParameter,
          pageSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
        }),
        response: { 200: V5ProfilePage },
      },
    },
    async (request) => {
      const { table } = await dataRouteContext(deps, request, request.params, "PROFILE_TABLE");
      const { search, page = 0, pageSize = 100 } = request.query;
      const parsed = search === undefined ? undefined : parseProfileSearch(table, search);
      if (parsed?.kind === "profileId") {
        const record = await profileSearchedById(deps.db, table, parsed.key);
        const found = record ? [renderV5Profile(table, record)] : [];
        return {
          profiles: page === 0 ? found : [],
          page,
          pageSize,
          totalElements: found.length,
        };
      }
      const { records, total } = await pageRecords(deps.db, table.id, {
        ...(parsed ? { match: parsed.match } : {}),
        offset: page * pageSize,
        limit: pageSize,
      });
      return {
        profiles: records.map((r) => renderV5Profile(table, r)),
        page,
        pageSize,
        totalElements: total,
      };
    },
  );

  app.get(
    `${base}/:profileKey`,
    {
      schema: {
        tags: [TAG],
        summary: "Read a profile",
        params: KeyParams,
        response: { 200: V5Profile },
      },
    },
    async (request) => {
      const { table } = await dataRouteContext(deps, request, request.params, "PROFILE_TABLE");
      const key = parseProfileKey(table, request.params.profileKey);
      return renderV5Profile(table, await readProfile(deps.db, table, key));
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
      return withCurrentTable(
        deps,
        request,
        request.params,
        "PROFILE_TABLE",
        async ({ table, origin }) => {
          const key = parseProfileKey(table, request.params.profileKey);
          await deleteProfile(deps, table, key, origin);
          return reply.code(204).send(null);
        },
      );
    },
  );
};
export default profileV5Routes;
