/**
 * The fixtures of the scenario and custom action tests (SPEC §7.4, issue #17), in one place: the
 * Customers profile table's parts, the send-to-crm custom action, §7.4's welcome scenario and its
 * blocks, and the few calls every such test makes to set them up. Each test still says which
 * attributes its own table has (a test relies on them); only the pieces are shared.
 *
 * It imports node:assert and types only: the scenarios bench uses its blocks too, and loads no
 * Herald module with them.
 */
import assert from "node:assert/strict";
import type { ScenarioBlock } from "../../src/domain/scenario.js";
import type { TestApp } from "./test-app.js";

/** An attribute of a profile table as the API takes it. */
export type AttributeBody = Record<string, unknown>;

/** A profile table definition as `POST …/profile-tables` takes it. */
export interface TableBody {
  name: string;
  attributes: AttributeBody[];
  subscriptions?: { name: string }[];
  segmentations?: Record<string, unknown>[];
}

export const CUSTOMER_ID: AttributeBody = {
  name: "customerId",
  type: "CUSTOM",
  valueType: "STRING",
  unique: true,
};
/** The e-mail address as a profile's key: unique and mandatory. */
export const EMAIL_KEY: AttributeBody = {
  name: "emailAddress",
  type: "EMAIL_ADDRESS",
  unique: true,
  mandatory: true,
};
export const FIRST_NAME: AttributeBody = { name: "firstName", type: "FIRSTNAME" };
/** What the welcome flow's FILTER reads: Gold, Silver, … */
export const TIER: AttributeBody = { name: "tier", type: "CUSTOM", valueType: "STRING" };
export const POINTS: AttributeBody = { name: "points", type: "CUSTOM", valueType: "INTEGER" };
/** A DATE attribute of that name (what a WAIT until an attribute or a DATE start reads). */
export const dateAttribute = (name: string): AttributeBody => ({
  name,
  type: "CUSTOM",
  valueType: "DATE",
});

export const NEWSLETTER = { name: "newsletter" };
/** The segmentation the welcome flow's UPDATE_PROFILE puts a Gold profile in. */
export const ACTIVE = { name: "Active", type: "SIMPLE" };

/** A profile table named Customers with these attributes, and the subscriptions and segmentations given (else none). */
export function customersTable(
  attributes: AttributeBody[],
  more: Pick<TableBody, "subscriptions" | "segmentations"> = {},
): TableBody {
  return { name: "Customers", attributes, ...more };
}

/** The Customers table of the scenario API tests: a key, a tier, points, a birth date. */
export const CUSTOMERS_TABLE = customersTable(
  [CUSTOMER_ID, TIER, POINTS, { name: "birthDate", type: "BIRTHDATE" }],
  {
    subscriptions: [NEWSLETTER],
    segmentations: [
      ACTIVE,
      { name: "ClientType", type: "EXCLUSIVE", segments: ["Gold", "Silver"] },
    ],
  },
);

/** The parameter §7.4's welcome flow gives send-to-crm. */
export const CAMPAIGN_ID = { name: "campaignId", valueType: "STRING", mandatory: true };

/** The custom action the welcome flow triggers, with its one mandatory parameter; tests add theirs. */
export const SEND_TO_CRM = { name: "send-to-crm", parameters: [CAMPAIGN_ID] };

/** A scenario block as the API takes it (CUSTOM_ACTION names its action, UPDATE_PROFILE may say true). */
export type BlockBody = Record<string, unknown>;

/** FILTER tier = Gold: a Gold profile goes on to `crm`, any other to `end`. */
export const GOLD_FILTER: Extract<ScenarioBlock, { type: "FILTER" }> = {
  id: "gold",
  type: "FILTER",
  conditions: [{ attribute: "tier", operator: "=", value: "Gold" }],
  next: "crm",
  otherwise: "end",
};

