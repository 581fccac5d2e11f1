/**
 * The table-structure endpoints shared by profile tables and custom tables (SPEC §3):
 * `GET|POST /v5/entities/{entity}/{collection}`, `GET|PUT|DELETE …/{collection}/{table}`.
 * Definitions are checked by `domain/table-definition.ts` (400 malformed, 422 inconsistent);
 * a duplicate name is 409. Every change forgets the capture path's cached definitions.
 *
 * Definitions are read leniently (SPEC §3): what a definition holds that Herald ignores (an
 * unknown key, an `entityName` other than the path's entity) is listed in the 201/200 answer's
 * `details` (`[{"path", "message"}]`, the shape of error details), present only when not empty.
 */
import type { TSchema } from "typebox";
import { Type } from "typebox";
import type { DataTable, TableKind } from "../../domain/data-table.js";
import { HeraldError } from "../../domain/errors.js";
import type { ErrorDetail } from "../../domain/errors.js";
import type { DefinitionReading } from "../../domain/table-definition.js";
import { readTableDefinition } from "../../domain/table-definition.js";
import { lostToConcurrency } from "../../capture/write-retry.js";
import {
  announceTableChange,
  findTable,
  insertTable,
  listTables,
  lockTableDefinitions,
  lockTableWrites,
  updateTable,
} from "../../storage/data-table-repository.js";
import type { Database, Queryable } from "../../storage/database.js";
import { notifyJobs } from "../../storage/job-channels.js";
import { tableHasRecords } from "../../storage/record-repository.js";
import { markTableDeleted } from "../../storage/table-deletion-repository.js";
import type { AppDeps, HeraldApp } from "../app-deps.js";
import { authOf, resolveEntity } from "../auth.js";
import { assertStorableRequest } from "./data-route-context.js";
import { Detail } from "./detail-schema.js";
import {
  assertNotReferenced,
  checkTableReferences,
  referencedTableIds,
} from "./table-foreign-keys.js";

export interface TableStructureOptions {
  kind: TableKind;
  /** Path segment: `profile-tables` or `custom-tables`. */
  collection: string;
  /** Key of the list response: `profileTables` or `customTables`. */
  listKey: string;
  tag: string;
  bodySchema: TSchema;
  tableSchema: TSchema;
  /** The public shape of a stored table. */
  render(table: DataTable): Record<string, unknown>;
}

const EntityParams = Type.Object({ entity: Type.String() });
const TableParams = Type.Object({
  entity: Type.String(),
  table: Type.String({ description: "The table's id or its name" }),
});

/**
 * Reads a posted definition (throws 400/422) and adds a warning when its `entityName` names
 * another entity than the path's: the path decides.
 */
function readDefinition(kind: TableKind, body: unknown, entityName: string): DefinitionReading {
  const reading = readTableDefinition(kind, body);
  const given = reading.definition.entityName;
  if (given === undefined || given === entityName) return reading;
  const warning: ErrorDetail = {
    path: "entityName",
    message: `is '${given}' but the table belongs to entity '${entityName}' (the path's): kept as given, not used`,
  };
  return { ...reading, warnings: [...reading.warnings, warning] };
}

/** The answer to a definition write: the stored table, with `details` when something was ignored. */
function withWarnings(
  rendered: Record<string, unknown>,
  warnings: readonly ErrorDetail[],
): Record<string, unknown> {
  return warnings.length > 0 ? { ...rendered, details: warnings } : rendered;
}

function notFound(table: string, entity: string): HeraldError {
  return new HeraldError("HERALD_TABLE_NOT_FOUND", { table, entity });
}

/** Keys that identify records: changing them under existing records would orphan their key rows. */
function keyShape(table: Pick<DataTable, "attributes" | "primaryKeyAttribute">): string {
  const unique = table.attributes
    .filter((a) => a.unique)
    .map((a) => `${a.name}:${a.valueType}:${a.type ?? ""}`);
  return JSON.stringify([table.primaryKeyAttribute ?? null, unique.sort()]);
}

/** The two structure reads of one table kind: the list at `path`, one table at `path/:table`. */
export interface StructureReads {
  kind: TableKind;
  path: string;
  listKey: string;
  tag: string;
  tableSchema: TSchema;
  render(table: DataTable): Record<string, unknown>;
  listSummary: string;
  readSummary: string;
}

