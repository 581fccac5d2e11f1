/**
 * Exports (SPEC §7.3) on both backends: definitions and their bad input, FULL exports in each
 * format and compression byte-checked and read back with csv-parse, the filters, the download
 * rules, and the FINISHED event with a subscription on EXPORT.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { parse } from "csv-parse/sync";
import { stampPendingEvents } from "../../src/storage/sequencer-repository.js";
import { testBackends } from "../helpers/test-database.js";
import type { ExportTestApp } from "./exports-harness.js";
import { createExportTestApp, CUSTOMERS, EXPORTS, gunzip, unzip } from "./exports-harness.js";

const FIELDS = ["customerId", "firstName", "points", "vip", "note"];

for (const { backend, skip } of await testBackends()) {
  describe(`exports on ${backend}`, { skip }, () => {
    let t: ExportTestApp;
    before(async () => {
      t = await createExportTestApp(backend);
      const table = await t.request("POST", "/v5/entities/acme/profile-tables", CUSTOMERS);
      assert.equal(table.statusCode, 201, table.body);
      await t.profile({
        key: { customerId: "C1" },
        attributes: { firstName: "Ann", points: 5, vip: true, note: 'says "hi"; twice' },
        subscriptions: { newsletter: true },
        segmentations: { Active: true, ClientType: "Gold" },
      });
      await t.profile({
        key: { customerId: "C2" },
        attributes: { firstName: "Bob", points: 12, note: "line one\nline two" },
        segmentations: { ClientType: "Silver" },
      });
      await t.profile({
        key: { customerId: "C3" },
        attributes: { firstName: "Émile", points: 7, vip: false, note: "plain, with comma" },
        subscriptions: { newsletter: true },
      });
    });
    after(() => t?.close());

    const base = {
      source: { tableType: "PROFILE_TABLE", table: "Customers" },
      fields: FIELDS,
    };

    test("create, read by id and name, list, replace, delete; names are unique", async () => {
      const id = await t.define({ ...base, name: "crud" });
      assert.match(id, /^\d+$/);
      for (const key of [id, "crud"]) {
        const read = await t.request("GET", `${EXPORTS}/${key}`);
        assert.equal(read.statusCode, 200, read.body);
        const body = read.json() as Record<string, unknown>;
        assert.equal(body.id, id);
        assert.equal(body.mode, "FULL");
        assert.deepEqual(body.format, { type: "CSV", separator: ";", compression: "NONE" });
        assert.deepEqual(body.fields, FIELDS);
      }
      assert.equal((await t.request("POST", EXPORTS, { ...base, name: "crud" })).statusCode, 409);
      const list = (await t.request("GET", `${EXPORTS}?page=0&pageSize=50`)).json() as {
        exports: { id: string }[];
        page: number;
        pageSize: number;
        totalElements: number;
      };
      assert.ok(list.exports.some((e) => e.id === id));
      assert.equal(list.pageSize, 50);
      assert.equal(list.totalElements, list.exports.length);
      const replaced = await t.request("PUT", `${EXPORTS}/${id}`, {
        ...base,
        name: "crud",
        mode: "INCREMENTAL",
        format: { type: "NDJSON", compression: "GZIP" },
      });
      assert.equal(replaced.statusCode, 200, replaced.body);
      assert.equal((replaced.json() as { mode: string }).mode, "INCREMENTAL");
      assert.equal((await t.request("DELETE", `${EXPORTS}/${id}`)).statusCode, 204);
      assert.equal((await t.request("GET", `${EXPORTS}/${id}`)).statusCode, 404);
      assert.equal((await t.request("DELETE", `${EXPORTS}/${id}`)).statusCode, 404);
      assert.equal((await t.request("POST", `${EXPORTS}/${id}/executions`)).statusCode, 404);
    });

    test("bad definitions are 4xx naming what is wrong", async () => {
      const cases: [Record<string, unknown>, number, string, string][] = [
        [{ ...base, name: "" }, 400, "HERALD_INVALID_EXPORT_DEFINITION", "name"],
        [
          { ...base, name: "x", source: { table: "Nope" } },
          404,
          "HERALD_TABLE_NOT_FOUND",
          "source.table",
        ],
        [
          { ...base, name: "x", fields: ["customerId", "shoeSize"] },
          400,
          "HERALD_UNKNOWN_ATTRIBUTE",
          "fields[1]",
        ],
        [{ ...base, name: "x", fields: [] }, 400, "HERALD_INVALID_EXPORT_DEFINITION", "fields"],
        [
          // Its DELETE rows would identify nothing.
          { ...base, name: "x", mode: "INCREMENTAL", fields: ["firstName"] },
          400,
          "HERALD_INVALID_EXPORT_DEFINITION",
          "fields",
        ],
        [
          { ...base, name: "x", mode: "SOMETIMES" },
          400,
          "HERALD_INVALID_EXPORT_DEFINITION",
          "mode",
        ],
        [
          { ...base, name: "x", format: { type: "XML" } },
          400,
          "HERALD_INVALID_EXPORT_DEFINITION",
          "format.type",
        ],
        [
          { ...base, name: "x", format: { compression: "RAR" } },
          400,
          "HERALD_INVALID_EXPORT_DEFINITION",
          "format.compression",
        ],
        [
          { ...base, name: "x", format: { separator: ";;" } },
          400,
          "HERALD_INVALID_EXPORT_DEFINITION",
          "format.separator",
        ],
        [
          {
            ...base,
            name: "x",
            filter: { conditions: [{ attribute: "shoeSize", operator: "=", value: 1 }] },
          },
          400,
          "HERALD_UNKNOWN_ATTRIBUTE",
          "filter.conditions[0].attribute",
        ],
        [
          {
            ...base,
            name: "x",
            filter: { conditions: [{ attribute: "points", operator: "LIKE", value: 1 }] },
          },
          400,
          "HERALD_INVALID_EXPORT_DEFINITION",
          "filter.conditions[0].operator",
        ],
        [
          { ...base, name: "x", filter: { segmentation: { name: "Nope" } } },
          404,
          "HERALD_SEGMENTATION_NOT_FOUND",
          "filter.segmentation.name",
        ],
        [
          {
            ...base,
            name: "x",
            filter: { segmentation: { name: "ClientType", segment: "Platinum" } },
          },
          400,
          "HERALD_UNKNOWN_SEGMENT",
          "filter.segmentation.segment",
        ],
        [
          { ...base, name: "x", filter: { subscription: "sms" } },
          404,
          "HERALD_PROFILE_SUBSCRIPTION_NOT_FOUND",
          "filter.subscription",
        ],
        [
          { ...base, name: "x", schedule: { cron: "every day", timezone: "Europe/Brussels" } },
          400,
          "HERALD_INVALID_EXPORT_DEFINITION",
          "schedule.cron",
        ],
        [
          { ...base, name: "x", schedule: { cron: "0 2 * * *", timezone: "Mars/Olympus" } },
          400,
          "HERALD_INVALID_EXPORT_DEFINITION",
          "schedule.timezone",
        ],
        [
          { ...base, name: "x", destination: { fileReference: "999999" } },
          404,
          "HERALD_FILE_REFERENCE_NOT_FOUND",
          "destination.fileReference",
        ],
      ];
      for (const [body, status, code, path] of cases) {
        const response = await t.request("POST", EXPORTS, body);
        assert.equal(response.statusCode, status, `${JSON.stringify(body)}: ${response.body}`);
        const error = response.json() as { code: string; details: { path: string }[] };
        assert.equal(error.code, code, response.body);
        assert.ok(
          error.details.some((d) => d.path === path),
          `${path} in ${response.body}`,
        );
      }
      const notObject = await t.request("POST", EXPORTS, "[1]");
      assert.equal(notObject.statusCode, 400, notObject.body);
    });

    test("FULL CSV: Actito's format, byte for byte, and csv-parse reads it back", async () => {
      const id = await t.define({ ...base, name: "full-csv" });
      const execution = await t.run(id);
      assert.equal(execution.status, "SUCCESS", JSON.stringify(execution));
      assert.equal(execution.rowCount, 3);
      assert.equal(execution.fromPosition, null);
      const file = await t.download(execution);
      assert.equal(execution.bytes, file.body.length);
      assert.equal(file.type, "text/csv; charset=utf-8");
      assert.match(file.disposition, /^attachment; filename="full-csv-\d+\.csv"$/);
      assert.notEqual(file.body[0], 0xef, "no byte-order mark");
      const expected =
        "customerId;firstName;points;vip;note\n" +
        'C1;Ann;5;true;"says ""hi""; twice"\n' +
        'C2;Bob;12;;"line one\nline two"\n' +
        "C3;Émile;7;false;plain, with comma\n";
      assert.equal(file.body.toString("utf8"), expected);
      const rows = parse(file.body, { delimiter: ";", columns: true }) as Record<string, string>[];
      assert.deepEqual(
        rows.map((r) => r.note),
        ['says "hi"; twice', "line one\nline two", "plain, with comma"],
      );
    });

    test("a comma separator and the default fields (technical attributes first)", async () => {
      const id = await t.define({
        name: "full-comma",
        source: { table: "Customers" },
        format: { separator: "," },
      });
      const execution = await t.run(id);
      assert.equal(execution.status, "SUCCESS", JSON.stringify(execution));
      const text = (await t.download(execution)).body.toString("utf8");
      const [header] = text.split("\n");
      assert.equal(
        header,
        "profileId,creationMoment,updateMoment,customerId,emailAddress,firstName,points,vip,note",
      );
      const rows = parse(text, { columns: true }) as Record<string, string>[];
      assert.equal(rows.length, 3);
      assert.equal(rows[2]!.note, "plain, with comma");
      assert.match(rows[0]!.creationMoment!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.match(text, /"plain, with comma"/);
    });

    test("NDJSON, GZIP and ZIP round-trip", async () => {
      const ndjson = await t.run(
        await t.define({ ...base, name: "nd", format: { type: "NDJSON" } }),
      );
      const nd = await t.download(ndjson);
      assert.equal(nd.type, "application/x-ndjson; charset=utf-8");
      const lines = nd.body.toString("utf8").split("\n");
      assert.equal(lines.pop(), "");
      assert.deepEqual(JSON.parse(lines[1]!), {
        customerId: "C2",
        firstName: "Bob",
        points: "12",
        vip: null,
        note: "line one\nline two",
      });
      const gz = await t.download(
        await t.run(await t.define({ ...base, name: "gz", format: { compression: "GZIP" } })),
      );
      assert.equal(gz.type, "application/gzip");
      assert.match(gz.disposition, /gz-\d+\.csv\.gz"$/);
      const plain = (await t.download(await t.run(await t.define({ ...base, name: "plain" }))))
        .body;
      assert.equal(gunzip(gz.body), plain.toString("utf8"));
      const zipped = await t.download(
        await t.run(
          await t.define({
            ...base,
            name: "zipped",
            format: { type: "NDJSON", compression: "ZIP" },
          }),
        ),
      );
      assert.equal(zipped.type, "application/zip");
      const entries = await unzip(zipped.body);
      const names = Object.keys(entries);
      assert.equal(names.length, 1);
      assert.match(names[0]!, /^zipped-\d+\.ndjson$/);
      assert.equal(entries[names[0]!], nd.body.toString("utf8"));
    });

    test("filters: conditions, segment membership, subscription", async () => {
      const ids = async (filter: Record<string, unknown>, name: string) => {
        const execution = await t.run(await t.define({ ...base, name, filter }));
        assert.equal(execution.status, "SUCCESS", JSON.stringify(execution));
        const rows = parse((await t.download(execution)).body, {
          delimiter: ";",
          columns: true,
        }) as Record<string, string>[];
        assert.equal(execution.rowCount, rows.length);
        return rows.map((r) => r.customerId);
      };
      assert.deepEqual(
        await ids({ conditions: [{ attribute: "points", operator: ">", value: 6 }] }, "f1"),
        ["C2", "C3"],
      );
      assert.deepEqual(
        await ids(
          {
            conditions: [
              { attribute: "points", operator: ">=", value: 5 },
              { attribute: "vip", operator: "IS_NOT_NULL" },
            ],
          },
          "f2",
        ),
        ["C1", "C3"],
      );
      assert.deepEqual(
        await ids({ segmentation: { name: "ClientType", segment: "Silver" } }, "f3"),
        ["C2"],
      );
      assert.deepEqual(await ids({ segmentation: { name: "Active" } }, "f4"), ["C1"]);
      assert.deepEqual(await ids({ subscription: "newsletter" }, "f5"), ["C1", "C3"]);
      assert.deepEqual(
        await ids(
          {
            subscription: "newsletter",
            conditions: [{ attribute: "firstName", operator: "IN", value: ["Ann", "Bob"] }],
          },
          "f6",
        ),
        ["C1"],
      );
    });

    test("FINISHED carries §7.3's payload; a subscription on EXPORT is accepted by id and name", async () => {
      const id = await t.define({ ...base, name: "events" });
      const execution = await t.run(id);
      const { rows } = await t.database.db.query<{
        source_id: string;
        event_type: string;
        state: Record<string, string>;
        extra: Record<string, unknown>;
      }>(
        "SELECT source_id, event_type, state, extra FROM change_events WHERE source = 'EXPORT' AND record_key = $1",
        [execution.id],
      );
      assert.equal(rows.length, 1);
      const event = rows[0]!;
      assert.equal(event.event_type, "FINISHED");
      assert.equal(event.source_id, id);
      assert.deepEqual(event.state, {
        "export.id": id,
        "export.name": "events",
        "export.executionId": execution.id,
        "export.executionStatus": "SUCCESS",
        "export.rowCount": "3",
        "export.bytes": String(execution.bytes),
      });
      assert.deepEqual(event.extra, {
        _links: {
          exportExecution: { href: `${EXPORTS}/${id}/executions/${execution.id}` },
          file: { href: `${EXPORTS}/${id}/executions/${execution.id}/file` },
        },
      });
      await stampPendingEvents(t.database.db); // no sequencer runs here: the pull API reads stamped events
      const pulled = (
        await t.request("GET", `/v5/entities/acme/change-events?on=EXPORT&onElementId=${id}`)
      ).json() as { events: Record<string, unknown>[] };
      assert.equal(pulled.events.length, 1);
      assert.equal(pulled.events[0]!["export.rowCount"], "3");
      for (const element of [id, "events"]) {
        const subscription = await t.request("POST", "/v4/entity/acme/webhookSubscription", {
          on: "EXPORT",
          onElementId: element,
          eventType: "FINISHED",
          targetUrl: "https://example.com/hook",
          isActive: false,
        });
        assert.equal(subscription.statusCode, 201, subscription.body);
        assert.equal((subscription.json() as { onElementId: string }).onElementId, id);
      }
      const unknown = await t.request("POST", "/v4/entity/acme/webhookSubscription", {
        on: "EXPORT",
        onElementId: "nope",
        eventType: "FINISHED",
        targetUrl: "https://example.com/hook",
      });
      assert.equal(unknown.statusCode, 404, unknown.body);
      assert.equal((unknown.json() as { code: string }).code, "HERALD_EXPORT_NOT_FOUND");
    });

    test("executions list with paging; an unknown execution is 404", async () => {
      const id = await t.define({ ...base, name: "listed" });
      const first = await t.run(id);
      const second = await t.run(id);
      const list = (await t.request("GET", `${EXPORTS}/${id}/executions?pageSize=1`)).json() as {
        executions: { id: string }[];
        totalElements: number;
        page: number;
        pageSize: number;
      };
      assert.deepEqual(
        list.executions.map((e) => e.id),
        [second.id],
      );
      assert.equal(list.totalElements, 2);
      const page1 = (
        await t.request("GET", `${EXPORTS}/${id}/executions?page=1&pageSize=1`)
      ).json() as {
        executions: { id: string }[];
      };
      assert.deepEqual(
        page1.executions.map((e) => e.id),
        [first.id],
      );
      const missing = await t.request("GET", `${EXPORTS}/${id}/executions/999999`);
      assert.equal(missing.statusCode, 404);
      assert.equal((missing.json() as { code: string }).code, "HERALD_EXPORT_EXECUTION_NOT_FOUND");
    });
  });
}
