/**
 * The page codec of readLogWindow (log-window-reader.ts): a page comes back from PostgreSQL as lines
 * of tab-separated columns, and each line becomes a LogEvent that keeps its JSON columns as text
 * until something reads them. Consecutive events mostly share their changed fields, declared events,
 * origin and time, so their compact JSON is looked up by text in small bounded caches.
 */
import type { ChangeEvent, EventSource, EventType } from "../domain/change-event.js";
import type { PrerenderedParts } from "../domain/event-payload.js";
import { namesJson, toIso } from "../domain/event-payload.js";

/**
 * Compact JSON of the `_event` parts that repeat from event to event (changed fields, origin,
 * declared events), by their text as PostgreSQL sent it. Bounded: emptied when it grows past
 * CACHE_LIMIT distinct texts.
 */
const CACHE_LIMIT = 10_000;

function cached(cache: Map<string, string>, raw: string, compact: (raw: string) => string): string {
  let text = cache.get(raw);
  if (text === undefined) {
    if (cache.size >= CACHE_LIMIT) cache.clear();
    text = compact(raw);
    cache.set(raw, text);
  }
  return text;
}

const namesCache = new Map<string, string>();
const jsonCache = new Map<string, string>();

const compactNames = (raw: string) => namesJson(JSON.parse(raw));
const compactJson = (raw: string) => JSON.stringify(JSON.parse(raw));

/** Positions of the columns in a line of readLogWindow's page. */
const COLUMN = {
  id: 0,
  position: 1,
  version: 2,
  sourceId: 3,
  recordKey: 4,
  occurredAt: 5,
  keys: 6,
  state: 7,
  fields: 8,
  previous: 9,
  extra: 10,
  declaredEvents: 11,
  origin: 12,
} as const;
const COLUMNS = 13;
/** The first column whose start an event keeps (see PageCuts). */
const FIRST_CUT = COLUMN.occurredAt;
/** Tab positions an event keeps: before occurred_at, …, before origin. */
const CUTS = COLUMNS - FIRST_CUT;

/**
 * The positions of the tabs before columns occurred_at to origin in the lines of one page, CUTS
 * per line, in one typed array the page's events share: no string per column (most columns are
 * never read) and no array per event.
 */
type PageCuts = Int32Array;

/** The integer at [from, to) of `line`: digits read in place, anything else through Number. */
function integerAt(line: string, from: number, to: number): number {
  if (to - from > 15 || to === from) return Number(line.slice(from, to));
  let n = 0;
  for (let k = from; k < to; k++) {
    const digit = line.charCodeAt(k) - 48;
    if (digit < 0 || digit > 9) return Number(line.slice(from, to));
    n = n * 10 + digit;
  }
  return n;
}

/** Where column `k` of a line begins and ends, given its tabs (see readLogWindow). */
function from(tabs: readonly number[], k: number): number {
  return (tabs[k] as number) + 1;
}
function to(tabs: readonly number[], k: number): number {
  return tabs[k + 1] as number;
}

/** The text of column `k` of a line. */
function cut(line: string, tabs: readonly number[], k: number): string {
  return line.slice(from(tabs, k), to(tabs, k));
}

/** Column `k` of a line is exactly `text` (compared in place: no string is cut out). */
function holds(line: string, tabs: readonly number[], k: number, text: string): boolean {
  const start = from(tabs, k);
  return to(tabs, k) - start === text.length && line.startsWith(text, start);
}

/**
 * occurred_at as the page sends it: `toIso` of it (`2026-12-01T01:58:47.009Z`, milliseconds
 * truncated as the driver's own parser does) for years 1000 to 9999, else `j` and its JSON text.
 */
function occurredAtOf(text: string): Date {
  return text.charCodeAt(0) === 106 // j
    ? new Date(JSON.parse(text.slice(1)) as string)
    : new Date(text);
}

/**
 * The state column of a page line: the state's JSON text, or (lean reads) `=` and the JSON texts of
 * the values of the changed attributes `names`, separated by U+001F, an empty one for a missing
 * attribute (null, as jsonb_build_object made it).
 */
