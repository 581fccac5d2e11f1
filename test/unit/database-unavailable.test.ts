import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { describe, test } from "node:test";
import { DatabaseOutageLog } from "../../src/database-outage-log.js";
import { createLogger } from "../../src/logger.js";
import {
  DatabaseUnavailable,
  findUnavailable,
  isTimeout,
  unavailabilityReason,
} from "../../src/storage/database-unavailable.js";

function pgError(message: string, code?: string): Error {
  return Object.assign(new Error(message), code ? { code } : {});
}

describe("which driver errors mean the database is unavailable", () => {
  test("network failures, lost connections, time limits and a server that cannot serve now are", () => {
    const cases: [Error, RegExp][] = [
      [pgError("connect ECONNREFUSED 127.0.0.1:5432", "ECONNREFUSED"), /connection refused/],
      [pgError("read ECONNRESET", "ECONNRESET"), /connection reset \(ECONNRESET\)/],
      [pgError("getaddrinfo ENOTFOUND db", "ENOTFOUND"), /host name not found/],
      [pgError("Connection terminated unexpectedly"), /connection was lost/],
      [pgError("timeout exceeded when trying to connect"), /no connection within/],
      [pgError("Connection terminated due to connection timeout"), /no connection within/],
      [pgError("Query read timeout"), /no answer within/],
      [
        pgError("Client has encountered a connection error and is not queryable"),
        /connection was lost/,
      ],
      [pgError("the database system is starting up", "57P03"), /starting up/],
      [
        pgError("terminating connection due to administrator command", "57P01"),
        /ended the session/,
      ],
      [pgError("sorry, too many clients already", "53300"), /connection slot/],
      [pgError("connection failure", "08006"), /SQLSTATE 08006/],
      [new AggregateError([pgError("connect ECONNREFUSED ::1:5432", "ECONNREFUSED")]), /refused/],
    ];
    for (const [error, reason] of cases) assert.match(unavailabilityReason(error) ?? "", reason);
  });

  test("a server that answers and refuses is not: bad password, no such database, a bad statement", () => {
    for (const error of [
      pgError('password authentication failed for user "herald"', "28P01"),
      pgError('role "nobody" does not exist', "28000"),
      pgError('database "nope" does not exist', "3D000"),
      pgError("duplicate key value violates unique constraint", "23505"),
      pgError("canceling statement due to statement timeout", "57014"),
      pgError("self-signed certificate in certificate chain", "SELF_SIGNED_CERT_IN_CHAIN"),
      new Error("boom"),
    ])
      assert.equal(unavailabilityReason(error), undefined, error.message);
  });

  test("time limits are told apart from refusals", () => {
    assert.equal(isTimeout(pgError("Query read timeout")), true);
    assert.equal(isTimeout(pgError("timeout exceeded when trying to connect")), true);
    assert.equal(
      isTimeout(new DatabaseUnavailable("x", "h:1", pgError("Query read timeout"))),
      true,
    );
    assert.equal(isTimeout(pgError("read ECONNRESET", "ECONNRESET")), false);
  });

  test("a DatabaseUnavailable is found through the errors that wrap it", () => {
    const inner = new DatabaseUnavailable("connection reset (ECONNRESET)", "db:5432/herald", null);
    assert.equal(
      inner.message,
      "the database at db:5432/herald is not available: connection reset (ECONNRESET)",
    );
    const outer = new Error("the import failed", { cause: new Error("batch", { cause: inner }) });
    assert.equal(findUnavailable(outer), inner);
    assert.equal(findUnavailable(new Error("other")), undefined);
  });
});

describe("a background loop's account of an outage", () => {
  test("said once when it starts and once when it ends, not at every failed attempt; other errors every time", () => {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
        done();
      },
    });
    const outage = new DatabaseOutageLog(createLogger("info", sink), "stamping");
    const away = new DatabaseUnavailable("connection refused (ECONNREFUSED)", "db:5432", null);
    outage.succeeded();
    for (let i = 0; i < 5; i++) outage.failed(away, "stamping failed; retrying");
    assert.equal(outage.inOutage, true);
    outage.succeeded();
    outage.succeeded();
    outage.failed(new Error("a bug"), "stamping failed; retrying");
    outage.failed(new Error("a bug"), "stamping failed; retrying");
    assert.deepEqual(
      lines.map((l) => [l.level, l.msg]),
      [
        [
          40,
          "the database at db:5432 is not available: connection refused (ECONNREFUSED); stamping paused until it is back (retrying by itself)",
        ],
        [30, lines[1]!.msg],
        [40, "stamping failed; retrying"],
        [40, "stamping failed; retrying"],
      ],
    );
    assert.match(
      String(lines[1]!.msg),
      /^the database is back \(unavailable for \d+\.\d s\); stamping resumed$/,
    );
  });
});
