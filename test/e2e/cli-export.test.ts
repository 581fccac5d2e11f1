/**
 * `herald export` as a user runs it: Herald started with `node bin/herald.mjs start` on a fresh
 * embedded database (with a small HERALD_MAX_FILE_BYTES, so that one export can fail), profiles
 * written through the API, exports defined through the API, then the CLI as a subprocess running
 * them and downloading their files. Exit codes, output and the files written are the contract.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { gunzipSync } from "node:zlib";
import { parse } from "csv-parse/sync";
import { defaultFileName, fileNameFromDisposition } from "../../src/cli/export-command.js";
import type { HeraldServer } from "../helpers/cli-herald.js";
import { runCli, shown, START_TIMEOUT_MS, startHerald } from "../helpers/cli-herald.js";

const TEST_TIMEOUT_MS = 90_000;
const EXPORTS = "/v5/entities/default/exports";
const PEOPLE = [
  ["ada@example.com", "Ada"],
  ["grace@example.com", "Grace; Hopper"],
  ["alan@example.com", 'Alan "the" Turing'],
];
const CROWD_SIZE = 60;

describe("herald export against a running Herald", { timeout: START_TIMEOUT_MS * 2 }, () => {
  let server: HeraldServer | undefined;
  let dir: string;
  let env: Record<string, string>;
  const ids: Record<string, string> = {};

  const runExport = (args: string[], extraEnv: Record<string, string> = env) =>
    runCli(["export", ...args], extraEnv);

  const defineExport = async (body: Record<string, unknown>) => {
    const answer = await server!.api<{ id: string }>("POST", EXPORTS, body);
    assert.equal(answer.status, 201, JSON.stringify(answer.json));
    return answer.json.id;
  };

  const put = async (table: string, email: string, firstName: string) => {
    const answer = await server!.api(
      "PUT",
      `/v5/entities/default/profile-tables/${table}/profiles`,
      { key: { emailAddress: email }, attributes: { firstName } },
    );
    assert.ok(answer.status === 200 || answer.status === 201, JSON.stringify(answer.json));
  };

  /** The rows of a CSV export, parsed by a CSV reader library (`;`, header row). */
  const rowsOf = (csv: string) =>
    (parse(csv, { delimiter: ";", columns: true }) as Record<string, string>[])
      .map((r) => [r.emailAddress, r.firstName])
      .sort();

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "herald-e2e-cli-export-"));
    server = await startHerald({ HERALD_MAX_FILE_BYTES: "1024" });
    env = { HERALD_URL: server.url, HERALD_API_KEY: server.adminKey };
    for (const name of ["Customers", "Crowd"]) {
      const table: { status: number; json: unknown } = await server.api(
        "POST",
        "/v5/entities/default/profile-tables",
        {
          name,
          attributes: [
            { name: "emailAddress", type: "EMAIL_ADDRESS", unique: true, mandatory: true },
            { name: "firstName", type: "FIRSTNAME" },
          ],
        },
      );
      assert.equal(table.status, 201, JSON.stringify(table.json));
    }
    for (const [email, name] of PEOPLE) await put("Customers", email!, name!);
    // Enough rows that their file passes the server's 1024-byte limit.
    for (let i = 0; i < CROWD_SIZE; i++)
      await put("Crowd", `someone-${String(i).padStart(3, "0")}@example.com`, `Person ${i}`);
    const fields = ["emailAddress", "firstName"];
    const source = (table: string) => ({ tableType: "PROFILE_TABLE", table });
    ids.csv = await defineExport({ name: "customers", source: source("Customers"), fields });
    ids.gzip = await defineExport({
      name: "customers-gz",
      source: source("Customers"),
      fields,
      format: { type: "CSV", compression: "GZIP" },
    });
    ids.crowd = await defineExport({ name: "crowd", source: source("Crowd"), fields });
  });

  after(async () => {
    if (server) {
      const code = await server.stop();
      assert.equal(code, 0, `Herald's exit code after SIGTERM\n${server.output()}`);
    }
    rmSync(dir, { recursive: true, force: true });
  });

  test(
    "into a directory: the file under Herald's name, every row, nothing else left",
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      const into = mkdtempSync(join(dir, "into-"));
      const run = await runExport([ids.csv!, "--out", into]);
      assert.equal(run.code, 0, shown(run));
      assert.match(run.stdout, /Export \S+ \(customers\): execution \S+ started/);
      assert.match(run.stdout, /SUCCESS, 3 rows/);
      const files = readdirSync(into);
      assert.equal(files.length, 1, `one file and no temporary one: ${files.join(", ")}`);
      assert.match(run.stdout, new RegExp(`Saved ${join(into, files[0]!)} \\(\\d+ B\\)`));
      assert.equal(run.stderr, "");
      assert.deepEqual(rowsOf(readFileSync(join(into, files[0]!), "utf8")), [...PEOPLE].sort());
    },
  );

  test(
    "--out FILE: a compressed export written to that path, its bytes those of the API's file",
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      const path = join(dir, "customers.csv.gz");
      const run = await runExport([ids.gzip!, "--out", path]);
      assert.equal(run.code, 0, shown(run));
      const bytes = readFileSync(path);
      assert.deepEqual(rowsOf(gunzipSync(bytes).toString("utf8")), [...PEOPLE].sort());
      const execution = /execution (\S+) SUCCESS/.exec(run.stdout)?.[1];
      assert.ok(execution, shown(run));
      const token = (await (
        await fetch(`${server!.url}/auth/token`, { headers: { authorization: server!.adminKey } })
      ).json()) as { accessToken: string };
      const file = await fetch(
        `${server!.url}${EXPORTS}/${ids.gzip}/executions/${execution}/file`,
        {
          headers: { authorization: `Bearer ${token.accessToken}` },
        },
      );
      assert.equal(file.status, 200);
      assert.deepEqual(Buffer.from(await file.arrayBuffer()), bytes);
    },
  );

  test(
    "--out -: the file on stdout, the messages on stderr",
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      const run = await runExport([ids.csv!, "--out", "-"]);
      assert.equal(run.code, 0, shown(run));
      assert.deepEqual(rowsOf(run.stdout), [...PEOPLE].sort());
      assert.match(run.stderr, /SUCCESS, 3 rows/);
    },
  );

  test(
    "an execution that ends in ERROR: exit 1, its reason on stderr, no file",
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      const path = join(dir, "crowd.csv");
      const run = await runExport([ids.crowd!, "--out", path]);
      assert.equal(run.code, 1, shown(run));
      assert.match(run.stderr, /^herald: export \S+ execution \S+ ended in ERROR: .*1024 bytes/m);
      assert.deepEqual(
        readdirSync(dir).filter((f) => f.startsWith("crowd") || f.startsWith(".crowd")),
        [],
      );
    },
  );

  test(
    "an unknown export: exit 2 and one line naming it",
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      const run = await runExport(["999999", "--out", dir]);
      assert.equal(run.code, 2, shown(run));
      assert.equal(run.stderr.trim().split("\n").length, 1, shown(run));
      assert.match(run.stderr, /^herald: .*999999.*/);
    },
  );

  test("bad usage and an unreachable Herald", { timeout: TEST_TIMEOUT_MS }, async () => {
    const noKey = await runExport([ids.csv!], { HERALD_URL: server!.url });
    assert.equal(noKey.code, 2, shown(noKey));
    assert.match(noKey.stderr, /no API key/);
    const noDir = await runExport([ids.csv!, "--out", join(dir, "missing", "x.csv")]);
    assert.equal(noDir.code, 2, shown(noDir));
    assert.match(noDir.stderr, /no directory/);
    const unreachable = await runExport([ids.csv!, "--url", "http://127.0.0.1:9", "--out", dir]);
    assert.equal(unreachable.code, 1, shown(unreachable));
    assert.match(unreachable.stderr, /cannot reach Herald at http:\/\/127\.0\.0\.1:9/);
  });
});

