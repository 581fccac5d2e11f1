/**
 * One table's page (`/ui/e/{entity}/tables/{profile|custom}/{id}`): its structure as the API
 * answers it (attributes, foreign keys, a profile table's subscriptions and segmentations, a
 * custom table's declared events), its record count, and its most recent events from the change
 * log with a link into the change-log browser filtered on it.
 */
import type { FastifyInstance } from "fastify";
import { countRecords } from "../../storage/console-table-reads.js";
import type { ConsoleApi } from "../console-api.js";
import type { ConsoleDeps } from "../console-page.js";
import { consoleOf, dataTable, entityHref, sendPage } from "../console-page.js";
import type { SafeHtml } from "../html.js";
import { html, when } from "../html.js";
import { eventList } from "./change-log-events.js";
import { LOG_SEARCH_WINDOW, readLogPage } from "./change-log-reader.js";
import type {
  AttributeBody,
  CustomTableBody,
  ForeignKeyBody,
  ProfileTableBody,
  TableKindName,
} from "./tables-api.js";
import {
  countText,
  isTableKind,
  knownTables,
  listEntityTables,
  TABLE_KINDS,
  tablesPath,
} from "./tables-api.js";

/** A table's own page counts its records exactly up to here (its index walked this far). */
export const DETAIL_COUNT_CAP = 10_000;
/** The recent events shown. */
export const RECENT_EVENTS = 20;

const yes = (flag: boolean | undefined) => (flag ? "yes" : "no");

function typeText(a: AttributeBody): string {
  if (!a.type) return a.valueType;
  return a.type === "CUSTOM" ? a.valueType : `${a.type} (${a.valueType})`;
}

function restrictionText(a: AttributeBody): string {
  const r = a.valueRestriction;
  if (!r) return "—";
  const parts: string[] = [];
  if (r.minLength !== undefined) parts.push(`at least ${r.minLength} characters`);
  if (r.maxLength !== undefined) parts.push(`at most ${r.maxLength} characters`);
  if (r.acceptedValues) parts.push(`one of ${r.acceptedValues.map(String).join(", ")}`);
  return parts.length > 0 ? parts.join("; ") : "—";
}

