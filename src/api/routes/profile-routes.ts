/**
 * Profiles, one by one (SPEC §3, v4 calls): create / upsert, update, read, search, delete; a
 * profile's subscriptions and segment memberships are in `profile-membership-routes.ts`. Writes go
 * through `capture/profile-upsert.ts` (creates and upserts, group-committed) and
 * `capture/profile-writer.ts` (one transaction: record row, then change events).
 */
import { Type } from "typebox";
import { deleteProfile, parseProfileInput, updateProfile } from "../../capture/profile-writer.js";
import { parseProfileKey } from "../../domain/record-keys.js";
import { searchRecords } from "../../storage/record-repository.js";
import { dataRouteContext, withCurrentTable } from "./data-route-context.js";
import { acceptEmptyWriteBodies } from "./empty-write-body.js";
import { readProfile } from "../record-reads.js";
import type { RouteModule } from "./route-module.js";
import { registerProfileMembershipRoutes } from "./profile-membership-routes.js";
import { parseProfileSearch, profileSearchedById } from "./profile-search.js";
import {
  base,
  KeyParams,
  Profile,
  ProfileBody,
  ProfileIdResponse,
  renderProfile,
  TableParams,
  TAG,
} from "./profile-schemas.js";

export { renderProfile } from "./profile-schemas.js";

const profileRoutes: RouteModule = async (app, deps) => {
  acceptEmptyWriteBodies(app);
  app.post(
    base,
    {
      // Its own validation refuses text PostgreSQL cannot store, naming the field.
      config: { textCheckedByRoute: true },
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
      return withCurrentTable(
        deps,
        request,
        request.params,
        "PROFILE_TABLE",
        async ({ table, origin }) => {
          const write = parseProfileInput(table, request.body);
          const result = await deps.profileUpserts.upsert(table, write, {
            allowUpdate: request.query.allowUpdate === true,
            origin,
          });
          return { profileId: result.profileId };
        },
      );
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
      const parsed = parseProfileSearch(table, search);
      if (parsed.kind === "profileId") {
        const record = await profileSearchedById(deps.db, table, parsed.key);
        return { profiles: record ? [renderProfile(table, record)] : [] };
      }
      const records = await searchRecords(deps.db, table.id, {
        match: parsed.match,
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
      // Its own validation refuses text PostgreSQL cannot store, naming the field.
      config: { textCheckedByRoute: true },
      schema: {
        tags: [TAG],
        summary: "Update a profile (only the attributes given change; null clears a value)",
        params: KeyParams,
        body: ProfileBody,
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
          const key = parseProfileKey(table, request.params.profileKey);
          const write = parseProfileInput(table, request.body);
          const result = await updateProfile(deps, table, key, write, origin);
          return { profileId: result.profileId };
        },
      );
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
          await deleteProfile(
            deps,
            table,
            parseProfileKey(table, request.params.profileKey),
            origin,
          );
          return reply.code(204).send(null);
        },
      );
    },
  );

  registerProfileMembershipRoutes(app, deps);
};
export default profileRoutes;
