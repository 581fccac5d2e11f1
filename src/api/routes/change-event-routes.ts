/**
 * The change log, read directly (SPEC §4b [ext]): an entity's stamped events in log order, shaped
 * like ONE_BY_ONE data objects. Positions only grow and never fill in below the head, so a consumer
 * that keeps `next` and asks again misses nothing; a push receiver that saw a gap in
 * `_event.position` fetches the range it missed with `after`.
 */
import { Type } from "typebox";
import { EVENT_SOURCES, EVENT_TYPES } from "../../domain/change-event.js";
import { invalid } from "../../domain/errors.js";
import { toDataObject } from "../../domain/event-payload.js";
import { readLog } from "../../storage/change-event-repository.js";
import { authOf, resolveEntity } from "../auth.js";
import type { RouteModule } from "./route-module.js";

export const CHANGE_EVENTS_DEFAULT_LIMIT = 100;
export const CHANGE_EVENTS_MAX_LIMIT = 1000;

const Query = Type.Object({
  // Digits only: the numeric conversion of query strings would quietly truncate "1.5" to 1.
  after: Type.Optional(
    Type.String({
      pattern: "^[0-9]{1,15}$",
      description:
        "Return events with a log position greater than this (the previous `next`); default 0",
    }),
  ),
  limit: Type.Optional(
    Type.String({
      pattern: "^[0-9]{1,4}$",
      description: `Most events returned, 1 to ${CHANGE_EVENTS_MAX_LIMIT}; default ${CHANGE_EVENTS_DEFAULT_LIMIT}`,
    }),
  ),
  on: Type.Optional(Type.Enum(EVENT_SOURCES)),
  onElementId: Type.Optional(
    Type.String({ minLength: 1, maxLength: 200, description: "Table, ETL, export… id" }),
  ),
  eventType: Type.Optional(Type.Enum(EVENT_TYPES)),
});

const Page = Type.Object({
  events: Type.Array(
    Type.Object({}, { additionalProperties: true, description: "A data object with `_event`" }),
  ),
  next: Type.Integer({ description: "Pass as `after` to continue; equals `after` when empty" }),
});

const changeEventRoutes: RouteModule = async (app, deps) => {
  app.get(
    "/v5/entities/:entity/change-events",
    {
      schema: {
        tags: ["change log"],
        summary: "Read the entity's change log by position",
        description:
          "Events in log order, each shaped like a ONE_BY_ONE push's `data` (with `_event.previous`). " +
          "Keep `next` and pass it as `after` to continue; nothing ever appears later below it.",
        params: Type.Object({ entity: Type.String() }),
        querystring: Query,
        response: { 200: Page },
      },
    },
    async (request) => {
      const entity = await resolveEntity(deps.entityCache, authOf(request), request.params.entity);
      const after = Number(request.query.after ?? 0);
      const limit = Number(request.query.limit ?? CHANGE_EVENTS_DEFAULT_LIMIT);
      if (limit < 1 || limit > CHANGE_EVENTS_MAX_LIMIT)
        throw invalid("querystring.limit", `must be between 1 and ${CHANGE_EVENTS_MAX_LIMIT}`);
      const events = await readLog(deps.db, after, limit, {
        entityId: entity.id,
        source: request.query.on,
        sourceId: request.query.onElementId,
        eventType: request.query.eventType,
      });
      const options = { entityName: entity.name, includePrevious: true };
      return {
        events: events.map((event) => toDataObject(event, options)),
        next: events.at(-1)?.position ?? after,
      };
    },
  );
};
export default changeEventRoutes;