function stateOf(text: string, names: readonly string[]): ChangeEvent["state"] {
  if (text.charCodeAt(0) !== 61 /* = */) return JSON.parse(text) as ChangeEvent["state"];
  const values = text.slice(1).split("\u001f");
  const state: Record<string, unknown> = {};
  for (let i = 0; i < values.length; i++) {
    const value = values[i] === "" ? null : (JSON.parse(values[i] as string) as unknown);
    const name = names[i] as string;
    if (name === "__proto__")
      Object.defineProperty(state, name, {
        value,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    else state[name] = value;
  }
  return state as ChangeEvent["state"];
}

/** A JSON string's value: cut from between the quotes unless it holds an escape. */
function jsonString(text: string): string {
  return text.includes("\\") ? (JSON.parse(text) as string) : text.slice(1, -1);
}

/**
 * An event read by readLogWindow. The columns the engine reads for every event (positions, ordering
 * key) are parsed at once; the JSON columns are kept as the text PostgreSQL sent and parsed on first
 * use, and the `_event` parts of the push body are taken from that text (see prerenderedParts), so
 * an event pushed without conditions or previous values never has its state built as an object
 * beyond its keys and changed attributes.
 */
class LogEvent implements ChangeEvent, PrerenderedParts {
  #keys: ChangeEvent["keys"] | undefined;
  #state: ChangeEvent["state"] | undefined;
  #fields: string[] | undefined;
  #previous: ChangeEvent["previous"] | undefined;
  #extra: ChangeEvent["extra"] | undefined;
  #declaredEvents: string[] | undefined;
  #origin: ChangeEvent["origin"] | undefined;
  #occurredAt: Date | undefined;
  /** A part the `_event` texts come from was set from outside: those texts may be stale. */
  #replaced = false;
  /** `keys` or `state` was set from outside: their texts (keysJson, changedValuesJson) are stale. */
  #attributesReplaced = false;

  constructor(
    public id: number,
    public position: number,
    public entityId: number,
    public source: EventSource,
    public sourceId: string,
    public eventType: EventType,
    public recordKey: string,
    public version: number | null,
    /**
     * The event's line of the page as PostgreSQL sent it, and where its columns from occurred_at on
     * begin in it (see COLUMN): the JSON columns are cut out of the line when first read.
     */
    private readonly line: string,
    private readonly cuts: PageCuts,
    /** Where this event's tab positions begin in `cuts`. */
    private readonly cutsAt: number,
    readonly occurredAtText: string,
    readonly changedFieldNames: readonly string[],
    readonly changedFieldsJson: string,
    readonly declaredEventsJson: string,
    readonly originJson: string,
  ) {}

  get keys(): ChangeEvent["keys"] {
    return (this.#keys ??= JSON.parse(this.column(COLUMN.keys)) as ChangeEvent["keys"]);
  }
  set keys(value: ChangeEvent["keys"]) {
    this.#keys = value;
    this.#attributesReplaced = true;
  }
  get state(): ChangeEvent["state"] {
    return (this.#state ??= stateOf(this.column(COLUMN.state), this.changedFieldNames));
  }
  set state(value: ChangeEvent["state"]) {
    this.#state = value;
    this.#attributesReplaced = true;
  }
  get fields(): string[] {
    return (this.#fields ??= JSON.parse(this.column(COLUMN.fields)) as string[]);
  }
  set fields(value: string[]) {
    this.#fields = value;
    this.#replaced = true;
  }
  get previous(): ChangeEvent["previous"] {
    return (this.#previous ??= JSON.parse(this.column(COLUMN.previous)) as ChangeEvent["previous"]);
  }
  set previous(value: ChangeEvent["previous"]) {
    this.#previous = value;
  }
  get extra(): ChangeEvent["extra"] {
    return (this.#extra ??= JSON.parse(this.column(COLUMN.extra)) as ChangeEvent["extra"]);
  }
  set extra(value: ChangeEvent["extra"]) {
    this.#extra = value;
  }
  get declaredEvents(): string[] {
    return (this.#declaredEvents ??= JSON.parse(this.column(COLUMN.declaredEvents)) as string[]);
  }
  set declaredEvents(value: string[]) {
    this.#declaredEvents = value;
    this.#replaced = true;
  }
  get origin(): ChangeEvent["origin"] {
    return (this.#origin ??= JSON.parse(this.column(COLUMN.origin)) as ChangeEvent["origin"]);
  }
  set origin(value: ChangeEvent["origin"]) {
    this.#origin = value;
    this.#replaced = true;
  }
  get occurredAt(): Date {
    return (this.#occurredAt ??= occurredAtOf(this.column(COLUMN.occurredAt)));
  }
  set occurredAt(value: Date) {
    this.#occurredAt = value;
    this.#replaced = true;
  }

  /** The text of column `index` (occurred_at or a later one) of the event's line. */
  private column(index: number): string {
    const at = this.cutsAt - FIRST_CUT;
    const start = (this.cuts[at + index] as number) + 1;
    const end = index + 1 < COLUMNS ? (this.cuts[at + index + 1] as number) : this.line.length;
    return this.line.slice(start, end);
  }

  /**
   * The state column holds the changed attributes' value texts (a lean page; see stateOf), and
   * neither `keys` nor `state` was set from outside: keysJson and changedValuesJson hold.
   */
  private get leanTexts(): boolean {
    const start = (this.cuts[this.cutsAt + COLUMN.state - FIRST_CUT] as number) + 1;
    return !this.#attributesReplaced && this.line.charCodeAt(start) === 61; /* = */
  }

  /** The `keys` column's text, on a lean page (see PrerenderedParts). */
  get keysJson(): string | undefined {
    return this.leanTexts ? this.column(COLUMN.keys) : undefined;
  }

  /** The state column's text after its `=`, on a lean page (see PrerenderedParts). */
  get changedValuesJson(): string | undefined {
    if (!this.leanTexts) return undefined;
    const at = this.cutsAt - FIRST_CUT;
    const start = (this.cuts[at + COLUMN.state] as number) + 2;
    return this.line.slice(start, this.cuts[at + COLUMN.state + 1] as number);
  }

  /** False once a part the `_event` texts come from was set from outside. */
  get partsHold(): boolean {
    return !this.#replaced;
  }

  /** The whole event as a plain object (logs, JSON). */
  toJSON(): ChangeEvent {
    return {
      id: this.id,
      position: this.position,
      entityId: this.entityId,
      source: this.source,
      sourceId: this.sourceId,
      eventType: this.eventType,
      recordKey: this.recordKey,
      keys: this.keys,
      state: this.state,
      fields: this.fields,
      previous: this.previous,
      extra: this.extra,
      version: this.version,
      declaredEvents: this.declaredEvents,
      origin: this.origin,
      occurredAt: this.occurredAt,
    };
  }
}

/**
 * The `_event` texts readLogWindow already holds for one of its events (undefined for any other
 * event): dataText uses them instead of serialising those parts again.
 */
export function prerenderedParts(event: ChangeEvent): PrerenderedParts | undefined {
  return event instanceof LogEvent && event.partsHold ? event : undefined;
}

/** What a page's lines do not carry: the filter fixes them (the source id unless it is null). */
export interface PageSource {
  entityId: number;
  source: EventSource;
  sourceId: string | null;
  eventType: EventType;
}

/** The events of a page's lines, in log order. */
export function decodeLogPage(lines: readonly string[], filter: PageSource): ChangeEvent[] {
  const events = new Array<ChangeEvent>(lines.length);
  // Consecutive events mostly share their changed fields, declared events, origin and time: their
  // compact JSON (and text) is the previous line's when the text is the same, found without cutting
  // the text out of the line.
  let fields = "";
  let fieldNames: readonly string[] = [];
  let fieldsJson = "[]";
  let declared = "";
  let declaredJson = "[]";
  let origin = "";
  let originJson = "{}";
  let at = "";
  let atIso = "";
  let ordered = true;
  let last = -Infinity;
  const tabs = new Array<number>(COLUMNS + 1).fill(0);
  const cuts: PageCuts = new Int32Array(lines.length * CUTS);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    tabs[0] = -1;
    for (let k = 1; k < COLUMNS; k++) tabs[k] = line.indexOf("\t", (tabs[k - 1] as number) + 1);
    tabs[COLUMNS] = line.length;
    for (let k = 0; k < CUTS; k++) cuts[i * CUTS + k] = tabs[FIRST_CUT + k] as number;
    const position = integerAt(line, from(tabs, COLUMN.position), to(tabs, COLUMN.position));
    if (position <= last) ordered = false;
    last = position;
    if (!holds(line, tabs, COLUMN.fields, fields)) {
      fields = cut(line, tabs, COLUMN.fields);
      fieldsJson = cached(namesCache, fields, compactNames);
      fieldNames = Object.freeze(JSON.parse(fieldsJson) as string[]);
    }
    if (!holds(line, tabs, COLUMN.declaredEvents, declared)) {
      declared = cut(line, tabs, COLUMN.declaredEvents);
      declaredJson = cached(namesCache, declared, compactNames);
    }
    if (!holds(line, tabs, COLUMN.origin, origin)) {
      origin = cut(line, tabs, COLUMN.origin);
      originJson = cached(jsonCache, origin, compactJson);
    }
    if (!holds(line, tabs, COLUMN.occurredAt, at)) {
      at = cut(line, tabs, COLUMN.occurredAt);
      atIso = at.charCodeAt(0) === 106 ? toIso(occurredAtOf(at)) : at;
    }
    events[i] = new LogEvent(
      integerAt(line, 0, to(tabs, COLUMN.id)),
      position,
      filter.entityId,
      filter.source,
      // Empty: the filter fixes it.
      from(tabs, COLUMN.sourceId) === to(tabs, COLUMN.sourceId)
        ? (filter.sourceId as string)
        : jsonString(cut(line, tabs, COLUMN.sourceId)),
      filter.eventType,
      jsonString(cut(line, tabs, COLUMN.recordKey)),
      from(tabs, COLUMN.version) === to(tabs, COLUMN.version)
        ? null
        : integerAt(line, from(tabs, COLUMN.version), to(tabs, COLUMN.version)),
      line,
      cuts,
      i * CUTS,
      atIso,
      fieldNames,
      fieldsJson,
      declaredJson,
      originJson,
    );
  }
  // A window that fits the page comes in the order PostgreSQL found the rows; otherwise the aggregate takes them
  // in the order the sorted subquery yields them (PostgreSQL does so, and does not promise it):
  // checked here, so the log order never rests on it.
  if (!ordered) events.sort((a, b) => a.position - b.position);
  return events;
}
