/**
 * `herald tail` against Herald started as the README says: the change log in log order, `--after`,
 * `--limit`, `--table`, `--follow` until SIGINT, and one-line errors with their exit codes. This
 * Herald runs without --allow-insecure-targets, which is also where `herald listen` must say, in one
 * line, how to start Herald so that it may push to a local listener.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { HeraldServer } from "../helpers/cli-herald.js";
import { runCli, shown, spawnCli, START_TIMEOUT_MS, startHerald } from "../helpers/cli-herald.js";

const TEST_TIMEOUT_MS = 45_000;

interface Line {
  position: number;
  type: string;
  table: string;
  key: string;
}

/** The lines `herald tail` printed: position, time, type, table, key. */
function parse(stdout: string): Line[] {
  return stdout
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const m = /^ *(\d+) {2}(\S+) {2}(\S+) +(\S+) +(.*)$/.exec(line);
      assert.ok(m, `not an event line: '${line}'`);
      assert.ok(!Number.isNaN(Date.parse(m[2]!)), `a time: ${m[2]}`);
      return { position: Number(m[1]), type: m[3]!, table: m[4]!, key: m[5]! };
    });
}

describe("herald tail against a running Herald", { timeout: START_TIMEOUT_MS * 2 }, () => {
  let herald: HeraldServer | undefined;
  let env: Record<string, string>;
  /** What the test wrote, in order: [type, table, email]. */
  const written: [string, string, string][] = [];

  const upsert = async (table: string, email: string, firstName: string) => {
    const answer = await herald!.api<{ profileId: number; created: boolean }>(
      "PUT",
      `/v5/entities/default/profile-tables/${table}/profiles`,
      { key: { emailAddress: email }, attributes: { firstName } },
    );
    assert.ok(answer.status === 200 || answer.status === 201, JSON.stringify(answer.json));
    written.push([answer.json.created ? "CREATE" : "UPDATE", table, email]);
    return answer.json.profileId;
  };

  before(async () => {
    herald = await startHerald();
    env = { HERALD_URL: herald.url, HERALD_API_KEY: herald.adminKey };
    for (const name of ["Customers", "Leads"]) {
      const table: { status: number; json: unknown } = await herald.api(
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
    const ann = await upsert("Customers", "ann@example.com", "Ann");
    await upsert("Leads", "bob@example.com", "Bob");
    await upsert("Customers", "cid@example.com", "Cid");
    await upsert("Customers", "ann@example.com", "Anna");
    const gone = await herald.api(
      "DELETE",
      `/v5/entities/default/profile-tables/Customers/profiles/${ann}`,
    );
    assert.equal(gone.status, 204);
    written.push(["DELETE", "Customers", "ann@example.com"]);
  });

  after(async () => {
    if (herald) {
      const code = await herald.stop();
      assert.equal(code, 0, `Herald's exit code after SIGTERM\n${herald.output()}`);
    }
  });

  test(
    "prints every event in log order, then exits 0; --after, --limit and --table narrow it",
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      const [all, leads] = await Promise.all([
        runCli(["tail"], env),
        runCli(["tail", "--table", "Leads", "--api-key", herald!.adminKey], {
          HERALD_URL: herald!.url,
        }),
      ]);
      assert.equal(all.code, 0, shown(all));
      assert.equal(all.stderr, "");
      const lines = parse(all.stdout);
      assert.deepEqual(
        lines.map((l) => [l.type, l.table, /emailAddress=(\S+)/.exec(l.key)?.[1]]),
        written,
      );
      const positions = lines.map((l) => l.position);
      assert.deepEqual(
        positions,
        [...positions].sort((a, b) => a - b),
        "log order",
      );
      assert.match(lines[0]!.key, /^profileId=\d+ emailAddress=ann@example\.com$/);

      assert.equal(leads.code, 0, shown(leads));
      assert.deepEqual(
        parse(leads.stdout).map((l) => [l.type, l.table]),
        [["CREATE", "Leads"]],
      );

      const [later, two] = await Promise.all([
        runCli(["tail", "--after", String(positions[2])], env),
        runCli(["tail", "--after", String(positions[0]), "--limit", "2"], env),
      ]);
      assert.equal(later.code, 0, shown(later));
      assert.deepEqual(
        parse(later.stdout).map((l) => l.position),
        positions.slice(3),
      );
      assert.equal(two.code, 0, shown(two));
      assert.deepEqual(
        parse(two.stdout).map((l) => l.position),
        positions.slice(1, 3),
      );
    },
  );

  test(
    "--follow prints events as they come, until SIGINT (exit 0)",
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      const cli = spawnCli(["tail", "--follow", "--poll-ms", "100"], env);
      await cli.waitFor("stdout", /DELETE +Customers +profileId=\d+ emailAddress=ann@example\.com/);
      await upsert("Leads", "dee@example.com", "Dee");
      await cli.waitFor("stdout", /CREATE +Leads +profileId=\d+ emailAddress=dee@example\.com/);
      cli.child.kill("SIGINT");
      const code = await cli.exited;
      const run = { code, stdout: cli.stdout(), stderr: cli.stderr() };
      assert.equal(code, 0, shown(run));
      assert.equal(parse(run.stdout).length, written.length, shown(run));
    },
  );

  test(
    "errors are one line with an exit code: bad URL, no answer, wrong key, unknown table or entity",
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      const [badUrl, refused, wrongKey, noKey, unknownTable, unknownEntity, badAfter, help] =
        await Promise.all([
          runCli(["tail", "--url", "ftp://example.com"], env),
          runCli(["tail", "--url", "http://127.0.0.1:9"], env),
          runCli(["tail"], { ...env, HERALD_API_KEY: "hk_not_a_key_of_this_herald_000" }),
          runCli(["tail"], { HERALD_URL: herald!.url }),
          runCli(["tail", "--table", "Prospects"], env),
          runCli(["tail", "--entity", "nowhere"], env),
          runCli(["tail", "--after", "-3"], env),
          runCli(["tail", "--help"]),
        ]);
      const expectations: [typeof badUrl, number, RegExp][] = [
        [badUrl, 2, /^herald: --url \/ HERALD_URL must be an http\(s\) address; got 'ftp:/],
        [refused, 1, /^herald: cannot reach Herald at http:\/\/127\.0\.0\.1:9 .*ECONNREFUSED/],
        [wrongKey, 1, /^herald: Herald refused the API key \(check --api-key or HERALD_API_KEY\)/],
        [noKey, 2, /^herald: no API key: pass --api-key KEY or set HERALD_API_KEY$/],
        [unknownTable, 2, /^herald: no profile or custom table 'Prospects' in entity 'default'/],
        [unknownEntity, 2, /^herald: .*'nowhere'/],
        [badAfter, 2, /^herald: --after must be a whole number/],
      ];
      for (const [run, code, message] of expectations) {
        assert.equal(run.code, code, shown(run));
        assert.match(run.stderr.trim(), message, shown(run));
        assert.equal(run.stderr.trim().split("\n").length, 1, shown(run));
        assert.equal(run.stdout, "", shown(run));
      }
      assert.equal(help.code, 0, shown(help));
      assert.match(help.stdout, /Usage: herald tail \[options\]/);
      assert.match(help.stdout, /--follow/);
    },
  );

  test(
    "listen against a Herald that refuses local targets says how to start it, and leaves nothing",
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      const run = await runCli(["listen", "--table", "Customers"], env);
      assert.equal(run.code, 2, shown(run));
      assert.equal(run.stderr.trim().split("\n").length, 1, shown(run));
      assert.match(
        run.stderr,
        /^herald: Herald refuses to push to this machine \(http:\/\/127\.0\.0\.1:\d+\/\): start Herald with --allow-insecure-targets \(or HERALD_ALLOW_INSECURE_TARGETS=true\)/,
      );
      const left = await herald!.api<{ totalElements: number }>(
        "GET",
        "/v4/entity/default/webhookSubscription",
      );
      assert.equal(left.json.totalElements, 0);
    },
  );
});
