/**
 * TypeBox schemas of the scenario run routes (SPEC §7.4: the API start, the runs, the statistics);
 * they also document them in /openapi.json.
 */
import { Type } from "typebox";
import { Detail } from "./detail-schema.js";
import { PageParameter } from "./paging.js";

export const TAG = "scenarios";

export const ScenarioParams = Type.Object({
  entity: Type.String(),
  id: Type.String({ description: "The scenario's id or name" }),
});
export const RunParams = Type.Object({
  entity: Type.String(),
  id: Type.String({ description: "The scenario's id or name" }),
  runId: Type.String(),
});

const Link = Type.Object({ href: Type.String() });
const Timestamp = Type.String({ format: "date-time" });

const RUN_STATUS = Type.Union(
  [
    Type.Literal("WAITING"),
    Type.Literal("RUNNING"),
    Type.Literal("FINISHED"),
    Type.Literal("CANCELLED"),
    Type.Literal("FAILED"),
  ],
  {
    description:
      "RUNNING: due now, about to move (or between two tries after a failure); WAITING: in a WAIT until dueAt; then FINISHED (an EXIT, or a FILTER or WAIT it could not pass), CANCELLED (deactivation with cancelRuns, the profile deleted, a block that can no longer run) or FAILED (its block failed 5 times)",
  },
);

export const RunsQuery = Type.Object({
  profileKey: Type.Optional(
    Type.String({
      minLength: 1,
      description:
        "Only this profile's runs: its profileId, or attribute=value of a unique attribute",
    }),
  ),
  status: Type.Optional(RUN_STATUS),
  page: PageParameter,
  pageSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
});

/** Read leniently (unknown keys are warnings), so checked by the route. */
export const StartBody = Type.Record(Type.String(), Type.Unknown(), {
  description:
    '{"profileKey": "<profileId or attribute=value of a unique attribute of the scenario\'s profile table>"}',
});

export const Run = Type.Object({
  id: Type.String(),
  scenarioId: Type.String(),
  profileId: Type.Integer(),
  status: RUN_STATUS,
  blockId: Type.String({
    description:
      "While the run goes on, the block it runs next; once it ended, the block it ended in",
  }),
  dueAt: Type.Union([Timestamp, Type.Null()], {
    description: "When the run moves next (a WAIT's end, or a retry); null once it ended",
  }),
  start: Type.Record(Type.String(), Type.Unknown(), {
    description:
      "What started it: {type: DATA_EVENT|SEGMENT_ENTRY|SUBSCRIPTION, position, eventId}, {type: API, apiKeyId, apiKeyName} or {type: DATE, date}",
  }),
  steps: Type.Integer({ description: "Blocks the run has gone through" }),
  failures: Type.Integer({ description: "Failed tries of its current block" }),
  lastError: Type.Union([Type.String(), Type.Null()], {
    description: "Why its last try failed, or why it ended other than by an EXIT",
  }),
  startedAt: Timestamp,
  updatedAt: Timestamp,
  endedAt: Type.Union([Timestamp, Type.Null()]),
  details: Type.Optional(Type.Array(Detail, { description: "Keys of the request Herald ignored" })),
  _links: Type.Object({ self: Link, scenario: Link, profile: Link }),
});

export const RunList = Type.Object({
  runs: Type.Array(Run),
  page: Type.Integer(),
  pageSize: Type.Integer(),
  totalElements: Type.Integer(),
});

const BlockFigures = Type.Object({
  id: Type.String({ description: "The block's id" }),
  blockId: Type.String({ description: "The block's id again, as the console reads it" }),
  type: Type.String(),
  entered: Type.Integer({ description: "Runs that reached the block" }),
  waiting: Type.Integer({ description: "Runs in it now: waiting, or about to move" }),
  passed: Type.Integer({ description: "Runs that went on from it" }),
  left: Type.Integer({
    description:
      "Runs that left the scenario in it: an EXIT, a FILTER with no way on, a cancellation, a failure",
  }),
});

export const Statistics = Type.Object({
  scenarioId: Type.String(),
  blocks: Type.Array(BlockFigures, { description: "In the order of the definition's blocks" }),
});
