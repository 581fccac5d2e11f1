/**
 * Custom-table records (SPEC §3, v4 calls): create-or-update, update, read, delete, search. Writes
 * go through `capture/custom-record-writer.ts` (one transaction: record row, then change event).
 * Values are answered as typed JSON (numbers, booleans; dates and timestamps as text; absent values
 * left out); writes take the typed value or its string form. A record created without its primary
 * key gets a generated one, answered as its `businessKey`.
 */
import { Type } from "typebox";
import {
  deleteCustomRecord,
  parseRecordInput,
  updateCustomRecord,
  upsertCustomRecord,
} from "../../capture/custom-record-writer.js";
import type { TypedValue } from "../../domain/attribute-values.js";
import { checkValue } from "../../domain/attribute-values.js";
import { typedAttributes } from "./profile-schemas.js";
import type { DataTable } from "../../domain/data-table.js";
import { HeraldError } from "../../domain/errors.js";
import type { StoredRecord } from "../../storage/record-repository.js";
import { searchRecords } from "../../storage/record-repository.js";
import { dataRouteContext, withCurrentTable } from "./data-route-context.js";
import { readCustomRecord } from "../record-reads.js";
import type { RouteModule } from "./route-module.js";

const TAG = "custom table records";
const Value = Type.Union([
  Type.String(),
  Type.Number(),
  Type.Boolean(),
  Type.Null(),
  Type.Array(Type.Union([Type.String(), Type.Number(), Type.Boolean()])),
]);
const RecordBody = Type.Object({
  properties: Type.Array(Type.Object({ name: Type.String(), value: Type.Optional(Value) })),
});
const TypedScalar = Type.Union([Type.String(), Type.Number(), Type.Boolean()]);
const RenderedRecord = Type.Object({
  properties: Type.Array(
    Type.Object({
      name: Type.String(),
      value: Type.Union([TypedScalar, Type.Array(TypedScalar)], {
        description:
          "Typed: INTEGER, LONG and NUMBER as numbers, BOOLEAN as true/false, dates and timestamps as text; a multi-valued attribute as a list",
      }),
    }),
  ),
});
const BusinessKeyResponse = Type.Object({ businessKey: Type.String() });
const TableParams = Type.Object({ entity: Type.String(), table: Type.String() });
const KeyParams = Type.Object({
  entity: Type.String(),
  table: Type.String(),
  businessKey: Type.String({
    description: "The value of the table's primaryKeyAttribute (generated or given)",
  }),
});
const base = "/v4/entity/:entity/customTable/:table/record";

/** A record as the v4 reads answer it: its attributes with a value, typed, in declaration order. */
export function renderRecord(table: DataTable, record: StoredRecord) {
  const properties: { name: string; value: TypedValue }[] = [];
  for (const [name, value] of typedAttributes(table, record)) properties.push({ name, value });
  return { properties };
}

function invalidQuery(parameter: string, reason: string): HeraldError {
  return new HeraldError("HERALD_INVALID_QUERY", { parameter, reason }, [
    { path: `querystring.${parameter}`, message: reason },
  ]);
}

const recordRoutes: RouteModule = async (app, deps) => {
  app.post(
    base,
    {
      // Its own validation refuses text PostgreSQL cannot store, naming the field.
      config: { textCheckedByRoute: true },
      schema: {
        tags: [TAG],
        summary:
          "Create a record, or update it when its business key exists (without its primary key, a record gets a generated one)",
        params: TableParams,
        body: RecordBody,
        response: { 200: BusinessKeyResponse },
      },
    },
    async (request) => {
      return withCurrentTable(
        deps,
        request,
        request.params,
        "CUSTOM_TABLE",
        async ({ table, origin }) => {
          const provided = parseRecordInput(table, request.body.properties);
          const result = await upsertCustomRecord(deps, table, provided, origin);
          return { businessKey: result.businessKey };
        },
      );
    },
  );

  app.get(
    base,
    {
      schema: {
        tags: [TAG],
        summary: "Search records by one attribute value, sorted by one attribute",
        params: TableParams,
        querystring: Type.Object({
          searchField: Type.Optional(Type.String()),
          searchValue: Type.Optional(Type.String()),
          sortedField: Type.Optional(Type.String()),
          ascending: Type.Optional(Type.Boolean({ default: true })),
          number: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
        }),
        response: { 200: Type.Object({ records: Type.Array(RenderedRecord) }) },
      },
    },
    async (request) => {
      const { table } = await dataRouteContext(deps, request, request.params, "CUSTOM_TABLE");
      const {
        searchField,
        searchValue,
        sortedField,
        ascending = true,
        number = 100,
      } = request.query;
      let match: { attribute: string; value: unknown } | undefined;
      if (searchField !== undefined || searchValue !== undefined) {
        const attribute = table.attributes.find((a) => a.name === searchField);
        if (!attribute) throw invalidQuery("searchField", "must be an attribute of the table");
        const checked = checkValue(attribute, searchValue ?? "");
        if (checked.kind === "invalid") throw invalidQuery("searchValue", checked.message);
        if (checked.value === null) throw invalidQuery("searchValue", "needs a value");
        match = { attribute: attribute.name, value: checked.value };
      }
      if (sortedField !== undefined && !table.attributes.some((a) => a.name === sortedField))
        throw invalidQuery("sortedField", "must be an attribute of the table");
      const records = await searchRecords(deps.db, table.id, {
        ...(match ? { match } : {}),
        ...(sortedField ? { sortedField } : {}),
        ascending,
        limit: number,
      });
      return { records: records.map((r) => renderRecord(table, r)) };
    },
  );

  app.get(
    `${base}/:businessKey`,
    {
      schema: {
        tags: [TAG],
        summary: "Read a record",
        params: KeyParams,
        response: { 200: RenderedRecord },
      },
    },
    async (request) => {
      const { table } = await dataRouteContext(deps, request, request.params, "CUSTOM_TABLE");
      return renderRecord(
        table,
        await readCustomRecord(deps.db, table, request.params.businessKey),
      );
    },
  );

  app.put(
    `${base}/:businessKey`,
    {
      // Its own validation refuses text PostgreSQL cannot store, naming the field.
      config: { textCheckedByRoute: true },
      schema: {
        tags: [TAG],
        summary: "Update a record (only the properties given change; null clears a value)",
        params: KeyParams,
        body: RecordBody,
        response: { 200: BusinessKeyResponse },
      },
    },
    async (request) => {
      return withCurrentTable(
        deps,
        request,
        request.params,
        "CUSTOM_TABLE",
        async ({ table, origin }) => {
          const provided = parseRecordInput(table, request.body.properties);
          const result = await updateCustomRecord(
            deps,
            table,
            request.params.businessKey,
            provided,
            origin,
          );
          return { businessKey: result.businessKey };
        },
      );
    },
  );

  app.delete(
    `${base}/:businessKey`,
    {
      schema: {
        tags: [TAG],
        summary: "Delete a record",
        params: KeyParams,
        response: { 204: Type.Null() },
      },
    },
    async (request, reply) => {
      return withCurrentTable(
        deps,
        request,
        request.params,
        "CUSTOM_TABLE",
        async ({ table, origin }) => {
          await deleteCustomRecord(deps, table, request.params.businessKey, origin);
          return reply.code(204).send(null);
        },
      );
    },
  );
};
export default recordRoutes;
