/**
 * `herald import` as a user runs it: Herald started with `node bin/herald.mjs start` on a fresh
 * embedded database, a profile table made through the API, then the CLI as a subprocess uploading
 * files and following each execution to its end. Exit codes and output are the contract under test.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { gzipSync } from "node:zlib";
import type { HeraldServer } from "../helpers/cli-herald.js";
import { runCli, shown, START_TIMEOUT_MS, startHerald } from "../helpers/cli-herald.js";

const TEST_TIMEOUT_MS = 60_000;

const CUSTOMERS = {
  name: "Customers",
  attributes: [
    { name: "emailAddress", type: "EMAIL_ADDRESS", unique: true, mandatory: true },
    { name: "firstName", type: "FIRSTNAME" },
    { name: "points", type: "CUSTOM", valueType: "INTEGER" },
  ],
};

describe("herald import against a running Herald", { timeout: START_TIMEOUT_MS * 2 }, () => {
  let files: string;
  let server: HeraldServer | undefined;

  /** `herald import` with its arguments as a user types them after the command name. */
  const runImport = (args: string[], env: Record<string, string> = {}) =>
    runCli(["import", ...args], env);

  /** Every import run points at the test's server with the admin key, unless a test says otherwise. */
  const importFile = (file: string, ...more: string[]) =>
    runImport([join(files, file), "--table", "Customers", "--url", server!.url, ...more], {
      HERALD_API_KEY: server!.adminKey,
    });

  before(async () => {
    files = mkdtempSync(join(tmpdir(), "herald-e2e-cli-files-"));
    server = await startHerald();
    const token = await fetch(`${server.url}/auth/token`, {
      headers: { authorization: server.adminKey },
    });
    assert.equal(token.status, 200, await token.text());
    const table = await server.api("POST", "/v5/entities/default/profile-tables", CUSTOMERS);
    assert.equal(table.status, 201, JSON.stringify(table.json));

    writeFileSync(
      join(files, "good.csv"),
      "emailAddress,firstName,points\nada@example.com,Ada,10\ngrace@example.com,Grace,20\nalan@example.com,Alan,30\n",
    );
    writeFileSync(
      join(files, "one-bad-line.csv"),
      "emailAddress,firstName,points\nkatherine@example.com,Katherine,1\nedsger@example.com,Edsger,x\nbarbara@example.com,Barbara,3\n",
    );
    writeFileSync(
      join(files, "zipped.csv.gz"),
      gzipSync(
        "emailAddress,firstName,points\nlinus@example.com,Linus,5\nmargaret@example.com,Margaret,6\n",
      ),
    );
    writeFileSync(
      join(files, "unknown-column.csv"),
      "emailAddress,shoeSize\nniklaus@example.com,44\n",
    );
  });

  after(async () => {
    if (server) {
      const code = await server.stop();
      assert.equal(code, 0, `Herald's exit code after SIGTERM\n${server.output()}`);
    }
    rmSync(files, { recursive: true, force: true });
  });

  test(
    "a good CSV imports every row: exit 0 and the counts",
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      const run = await importFile("good.csv");
      assert.equal(run.code, 0, shown(run));
      assert.match(run.stdout, /: SUCCESS/, shown(run));
      assert.match(run.stdout, /read 3, created 3, updated 0, unchanged 0, rejected 0/, shown(run));

      // The same file again changes nothing: the counts come from the server, not from the file.
      const again = await importFile("good.csv", "--mode", "CREATE_UPDATE");
      assert.equal(again.code, 0, shown(again));
      assert.match(
        again.stdout,
        /read 3, created 0, updated 0, unchanged 3, rejected 0/,
        shown(again),
      );
    },
  );

  test(
    "a bad line is rejected, the others go in: exit 1 and where to read the rejects",
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      const run = await importFile("one-bad-line.csv");
      assert.equal(run.code, 1, shown(run));
      assert.match(run.stdout, /: WITH_ERROR/, shown(run));
      assert.match(run.stdout, /read 3, created 2, updated 0, unchanged 0, rejected 1/, shown(run));
      assert.match(run.stdout, /line 3, column points/, shown(run));
      assert.match(
        run.stdout,
        /GET http:\/\/127\.0\.0\.1:\d+\/mass-imports\/v5\/entities\/default\/etl-executions\/[^/\s]+\/rejected-rows/,
        shown(run),
      );
    },
  );

  test("a gzip file is recognised by its name: exit 0", { timeout: TEST_TIMEOUT_MS }, async () => {
    // The key as a flag this time (the other runs take HERALD_API_KEY from the environment).
    const run = await runImport([
      join(files, "zipped.csv.gz"),
      "--table",
      "Customers",
      "--url",
      server!.url,
      "--api-key",
      server!.adminKey,
    ]);
    assert.equal(run.code, 0, shown(run));
    assert.match(run.stdout, /read 2, created 2/, shown(run));
  });

  test(
    "a header naming no attribute is refused before anything runs: exit 2",
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      const run = await importFile("unknown-column.csv");
      assert.equal(run.code, 2, shown(run));
      assert.match(run.stderr, /^herald: /, shown(run));
      assert.match(run.stderr, /shoeSize/, shown(run));
      assert.doesNotMatch(run.stdout, /Uploaded/, shown(run));
    },
  );

  test(
    "bad usage is exit 2 with one line that says what is wrong",
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      const noTable = await runImport([join(files, "good.csv"), "--url", server!.url], {
        HERALD_API_KEY: server!.adminKey,
      });
      assert.equal(noTable.code, 2, shown(noTable));
      assert.match(noTable.stderr, /^herald: required option '--table <table>' not specified/);
      assert.equal(noTable.stderr.trim().split("\n").length, 1, shown(noTable));

      const badMode = await importFile("good.csv", "--mode", "UPSERT");
      assert.equal(badMode.code, 2, shown(badMode));
      assert.match(badMode.stderr, /--mode/, shown(badMode));

      const missingFile = await importFile("no-such-file.csv");
      assert.equal(missingFile.code, 2, shown(missingFile));
      assert.match(missingFile.stderr, /no-such-file\.csv: no such file/, shown(missingFile));

      const help = await runImport(["--help"]);
      assert.equal(help.code, 0, shown(help));
      assert.match(help.stdout, /Usage: herald import \[options\] <file>/);
    },
  );

  test(
    "no API key is exit 2 and names both ways to give one",
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      const run = await runImport([
        join(files, "good.csv"),
        "--table",
        "Customers",
        "--url",
        server!.url,
      ]);
      assert.equal(run.code, 2, shown(run));
      assert.equal(run.stderr, "herald: no API key: pass --api-key KEY or set HERALD_API_KEY\n");
      assert.equal(run.stdout, "");
    },
  );
});
