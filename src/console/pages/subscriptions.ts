/**
 * The Subscriptions pages of an entity: the list (state, endpoint health, lag and pushes in the last
 * hour of every subscription), and, registered from here, each subscription's page with its actions
 * (subscriptions-detail.ts, subscriptions-actions.ts), its attempts (subscriptions-attempts.ts) and
 * the create and edit forms (subscriptions-form.ts). Everything is read and changed through the
 * JSON API as the signed-in key; the figures the API does not give come from
 * storage/console-subscription-reads.ts, for ids the API has just returned.
 */
import type { FastifyInstance } from "fastify";
import type { Database } from "../../storage/database.js";
import {
  LIST_SAMPLE,
  readDeliveryStates,
  readLastHourSamples,
} from "../../storage/console-subscription-reads.js";
import type { ConsolePage } from "../console-page.js";
import { consoleOf, sendPage } from "../console-page.js";
import { html } from "../html.js";
import { registerSubscriptionActions } from "./subscriptions-actions.js";
import { registerAttemptPages } from "./subscriptions-attempts.js";
import type { DetailRoute } from "./subscriptions-detail.js";
import { detailQuery, sendDetail } from "./subscriptions-detail.js";
import { registerSubscriptionForms } from "./subscriptions-form.js";
import { countText, hourCounts, numberText } from "./subscriptions-throughput.js";
import type { SubscriptionList } from "./subscriptions-view.js";
import {
  subscriptionTable,
  apiPath,
  doneNotice,
  healthBadge,
  pageHref,
  pageNumber,
  pager,
  sourceText,
  stateBadge,
  stateOf,
  tableNames,
} from "./subscriptions-view.js";

const LIST_PAGE_SIZE = 100;
const EMPTY_SAMPLE = { read: 0, failed: 0, lastReadAt: null };

function registerList(app: FastifyInstance, db: Database): void {
  app.get<{ Params: { entity: string }; Querystring: { page?: string; done?: string } }>(
    "/e/:entity/subscriptions",
    async (request, reply) => {
      const { entity } = request.params;
      const { api } = consoleOf(request);
      const page = pageNumber(request.query.page);
      // The API first: it applies the key's entity scope; the SQL below reads only its ids.
      const [list, tables] = await Promise.all([
        api.get<SubscriptionList>(apiPath(entity), { page, pageSize: LIST_PAGE_SIZE }),
        tableNames(api, entity),
      ]);
      const ids = list.webhookSubscriptions.map((s) => s.id);
      const [states, samples] = await Promise.all([
        readDeliveryStates(db, ids),
        readLastHourSamples(db, ids),
      ]);
      const now = new Date();
      const rows = list.webhookSubscriptions.map((s) => ({
        s,
        stored: states.get(s.id),
        hour: hourCounts(samples.get(s.id) ?? EMPTY_SAMPLE, LIST_SAMPLE, now),
      }));
      sendPage(request, reply, {
        title: "Subscriptions",
        entity,
        notice: doneNotice(request.query.done),
        body: html`<div class="actions">
            <a href="${pageHref(entity, "new")}">New subscription</a>
          </div>
          <p>
            ${list.totalElements} ${list.totalElements === 1 ? "subscription" : "subscriptions"}
          </p>
          ${subscriptionTable(
            [
              {
                label: "Id",
                cell: ({ s }) => html`<a href="${pageHref(entity, s.id)}">#${s.id}</a>`,
              },
              { label: "Source", cell: ({ s }) => sourceText(s, tables) },
              { label: "Event type", cell: ({ s }) => s.eventType },
              { label: "Target URL", cell: ({ s }) => html`<code>${s.targetUrl}</code>` },
              { label: "State", cell: ({ s, stored }) => stateBadge(stateOf(s, stored)) },
              {
                label: "Health",
                cell: ({ s, stored, hour }) => healthBadge(s, stored, hour, now),
              },
              {
                label: "Lag",
                cell: ({ s }) => numberText(s.status.lag),
                numeric: true,
              },
              {
                label: "Pushes per hour",
                cell: ({ hour }) =>
                  `${countText(hour.delivered + hour.failed, hour.estimated)}${hour.failed > 0 ? ` (${countText(hour.failed, hour.estimated)} failed)` : ""}`,
                numeric: true,
              },
            ],
            rows,
            { empty: "This entity has no webhook subscriptions yet." },
          )}
          <p class="help">
            Lag: log positions a subscription has not passed yet. Pushes per hour: the attempts of
            the last hour; ≈ marks a busy subscription's rate, from its latest ${LIST_SAMPLE}
            attempts.
          </p>
          ${pager(page, LIST_PAGE_SIZE, list.totalElements, (p) => `${pageHref(entity)}?page=${p}`)}`,
      });
    },
  );
}

const subscriptionsPage: ConsolePage = {
  nav: { label: "Subscriptions", path: "subscriptions" },
  register(app, deps) {
    registerList(app, deps.db);
    registerSubscriptionForms(app);
    registerAttemptPages(app);
    registerSubscriptionActions(app, deps.db);
    app.get<DetailRoute>("/e/:entity/subscriptions/:id", async (request, reply) => {
      const { entity, id } = request.params;
      await sendDetail(
        request,
        reply,
        deps.db,
        { entity, id, ...detailQuery(request.query) },
        { notice: doneNotice(request.query.done) },
      );
    });
  },
};

export default subscriptionsPage;