export function registerTableDetail(app: FastifyInstance, deps: ConsoleDeps): void {
  app.get<{ Params: { entity: string; kind: string; table: string } }>(
    "/e/:entity/tables/:kind/:table",
    async (request, reply) => {
      const { api } = consoleOf(request);
      const { kind } = request.params;
      if (!isTableKind(kind))
        return sendPage(request, reply, {
          title: "Not found",
          entity: request.params.entity,
          status: 404,
          notice: {
            kind: "error",
            text: "There is no such kind of table: a table's address names a profile or a custom table.",
          },
          body: html`<p>
            <a href="${entityHref(request.params.entity, "tables")}">All tables</a>
          </p>`,
        });
      const entity = await api.get<{ id: number; name: string }>(
        `/v4/entity/${encodeURIComponent(request.params.entity)}`,
      );
      const table = await api.get<ProfileTableBody | CustomTableBody>(
        tablesPath(entity.name, kind, request.params.table),
      );
      const source = TABLE_KINDS[kind].source;
      const [counts, recent] = await Promise.all([
        countRecords(deps.db, [table.id], DETAIL_COUNT_CAP),
        readLogPage(
          api,
          deps.db,
          entity,
          { on: source, onElementId: table.id },
          { kind: "newest" },
          RECENT_EVENTS,
        ),
      ]);
      const events = [...recent.events].reverse();
      const window = LOG_SEARCH_WINDOW.toLocaleString("en");
      const custom = kind === "custom" ? (table as CustomTableBody) : undefined;
      const profile = kind === "profile" ? (table as ProfileTableBody) : undefined;
      const references =
        custom && custom.foreignKeys.length > 0
          ? await referenceCells(api, entity.name, custom.foreignKeys)
          : undefined;
      const allEvents = `${entityHref(entity.name, "change-log")}?source=${encodeURIComponent(`${source}:${table.id}`)}`;
      sendPage(request, reply, {
        title: `${TABLE_KINDS[kind].words} ${table.name}`,
        entity: entity.name,
        body: html`<p><a href="${entityHref(entity.name, "tables")}">All tables</a></p>
          <dl class="facts">
            <dt>Id</dt>
            <dd><code>${table.id}</code></dd>
            ${
              custom
                ? html`<dt>Type</dt>
                    <dd>${custom.type}</dd>
                    <dt>Primary key</dt>
                    <dd><code>${custom.primaryKeyAttribute}</code></dd>
                    ${
                      custom.creationTimeAttribute
                        ? html`<dt>Creation time</dt>
                            <dd><code>${custom.creationTimeAttribute}</code></dd>`
                        : ""
                    }`
                : ""
            }
            <dt>Records</dt>
            <dd>${countText(counts.get(table.id))}</dd>
            <dt>Last event</dt>
            <dd>${when(events[0]?._event.occurredAt)}</dd>
          </dl>
          <h2>Attributes</h2>
          ${attributeTable(table.attributes, references)} ${profile ? profileSections(profile) : ""}
          ${custom ? declaredEvents(custom) : ""}
          <h2>Recent events</h2>
          ${eventList(events, {
            entity: entity.name,
            empty: recent.searchedTo
              ? `This table has no event among the log's last ${window} positions.`
              : "This table has no event in the change log.",
          })}
          ${
            recent.searchedTo && events.length > 0 && events.length < RECENT_EVENTS
              ? html`<p class="help">
                  Only the log's last ${window} positions were looked at; older events of this table
                  are in the change log.
                </p>`
              : ""
          }
          <p><a href="${allEvents}">All events of this table</a></p>
          <p class="help">
            Records are counted exactly up to ${DETAIL_COUNT_CAP.toLocaleString("en")}. Past that,
            “about” is PostgreSQL's estimate from its statistics, and “more than” means the
            statistics do not know the table yet. Times are UTC.
          </p>`,
      });
    },
  );
}

function attributeTable(
  attributes: AttributeBody[],
  references: Map<string, SafeHtml> | undefined,
): SafeHtml {
  return dataTable<AttributeBody>(
    [
      { label: "Name", cell: (a) => html`<code>${a.name}</code>` },
      { label: "Type", cell: (a) => typeText(a) },
      { label: "Unique", cell: (a) => yes(a.unique) },
      { label: "Mandatory", cell: (a) => yes(a.mandatory) },
      { label: "Multi-valued", cell: (a) => yes(a.multiValued) },
      { label: "Restriction", cell: (a) => restrictionText(a) },
      ...(references
        ? [{ label: "Refers to", cell: (a: AttributeBody) => references.get(a.name) ?? "—" }]
        : []),
    ],
    attributes,
    { empty: "This table has no attribute." },
  );
}

/** Each referring attribute's foreign key in words, the referenced table linked to its page. */
async function referenceCells(
  api: ConsoleApi,
  entity: string,
  foreignKeys: ForeignKeyBody[],
): Promise<Map<string, SafeHtml>> {
  const known = knownTables(await listEntityTables(api, entity));
  const cells = new Map<string, SafeHtml>();
  for (const fk of foreignKeys) {
    const target = known.get(`${fk.referencedTable.kind}:${fk.referencedTable.id}`);
    const kind: TableKindName = fk.referencedTable.kind === "PROFILE_TABLE" ? "profile" : "custom";
    const name = target?.name ?? fk.referencedTable.id;
    cells.set(
      fk.attribute,
      html`<a href="${entityHref(entity, "tables", kind, fk.referencedTable.id)}">${name}</a
        >${fk.referencedAttribute ? html`.<code>${fk.referencedAttribute}</code>` : ""} (on delete
        ${fk.onDelete ?? "RESTRICT"})`,
    );
  }
  return cells;
}

function profileSections(table: ProfileTableBody): SafeHtml {
  return html`<h2>Subscriptions</h2>
    ${
      table.subscriptions.length > 0
        ? html`<ul>
            ${table.subscriptions.map((s) => html`<li><code>${s.name}</code></li>`)}
          </ul>`
        : html`<p class="empty">This table declares no subscription.</p>`
    }
    <h2>Segmentations</h2>
    ${dataTable(
      [
        { label: "Name", cell: (s) => html`<code>${s.name}</code>` },
        { label: "Type", cell: (s) => s.type ?? "SIMPLE" },
        { label: "Segments", cell: (s) => (s.segments?.length ? s.segments.join(", ") : "—") },
      ],
      table.segmentations,
      { empty: "This table declares no segmentation." },
    )}`;
}

function declaredEvents(table: CustomTableBody): SafeHtml {
  return html`<h2>Declared events</h2>
    ${dataTable(
      [
        { label: "Name", cell: (e) => html`<code>${e.name}</code>` },
        {
          label: "On",
          cell: (e) => [...new Set(e.triggerRules.map((r) => r.onOperation))].join(", "),
        },
      ],
      table.eventsToTrigger,
      { empty: "This table declares no event (eventsToTrigger)." },
    )}`;
}
