/**
 * The Tables page of an entity: its profile tables and custom tables with their number of
 * attributes, their record count and when their last event was written. The structures come from
 * the API; the counts and times, which no API call gives, from console-table-reads.ts, bounded so
 * that the page stays fast on tables of millions of records and a log of millions of events.
 * A table's own page is tables-detail.ts.
 */
import type { ConsolePage } from "../console-page.js";
import { consoleOf, dataTable, entityHref, sendPage } from "../console-page.js";
import { html, when } from "../html.js";
import { countRecords, lastEventTimes, sourceKey } from "../../storage/console-table-reads.js";
import type { CustomTableBody, ProfileTableBody } from "./tables-api.js";
import { countText, listEntityTables, TABLE_KINDS } from "./tables-api.js";
import { DETAIL_COUNT_CAP, registerTableDetail } from "./tables-detail.js";

/** Records are counted exactly up to here on this page (each count walks its index this far). */
export const LIST_COUNT_CAP = 1_000;
/** The last event of each table is looked for among the log's this many most recent positions. */
export const LIST_EVENT_WINDOW = 10_000;

const tablesPage: ConsolePage = {
  nav: { label: "Tables", path: "tables" },
  register(app, deps) {
    app.get<{ Params: { entity: string } }>("/e/:entity/tables", async (request, reply) => {
      const { api } = consoleOf(request);
      const entityName = request.params.entity;
      // The entity first: a key that may not use it is refused here, before any SQL of ours.
      const entity = await api.get<{ id: number; name: string }>(
        `/v4/entity/${encodeURIComponent(entityName)}`,
      );
      const tables = await listEntityTables(api, entity.name);
      const ids = [...tables.profile, ...tables.custom].map((t) => t.id);
      const [counts, lastEvents] = await Promise.all([
        countRecords(deps.db, ids, LIST_COUNT_CAP),
        lastEventTimes(deps.db, entity.id, LIST_EVENT_WINDOW),
      ]);
      const link = (kind: "profile" | "custom", t: { id: string; name: string }) =>
        html`<a href="${entityHref(entity.name, "tables", kind, t.id)}">${t.name}</a>`;
      const lastEvent = (kind: "profile" | "custom", id: string) =>
        when(lastEvents.get(sourceKey(TABLE_KINDS[kind].source, id)));
      const records = {
        label: "Records",
        numeric: true,
        cell: (t: { id: string }) => countText(counts.get(t.id)),
      };
      const attributes = {
        label: "Attributes",
        numeric: true,
        cell: (t: { attributes: unknown[] }) => t.attributes.length,
      };
      sendPage(request, reply, {
        title: "Tables",
        entity: entity.name,
        body: html`<h2>Profile tables</h2>
          ${dataTable<ProfileTableBody>(
            [
              { label: "Name", cell: (t) => link("profile", t) },
              { label: "Id", cell: (t) => html`<code>${t.id}</code>` },
              attributes,
              records,
              { label: "Last event", cell: (t) => lastEvent("profile", t.id) },
            ],
            tables.profile,
            { empty: "This entity has no profile table." },
          )}
          <h2>Custom tables</h2>
          ${dataTable<CustomTableBody>(
            [
              { label: "Name", cell: (t) => link("custom", t) },
              { label: "Type", cell: (t) => t.type },
              { label: "Primary key", cell: (t) => html`<code>${t.primaryKeyAttribute}</code>` },
              attributes,
              records,
              { label: "Last event", cell: (t) => lastEvent("custom", t.id) },
            ],
            tables.custom,
            { empty: "This entity has no custom table." },
          )}
          <p class="help">
            Record counts are exact up to ${LIST_COUNT_CAP.toLocaleString("en")} (a table's own page
            counts exactly up to ${DETAIL_COUNT_CAP.toLocaleString("en")}). Past that, “about” is
            PostgreSQL's estimate from its statistics of the records (kept up to date by autovacuum
            or ANALYZE), and “more than” means the statistics do not know the table yet. The last
            event is looked for among the log's last ${LIST_EVENT_WINDOW.toLocaleString("en")}
            positions (shared by every entity): a dash means the table had none there. Times are
            UTC.
          </p>`,
      });
    });
    registerTableDetail(app, deps);
  },
};

export default tablesPage;