/** Registers the list and the read of one table kind (the v5 paths, and the v4 ones Actito calls). */
export function registerStructureReads(app: HeraldApp, deps: AppDeps, reads: StructureReads): void {
  app.get(
    reads.path,
    {
      schema: {
        tags: [reads.tag],
        summary: reads.listSummary,
        params: EntityParams,
        response: { 200: Type.Object({ [reads.listKey]: Type.Array(reads.tableSchema) }) },
      },
    },
    async (request) => {
      const entity = await resolveEntity(deps.entityCache, authOf(request), request.params.entity);
      const tables = await listTables(deps.db, entity.id, reads.kind);
      return { [reads.listKey]: tables.map(reads.render) };
    },
  );
  app.get(
    `${reads.path}/:table`,
    {
      schema: {
        tags: [reads.tag],
        summary: reads.readSummary,
        params: TableParams,
        response: { 200: reads.tableSchema },
      },
    },
    async (request) => {
      const entity = await resolveEntity(deps.entityCache, authOf(request), request.params.entity);
      const table = await findTable(deps.db, entity.id, reads.kind, request.params.table);
      if (!table) throw notFound(request.params.table, entity.name);
      return reads.render(table);
    },
  );
}

export function registerTableStructureRoutes(
  app: HeraldApp,
  deps: AppDeps,
  options: TableStructureOptions,
): void {
  const { kind, collection, tag } = options;
  const base = `/v5/entities/:entity/${collection}`;

  registerStructureReads(app, deps, {
    kind,
    path: base,
    listKey: options.listKey,
    tag,
    tableSchema: options.tableSchema,
    render: options.render,
    listSummary: `List the ${collection} of an entity`,
    readSummary: "Read one table by id or name",
  });

  app.post(
    base,
    {
      // Its own validation refuses text PostgreSQL cannot store, naming the field.
      config: { textCheckedByRoute: true },
      schema: {
        tags: [tag],
        summary: `Create a ${kind === "PROFILE_TABLE" ? "profile" : "custom"} table`,
        params: EntityParams,
        body: options.bodySchema,
        response: { 201: options.tableSchema },
      },
    },
    async (request, reply) => {
      assertStorableRequest(request);
      const entity = await resolveEntity(deps.entityCache, authOf(request), request.params.entity);
      const { definition: parsed, warnings } = readDefinition(kind, request.body, entity.name);
      const table = await changeTableDefinitions(deps.db, entity.id, async (tx) => {
        const definition = await checkTableReferences(tx, entity.id, parsed);
        return insertTable(tx, { ...definition, entityId: entity.id });
      });
      deps.tableCache.forget();
      return reply
        .code(201)
        .header("location", `/v5/entities/${entity.name}/${collection}/${table.id}`)
        .send(withWarnings(options.render(table), warnings));
    },
  );

  app.put(
    `${base}/:table`,
    {
      // Its own validation refuses text PostgreSQL cannot store, naming the field.
      config: { textCheckedByRoute: true },
      schema: {
        tags: [tag],
        summary:
          "Replace a table's definition (its unique attributes and primary key may change only while it holds no record)",
        params: TableParams,
        body: options.bodySchema,
        response: { 200: options.tableSchema },
      },
    },
    async (request) => {
      assertStorableRequest(request);
      const entity = await resolveEntity(deps.entityCache, authOf(request), request.params.entity);
      const { definition, warnings } = readDefinition(kind, request.body, entity.name);
      const updated = await changeTableDefinitions(deps.db, entity.id, async (tx) => {
        const existing = await findTable(tx, entity.id, kind, request.params.table);
        if (!existing) throw notFound(request.params.table, entity.name);
        // Wait for the record writes under way to this table and to the tables its foreign keys
        // name, and hold new ones back until the new definition is committed: the checks below
        // then see every record written with the old definition, and later writes use the new one
        // (or, for a referenced table, see the new foreign key when they delete).
        await lockTableWrites(tx, [
          existing.id,
          ...(await referencedTableIds(tx, entity.id, definition)),
        ]);
        if (keyShape(definition) !== keyShape(existing) && (await tableHasRecords(tx, existing.id)))
          throw new HeraldError(
            "HERALD_TABLE_DEFINITION_INCONSISTENT",
            {
              reason:
                "unique attributes and the primary key cannot change while the table holds records",
            },
            [
              {
                path: "attributes",
                message:
                  "the set of unique attributes (or the primary key) differs from the stored one",
              },
            ],
          );
        const checked = await checkTableReferences(tx, entity.id, definition, existing);
        return updateTable(tx, { ...checked, id: existing.id, entityId: entity.id });
      });
      deps.tableCache.forget();
      if (!updated) throw notFound(request.params.table, entity.name);
      return withWarnings(options.render(updated), warnings);
    },
  );

  app.delete(
    `${base}/:table`,
    {
      schema: {
        tags: [tag],
        summary:
          "Delete a table: it is gone from the API at once (its name is free again); its records are then deleted in the background, each with a DELETE event, and the subscriptions on it are disabled (reason TABLE_DELETED) once they have delivered those events. 409 while another table's foreign key refers to it",
        params: TableParams,
        response: { 204: Type.Null() },
      },
    },
    async (request, reply) => {
      assertStorableRequest(request);
      const auth = authOf(request);
      const entity = await resolveEntity(deps.entityCache, auth, request.params.entity);
      const deleted = await changeTableDefinitions(deps.db, entity.id, async (tx) => {
        const existing = await findTable(tx, entity.id, kind, request.params.table);
        if (!existing) throw notFound(request.params.table, entity.name);
        // Record writes under way finish first (their events precede the DELETE events); later
        // ones find the write gate shut (migration 016) and answer 404.
        await lockTableWrites(tx, [existing.id]);
        await assertNotReferenced(tx, existing);
        const origin = {
          kind: "TABLE_DELETION",
          type: "TABLE_DELETION",
          tableId: existing.id,
          tableName: existing.name,
          apiKeyId: auth.apiKeyId,
          apiKeyName: auth.apiKeyName,
        } as const;
        if (!(await markTableDeleted(tx, existing, origin)))
          throw notFound(request.params.table, entity.name);
        // The deletion job (jobs/table-deletion-worker.ts) starts when this commits.
        await notifyJobs(tx);
        return existing;
      });
      deps.tableCache.forget();
      deps.jobSignals.jobsCreated();
      request.log.info(
        { tableId: deleted.id, table: deleted.name, entity: entity.name },
        "table deleted; its records are being deleted in the background, each with a DELETE event",
      );
      return reply.code(204).send(null);
    },
  );
}

