/** TypeBox schemas of the scenario definition routes (SPEC §7.4); they also document them in /openapi.json. */
import { Type } from "typebox";
import { Detail } from "./detail-schema.js";
import { PageParameter } from "./paging.js";

export const TAG = "scenarios";

export const EntityParams = Type.Object({ entity: Type.String() });
export const ScenarioParams = Type.Object({
  entity: Type.String(),
  id: Type.String({ description: "The scenario's id or name" }),
});

export const ScenarioListQuery = Type.Object({
  page: PageParameter,
  pageSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
  status: Type.Optional(
    Type.Union([Type.Literal("ACTIVE"), Type.Literal("INACTIVE")], {
      description: "Only the scenarios of this status",
    }),
  ),
});

const Link = Type.Object({ href: Type.String() });
const Timestamp = Type.String({ format: "date-time" });

/** A definition as posted: the §7.4 keys, checked by parseScenario (so: any object here). */
export const ScenarioBody = Type.Record(Type.String(), Type.Unknown(), {
  description:
    "A scenario (docs/scenarios.md): name, profileTable (name or id), reentry NEVER|AFTER_EXIT|ALWAYS, start {type DATA_EVENT|API|SEGMENT_ENTRY|SUBSCRIPTION|DATE, …}, blocks [{id, type WAIT|FILTER|CUSTOM_ACTION|UPDATE_PROFILE|EXIT, …, next, otherwise}]; runs begin at the first block",
});

export const DeactivateBody = Type.Object({
  cancelRuns: Type.Optional(
    Type.Boolean({
      default: false,
      description:
        "true: every run still going ends CANCELLED now; false (default): runs go on to their end, no new run starts",
    }),
  ),
});

export const Scenario = Type.Object({
  id: Type.String(),
  name: Type.String(),
  profileTable: Type.String({
    description: "The profile table's name (its id once it is deleted)",
  }),
  profileTableId: Type.String(),
  reentry: Type.Union([Type.Literal("NEVER"), Type.Literal("AFTER_EXIT"), Type.Literal("ALWAYS")]),
  start: Type.Record(Type.String(), Type.Unknown()),
  blocks: Type.Array(Type.Record(Type.String(), Type.Unknown()), {
    description:
      "The blocks as stored; a CUSTOM_ACTION block names its action by name (customAction) and id (customActionId)",
  }),
  status: Type.Union([Type.Literal("INACTIVE"), Type.Literal("ACTIVE")]),
  activatedAt: Type.Union([Timestamp, Type.Null()], { description: "The last activation" }),
  deactivatedAt: Type.Union([Timestamp, Type.Null()], { description: "The last deactivation" }),
  createdAt: Timestamp,
  updatedAt: Timestamp,
  details: Type.Optional(
    Type.Array(Detail, { description: "Keys of the definition Herald ignored (POST and PUT)" }),
  ),
  cancelledRuns: Type.Optional(
    Type.Integer({ description: "Deactivation with cancelRuns: how many runs it cancelled" }),
  ),
  _links: Type.Object({ self: Link, runs: Link, statistics: Link }),
});

export const ScenarioList = Type.Object({
  scenarios: Type.Array(Scenario),
  page: Type.Integer(),
  pageSize: Type.Integer(),
  totalElements: Type.Integer(),
});