describe("herald export's file names", () => {
  test("a name from Content-Disposition stays in the chosen directory and is not hidden", () => {
    const cases: [string | undefined, string | undefined][] = [
      ['attachment; filename="customers-12.csv"', "customers-12.csv"],
      ["attachment; filename=plain.csv", "plain.csv"],
      ["attachment; filename*=UTF-8''caf%C3%A9.csv", "café.csv"],
      ['attachment; filename="../../etc/passwd"', "passwd"],
      ["attachment; filename*=UTF-8''..%2F..%2Fx.csv", "x.csv"],
      ['attachment; filename=".bashrc"', "bashrc"],
      ['attachment; filename=".."', undefined],
      ['attachment; filename="a\\"b.csv"', "a_b.csv"],
      ["attachment", undefined],
      [undefined, undefined],
    ];
    for (const [header, name] of cases) assert.equal(fileNameFromDisposition(header), name, header);
  });

  test("without one: <export name>-<execution>.<extension of the format>", () => {
    const csv = { name: "crm daily", format: { type: "CSV", compression: "NONE" } };
    assert.equal(defaultFileName(csv, "7", "12"), "crm daily-12.csv");
    assert.equal(
      defaultFileName({ name: "x", format: { type: "NDJSON", compression: "GZIP" } }, "7", "3"),
      "x-3.ndjson.gz",
    );
    assert.equal(
      defaultFileName({ name: "a/b", format: { type: "CSV", compression: "ZIP" } }, "7", "3"),
      "b-3.zip",
    );
    assert.equal(defaultFileName({}, "7", "3"), "export-7-3.csv");
  });
});
