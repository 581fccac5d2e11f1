/** TypeBox schemas of the import routes (SPEC §7.1); they also document them in /openapi.json. */
import { Type } from "typebox";
import { Detail } from "./detail-schema.js";
import { PageParameter } from "./paging.js";

export const TAG = "imports (ETL)";

export const EntityParams = Type.Object({ entity: Type.String() });
export const ExecutionParams = Type.Object({ entity: Type.String(), id: Type.String() });
export const EtlParams = Type.Object({ entity: Type.String(), etlId: Type.String() });
export const V4TableParams = Type.Object({ entity: Type.String(), table: Type.String() });

const Status = Type.Union([
  Type.Literal("PENDING"),
  Type.Literal("RUNNING"),
  Type.Literal("SUCCESS"),
  Type.Literal("WITH_ERROR"),
  Type.Literal("ERROR"),
  Type.Literal("CANCELLED"),
]);

const Link = Type.Object({ href: Type.String() });

export const ExecutionStarted = Type.Object({
  executionId: Type.String(),
  details: Type.Optional(
    Type.Array(Detail, { description: "Keys of the definition Herald ignored" }),
  ),
});

export const LegacyExecutionStarted = Type.Object({
  id: Type.String({ description: "The execution's id" }),
  details: Type.Optional(Type.Array(Detail)),
});

const Counts = Type.Object({
  read: Type.Integer(),
  created: Type.Integer(),
  updated: Type.Integer(),
  unchanged: Type.Integer(),
  rejected: Type.Integer(),
});

export const Execution = Type.Object({
  id: Type.String(),
  etlId: Type.Union([Type.String(), Type.Null()]),
  status: Status,
  createdAt: Type.String({ format: "date-time" }),
  startedAt: Type.Union([Type.String({ format: "date-time" }), Type.Null()]),
  finishedAt: Type.Union([Type.String({ format: "date-time" }), Type.Null()]),
  file: Type.Object({ name: Type.String(), bytes: Type.Integer(), sha256: Type.String() }),
  progress: Type.Object({
    bytesRead: Type.Integer(),
    bytesTotal: Type.Integer(),
    rowsRead: Type.Integer(),
  }),
  counts: Counts,
  rejectedRows: Type.Array(
    Type.Object({
      line: Type.Integer(),
      column: Type.Union([Type.String(), Type.Null()]),
      code: Type.String(),
      message: Type.String(),
    }),
    { description: "The first 100 rejected rows; rejected-rows has them all" },
  ),
  error: Type.Union([Type.Object({ code: Type.String(), message: Type.String() }), Type.Null()]),
  _links: Type.Object({
    self: Link,
    rejectedRows: Link,
    etl: Type.Optional(Link),
  }),
});

export const ExecutionList = Type.Object({
  etlExecutions: Type.Array(Execution),
  page: Type.Integer(),
  pageSize: Type.Integer(),
  totalElements: Type.Integer(),
});

export const Paging = {
  page: PageParameter,
  pageSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
};

export const ExecutionQuery = Type.Object({
  etlId: Type.Optional(Type.String()),
  status: Type.Optional(Status),
  ...Paging,
});

/** A definition as stored and returned: the §7.1 keys, read leniently (so: any object here). */
export const DefinitionBody = Type.Record(Type.String(), Type.Unknown(), {
  description:
    "An ETL definition (docs/imports.md): name, target {tableType, table}, mode, keyAttribute, file, mapping, transformations, maxRejectedRows, source, launch",
});

export const Etl = Type.Object({
  id: Type.String(),
  name: Type.String(),
  definition: Type.Record(Type.String(), Type.Unknown()),
  createdAt: Type.String({ format: "date-time" }),
  updatedAt: Type.String({ format: "date-time" }),
  /** The next due time of a SCHEDULED ETL; null for MANUAL and ON_FILE ones. */
  nextRunAt: Type.Union([Type.String({ format: "date-time" }), Type.Null()]),
  details: Type.Optional(Type.Array(Detail)),
  _links: Type.Object({ self: Link, executions: Link }),
});

export const EtlList = Type.Object({
  etls: Type.Array(Etl),
  page: Type.Integer(),
  pageSize: Type.Integer(),
  totalElements: Type.Integer(),
});

export const MULTIPART_BODY_DOC =
  "multipart/form-data: a file part `inputFile` (aliases `file`, `dataFile`) with the data (CSV or NDJSON, optionally .zip/.gz), and a part `etlDefinition` (alias `parameters`) with the definition's JSON, as a file or a text field";
