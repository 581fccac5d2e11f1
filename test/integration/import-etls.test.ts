/**
 * Predefined ETLs (CRUD, trigger-execution), the executions list, Actito's legacy v4 import calls,
 * and subscriptions on ETL (SPEC §7.1, §4), on both backends.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { ImportTestApp } from "../helpers/imports.js";
import { createImportTestApp, CUSTOMERS, ORDERS } from "../helpers/imports.js";
import { testBackends } from "../helpers/test-database.js";

const ETLS = "/mass-imports/v5/entities/acme/etls";
const EXECUTIONS = "/mass-imports/v5/entities/acme/etl-executions";

for (const { backend, skip } of await testBackends()) {
  describe(`predefined ETLs and legacy imports on ${backend}`, { skip }, () => {
    let t: ImportTestApp;
    before(async () => {
      t = await createImportTestApp(backend);
      assert.equal(
        (await t.request("POST", "/v5/entities/acme/profile-tables", CUSTOMERS)).statusCode,
        201,
      );
      assert.equal(
        (await t.request("POST", "/v5/entities/acme/custom-tables", ORDERS)).statusCode,
        201,
      );
    });
    after(() => t?.close());

    const daily = {
      name: "daily-customers",
      target: { tableType: "PROFILE_TABLE", table: "Customers" },
      mode: "CREATE_UPDATE",
      keyAttribute: "customerId",
      file: { format: "CSV", separator: ";" },
      mapping: [
        { column: "id", attribute: "customerId" },
        { column: "mail", attribute: "emailAddress" },
      ],
      unknownKey: true,
    };

    test("create, read by id and by name, list, replace, delete; names are unique", async () => {
      const created = await t.request("POST", ETLS, daily);
      assert.equal(created.statusCode, 201, created.body);
      const etl = created.json() as {
        id: string;
        name: string;
        definition: { mode: string; mapping: unknown[] };
        details: { path: string }[];
      };
      assert.match(etl.id, /^\d+$/);
      assert.equal(etl.definition.mode, "CREATE_UPDATE");
      assert.deepEqual(
        etl.details.map((d) => d.path),
        ["unknownKey"],
      );
      assert.equal((await t.request("POST", ETLS, daily)).statusCode, 409);
      for (const key of [etl.id, "daily-customers"]) {
        const read = await t.request("GET", `${ETLS}/${key}`);
        assert.equal(read.statusCode, 200, read.body);
        assert.equal((read.json() as { id: string }).id, etl.id);
      }
      const list = (await t.request("GET", `${ETLS}?page=0&pageSize=10`)).json() as {
        etls: { id: string }[];
        totalElements: number;
      };
      assert.ok(list.etls.some((e) => e.id === etl.id));
      const replaced = await t.request("PUT", `${ETLS}/${etl.id}`, {
        ...daily,
        mode: "UPDATE_ONLY",
      });
      assert.equal(replaced.statusCode, 200, replaced.body);
      assert.equal(
        (replaced.json() as { definition: { mode: string } }).definition.mode,
        "UPDATE_ONLY",
      );
      const noName = await t.request("POST", ETLS, { ...daily, name: undefined });
      assert.equal(noName.statusCode, 400);
      const badTable = await t.request("POST", ETLS, {
        ...daily,
        name: "x",
        target: { table: "Nope" },
      });
      assert.equal(badTable.statusCode, 404);
      const other = await t.request("POST", ETLS, { ...daily, name: "to-delete" });
      const otherId = (other.json() as { id: string }).id;
      assert.equal((await t.request("DELETE", `${ETLS}/${otherId}`)).statusCode, 204);
      assert.equal((await t.request("GET", `${ETLS}/${otherId}`)).statusCode, 404);
      assert.equal((await t.request("DELETE", `${ETLS}/${otherId}`)).statusCode, 404);
    });

    test("trigger-execution runs the ETL on an uploaded file; the list filters by ETL and status", async () => {
      const etl = (await t.request("POST", ETLS, { ...daily, name: "trigger-me" })).json() as {
        id: string;
      };
      const response = await t.upload(
        [{ name: "inputFile", filename: "d.csv", content: "id;mail\nT1;t1@x.io\nT2;t2@x.io\n" }],
        `${ETLS}/${etl.id}/trigger-execution`,
      );
      assert.equal(response.statusCode, 202, response.body);
      assert.match(
        response.headers.location as string,
        /\/mass-imports\/v5\/entities\/acme\/etl-executions\/\d+$/,
      );
      const id = (response.json() as { executionId: string }).executionId;
      const done = await t.finished(id);
      assert.equal(done.status, "SUCCESS", JSON.stringify(done));
      assert.equal(done.etlId, etl.id);
      assert.equal(done.counts.created, 2);

      const finished = await t.database.db.query<{
        source_id: string;
        state: Record<string, string>;
        extra: object;
      }>(
        "SELECT source_id, state, extra FROM change_events WHERE source = 'ETL' AND event_type = 'FINISHED' AND record_key = $1",
        [id],
      );
      const event = finished.rows[0]!;
      assert.equal(event.source_id, etl.id);
      assert.equal(event.state["etl.id"], etl.id);
      assert.equal(event.state["etl.name"], "trigger-me");
      assert.deepEqual(event.extra, {
        _links: {
          etlExecution: { href: `${EXECUTIONS}/${id}` },
          etl: { href: `${ETLS}/${etl.id}` },
        },
      });

      const byEtl = (await t.request("GET", `${EXECUTIONS}?etlId=${etl.id}`)).json() as {
        etlExecutions: { id: string }[];
        totalElements: number;
      };
      assert.deepEqual(
        byEtl.etlExecutions.map((e) => e.id),
        [id],
      );
      assert.equal(byEtl.totalElements, 1);
      const failed = (await t.request("GET", `${EXECUTIONS}?status=ERROR`)).json() as {
        totalElements: number;
      };
      assert.equal(failed.totalElements, 0);
      const bad = await t.request("GET", `${EXECUTIONS}?status=DONE`);
      assert.equal(bad.statusCode, 400);
      const noFile = await t.upload(
        [{ name: "note", content: "x" }],
        `${ETLS}/${etl.id}/trigger-execution`,
      );
      assert.equal(noFile.statusCode, 400);
      assert.equal((noFile.json() as { code: string }).code, "HERALD_MISSING_PART");
    });

    test("legacy v4 imports: profile and custom tables, parameters as JSON or as fields", async () => {
      const profile = await t.upload(
        [
          {
            name: "inputFile",
            filename: "p.csv",
            content: "customerId\temailAddress\nV1\tv1@x.io\n",
          },
          {
            name: "parameters",
            content: JSON.stringify({
              format: "TAB_SEPARATED_VALUES",
              charset: "UTF-8",
              mode: "CREATE_UPDATE",
              headerKeyColumn: "customerId",
            }),
          },
        ],
        "/ActitoWebServices/ws/v4/entity/acme/table/Customers/import",
      );
      assert.equal(profile.statusCode, 202, profile.body);
      const id = (profile.json() as { id: string }).id;
      assert.equal((await t.finished(id)).status, "SUCCESS");
      const status = await t.request("GET", `/v4/entity/acme/import/${id}`);
      assert.equal(status.statusCode, 200);
      assert.equal((status.json() as { counts: { created: number } }).counts.created, 1);

      const custom = await t.upload(
        [
          { name: "inputFile", filename: "o.csv", content: "orderId;status;amount\nO1;NEW;3.5\n" },
          { name: "format", content: "SEMI_COLON_SEPARATED_VALUES" },
          { name: "mode", content: "INSERT_ONLY" },
        ],
        "/v4/entity/acme/customTable/Orders/import",
      );
      assert.equal(custom.statusCode, 202, custom.body);
      const done = await t.finished((custom.json() as { id: string }).id);
      assert.equal(done.status, "SUCCESS", JSON.stringify(done));
      const record = await t.request("GET", "/v4/entity/acme/customTable/Orders/record/O1");
      assert.equal(record.statusCode, 200, record.body);
      assert.match(record.body, /3\.5/);
    });

    test("part aliases: the definition as a JSON file part named parameters, the data as dataFile", async () => {
      const response = await t.upload([
        {
          name: "dataFile",
          filename: "a.csv",
          content: "customerId,emailAddress\nAL-1,al1@x.io\n",
        },
        {
          name: "parameters",
          filename: "definition.json",
          contentType: "application/json",
          content: JSON.stringify({ target: { table: "Customers" }, keyAttribute: "customerId" }),
        },
      ]);
      assert.equal(response.statusCode, 202, response.body);
      assert.match(response.headers.location as string, /\/etl-executions\/\d+$/);
      const done = await t.finished((response.json() as { executionId: string }).executionId);
      assert.equal(done.status, "SUCCESS", JSON.stringify(done));
      assert.equal(done.file.name, "a.csv");
    });

    test("foreign keys are checked as for API writes: a row naming no record is rejected", async () => {
      const customer = await t.request("POST", "/v4/entity/acme/table/Customers/profile", {
        attributes: [
          { name: "customerId", value: "FK-1" },
          { name: "emailAddress", value: "fk1@x.io" },
        ],
      });
      assert.equal(customer.statusCode, 200, customer.body);
      const profileId = (customer.json() as { profileId: number }).profileId;
      const tickets = await t.request("POST", "/v5/entities/acme/custom-tables", {
        name: "Tickets",
        type: "LINKED_DATA",
        primaryKeyAttribute: "ticketId",
        attributes: [
          { name: "ticketId", valueType: "STRING", mandatory: true, unique: true },
          { name: "customer", valueType: "LONG" },
        ],
        foreignKeys: [
          { attribute: "customer", referencedTable: { kind: "PROFILE_TABLE", id: "Customers" } },
        ],
      });
      assert.equal(tickets.statusCode, 201, tickets.body);
      const id = await t.startImport(
        { target: { tableType: "CUSTOM_TABLE", table: "Tickets" } },
        { name: "t.csv", content: `ticketId,customer\nT1,${profileId}\nT2,999999\nT3,\n` },
      );
      const done = await t.finished(id);
      assert.equal(done.status, "WITH_ERROR", JSON.stringify(done));
      assert.deepEqual(done.counts, { read: 3, created: 2, updated: 0, unchanged: 0, rejected: 1 });
      assert.deepEqual(
        done.rejectedRows.map((r) => [r.line, r.code, r.column]),
        [[3, "HERALD_REFERENCED_RECORD_NOT_FOUND", "customer"]],
      );
    });

    test("subscriptions on ETL: an unknown ETL is 404, a name is stored as the id, none means all", async () => {
      const etl = (await t.request("POST", ETLS, { ...daily, name: "watched" })).json() as {
        id: string;
      };
      const base = {
        on: "ETL",
        eventType: "FINISHED",
        targetUrl: "http://127.0.0.1:9/hook",
      };
      const unknown = await t.request("POST", "/v4/entity/acme/webhookSubscription", {
        ...base,
        onElementId: "424242",
      });
      assert.equal(unknown.statusCode, 404, unknown.body);
      assert.equal((unknown.json() as { code: string }).code, "HERALD_ETL_NOT_FOUND");
      const byName = await t.request("POST", "/v4/entity/acme/webhookSubscription", {
        ...base,
        onElementId: "watched",
      });
      assert.equal(byName.statusCode, 201, byName.body);
      assert.equal((byName.json() as { onElementId: string }).onElementId, etl.id);
      const all = await t.request("POST", "/v4/entity/acme/webhookSubscription", base);
      assert.equal(all.statusCode, 201, all.body);
      assert.equal((all.json() as { onElementId: string | null }).onElementId, null);
      const wrongType = await t.request("POST", "/v4/entity/acme/webhookSubscription", {
        ...base,
        eventType: "CREATE",
      });
      assert.equal(wrongType.statusCode, 422, wrongType.body);
    });
  });
}
