/**
 * `herald import` as a user runs it: Herald started with `node bin/herald.mjs start` on a fresh
 * embedded database, a profile table made through the API, then the CLI as a subprocess uploading
 * files and following each execution to its end. Exit codes and output are the contract under test.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { gzipSync } from "node:zlib";

/** Generous: two cores shared by parallel test files make a cold start slow. */
const START_TIMEOUT_MS = 120_000;
const STOP_TIMEOUT_MS = 30_000;
const CLI_TIMEOUT_MS = 50_000;
const TEST_TIMEOUT_MS = 60_000;

const ADMIN_KEY = `hk_e2e_cli_import_${randomBytes(12).toString("hex")}`;

const CUSTOMERS = {
  name: "Customers",
  attributes: [
    { name: "emailAddress", type: "EMAIL_ADDRESS", unique: true, mandatory: true },
    { name: "firstName", type: "FIRSTNAME" },
    { name: "points", type: "CUSTOM", valueType: "INTEGER" },
  ],
};

/** The test's environment without HERALD_* and DATABASE_URL: each child gets only what is set here. */
function outerEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith("HERALD_") && k !== "DATABASE_URL"),
  );
}

interface Server {
  child: ChildProcess;
  url: string;
  output: () => string;
}

function startServer(dataDir: string): Promise<Server> {
  const child = spawn(process.execPath, ["bin/herald.mjs", "start"], {
    env: {
      ...outerEnv(),
      HERALD_DATA_DIR: dataDir,
      HERALD_PORT: "0",
      HERALD_HOST: "127.0.0.1",
      HERALD_LOG_LEVEL: "info",
      HERALD_ADMIN_API_KEY: ADMIN_KEY,
      HERALD_DEFAULT_ENTITY: "default",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stderr!.on("data", (chunk: Buffer) => (out += chunk.toString()));
  return new Promise<Server>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`Herald did not start within ${START_TIMEOUT_MS} ms:\n${out}`));
    }, START_TIMEOUT_MS);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`Herald exited with ${code} before listening:\n${out}`));
    });
    let listening = false;
    child.stdout!.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      if (listening) return;
      // Complete lines only: a chunk may end in the middle of a JSON line.
      for (const line of out.slice(0, out.lastIndexOf("\n")).split("\n")) {
        if (!line.startsWith("{")) continue;
        const entry = JSON.parse(line) as { msg?: string; url?: string };
        if (entry.msg === "Herald API listening" && entry.url) {
          listening = true;
          clearTimeout(timer);
          child.removeAllListeners("exit");
          resolve({ child, url: entry.url, output: () => out });
          return;
        }
      }
    });
  });
}

function stopServer(server: Server): Promise<number | null> {
  if (server.child.exitCode !== null) return Promise.resolve(server.child.exitCode);
  return new Promise((resolve) => {
    const timer = setTimeout(() => server.child.kill("SIGKILL"), STOP_TIMEOUT_MS);
    server.child.once("exit", (code) => {
      clearTimeout(timer);
      resolve(code);
    });
    server.child.kill("SIGTERM");
  });
}

interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runCli(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  const child = spawn(process.execPath, ["bin/herald.mjs", "import", ...args], {
    env: { ...outerEnv(), ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), CLI_TIMEOUT_MS);
  return new Promise((resolve) => {
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Everything a failed assertion needs to explain itself. */
function shown(run: CliRun): string {
  return `exit ${run.code}\n--- stdout\n${run.stdout}--- stderr\n${run.stderr}`;
}

describe("herald import against a running Herald", { timeout: START_TIMEOUT_MS * 2 }, () => {
  let dataDir: string;
  let files: string;
  let server: Server | undefined;

  /** Every import run points at the test's server with the admin key, unless a test says otherwise. */
  const importFile = (file: string, ...more: string[]) =>
    runCli([join(files, file), "--table", "Customers", "--url", server!.url, ...more], {
      HERALD_API_KEY: ADMIN_KEY,
    });

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "herald-e2e-cli-import-"));
    files = mkdtempSync(join(tmpdir(), "herald-e2e-cli-files-"));
    server = await startServer(dataDir);
    const token = await fetch(`${server.url}/auth/token`, {
      headers: { authorization: ADMIN_KEY },
    });
    assert.equal(token.status, 200, await token.clone().text());
    const { accessToken } = (await token.json()) as { accessToken: string };
    const table = await fetch(`${server.url}/v5/entities/default/profile-tables`, {
      method: "POST",
      headers: { authorization: `Bearer ${accessToken}`, "content-type": "application/json" },
      body: JSON.stringify(CUSTOMERS),
    });
    assert.equal(table.status, 201, await table.text());

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
      const code = await stopServer(server);
      assert.equal(code, 0, `Herald's exit code after SIGTERM\n${server.output()}`);
    }
    rmSync(dataDir, { recursive: true, force: true });
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
    const run = await runCli([
      join(files, "zipped.csv.gz"),
      "--table",
      "Customers",
      "--url",
      server!.url,
      "--api-key",
      ADMIN_KEY,
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
      const noTable = await runCli([join(files, "good.csv"), "--url", server!.url], {
        HERALD_API_KEY: ADMIN_KEY,
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

      const help = await runCli(["--help"]);
      assert.equal(help.code, 0, shown(help));
      assert.match(help.stdout, /Usage: herald import \[options\] <file>/);
    },
  );

  test(
    "no API key is exit 2 and names both ways to give one",
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      const run = await runCli([
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
