/**
 * `herald subscriptions list | show | replay` against Herald started as the README says, with a real
 * loopback receiver as the subscriptions' target: the list as a table, one subscription's settings
 * and health without its secrets (unless --show-secret), a replay that the receiver then gets, and
 * one-line errors with their exit codes (an unknown subscription, bad usage, a wrong key).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { HeraldServer } from "../helpers/cli-herald.js";
import { runCli, shown, START_TIMEOUT_MS, startHerald } from "../helpers/cli-herald.js";
import type { WebhookReceiver } from "../helpers/webhook-receiver.js";
import { startWebhookReceiver } from "../helpers/webhook-receiver.js";

const TEST_TIMEOUT_MS = 45_000;
const SUBSCRIPTIONS = "/v4/entity/default/webhookSubscription";
const HEADER_SECRET = "s3cret-header-value";

interface Pushed {
  data: { emailAddress?: string; _event: { id: string; position: number } };
}

describe("herald subscriptions against a running Herald", { timeout: START_TIMEOUT_MS * 2 }, () => {
  let herald: HeraldServer | undefined;
  let receiver: WebhookReceiver;
  let env: Record<string, string>;
  let updates: number;
  let creates: number;
  let signingSecret: string;

  before(async () => {
    // One after the other: a receiver left open by a failed start would keep the file running.
    receiver = await startWebhookReceiver();
    herald = await startHerald({ HERALD_ALLOW_INSECURE_TARGETS: "true" });
    env = { HERALD_URL: herald.url, HERALD_API_KEY: herald.adminKey };
    const table = await herald.api("POST", "/v5/entities/default/profile-tables", {
      name: "Customers",
      attributes: [{ name: "emailAddress", type: "EMAIL_ADDRESS", unique: true, mandatory: true }],
    });
    assert.equal(table.status, 201, JSON.stringify(table.json));
    const subscribe = async (body: Record<string, unknown>) => {
      const answer = await herald!.api<{ id: number; secret: string }>("POST", SUBSCRIPTIONS, {
        on: "PROFILE_TABLE",
        onElementId: "Customers",
        targetUrl: receiver.url,
        ...body,
      });
      assert.equal(answer.status, 201, JSON.stringify(answer.json));
      return answer.json;
    };
    const created = await subscribe({
      eventType: "CREATE",
      headers: { "X-Shared-Secret": HEADER_SECRET },
    });
    creates = created.id;
    signingSecret = created.secret;
    updates = (await subscribe({ eventType: "UPDATE", isActive: false })).id;
  });

  after(async () => {
    await receiver?.close();
    if (herald) {
      const code = await herald.stop();
      assert.equal(code, 0, `Herald's exit code after SIGTERM\n${herald.output()}`);
    }
  });

  test(
    "list is a table of id, state, source, event type, target and lag; show hides secrets unless asked",
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      const [list, show, showJson, revealed] = await Promise.all([
        runCli(["subscriptions", "list"], env),
        runCli(["subscriptions", "show", String(creates)], env),
        runCli(["subscriptions", "show", String(creates), "--json"], env),
        runCli(["subscriptions", "show", String(creates), "--show-secret"], env),
      ]);
      assert.equal(list.code, 0, shown(list));
      const rows = list.stdout.trim().split("\n");
      assert.match(rows[0]!, /^ID +STATE +SOURCE +EVENT +TARGET +LAG$/);
      const target = receiver.url.replace(/[.]/g, "\\.");
      assert.match(
        rows[1]!,
        new RegExp(`^${creates} +ACTIVE +profile Customers +CREATE +${target} +\\d+$`),
      );
      assert.match(
        rows[2]!,
        new RegExp(`^${updates} +DISABLED +profile Customers +UPDATE +${target} +\\d+$`),
      );
      assert.equal(rows.length, 3);

      assert.equal(show.code, 0, shown(show));
      assert.match(show.stdout, new RegExp(`^id +${creates}$`, "m"));
      assert.match(show.stdout, /^state +ACTIVE$/m);
      assert.match(show.stdout, /^lag +\d+ log positions$/m);
      assert.match(show.stdout, /^source +profile Customers$/m);
      assert.match(show.stdout, /^Recent attempts/m);
      for (const run of [show, showJson]) {
        assert.doesNotMatch(run.stdout, /whsec_/, "no signing secret");
        assert.ok(!run.stdout.includes(HEADER_SECRET), "no header value");
        assert.match(run.stdout, /X-Shared-Secret/, "the header's name is shown");
      }
      const json = JSON.parse(showJson.stdout) as {
        id: number;
        status: { state: string };
        recentAttempts: unknown[];
        replays: unknown[];
      };
      assert.equal(json.id, creates);
      assert.equal(json.status.state, "ACTIVE");
      assert.ok(Array.isArray(json.recentAttempts) && Array.isArray(json.replays));

      assert.equal(revealed.code, 0, shown(revealed));
      assert.ok(revealed.stdout.includes(signingSecret), "--show-secret shows the signing secret");
      assert.ok(revealed.stdout.includes(HEADER_SECRET), "and the header values");
    },
  );

  test(
    "replay --from-position sends the events again, and the receiver gets them",
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      const write = await herald!.api(
        "PUT",
        "/v5/entities/default/profile-tables/Customers/profiles",
        {
          key: { emailAddress: "ann@example.com" },
        },
      );
      assert.equal(write.status, 201);
      const isAnn = (r: { json: unknown }) =>
        (r.json as Pushed).data?.emailAddress === "ann@example.com";
      await receiver.waitFor((rs) => rs.some(isAnn), 15_000, "the live push");
      const live = receiver.requests.find(isAnn)!.json as Pushed;

      const run = await runCli(
        [
          "subscriptions",
          "replay",
          String(creates),
          "--from-position",
          String(live.data._event.position),
        ],
        env,
      );
      assert.equal(run.code, 0, shown(run));
      assert.match(
        run.stdout,
        new RegExp(
          `^Replay \\d+ of subscription ${creates}: (PENDING|RUNNING|DONE), positions ${live.data._event.position} to \\d+\\.$`,
          "m",
        ),
      );
      await receiver.waitFor(
        (rs) => rs.filter(isAnn).length >= 2,
        15_000,
        "the replayed push of the same event",
      );
      const replayed = receiver.requests.filter(isAnn)[1]!.json as Pushed;
      assert.equal(replayed.data._event.id, live.data._event.id);

      const since = await runCli(
        ["subscriptions", "replay", String(creates), "--since", "2000-01-01T00:00:00Z"],
        env,
      );
      assert.equal(since.code, 0, shown(since));
      assert.match(since.stdout, /^Replay \d+ of subscription \d+: /m);
      const show = await runCli(["subscriptions", "show", String(creates)], env);
      assert.match(show.stdout, /^Replays\n {2}\d+ +(PENDING|RUNNING|DONE) +positions \d+-\d+/m);
      assert.match(show.stdout, /^Recent attempts[^\n]*\n {2}\S+ +DELIVERED +200 /m);
    },
  );

  test(
    "errors are one line with an exit code: unknown subscription, bad usage, wrong key, bad URL",
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      // Independent runs, side by side: each is a Node process starting up.
      const [unknown, badId, neither, wrongKey, badUrl, help] = await Promise.all([
        runCli(["subscriptions", "replay", "424242", "--from-position", "1"], env),
        runCli(["subscriptions", "show", "twelve"], env),
        runCli(["subscriptions", "replay", String(creates)], env),
        runCli(["subscriptions", "list"], {
          ...env,
          HERALD_API_KEY: "hk_not_a_key_of_this_herald_000",
        }),
        runCli(["subscriptions", "list", "--url", "http//localhost"], env),
        runCli(["subscriptions", "--help"]),
      ]);
      const expectations: [typeof unknown, number, RegExp][] = [
        [unknown, 2, /^herald: Webhook subscription '424242' does not exist in entity 'default'$/],
        [badId, 2, /^herald: a subscription id is a whole number such as 12; got 'twelve'$/],
        [neither, 2, /^herald: give exactly one of --from-position N and --since TIME$/],
        [wrongKey, 1, /^herald: Herald refused the API key \(check --api-key or HERALD_API_KEY\)/],
        [badUrl, 2, /^herald: --url \/ HERALD_URL must be an http\(s\) address/],
      ];
      for (const [run, code, message] of expectations) {
        assert.equal(run.code, code, shown(run));
        assert.match(run.stderr.trim(), message, shown(run));
        assert.equal(run.stderr.trim().split("\n").length, 1, shown(run));
        assert.equal(run.stdout, "", shown(run));
      }
      assert.equal(help.code, 0, shown(help));
      for (const command of ["list", "show", "replay"])
        assert.match(help.stdout, new RegExp(`^  ${command} \\[options\\]`, "m"), shown(help));
    },
  );
});
