/**
 * The console's Subscriptions pages at inject level, on both backends: each page renders, each
 * action changes what it should (checked through the JSON API), and bad input changes nothing: a
 * refused form comes back with the values typed and the API's words next to the field, another
 * entity's subscription is refused, an unknown one is a 404 page, a missing or forged CSRF token is
 * refused, and markup in a target URL or a header value is shown as text.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import type { Database } from "../../src/storage/database.js";
import { stampPendingEvents } from "../../src/storage/sequencer-repository.js";
import type { ConsoleBrowser } from "../helpers/console-session.js";
import { signInToConsole } from "../helpers/console-session.js";
import type { TestApp } from "../helpers/test-app.js";
import { createTestApp, TEST_ADMIN_KEY } from "../helpers/test-app.js";
import { testBackends } from "../helpers/test-database.js";
import type { WebhookReceiver } from "../helpers/webhook-receiver.js";
import { startWebhookReceiver } from "../helpers/webhook-receiver.js";

const API = "/v4/entity/acme/webhookSubscription";
const UI = "/ui/e/acme/subscriptions";
const MARKUP_HEADER = "<img src=x onerror=alert(1)>";

type Json = Record<string, unknown>;

interface Sub extends Json {
  id: number;
  isActive: boolean;
  targetUrl: string;
  headers: Record<string, string>;
}

/** The opening tag of a form field by its id, to read its attributes. */
function fieldTag(body: string, id: string): string {
  const tag = new RegExp(`<(input|select|textarea)[^>]*id="${id}"[^>]*>`).exec(body)?.[0];
  assert.ok(tag, `field ${id} is on the page`);
  return tag;
}

async function insertAttempt(
  db: Database,
  row: {
    subscriptionId: number;
    pushId?: string;
    attempt?: number;
    eventIds: number[];
    positions: [number, number];
    outcome: "DELIVERED" | "RETRY" | "FAILED";
    statusCode: number | null;
    errorClass?: string | null;
    excerpt?: string | null;
    minutesAgo?: number;
  },
): Promise<string> {
  const pushId = row.pushId ?? randomUUID();
  await db.query(
    `INSERT INTO delivery_attempts (subscription_id, push_id, attempt, event_ids, first_position,
       last_position, attempted_at, duration_ms, outcome, status_code, error_class, error_message,
       response_excerpt, next_attempt_at, worker_id)
     VALUES ($1, $2, $3, $4, $5, $6, now() - make_interval(mins => $7), 42, $8, $9, $10, NULL, $11,
             CASE WHEN $8 = 'RETRY' THEN now() + interval '5 seconds' END, 'test-worker')`,
    [
      row.subscriptionId,
      pushId,
      row.attempt ?? 1,
      row.eventIds,
      row.positions[0],
      row.positions[1],
      row.minutesAgo ?? 0,
      row.outcome,
      row.statusCode,
      row.errorClass ?? null,
      row.excerpt ?? null,
    ],
  );
  return pushId;
}