/** Triggers send-to-crm for campaign 987654, then `tag`. */
export const CRM_BLOCK: BlockBody = {
  id: "crm",
  type: "CUSTOM_ACTION",
  customAction: "send-to-crm",
  parameters: { campaignId: "987654" },
  next: "tag",
};

/** Puts the profile in the segmentation Active, then `end`. */
export const TAG_ACTIVE: BlockBody = {
  id: "tag",
  type: "UPDATE_PROFILE",
  segmentations: { Active: true },
  next: "end",
};

export const EXIT_BLOCK: Extract<ScenarioBlock, { type: "EXIT" }> = { id: "end", type: "EXIT" };

/** A scenario definition as `POST …/scenarios` takes it. */
export interface ScenarioBody {
  name: string;
  profileTable: string;
  reentry: string;
  start: Record<string, unknown>;
  blocks: BlockBody[];
}

export interface WelcomeOptions {
  name?: string;
  /** The first WAIT's ISO 8601 duration (PT1H). */
  wait?: string;
  /** The start (DATA_EVENT CREATE, no onFields, no conditions). */
  start?: Record<string, unknown>;
  /** Where the FILTER sends a profile that is not Gold (`end`); null: nowhere, it leaves the scenario there. */
  otherwise?: string | null;
}

/**
 * SPEC §7.4's welcome flow on the Customers table: DATA_EVENT CREATE → WAIT PT1H → FILTER tier =
 * Gold → CUSTOM_ACTION send-to-crm → UPDATE_PROFILE Active → EXIT, a profile not Gold to EXIT.
 */
export function welcomeScenario(options: WelcomeOptions = {}): ScenarioBody {
  const { otherwise: _toEnd, ...goldOnly } = GOLD_FILTER;
  const filter =
    options.otherwise === null ? goldOnly : { ...goldOnly, otherwise: options.otherwise ?? "end" };
  return {
    name: options.name ?? "welcome",
    profileTable: "Customers",
    reentry: "AFTER_EXIT",
    start: options.start ?? {
      type: "DATA_EVENT",
      eventType: "CREATE",
      onFields: [],
      conditions: {},
    },
    blocks: [
      { id: "wait", type: "WAIT", duration: options.wait ?? "PT1H", next: "gold" },
      filter,
      CRM_BLOCK,
      TAG_ACTIVE,
      EXIT_BLOCK,
    ],
  };
}

/** POSTs a profile table to the test app's entity; its id (asserts 201). */
export function createProfileTable(t: TestApp, body: TableBody): Promise<string> {
  return createdId(t, "profile-tables", body);
}

/** POSTs a custom action to the test app's entity; its id (asserts 201). */
export function createCustomAction(t: TestApp, body: Record<string, unknown>): Promise<string> {
  return createdId(t, "custom-actions", body);
}

async function createdId(t: TestApp, collection: string, body: unknown): Promise<string> {
  const url = `/v5/entities/${t.config.defaultEntity}/${collection}`;
  const response = await t.request("POST", url, body);
  assert.equal(response.statusCode, 201, response.body);
  return response.json<{ id: string }>().id;
}

/** A JSON call to a running Herald: the parsed answer; an assertion fails on a non-2xx status. */
export type JsonCall = <T = Record<string, unknown>>(
  method: string,
  path: string,
  body?: unknown,
) => Promise<T>;

/** A JSON client of a Herald process listening at `url`, with the admin key's token. */
export async function adminClient(url: string, adminKey: string): Promise<JsonCall> {
  const auth = await fetch(`${url}/auth/token`, { headers: { authorization: adminKey } });
  assert.equal(auth.status, 200, await auth.clone().text());
  const { accessToken } = (await auth.json()) as { accessToken: string };
  return async <T = Record<string, unknown>>(method: string, path: string, body?: unknown) => {
    const response = await fetch(`${url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${accessToken}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    assert.ok(response.status < 300, `${method} ${path}: ${response.status} ${text}`);
    return (text ? JSON.parse(text) : undefined) as T;
  };
}
