/**
 * `herald listen` as a developer runs it, against Herald started as the README says (with
 * --allow-insecure-targets, so that it may push to 127.0.0.1): it receives a profile's CREATE,
 * UPDATE and DELETE, prints one line each, refuses a push with a forged signature, forwards the
 * verified pushes unchanged to a real loopback receiver (which verifies them with the Standard
 * Webhooks library), and deletes its subscriptions on SIGINT. A SIGKILLed listen leaves its
 * subscriptions behind, and Herald's housekeeping deletes them once they expire (seconds here:
 * the hidden --expiry-seconds, and HERALD_HOUSEKEEPING_INTERVAL_MS).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { Webhook } from "standardwebhooks";
import type { HeraldServer, RunningCli } from "../helpers/cli-herald.js";
import {
  eventually,
  runCli,
  shown,
  spawnCli,
  START_TIMEOUT_MS,
  startHerald,
} from "../helpers/cli-herald.js";
import type { WebhookReceiver } from "../helpers/webhook-receiver.js";
import { startWebhookReceiver } from "../helpers/webhook-receiver.js";

const TEST_TIMEOUT_MS = 45_000;
const PROFILES = "/v5/entities/default/profile-tables/Customers/profiles";
const SUBSCRIPTIONS = "/v4/entity/default/webhookSubscription";

interface Started {
  cli: RunningCli;
  port: number;
  ids: number[];
}

describe("herald listen against a running Herald", { timeout: START_TIMEOUT_MS * 2 }, () => {
  let herald: HeraldServer | undefined;
  let receiver: WebhookReceiver;
  let env: Record<string, string>;

  /** Starts `herald listen` and waits until its subscriptions exist. */
  const listen = async (...args: string[]): Promise<Started> => {
    const cli = spawnCli(["listen", "--table", "Customers", ...args], env);
    const banner = await cli.waitFor(
      "stderr",
      /Listening on http:\/\/127\.0\.0\.1:(\d+)\/ .*: subscriptions (\d+(?:, \d+)*)/,
    );
    await cli.waitFor("stderr", /^Ready\./m);
    return { cli, port: Number(banner[1]), ids: banner[2]!.split(", ").map(Number) };
  };
  const subscriptionIds = async () =>
    (
      await herald!.api<{ webhookSubscriptions: { id: number }[] }>("GET", SUBSCRIPTIONS)
    ).json.webhookSubscriptions.map((s) => s.id);

  before(async () => {
    // One after the other: a receiver left open by a failed start would keep the file running.
    receiver = await startWebhookReceiver();
    herald = await startHerald({
      HERALD_ALLOW_INSECURE_TARGETS: "true",
      HERALD_HOUSEKEEPING_INTERVAL_MS: "1000",
    });
    env = { HERALD_URL: herald.url, HERALD_API_KEY: herald.adminKey };
    const table = await herald.api("POST", "/v5/entities/default/profile-tables", {
      name: "Customers",
      attributes: [
        { name: "emailAddress", type: "EMAIL_ADDRESS", unique: true, mandatory: true },
        { name: "firstName", type: "FIRSTNAME" },
      ],
    });
    assert.equal(table.status, 201, JSON.stringify(table.json));
  });

  after(async () => {
    await receiver?.close();
    if (herald) {
      const code = await herald.stop();
      assert.equal(code, 0, `Herald's exit code after SIGTERM\n${herald.output()}`);
    }
  });

  test(
    "receives, verifies, prints and forwards each event; refuses a forged push; SIGINT deletes its subscriptions",
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      const { cli, port, ids } = await listen("--forward-to", receiver.url);
      assert.equal(ids.length, 5, "one subscription per event type of a profile table");
      const stored = await herald!.api<{ expiresAt: string | null }>(
        "GET",
        `${SUBSCRIPTIONS}/${ids[0]}`,
      );
      assert.ok(stored.json.expiresAt && Date.parse(stored.json.expiresAt) > Date.now());

      const created = await herald!.api<{ profileId: number }>("PUT", PROFILES, {
        key: { emailAddress: "ann@example.com" },
        attributes: { firstName: "Ann" },
      });
      assert.equal(created.status, 201);
      const id = created.json.profileId;
      await herald!.api("PUT", PROFILES, {
        key: { emailAddress: "ann@example.com" },
        attributes: { firstName: "Anna" },
      });
      assert.equal((await herald!.api("DELETE", `${PROFILES}/${id}`)).status, 204);

      // One subscription per event type: each prints its line when its push arrives, so the
      // three lines may come in any order; their positions are the log's order.
      const positions: number[] = [];
      for (const type of ["CREATE", "UPDATE", "DELETE"]) {
        const line = new RegExp(
          `^ *(\\d+)  \\S+  ${type} +Customers +profileId=${id} emailAddress=ann@example\\.com$`,
          "m",
        );
        positions.push(Number((await cli.waitFor("stdout", line))[1]));
      }
      assert.deepEqual(
        [...positions].sort((a, b) => a - b),
        positions,
        "positions in log order",
      );

      // The same three pushes reach the forward target, byte for byte, signatures included.
      await receiver.waitFor((r) => r.length >= 3, 15_000, "three forwarded pushes");
      await cli.waitFor("stdout", /(→ forwarded to .*: 200 \(\d+ ms\)[\s\S]*){3}/);
      for (const request of receiver.requests.slice(0, 3)) {
        const envelope = request.json as { id: string; _links: { webhook: { href: string } } };
        const subscription = Number(envelope._links.webhook.href.split("/").at(-1));
        assert.ok(ids.includes(subscription), `pushed by one of listen's subscriptions`);
        const { json } = await herald!.api<{ secret: string }>(
          "GET",
          `${SUBSCRIPTIONS}/${subscription}/secret`,
        );
        new Webhook(json.secret).verify(request.body, request.headers as Record<string, string>);
        assert.equal(request.headers["webhook-id"], envelope.id);
        assert.match(String(request.headers["user-agent"]), /^Herald\//);
        assert.equal(request.headers["content-type"], "application/json");
      }

      // BULK pushes (an array of events) print one line per event too. Listen's renewals change
      // only expiresAt, so the subscription stays BULK.
      const bulk = await herald!.api<{ eventType: string; pushMode: string }>(
        "PATCH",
        `${SUBSCRIPTIONS}/${ids[0]}`,
        { pushMode: "BULK", maxBlockSize: 10, lingerMs: 300 },
      );
      assert.deepEqual([bulk.json.eventType, bulk.json.pushMode], ["CREATE", "BULK"]);
      for (const email of ["bob@example.com", "cid@example.com"])
        await herald!.api("PUT", PROFILES, { key: { emailAddress: email } });
      await cli.waitFor(
        "stdout",
        /CREATE +Customers +profileId=\d+ emailAddress=bob@example\.com\n(?:.*\n)*?.*CREATE +Customers +profileId=\d+ emailAddress=cid@example\.com/,
      );
      await receiver.waitFor(
        (r) => r.some((q) => Array.isArray((q.json as { data: unknown }).data)),
        15_000,
        "a forwarded BULK push",
      );
      await cli.waitFor("stdout", /(→ forwarded to .*: 200 \(\d+ ms\)[\s\S]*){4}/);

      // A push signed with a secret that is not the subscription's: 401, reported, not forwarded.
      const forwarded = receiver.requests.length;
      const forged = await fetch(`http://127.0.0.1:${port}/`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "webhook-id": "forged-push-1",
          "webhook-timestamp": String(Math.floor(Date.now() / 1000)),
          "webhook-signature": `v1,${randomBytes(32).toString("base64")}`,
        },
        body: JSON.stringify({ id: "forged-push-1", data: {} }),
      });
      assert.equal(forged.status, 401);
      await cli.waitFor(
        "stderr",
        /refused a request from 127\.0\.0\.1:\d+ \(webhook-id forged-push-1\): webhook-signature does not verify.*; answered 401/,
      );
      const unsigned = await fetch(`http://127.0.0.1:${port}/`, { method: "POST", body: "{}" });
      assert.equal(unsigned.status, 401);
      assert.equal(receiver.requests.length, forwarded, "refused pushes are not forwarded");

      cli.child.kill("SIGINT");
      const code = await cli.exited;
      const run = { code, stdout: cli.stdout(), stderr: cli.stderr() };
      assert.equal(code, 0, shown(run));
      assert.match(run.stderr, new RegExp(`Stopped; deleted subscriptions ${ids.join(", ")}\\.`));
      const left = await subscriptionIds();
      assert.deepEqual(
        left.filter((s) => ids.includes(s)),
        [],
        "its subscriptions are gone from the API",
      );
    },
  );

  test(
    "a SIGKILLed listen's subscriptions are renewed while it runs, then expire and are deleted by housekeeping",
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      const { cli, ids } = await listen("--events", "create,delete", "--expiry-seconds", "3");
      assert.equal(ids.length, 2);
      // Past one expiry period, the subscriptions are still there: listen renewed them.
      await new Promise((resolve) => setTimeout(resolve, 4_500));
      for (const id of ids) {
        const read = await herald!.api<{ expiresAt: string }>("GET", `${SUBSCRIPTIONS}/${id}`);
        assert.equal(read.status, 200, `subscription ${id} renewed, not expired`);
        assert.ok(Date.parse(read.json.expiresAt) > Date.now());
      }

      cli.child.kill("SIGKILL");
      await cli.exited;
      assert.deepEqual(
        (await subscriptionIds()).filter((s) => ids.includes(s)),
        ids,
        "a killed listen deletes nothing",
      );
      await eventually(
        async () => (await subscriptionIds()).every((s) => !ids.includes(s)),
        15_000,
        `subscriptions ${ids.join(", ")} deleted after they expired`,
      );
      for (const id of ids)
        assert.match(
          herald!.output(),
          new RegExp(`"subscriptionId":${id},[^\\n]*"msg":"webhook subscription expired; deleted"`),
        );
    },
  );

  test(
    "SIGTERM cleans up too; bad usage and failures are one line and a non-zero exit code; nothing is left",
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      const before = await subscriptionIds();
      const oneLine = (run: { stderr: string }) =>
        assert.equal(run.stderr.trim().split("\n").length, 1, `one line:\n${run.stderr}`);

      // Independent runs, side by side: each is a Node process starting up.
      const busyPort = new URL(receiver.url).port;
      const terminated = (async () => {
        const { cli } = await listen("--events", "DELETE");
        cli.child.kill("SIGTERM");
        const code = await cli.exited;
        return { code, stdout: cli.stdout(), stderr: cli.stderr() };
      })();
      const [unknownTable, badEvent, wrongFit, portInUse, wrongKey, refused, noTable, help] =
        await Promise.all([
          runCli(["listen", "--table", "Nope"], env),
          runCli(["listen", "--table", "Customers", "--events", "CREATE,BOGUS"], env),
          runCli(["listen", "--table", "Customers", "--events", "TRIGGER"], env),
          runCli(["listen", "--table", "Customers", "--port", busyPort], env),
          runCli(["listen", "--table", "Customers"], {
            ...env,
            HERALD_API_KEY: "hk_not_a_key_of_this_herald_000",
          }),
          runCli(["listen", "--table", "Customers", "--url", "http://127.0.0.1:9"], env),
          runCli(["listen"], env),
          runCli(["listen", "--help"]),
        ]);
      assert.equal(unknownTable.code, 2, shown(unknownTable));
      assert.equal(
        unknownTable.stderr,
        "herald: no profile or custom table 'Nope' in entity 'default' (name or id)\n",
      );

      assert.equal(badEvent.code, 2, shown(badEvent));
      assert.match(badEvent.stderr, /^herald: --events: unknown event type 'BOGUS'; use CREATE, /);
      oneLine(badEvent);

      assert.equal(wrongFit.code, 2, shown(wrongFit));
      assert.match(wrongFit.stderr, /TRIGGER does not fit profile table Customers/);

      assert.equal(portInUse.code, 2, shown(portInUse));
      assert.match(portInUse.stderr, new RegExp(`^herald: port ${busyPort} is already in use`));
      oneLine(portInUse);

      assert.equal(wrongKey.code, 1, shown(wrongKey));
      assert.match(wrongKey.stderr, /^herald: Herald refused the API key \(check --api-key/);
      oneLine(wrongKey);

      assert.equal(refused.code, 1, shown(refused));
      assert.match(refused.stderr, /^herald: cannot reach Herald at http:\/\/127\.0\.0\.1:9 /);
      oneLine(refused);

      assert.equal(noTable.code, 2, shown(noTable));
      assert.match(noTable.stderr, /^herald: required option '--table <table>' not specified/);

      assert.equal(help.code, 0, shown(help));
      assert.match(help.stdout, /Usage: herald listen \[options\]/);
      assert.doesNotMatch(help.stdout, /expiry-seconds/, "the test-only option stays hidden");

      const sigterm = await terminated;
      assert.equal(sigterm.code, 0, shown(sigterm));
      assert.match(sigterm.stderr, /Stopped; deleted subscriptions \d+\./);

      for (const run of [unknownTable, badEvent, wrongFit, portInUse, wrongKey, refused])
        assert.doesNotMatch(run.stderr, /\n\s+at /, "no stack trace");
      assert.deepEqual(await subscriptionIds(), before, "nothing was left behind");
    },
  );
});