// --- Shared schema pieces ------------------------------------------------------------------------

/**
 * Actito's keys that Herald keeps are typed loosely in the body schemas, so that one of the wrong
 * type is the definition reader's 400 HERALD_INVALID_TABLE_DEFINITION naming it, as for any other
 * definition key, rather than a schema error.
 */
export const DisplayOptionsSchema = Type.Unknown({
  description: "Actito's display options: an object, kept as given (Herald does not read it)",
});

/** `details` of a definition write's answer: what Herald ignored in the definition. */
export const WarningsSchema = Type.Optional(
  Type.Array(Detail, {
    description:
      "Present when the definition held something Herald ignored (an unknown key…): one entry each",
  }),
);

export const ValueRestrictionSchema = Type.Union(
  [
    Type.Object({
      minLength: Type.Optional(Type.Integer()),
      maxLength: Type.Optional(Type.Integer()),
      acceptedValues: Type.Optional(
        Type.Array(Type.Union([Type.String(), Type.Number(), Type.Boolean()])),
      ),
    }),
    Type.Null(),
  ],
  { description: "Checked on every written value (null, as Actito's files write it: none)" },
);

/** Tries of a table definition change that loses a deadlock to record writes (then 409). */
const DEFINITION_CHANGE_ATTEMPTS = 3;

/**
 * Runs a change of an entity's table definitions: one transaction, after every other such change of
 * the entity (lockTableDefinitions). Its exclusive table write locks (lockTableWrites) can deadlock
 * with a record delete whose foreign keys reach into a second table (it holds one table's gate and
 * waits for the other's); PostgreSQL then aborts one side. The change has written nothing then, so
 * it runs again; after DEFINITION_CHANGE_ATTEMPTS it answers 409 rather than 500.
 */
async function changeTableDefinitions<T>(
  db: Database,
  entityId: number,
  change: (tx: Queryable) => Promise<T>,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await db.transaction(async (tx) => {
        await lockTableDefinitions(tx, entityId);
        const result = await change(tx);
        await announceTableChange(tx, entityId);
        return result;
      });
    } catch (error) {
      if (!lostToConcurrency(error)) throw error;
      if (attempt >= DEFINITION_CHANGE_ATTEMPTS)
        throw new HeraldError("HERALD_CONFLICT", {
          reason:
            "the table definition change kept colliding with record writes; retry the request",
        });
    }
  }
}

export function renderAttributes(table: DataTable): Record<string, unknown>[] {
  return table.attributes.map((a) => ({
    name: a.name,
    ...(a.type ? { type: a.type } : {}),
    valueType: a.valueType,
    unique: a.unique,
    mandatory: a.mandatory,
    multiValued: a.multiValued,
    ...(a.indexed !== undefined ? { indexed: a.indexed } : {}),
    ...(a.valueRestriction ? { valueRestriction: a.valueRestriction } : {}),
    ...(a.displayOptions ? { displayOptions: a.displayOptions } : {}),
  }));
}
