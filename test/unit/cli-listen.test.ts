/**
 * The pure parts of `herald listen` and `herald tail`: the receiver's signature check (against
 * pushes signed by the standardwebhooks package, not by Herald's own code), the reading of event
 * objects in both payload versions and for trigger sources, and colours only on a terminal.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, test } from "node:test";
import { Webhook } from "standardwebhooks";
import { palette } from "../../src/cli/cli-support.js";
import { formatEventLine, recordKey, summarizeEvent } from "../../src/cli/event-line.js";
import type { TableInfo } from "../../src/cli/table-directory.js";
import { signatureProblem } from "../../src/cli/webhook-listener.js";

const newSecret = () => `whsec_${randomBytes(32).toString("base64")}`;

function signed(secret: string, id: string, at: Date, body: string) {
  const signature = new Webhook(secret).sign(id, at, body);
  return { id, timestamp: String(Math.floor(at.getTime() / 1000)), signature };
}

describe("herald listen: signature check", () => {
  const body = JSON.stringify({ id: "p-1", data: { _event: { position: 1 } } });
  const now = new Date();
  const nowSeconds = Math.floor(now.getTime() / 1000);

  test("a push signed with one of the secrets verifies; a rotation's two signatures too", () => {
    const [a, b] = [newSecret(), newSecret()];
    assert.equal(
      signatureProblem(signed(a, "p-1", now, body), Buffer.from(body), [b, a], nowSeconds),
      undefined,
    );
    const first = signed(a, "p-1", now, body);
    const both = {
      ...first,
      signature: `${signed(b, "p-1", now, body).signature} ${first.signature}`,
    };
    assert.equal(signatureProblem(both, Buffer.from(body), [a], nowSeconds), undefined);
  });

  test("another secret, another body or id, a stale time or missing headers are refused", () => {
    const secret = newSecret();
    const good = signed(secret, "p-1", now, body);
    const problem = (headers: Partial<typeof good>, text = body, at = nowSeconds) =>
      signatureProblem(headers, Buffer.from(text), [secret], at);
    assert.match(problem(signed(newSecret(), "p-1", now, body))!, /does not verify/);
    assert.match(problem(good, `${body} `)!, /does not verify/);
    assert.match(problem({ ...good, id: "p-2" })!, /does not verify/);
    assert.match(problem(good, body, nowSeconds + 301)!, /more than 300 s/);
    assert.match(problem({ ...good, timestamp: "soon" })!, /not a Unix time/);
    assert.match(problem({ id: good.id, timestamp: good.timestamp })!, /no webhook-id/);
    assert.match(problem({ ...good, signature: "v2,abc" })!, /does not verify/);
    assert.equal(
      signatureProblem(good, Buffer.from(body), [], nowSeconds)?.includes("verify"),
      true,
    );
  });
});

const CUSTOMERS: TableInfo = {
  kind: "PROFILE_TABLE",
  id: "3",
  name: "Customers",
  keyAttributes: ["profileId", "emailAddress"],
  emitsUpdates: true,
};

describe("herald listen and tail: event lines", () => {
  test("a current-shape profile event: position, time, type, table id and its key attributes", () => {
    const summary = summarizeEvent({
      profileId: "7",
      emailAddress: "ann@example.com",
      firstName: "Ann",
      _links: { self: { href: "/profiles/v4/entity/acme/table/3/profile/7" } },
      _event: {
        id: "evt_9",
        type: "UPDATE",
        position: 1042,
        occurredAt: "2026-11-30T12:00:00.000Z",
      },
    });
    assert.deepEqual(
      [summary.position, summary.occurredAt, summary.type, summary.source, summary.elementId],
      [1042, "2026-11-30T12:00:00.000Z", "UPDATE", "PROFILE_TABLE", "3"],
    );
    assert.equal(recordKey(summary, CUSTOMERS), "profileId=7 emailAddress=ann@example.com");
    assert.equal(recordKey(summary, undefined), "7", "without the table: the link's key");
    assert.equal(
      formatEventLine(summary, "Customers", "profileId=7", palette({ isTTY: false })),
      "    1042  2026-11-30T12:00:00.000Z  UPDATE                Customers         profileId=7",
    );
  });

  test("payload version 1, a custom-table record, a trigger event and garbage", () => {
    const v1 = summarizeEvent({
      tableType: "CUSTOM_TABLE",
      tableId: "c0ffee",
      eventType: "CREATE",
      data: { id: "O-1", businessKey: "O-1", orderId: "O-1" },
      _event: { type: "CREATE", position: 5 },
    });
    assert.deepEqual(
      [v1.source, v1.elementId, v1.linkKey, v1.position],
      ["CUSTOM_TABLE", "c0ffee", "O-1", 5],
    );
    assert.equal(
      recordKey(v1, { ...CUSTOMERS, kind: "CUSTOM_TABLE", keyAttributes: ["orderId"] }),
      "orderId=O-1",
    );

    const record = summarizeEvent({
      _links: { self: { href: "/custom-data/v4/entity/acme/customTable/c0ffee/record/O%2F2" } },
      _event: { type: "DELETE", position: 6 },
    });
    assert.deepEqual(
      [record.source, record.elementId, record.linkKey],
      ["CUSTOM_TABLE", "c0ffee", "O/2"],
    );

    const etl = summarizeEvent({
      "etl.id": "4",
      _links: { self: { href: "/mass-imports/v5/entities/acme/etl-executions/x-9" } },
      _event: { type: "FINISHED", position: 7 },
    });
    assert.deepEqual([etl.source, etl.elementId, etl.linkKey], ["ETL", "4", "x-9"]);

    const sync = summarizeEvent({
      _links: { self: { href: "/v5/entities/acme/file-references/3/synchronizations/11" } },
      _event: { type: "FINISHED", position: 8 },
    });
    assert.deepEqual(
      [sync.source, sync.elementId, sync.linkKey],
      ["FILE_SYNCHRONIZATION", "3", "11"],
    );

    const nothing = summarizeEvent("not an event");
    assert.deepEqual([nothing.type, nothing.position, nothing.source], ["?", undefined, undefined]);
    assert.equal(recordKey(nothing, CUSTOMERS), "?");
  });

  test("colours only on a terminal, and never with NO_COLOR", () => {
    assert.equal(palette({ isTTY: true }, {}).red("x"), "\u001b[31mx\u001b[0m");
    assert.equal(palette({ isTTY: false }, {}).red("x"), "x");
    assert.equal(palette({ isTTY: true }, { NO_COLOR: "1" }).red("x"), "x");
  });
});
