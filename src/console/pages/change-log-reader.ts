/**
 * One page of an entity's change log for the console, read in two bounded steps: the console's own
 * SQL finds which positions the page covers (looking at no more than LOG_SEARCH_WINDOW positions
 * of the log, so a filter on a rare table never walks the whole log), then the pull API
 * (GET /v5/entities/{entity}/change-events) answers exactly those events, shaped as subscribers
 * get them. The API only reads forward from a position; going back ("older", "the newest") is
 * what the first step adds.
 */
import type { DataObject } from "../../domain/event-payload.js";
import type { Database } from "../../storage/database.js";
import { searchLog } from "../../storage/console-table-reads.js";
import type { ConsoleApi } from "../console-api.js";
import { pathPart } from "../html.js";

/** Log positions a page looks at, at most, to find its matches. */
export const LOG_SEARCH_WINDOW = 20_000;

/**
 * A position past any log (the API takes at most 15 digits): asking the API from here makes it
 * check every parameter and read nothing.
 */
const PAST_THE_LOG = "999999999999999";

/** The pull API's filters, as its query names them. */
export interface LogQuery {
  on?: string | undefined;
  onElementId?: string | undefined;
  eventType?: string | undefined;
}

/** Where a page sits: the newest events, those after a position, or those before one. */
export type LogAnchor =
  { kind: "newest" } | { kind: "after"; position: number } | { kind: "before"; position: number };

export interface LogPage {
  events: DataObject[];
  /**
   * Set when the page holds fewer events than asked because the search window ran out before the
   * log did: the farthest position looked at (the next search starts there).
   */
  searchedTo: number | undefined;
  /** The log positions looked at, first to last. */
  range: { first: number; last: number };
}

export function changeEventsPath(entity: string): string {
  return `/v5/entities/${pathPart(entity)}/change-events`;
}

/**
 * Has the API check the filters and page size as given (a refusal throws its ConsoleApiError),
 * without reading the log. `after` is sent as typed when it is not a plain number, so that the
 * API's own message names it.
 */
export async function checkLogQuery(
  api: ConsoleApi,
  entity: string,
  query: LogQuery,
  raw: { after?: string | undefined; limit?: string | undefined },
): Promise<void> {
  const given = raw.after ?? "";
  const after = given === "" || /^[0-9]{1,15}$/.test(given) ? PAST_THE_LOG : given;
  await api.get(changeEventsPath(entity), { ...query, after, limit: raw.limit });
}

/** The page of `size` events at `anchor` that pass `query`. */
export async function readLogPage(
  api: ConsoleApi,
  db: Database,
  entity: { id: number; name: string },
  query: LogQuery,
  anchor: LogAnchor,
  size: number,
): Promise<LogPage> {
  const found = await searchLog(db, {
    entityId: entity.id,
    filter: { source: query.on, sourceId: query.onElementId, eventType: query.eventType },
    direction: anchor.kind,
    from: anchor.kind === "newest" ? 0 : anchor.position,
    count: size,
    window: LOG_SEARCH_WINDOW,
  });
  const first = found.positions[0];
  if (first === undefined) return { events: [], searchedTo: found.searchedTo, range: found.range };
  // Positions below the head are final, so the API finds exactly these events from here.
  const page = await api.get<{ events: DataObject[] }>(changeEventsPath(entity.name), {
    ...query,
    after: first - 1,
    limit: found.positions.length,
  });
  return { events: page.events, searchedTo: found.searchedTo, range: found.range };
}
