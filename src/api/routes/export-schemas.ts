/** TypeBox schemas of the export routes (SPEC §7.3); they also document them in /openapi.json. */
import { Type } from "typebox";
import { PageParameter } from "./paging.js";

export const TAG = "exports";

export const EntityParams = Type.Object({ entity: Type.String() });
export const ExportParams = Type.Object({ entity: Type.String(), id: Type.String() });
export const ExecutionParams = Type.Object({
  entity: Type.String(),
  id: Type.String(),
  executionId: Type.String(),
});

export const Paging = Type.Object({
  page: PageParameter,
  pageSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
});

const Link = Type.Object({ href: Type.String() });

/** A definition as posted: the §7.3 keys, checked by parseExportDefinition (so: any object here). */
export const ExportBody = Type.Record(Type.String(), Type.Unknown(), {
  description:
    "An export definition (docs/files-and-exports.md): name, source {tableType, table}, fields, filter {conditions, segmentation {name, segment}, subscription}, mode FULL|INCREMENTAL, format {type CSV|NDJSON, separator, compression NONE|GZIP|ZIP}, schedule {cron, timezone}, destination {fileReference}",
});

export const Export = Type.Object({
  id: Type.String(),
  name: Type.String(),
  source: Type.Object({ tableType: Type.String(), table: Type.String() }),
  fields: Type.Union([Type.Array(Type.String()), Type.Null()]),
  filter: Type.Record(Type.String(), Type.Unknown()),
  mode: Type.Union([Type.Literal("FULL"), Type.Literal("INCREMENTAL")]),
  format: Type.Object({
    type: Type.String(),
    separator: Type.String(),
    compression: Type.String(),
  }),
  schedule: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
  nextRunAt: Type.Optional(Type.String({ format: "date-time" })),
  destination: Type.Union([Type.Object({ fileReference: Type.String() }), Type.Null()]),
  createdAt: Type.String({ format: "date-time" }),
  updatedAt: Type.String({ format: "date-time" }),
  _links: Type.Object({ self: Link, executions: Link }),
});

export const ExportList = Type.Object({
  exports: Type.Array(Export),
  page: Type.Integer(),
  pageSize: Type.Integer(),
  totalElements: Type.Integer(),
});

export const ExecutionStarted = Type.Object({ executionId: Type.String() });

const Position = Type.Union([Type.Integer(), Type.Null()]);

export const ExportExecution = Type.Object({
  id: Type.String(),
  exportId: Type.String(),
  status: Type.Union([
    Type.Literal("PENDING"),
    Type.Literal("RUNNING"),
    Type.Literal("SUCCESS"),
    Type.Literal("ERROR"),
  ]),
  mode: Type.Union([Type.Literal("FULL"), Type.Literal("INCREMENTAL"), Type.Null()]),
  createdAt: Type.String({ format: "date-time" }),
  startedAt: Type.Union([Type.String({ format: "date-time" }), Type.Null()]),
  finishedAt: Type.Union([Type.String({ format: "date-time" }), Type.Null()]),
  rowCount: Type.Union([Type.Integer(), Type.Null()]),
  bytes: Type.Union([Type.Integer(), Type.Null()]),
  fileName: Type.Union([Type.String(), Type.Null()]),
  fromPosition: Type.Union([Position], {
    description:
      "INCREMENTAL: the log position the execution's changes start after (null: it holds every row)",
  }),
  toPosition: Type.Union([Position], {
    description:
      "The log head its snapshot saw: changes at or below it are in this or an earlier execution",
  }),
  destination: Type.Union([Type.String(), Type.Null()], {
    description: "Where the copy to the destination reference went",
  }),
  error: Type.Union([Type.Object({ code: Type.String(), message: Type.String() }), Type.Null()]),
  _links: Type.Object({ self: Link, export: Link, file: Type.Optional(Link) }),
});

export const ExportExecutionList = Type.Object({
  executions: Type.Array(ExportExecution),
  page: Type.Integer(),
  pageSize: Type.Integer(),
  totalElements: Type.Integer(),
});