for (const { backend, skip } of await testBackends()) {
  describe(`console subscriptions pages on ${backend}`, { skip }, () => {
    let t: TestApp;
    let db: Database;
    let admin: ConsoleBrowser;
    let betaKey: string;
    let receiver: WebhookReceiver;
    let tableId: string;

    const create = async (body: Json): Promise<Sub> => {
      const created = await t.request("POST", API, {
        on: "PROFILE_TABLE",
        onElementId: "Customers",
        eventType: "CREATE",
        targetUrl: receiver.url,
        ...body,
      });
      assert.equal(created.statusCode, 201, created.body);
      return created.json() as Sub;
    };
    const read = async (id: number): Promise<Sub> => {
      const found = await t.request("GET", `${API}/${id}`);
      assert.equal(found.statusCode, 200, found.body);
      return found.json() as Sub;
    };
    const count = async (): Promise<number> =>
      ((await t.request("GET", API)).json() as { totalElements: number }).totalElements;

    before(async () => {
      t = await createTestApp(backend);
      db = t.database.db;
      receiver = await startWebhookReceiver();
      const table = await t.request("POST", "/v5/entities/acme/profile-tables", {
        name: "Customers",
        attributes: [
          { name: "emailAddress", type: "EMAIL_ADDRESS", unique: true, mandatory: true },
          { name: "city", type: "CUSTOM", valueType: "STRING" },
        ],
      });
      assert.equal(table.statusCode, 201, table.body);
      tableId = table.json().id;
      assert.equal((await t.request("POST", "/v4/entity", { name: "beta" })).statusCode, 201);
      const key = await t.request("POST", "/v4/api-keys", {
        name: "beta-only",
        entities: ["beta"],
      });
      assert.equal(key.statusCode, 201, key.body);
      betaKey = key.json().key;
      admin = await signInToConsole(t, TEST_ADMIN_KEY);
    });
    after(async () => {
      await receiver?.close();
      await t?.close();
    });

    test("the list shows every subscription with its state, health, lag and pushes, markup as text", async () => {
      const plain = await create({});
      const marked = await create({
        targetUrl: `${receiver.url}?q=<b>x</b>`,
        headers: { "X-Note": MARKUP_HEADER },
        isActive: false,
      });
      await insertAttempt(db, {
        subscriptionId: plain.id,
        eventIds: [1],
        positions: [1, 1],
        outcome: "DELIVERED",
        statusCode: 200,
      });
      await insertAttempt(db, {
        subscriptionId: plain.id,
        eventIds: [2],
        positions: [2, 2],
        outcome: "RETRY",
        statusCode: 500,
        errorClass: "http_5xx",
        minutesAgo: 3,
      });
      // Older than an hour: not counted.
      await insertAttempt(db, {
        subscriptionId: plain.id,
        eventIds: [3],
        positions: [3, 3],
        outcome: "DELIVERED",
        statusCode: 200,
        minutesAgo: 90,
      });
      const page = await admin.get(UI);
      assert.equal(page.statusCode, 200);
      assert.match(page.body, new RegExp(`href="${UI}/new"[^>]*>New subscription</a>`));
      assert.match(page.body, new RegExp(`href="${UI}/${plain.id}">#${plain.id}</a>`));
      assert.match(page.body, /PROFILE_TABLE · Customers \(id /);
      assert.match(page.body, /<span class="badge ok">active<\/span>/);
      assert.match(page.body, /<span class="badge muted">paused<\/span>/);
      assert.match(page.body, /1 failed in the last hour/);
      assert.match(page.body, /data-label="Pushes per hour" class="num">\s*2 \(1 failed\)/);
      assert.match(page.body, /data-label="Lag" class="num">\s*0/);
      assert.match(page.body, /\?q=&lt;b&gt;x&lt;\/b&gt;/);
      assert.doesNotMatch(page.body, /<b>x<\/b>/);
      assert.doesNotMatch(page.body, / style="/);
      assert.ok(marked.id > plain.id);
    });

    test("busy subscriptions' figures are estimated from bounded samples, and say so", async () => {
      const s = await create({});
      // 60 attempts one second apart up to now: the list reads the newest 50 (a rate of about one a
      // second, so about 3,600 an hour).
      await db.query(
        `INSERT INTO delivery_attempts (subscription_id, push_id, attempt, event_ids, first_position,
           last_position, attempted_at, duration_ms, outcome, status_code, worker_id)
         SELECT $1, gen_random_uuid(), 1, ARRAY[g::bigint], g, g, now() - make_interval(secs => g),
                5, CASE WHEN g % 5 = 0 THEN 'RETRY' ELSE 'DELIVERED' END,
                CASE WHEN g % 5 = 0 THEN 500 ELSE 200 END, 'test-worker'
           FROM generate_series(0, 59) AS g`,
        [s.id],
      );
      // 210 attempts 100 ms apart in one minute ten minutes ago: the chart reads its first 200,
      // which took 19.9 s, so the minute is estimated at 200 × 60 / 19.9 ≈ 603.
      await db.query(
        `INSERT INTO delivery_attempts (subscription_id, push_id, attempt, event_ids, first_position,
           last_position, attempted_at, duration_ms, outcome, status_code, worker_id)
         SELECT $1, gen_random_uuid(), 1, ARRAY[g::bigint], g, g,
                date_trunc('minute', now()) - interval '10 minutes' + make_interval(secs => g * 0.1),
                5, 'DELIVERED', 200, 'test-worker'
           FROM generate_series(0, 209) AS g`,
        [s.id],
      );
      const list = await admin.get(UI);
      const cell = new RegExp(
        `href="${UI}/${s.id}">#${s.id}</a>[\\s\\S]*?data-label="Pushes per hour" class="num">\\s*≈ ([\\d,]+) \\(≈ ([\\d,]+) failed\\)`,
      ).exec(list.body);
      assert.ok(cell, "the list shows an estimated rate with its failures");
      const perHour = Number(cell[1]!.replace(/,/g, ""));
      assert.ok(perHour > 3000 && perHour < 3800, `about 3,600 an hour, not ${perHour}`);
      assert.ok(Number(cell[2]!.replace(/,/g, "")) > 0);
      const page = await admin.get(`${UI}/${s.id}`);
      assert.match(page.body, /at most ≈ 603 in one minute \(≈: estimated from the first attempts/);
    });

    test("a subscription's page shows its facts, state, chart and attempts, never its secret", async () => {
      const s = await create({
        targetUrl: `${receiver.url}?q=<b>x</b>`,
        headers: { "X-Note": MARKUP_HEADER },
        onFields: ["city"],
        eventType: "UPDATE",
      });
      const { secret } = (await t.request("GET", `${API}/${s.id}/secret`)).json() as {
        secret: string;
      };
      await insertAttempt(db, {
        subscriptionId: s.id,
        eventIds: [7],
        positions: [7, 7],
        outcome: "DELIVERED",
        statusCode: 204,
        minutesAgo: 10,
      });
      await insertAttempt(db, {
        subscriptionId: s.id,
        eventIds: [8],
        positions: [8, 8],
        outcome: "RETRY",
        statusCode: 503,
        errorClass: "http_5xx",
        excerpt: "<i>upstream</i> unavailable",
      });
      const page = await admin.get(`${UI}/${s.id}`);
      assert.equal(page.statusCode, 200, page.body);
      assert.match(page.body, /<h1>Subscription \d+<\/h1>/);
      assert.match(page.body, /PROFILE_TABLE · Customers/);
      const text = page.body.replace(/\s+/g, " ");
      assert.match(text, /<dd> city <\/dd>/);
      assert.match(page.body, /<span class="badge ok">active<\/span>/);
      assert.match(page.body, /log positions behind the head/);
      assert.match(text, /set \(never shown here\)/);
      assert.ok(!page.body.includes(secret), "the secret is not on the page");
      // Markup in data is text.
      assert.ok(page.body.includes("X-Note: &lt;img src=x onerror=alert(1)&gt;"));
      assert.ok(!page.body.includes("<img"));
      assert.match(page.body, /\?q=&lt;b&gt;x&lt;\/b&gt;/);
      assert.ok(page.body.includes("&lt;i&gt;upstream&lt;/i&gt; unavailable"));
      // The chart: SVG markup with a title and an accessible name, the same figures as text.
      assert.match(
        page.body,
        /<svg\s+class="chart"[^>]*role="img"[^>]*aria-label="Push attempts per minute/,
      );
      assert.match(page.body, /<title>Push attempts per minute over the last hour<\/title>/);
      assert.match(page.body, /2 push attempts in the last hour: 1 delivered, 1 failed/);
      assert.equal((page.body.match(/<rect class="bar/g) ?? []).length, 2);
      // Attempts refresh through a fragment every 5 seconds, each one a <details>.
      assert.match(
        page.body,
        new RegExp(`hx-get="${UI}/${s.id}/attempts"\\s+hx-trigger="every 5s"`),
      );
      assert.equal((page.body.match(/<details/g) ?? []).length, 2);
      assert.match(page.body, /HTTP 503 · http_5xx/);
      assert.doesNotMatch(page.body, / style="/);
      assert.doesNotMatch(page.body, /<script>/);
      // The daily error log of today lists the failure.
      assert.match(page.body, /<h2 id="errors">Daily error log<\/h2>/);
      assert.match(page.body, /data-label="Outcome" class="">\s*<span class="badge warn">RETRY/);
    });

    test("attempts come as a fragment to htmx and as a page to a browser; a push shows its events", async () => {
      const s = await create({});
      const written = await t.request("POST", "/v4/entity/acme/table/Customers/profile", {
        attributes: [
          { name: "emailAddress", value: "ann@example.com" },
          { name: "city", value: "<script>alert(1)</script>" },
        ],
      });
      assert.ok(written.statusCode < 300, written.body);
      await stampPendingEvents(db);
      const { events } = (
        await t.request("GET", `/v5/entities/acme/change-events?on=PROFILE_TABLE&eventType=CREATE`)
      ).json() as { events: { _event: { id: string; position: number } }[] };
      const event = events.at(-1)!._event;
      const numeric = Number(event.id.replace("evt_", ""));
      const pushId = await insertAttempt(db, {
        subscriptionId: s.id,
        eventIds: [numeric],
        positions: [event.position, event.position],
        outcome: "RETRY",
        statusCode: 500,
        errorClass: "http_5xx",
        excerpt: "receiver says no",
      });
      const fragment = await admin.get(`${UI}/${s.id}/attempts`, { "hx-request": "true" });
      assert.equal(fragment.statusCode, 200);
      assert.doesNotMatch(fragment.body, /<html/);
      assert.match(
        fragment.body,
        new RegExp(`<details\\s+id="attempt-${pushId}-1"\\s+hx-preserve="true"`),
      );
      assert.match(fragment.body, /receiver says no/);
      assert.match(fragment.body, new RegExp(`<code>${pushId}</code>`));
      const full = await admin.get(`${UI}/${s.id}/attempts`);
      assert.match(full.body, /<h1>Attempts of subscription/);

      const events1 = await admin.get(`${UI}/${s.id}/pushes/${pushId}`, { "hx-request": "true" });
      assert.equal(events1.statusCode, 200);
      assert.match(events1.body, /ann@example.com/);
      assert.match(events1.body, /&lt;script&gt;alert\(1\)&lt;\/script&gt;/);
      assert.doesNotMatch(events1.body, /<script>/);
      const pushPage = await admin.get(`${UI}/${s.id}/pushes/${pushId}`);
      assert.equal(pushPage.statusCode, 200);
      assert.match(pushPage.body, /<h1>Push /);
      assert.match(pushPage.body, /ann@example.com/);
      const unknownPush = await admin.get(`${UI}/${s.id}/pushes/${randomUUID()}`);
      assert.equal(unknownPush.statusCode, 404);
      const notAPush = await admin.get(`${UI}/${s.id}/pushes/not-a-uuid`);
      assert.equal(notAPush.statusCode, 400);
      assert.match(notAPush.body, /pushId/);
    });

    test("the create form creates what it says; headers, onFields and block size included", async () => {
      const form = await admin.get(`${UI}/new`);
      assert.equal(form.statusCode, 200);
      for (const id of [
        "f-on",
        "f-onElementId",
        "f-eventType",
        "f-onFields",
        "f-targetUrl",
        "f-pushMode",
        "f-maxBlockSize",
        "f-headers",
        "f-isActive",
      ])
        assert.match(form.body, new RegExp(`<label for="${id}">`), `${id} has a label`);
      assert.match(form.body, /<option value="Customers">/);
      const before = await count();
      const posted = await admin.post(`${UI}/new`, {
        on: "PROFILE_TABLE",
        onElementId: "Customers",
        eventType: "UPDATE",
        onFields: "city, emailAddress",
        targetUrl: receiver.url,
        pushMode: "BULK",
        maxBlockSize: "25",
        headers: "X-One: 1\r\n\r\nX-Two:  two words \r\n",
        isActive: "true",
      });
      assert.equal(posted.statusCode, 303, posted.body);
      const id = Number(
        /subscriptions\/(\d+)\?done=created$/.exec(String(posted.headers.location))?.[1],
      );
      assert.equal(await count(), before + 1);
      const s = await read(id);
      assert.deepEqual(s.onFields, ["city", "emailAddress"]);
      assert.deepEqual(s.headers, { "X-One": "1", "X-Two": "two words" });
      assert.equal(s.pushMode, "BULK");
      assert.equal(s.maxBlockSize, 25);
      assert.equal(s.eventType, "UPDATE");
      assert.equal(s.isActive, true);
      const shown = await admin.get(String(posted.headers.location));
      assert.match(shown.body, /The subscription was created/);
    });

    test("a refused form comes back with the values typed and the API's words by the field; nothing is created", async () => {
      const before = await count();
      const typed = {
        on: "PROFILE_TABLE",
        onElementId: "Customers",
        eventType: "CREATE",
        onFields: "",
        targetUrl: "not a url <b>x</b>",
        pushMode: "ONE_BY_ONE",
        maxBlockSize: "100",
        headers: `X-Note: ${MARKUP_HEADER}`,
        isActive: "true",
      };
      const badUrl = await admin.post(`${UI}/new`, typed);
      assert.equal(badUrl.statusCode, 400);
      assert.match(badUrl.body, /class="notice error"/);
      assert.match(badUrl.body, /Nothing was created/);
      assert.match(fieldTag(badUrl.body, "f-targetUrl"), /aria-describedby="f-targetUrl-error"/);
      assert.match(fieldTag(badUrl.body, "f-targetUrl"), /aria-invalid="true"/);
      assert.match(fieldTag(badUrl.body, "f-targetUrl"), /value="not a url &lt;b&gt;x&lt;\/b&gt;"/);
      assert.match(
        badUrl.body,
        /<p class="field-error" id="f-targetUrl-error">must be an absolute URL/,
      );
      assert.ok(badUrl.body.includes(`X-Note: &lt;img src=x onerror=alert(1)&gt;</textarea>`));

      const badSize = await admin.post(`${UI}/new`, {
        ...typed,
        targetUrl: receiver.url,
        maxBlockSize: "lots",
      });
      assert.equal(badSize.statusCode, 400);
      assert.match(badSize.body, /id="f-maxBlockSize-error"/);
      assert.match(fieldTag(badSize.body, "f-maxBlockSize"), /value="lots"/);

      const noTable = await admin.post(`${UI}/new`, {
        ...typed,
        targetUrl: receiver.url,
        onElementId: "Nope",
      });
      assert.equal(noTable.statusCode, 404);
      assert.match(noTable.body, /id="f-onElementId-error">no profile table &#39;Nope&#39;/);

      const badField = await admin.post(`${UI}/new`, {
        ...typed,
        targetUrl: receiver.url,
        onFields: "city, shoeSize",
      });
      assert.equal(badField.statusCode, 422);
      assert.match(
        badField.body,
        /id="f-onFields-error">onFields\[1\]: &#39;shoeSize&#39; is not an attribute/,
      );

      const badHeaders = await admin.post(`${UI}/new`, {
        ...typed,
        targetUrl: receiver.url,
        headers: "X-Fine: 1\nno colon here",
      });
      assert.equal(badHeaders.statusCode, 400);
      assert.match(badHeaders.body, /id="f-headers-error">Line 2 is not a header/);

      const badHeaderName = await admin.post(`${UI}/new`, {
        ...typed,
        targetUrl: receiver.url,
        headers: "Bad Name: 1",
      });
      assert.equal(badHeaderName.statusCode, 400);
      assert.match(
        badHeaderName.body,
        /id="f-headers-error">headers.Bad Name: is not a valid HTTP header name/,
      );

      const badType = await admin.post(`${UI}/new`, {
        ...typed,
        targetUrl: receiver.url,
        eventType: "TRIGGER",
      });
      assert.equal(badType.statusCode, 422);
      assert.match(badType.body, /id="f-eventType-error"/);
      assert.match(badType.body, /<option value="TRIGGER" selected>/);
      assert.equal(await count(), before, "nothing was created");
    });

    test("a target the address guard refuses shows the API's message naming the setting", async () => {
      const strict = await createTestApp(backend, { allowInsecureTargets: false });
      try {
        const table = await strict.request("POST", "/v5/entities/acme/profile-tables", {
          name: "Customers",
          attributes: [
            { name: "emailAddress", type: "EMAIL_ADDRESS", unique: true, mandatory: true },
          ],
        });
        assert.equal(table.statusCode, 201, table.body);
        const browser = await signInToConsole(strict, TEST_ADMIN_KEY);
        const refused = await browser.post(`${UI}/new`, {
          on: "PROFILE_TABLE",
          onElementId: "Customers",
          eventType: "CREATE",
          targetUrl: "https://127.0.0.1/hook",
          pushMode: "ONE_BY_ONE",
          isActive: "true",
        });
        assert.equal(refused.statusCode, 422);
        assert.match(
          refused.body,
          /class="notice error"[^>]*>\s*The target URL is refused: 127.0.0.1 is a loopback address/,
        );
        assert.match(refused.body, /id="f-targetUrl-error">[^<]*HERALD_ALLOW_INSECURE_TARGETS/);
        const listed = (await strict.request("GET", API)).json() as { totalElements: number };
        assert.equal(listed.totalElements, 0);
      } finally {
        await strict.close();
      }
    });

    test("the edit form changes what it shows and keeps what it does not", async () => {
      const s = await create({ headers: { "X-Old": "1" }, lingerMs: 2500 });
      const form = await admin.get(`${UI}/${s.id}/edit`);
      assert.equal(form.statusCode, 200);
      assert.ok(form.body.includes("X-Old: 1</textarea>"));
      assert.match(fieldTag(form.body, "f-isActive"), /checked/);
      const saved = await admin.post(`${UI}/${s.id}/edit`, {
        on: "PROFILE_TABLE",
        onElementId: tableId,
        eventType: "DELETE",
        onFields: "",
        targetUrl: `${receiver.url}/edited`,
        pushMode: "ONE_BY_ONE",
        maxBlockSize: "100",
        headers: "X-New: 2",
        isActive: "true",
      });
      assert.equal(saved.statusCode, 303, saved.body);
      assert.equal(saved.headers.location, `${UI}/${s.id}?done=updated`);
      const after = await read(s.id);
      assert.equal(after.targetUrl, `${receiver.url}/edited`);
      assert.equal(after.eventType, "DELETE");
      assert.deepEqual(after.headers, { "X-New": "2" });
      assert.equal(after.lingerMs, 2500, "a setting the form does not show is kept");

      const refused = await admin.post(`${UI}/${s.id}/edit`, {
        on: "PROFILE_TABLE",
        onElementId: tableId,
        eventType: "DELETE",
        targetUrl: "ftp://example.com/",
        pushMode: "ONE_BY_ONE",
        isActive: "true",
      });
      assert.equal(refused.statusCode, 400);
      assert.match(refused.body, /Nothing was changed/);
      assert.match(refused.body, /id="f-targetUrl-error"/);
      assert.equal((await read(s.id)).targetUrl, `${receiver.url}/edited`, "unchanged");
    });

    test("pause and resume switch isActive and the page says so", async () => {
      const s = await create({});
      const paused = await admin.post(`${UI}/${s.id}/pause`);
      assert.equal(paused.statusCode, 303, paused.body);
      assert.equal(paused.headers.location, `${UI}/${s.id}?done=paused`);
      assert.equal((await read(s.id)).isActive, false);
      const page = await admin.get(String(paused.headers.location));
      assert.match(page.body, /<span class="badge muted">paused<\/span>/);
      assert.match(page.body, /The subscription is paused/);
      assert.match(page.body, /<button type="submit">Resume<\/button>/);
      const resumed = await admin.post(`${UI}/${s.id}/resume`);
      assert.equal(resumed.headers.location, `${UI}/${s.id}?done=resumed`);
      assert.equal((await read(s.id)).isActive, true);
      const active = await admin.get(`${UI}/${s.id}`);
      assert.match(active.body, /<span class="badge ok">active<\/span>/);
    });

    test("a test push shows what the endpoint answered", async () => {
      receiver.respondWith(() => ({ status: 500, body: "<b>broken</b> receiver" }));
      try {
        const s = await create({});
        const tested = await admin.post(`${UI}/${s.id}/test`);
        assert.equal(tested.statusCode, 200, tested.body);
        assert.match(tested.body, /<h2 id="test-title">Test push<\/h2>/);
        assert.match(tested.body, /not delivered/);
        assert.match(tested.body, /HTTP 500 · http_5xx/);
        assert.ok(tested.body.includes("&lt;b&gt;broken&lt;/b&gt; receiver"));
      } finally {
        receiver.respondWith(() => undefined);
      }
    });

    test("a replay is requested from a position; a refused one shows why and requests nothing", async () => {
      const s = await create({});
      const replays = async () =>
        ((await t.request("GET", `${API}/${s.id}/replays`)).json() as { replays: Json[] }).replays;
      const refused = await admin.post(`${UI}/${s.id}/replay`, {
        fromPosition: "1",
        fromTime: "2026-01-01T00:00",
      });
      assert.equal(refused.statusCode, 400);
      assert.match(refused.body, /send exactly one of fromPosition and fromTime/);
      assert.match(refused.body, /Nothing was replayed/);
      assert.match(fieldTag(refused.body, "r-fromPosition"), /value="1"/);
      assert.match(fieldTag(refused.body, "r-fromPosition"), /aria-invalid="true"/);
      const notNumber = await admin.post(`${UI}/${s.id}/replay`, { fromPosition: "one" });
      assert.equal(notNumber.statusCode, 400);
      assert.match(notNumber.body, /id="r-fromPosition-error"/);
      const future = await admin.post(`${UI}/${s.id}/replay`, { fromTime: "2999-01-01T00:00" });
      assert.equal(future.statusCode, 422);
      assert.match(
        future.body,
        /id="r-fromTime-error">no event of this entity occurred at or after it/,
      );
      assert.equal((await replays()).length, 0);

      const head = Number(
        (
          (await t.request("GET", "/v5/entities/acme/change-events?limit=1000")).json() as {
            next: number;
          }
        ).next,
      );
      assert.ok(head >= 1, "the log has events");
      const posted = await admin.post(`${UI}/${s.id}/replay`, { fromPosition: "1", fromTime: "" });
      assert.equal(posted.statusCode, 303, posted.body);
      assert.equal(posted.headers.location, `${UI}/${s.id}?done=replayed#replays`);
      const [replay] = await replays();
      assert.equal(replay?.fromPosition, 1);
      const page = await admin.get(`${UI}/${s.id}?done=replayed`);
      assert.match(page.body, /The replay was requested/);
      assert.match(page.body, new RegExp(`data-label="Replay" class="num">\\s*${replay!.id}\\s*<`));
      assert.match(page.body, /PENDING|RUNNING|DONE/);
    });

    test("rotating the secret shows the new one once, never again", async () => {
      const s = await create({});
      const rotated = await admin.post(`${UI}/${s.id}/rotate-secret`);
      assert.equal(rotated.statusCode, 200, rotated.body);
      const { secret } = (await t.request("GET", `${API}/${s.id}/secret`)).json() as {
        secret: string;
      };
      assert.ok(rotated.body.includes(`<code class="secret">${secret}</code>`));
      assert.match(rotated.body, /shows it once and the console never shows it again/);
      const later = await admin.get(`${UI}/${s.id}`);
      assert.ok(!later.body.includes(secret));
      assert.match(later.body, /rotated: the previous secret also signs until/);
    });

    test("delete asks first, then deletes", async () => {
      const s = await create({});
      const confirm = await admin.get(`${UI}/${s.id}/delete`);
      assert.equal(confirm.statusCode, 200);
      assert.match(confirm.body, /<h1>Delete subscription \d+\?<\/h1>/);
      assert.match(confirm.body, /<button type="submit" class="danger">Delete subscription/);
      assert.equal(
        (await t.request("GET", `${API}/${s.id}`)).statusCode,
        200,
        "asking deletes nothing",
      );
      const deleted = await admin.post(`${UI}/${s.id}/delete`);
      assert.equal(deleted.statusCode, 303);
      assert.equal(deleted.headers.location, `${UI}?done=deleted`);
      assert.equal((await t.request("GET", `${API}/${s.id}`)).statusCode, 404);
      const list = await admin.get(String(deleted.headers.location));
      assert.match(list.body, /The subscription was deleted/);
    });

    test("another entity's subscription is refused, an unknown one is a 404 page", async () => {
      const s = await create({});
      const beta = await signInToConsole(t, betaKey);
      for (const path of [
        "",
        `/${s.id}`,
        `/${s.id}/edit`,
        `/${s.id}/attempts`,
        `/${s.id}/delete`,
      ]) {
        const page = await beta.get(`${UI}${path}`);
        assert.equal(page.statusCode, 403, `${path}: ${page.body}`);
        assert.match(page.headers["content-type"] as string, /text\/html/);
        assert.match(page.body, /may not access entity &#39;acme&#39;/);
      }
      for (const action of ["pause", "delete", "rotate-secret", "test"]) {
        const posted = await beta.post(`${UI}/${s.id}/${action}`);
        assert.equal(posted.statusCode, 403, action);
      }
      const stillThere = await read(s.id);
      assert.equal(stillThere.isActive, true, "nothing changed");
      // Through another entity's address, the subscription does not exist.
      const elsewhere = await admin.get(`/ui/e/beta/subscriptions/${s.id}`);
      assert.equal(elsewhere.statusCode, 404);
      const unknown = await admin.get(`${UI}/999999`);
      assert.equal(unknown.statusCode, 404);
      assert.match(unknown.body, /does not exist in entity &#39;acme&#39;/);
      assert.doesNotMatch(unknown.body, /at .*\.ts:\d+/, "no stack trace");
      assert.equal((await admin.get(`${UI}/abc`)).statusCode, 404);
      assert.equal((await admin.post(`${UI}/999999/pause`)).statusCode, 404);
    });

    test("a missing or forged CSRF token changes nothing", async () => {
      const s = await create({});
      const before = await count();
      for (const token of ["", "x".repeat(43)]) {
        const paused = await admin.post(`${UI}/${s.id}/pause`, { _csrf: token });
        assert.equal(paused.statusCode, 403);
        assert.match(paused.body, /nothing was changed/);
        const created = await admin.post(`${UI}/new`, {
          _csrf: token,
          on: "PROFILE_TABLE",
          onElementId: "Customers",
          eventType: "CREATE",
          targetUrl: receiver.url,
        });
        assert.equal(created.statusCode, 403);
        const deleted = await admin.post(`${UI}/${s.id}/delete`, { _csrf: token });
        assert.equal(deleted.statusCode, 403);
      }
      assert.equal((await read(s.id)).isActive, true);
      assert.equal(await count(), before);
    });

    test("the daily error log takes a day; a day that is not one is told so", async () => {
      const s = await create({});
      const badDay = await admin.get(`${UI}/${s.id}?day=2026-02-30`);
      assert.equal(badDay.statusCode, 400);
      assert.match(badDay.body, /is not a day in the form yyyy-MM-dd/);
      const path = await admin.get(`${UI}/${s.id}?day=secret`);
      assert.equal(path.statusCode, 400);
      assert.match(path.body, /must be written yyyy-MM-dd/);
      const empty = await admin.get(`${UI}/${s.id}?day=2020-01-01`);
      assert.equal(empty.statusCode, 200);
      assert.match(empty.body, /No failed pushes on 2020-01-01/);
      const unknownNotice = await admin.get(`${UI}/${s.id}?done=%3Cscript%3E`);
      assert.doesNotMatch(unknownNotice.body, /class="notice/);
    });
  });
}
