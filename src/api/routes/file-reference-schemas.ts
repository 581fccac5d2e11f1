/** TypeBox schemas of the file reference routes (SPEC §7.2); they also document them in /openapi.json. */
import { Type } from "typebox";
import { SYNCHRONIZATION_STATUSES } from "../../storage/file-synchronization-repository.js";
import { Detail } from "./detail-schema.js";
import { PageParameter } from "./paging.js";

export const TAG = "file references";

export const EntityParams = Type.Object({ entity: Type.String() });
export const ReferenceParams = Type.Object({ entity: Type.String(), id: Type.String() });
export const SynchronizationParams = Type.Object({
  entity: Type.String(),
  id: Type.String(),
  syncId: Type.String(),
});

const Link = Type.Object({ href: Type.String() });
const Schedule = Type.Object({ cron: Type.String(), timezone: Type.String() });

export const Paging = {
  page: PageParameter,
  pageSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
};

/** A definition as sent: read leniently (docs/files-and-exports.md), so any object here. */
export const ReferenceBody = Type.Record(Type.String(), Type.Unknown(), {
  description:
    'A file reference: {"name", "source": {"type": "HTTPS" | "SFTP" | "DIRECTORY", …}, "schedule": {"cron", "timezone"}, "timezone"}. Credentials (SFTP password, privateKey; HTTPS header values) are write-only; a PUT without them keeps the stored ones for the same server.',
});

export const FileReference = Type.Object({
  id: Type.String(),
  name: Type.String(),
  source: Type.Record(Type.String(), Type.Unknown(), {
    description:
      "The source without its credentials: passwordSet / privateKeySet (SFTP), headerNames (HTTPS)",
  }),
  schedule: Type.Union([Schedule, Type.Null()]),
  timezone: Type.String({ description: "The zone date placeholders expand in" }),
  nextSynchronizationAt: Type.Union([Type.String({ format: "date-time" }), Type.Null()]),
  createdAt: Type.String({ format: "date-time" }),
  updatedAt: Type.String({ format: "date-time" }),
  details: Type.Optional(
    Type.Array(Detail, { description: "Keys of the definition Herald ignored" }),
  ),
  _links: Type.Object({ self: Link, synchronizations: Link }),
});

export const FileReferenceList = Type.Object({
  fileReferences: Type.Array(FileReference),
  page: Type.Integer(),
  pageSize: Type.Integer(),
  totalElements: Type.Integer(),
});

const Status = Type.Enum(SYNCHRONIZATION_STATUSES);

export const SynchronizationStarted = Type.Object({ synchronizationId: Type.String() });

export const Synchronization = Type.Object({
  id: Type.String(),
  fileReferenceId: Type.String(),
  status: Status,
  createdAt: Type.String({ format: "date-time" }),
  startedAt: Type.Union([Type.String({ format: "date-time" }), Type.Null()]),
  finishedAt: Type.Union([Type.String({ format: "date-time" }), Type.Null()]),
  fileName: Type.Union([Type.String(), Type.Null()]),
  bytes: Type.Union([Type.Integer(), Type.Null()]),
  sha256: Type.Union([Type.String(), Type.Null()]),
  error: Type.Union([Type.Object({ code: Type.String(), message: Type.String() }), Type.Null()]),
  _links: Type.Object({ self: Link, fileReference: Link, file: Type.Optional(Link) }),
});

export const SynchronizationList = Type.Object({
  synchronizations: Type.Array(Synchronization),
  page: Type.Integer(),
  pageSize: Type.Integer(),
  totalElements: Type.Integer(),
});

export const SynchronizationQuery = Type.Object({
  status: Type.Optional(Status),
  ...Paging,
});
