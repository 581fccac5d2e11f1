/**
 * The create and edit forms of a subscription. A form is turned into the JSON body the API takes
 * and sent through the console's API client: the API's validation is the only validation. When the
 * API refuses, the form comes back with the values typed, the API's message at the top and, where
 * the refusal's `details` name a field, that message next to the field. Nothing is created or
 * changed then.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { EVENT_SOURCES, EVENT_TYPES } from "../../domain/change-event.js";
import { PUSH_MODES } from "../../domain/subscription.js";
import { ConsoleApiError } from "../console-api.js";
import type { FormFields } from "../console-page.js";
import { consoleOf, csrfField, formOf, sendPage } from "../console-page.js";
import type { SafeHtml } from "../html.js";
import { html, when } from "../html.js";
import type { SubscriptionJson } from "./subscriptions-view.js";
import { apiPath, pageHref, tableNames } from "./subscriptions-view.js";

/** The fields a person sets in the form, as typed. */
export interface FormValues {
  on: string;
  onElementId: string;
  eventType: string;
  onFields: string;
  targetUrl: string;
  pushMode: string;
  maxBlockSize: string;
  headers: string;
  isActive: boolean;
}

const FIELD_NAMES = [
  "on",
  "onElementId",
  "eventType",
  "onFields",
  "targetUrl",
  "pushMode",
  "maxBlockSize",
  "headers",
  "isActive",
] as const;
type FieldName = (typeof FIELD_NAMES)[number];

/** Messages shown next to fields, by field. */
export type FieldErrors = Partial<Record<FieldName, string[]>>;

const EMPTY_VALUES: FormValues = {
  on: "PROFILE_TABLE",
  onElementId: "",
  eventType: "CREATE",
  onFields: "",
  targetUrl: "",
  pushMode: "ONE_BY_ONE",
  maxBlockSize: "100",
  headers: "",
  isActive: true,
};

function text(fields: FormFields, name: string): string {
  const value = fields[name];
  return typeof value === "string" ? value : "";
}

export function valuesFromForm(fields: FormFields): FormValues {
  return {
    on: text(fields, "on"),
    onElementId: text(fields, "onElementId"),
    eventType: text(fields, "eventType"),
    onFields: text(fields, "onFields"),
    targetUrl: text(fields, "targetUrl"),
    pushMode: text(fields, "pushMode"),
    maxBlockSize: text(fields, "maxBlockSize"),
    headers: text(fields, "headers"),
    isActive: fields.isActive !== undefined,
  };
}

export function valuesFromSubscription(s: SubscriptionJson): FormValues {
  return {
    on: s.on,
    onElementId: s.onElementId ?? "",
    eventType: s.eventType,
    onFields: s.onFields.join(", "),
    targetUrl: s.targetUrl,
    pushMode: s.pushMode,
    maxBlockSize: String(s.maxBlockSize),
    headers: Object.entries(s.headers)
      .map(([name, value]) => `${name}: ${value}`)
      .join("\n"),
    isActive: s.isActive,
  };
}

/**
 * The JSON body of a form's values, or the lines of the headers box that cannot be read as
 * `Name: value` (the one thing the form itself must understand before the API can judge it). A
 * number that is not written as one is sent as the text typed, so that the API names the problem.
 */
export function requestBody(
  values: FormValues,
): { kind: "body"; body: Record<string, unknown> } | { kind: "unreadable"; errors: FieldErrors } {
  const headers: Record<string, string> = {};
  const unreadable: string[] = [];
  values.headers.split(/\r\n|\r|\n/).forEach((line, i) => {
    if (line.trim() === "") return;
    const colon = line.indexOf(":");
    if (colon <= 0) {
      unreadable.push(`Line ${i + 1} is not a header: write one per line as Name: value.`);
      return;
    }
    headers[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
  });
  if (unreadable.length > 0) return { kind: "unreadable", errors: { headers: unreadable } };
  const size = values.maxBlockSize.trim();
  const body: Record<string, unknown> = {
    on: values.on,
    onElementId: values.onElementId.trim() === "" ? null : values.onElementId.trim(),
    eventType: values.eventType,
    onFields: values.onFields
      .split(",")
      .map((f) => f.trim())
      .filter((f) => f !== ""),
    targetUrl: values.targetUrl,
    headers,
    isActive: values.isActive,
    pushMode: values.pushMode,
  };
  if (size !== "") body.maxBlockSize = /^-?\d{1,15}$/.test(size) ? Number(size) : size;
  return { kind: "body", body };
}

/**
 * The form field a refusal's detail names: `targetUrl`, `body.targetUrl` (schema checks),
 * `onFields[2]`, `headers.X-Key`; the legacy paths' `table` is the element field.
 */
export function fieldOfDetail(path: string): FieldName | undefined {
  const root = path.replace(/^body[./]/, "").split(/[.[/]/)[0] ?? "";
  if (root === "table") return "onElementId";
  return (FIELD_NAMES as readonly string[]).includes(root) ? (root as FieldName) : undefined;
}

export function fieldErrorsOf(error: ConsoleApiError): FieldErrors {
  const errors: FieldErrors = {};
  for (const detail of error.details) {
    const field = fieldOfDetail(detail.path);
    if (!field) continue;
    const where = detail.path.replace(/^body[./]/, "");
    const message = where === field ? detail.message : `${where}: ${detail.message}`;
    (errors[field] ??= []).push(message);
  }
  return errors;
}

interface FormPage {
  entity: string;
  title: string;
  action: string;
  submit: string;
  values: FormValues;
  errors: FieldErrors;
  tables: string[];
  /** Shown above the fields: what the form keeps that it does not show. */
  intro?: SafeHtml;
  cancel: string;
}

function fieldError(name: FieldName, errors: FieldErrors): SafeHtml | string {
  const messages = errors[name];
  if (!messages || messages.length === 0) return "";
  return html`<p class="field-error" id="f-${name}-error">${messages.join(" ")}</p>`;
}

/** `aria-describedby` and `aria-invalid` of a field: its help, and its error when it has one. */
function described(name: FieldName, errors: FieldErrors, help: boolean): SafeHtml {
  const ids = [errors[name]?.length ? `f-${name}-error` : "", help ? `f-${name}-help` : ""]
    .filter(Boolean)
    .join(" ");
  return html`${ids ? html`aria-describedby="${ids}"` : ""}
  ${errors[name]?.length ? html`aria-invalid="true"` : ""}`;
}

function options(all: readonly string[], selected: string): SafeHtml[] {
  const list = all.includes(selected) || selected === "" ? all : [selected, ...all];
  return list.map(
    (value) =>
      html`<option value="${value}" ${value === selected ? html`selected` : ""}>${value}</option>`,
  );
}

export function renderForm(request: FastifyRequest, page: FormPage): SafeHtml {
  const { values, errors } = page;
  return html`${page.intro ?? ""}
    <form method="post" action="${page.action}" class="stack subscription-form" novalidate>
      ${csrfField(request)}
      <label for="f-on">Source (on)</label>
      <select id="f-on" name="on" ${described("on", errors, false)}>
        ${options(EVENT_SOURCES, values.on)}
      </select>
      ${fieldError("on", errors)}

      <label for="f-onElementId">Table or element (name or id)</label>
      <input
        id="f-onElementId"
        name="onElementId"
        value="${values.onElementId}"
        list="f-tables"
        autocomplete="off"
        ${described("onElementId", errors, true)}
      />
      <datalist id="f-tables">
        ${page.tables.map((name) => html`<option value="${name}"></option>`)}
      </datalist>
      <p class="help" id="f-onElementId-help">
        Required for a table; for an ETL, export, custom action or file synchronisation leave it
        empty to listen to all of them.
      </p>
      ${fieldError("onElementId", errors)}

      <label for="f-eventType">Event type</label>
      <select id="f-eventType" name="eventType" ${described("eventType", errors, false)}>
        ${options(EVENT_TYPES, values.eventType)}
      </select>
      ${fieldError("eventType", errors)}

      <label for="f-onFields">Only when these fields are involved (onFields)</label>
      <input
        id="f-onFields"
        name="onFields"
        value="${values.onFields}"
        autocomplete="off"
        ${described("onFields", errors, true)}
      />
      <p class="help" id="f-onFields-help">
        Attribute names, separated by commas. Empty: every event of the type.
      </p>
      ${fieldError("onFields", errors)}

      <label for="f-targetUrl">Target URL</label>
      <input
        id="f-targetUrl"
        name="targetUrl"
        value="${values.targetUrl}"
        inputmode="url"
        autocomplete="off"
        spellcheck="false"
        ${described("targetUrl", errors, false)}
      />
      ${fieldError("targetUrl", errors)}

      <label for="f-pushMode">Push mode</label>
      <select id="f-pushMode" name="pushMode" ${described("pushMode", errors, false)}>
        ${options(PUSH_MODES, values.pushMode)}
      </select>
      ${fieldError("pushMode", errors)}

      <label for="f-maxBlockSize">Block size (BULK: most events per push)</label>
      <input
        id="f-maxBlockSize"
        name="maxBlockSize"
        value="${values.maxBlockSize}"
        inputmode="numeric"
        autocomplete="off"
        ${described("maxBlockSize", errors, false)}
      />
      ${fieldError("maxBlockSize", errors)}

      <label for="f-headers">Extra request headers</label>
      <textarea
        id="f-headers"
        name="headers"
        spellcheck="false"
        ${described("headers", errors, true)}
      >
${values.headers}</textarea>
      <p class="help" id="f-headers-help">
        One per line, as <code>Name: value</code>. Content-Type and the signature headers are set by
        Herald and dropped from this list.
      </p>
      ${fieldError("headers", errors)}

      <div class="check">
        <input
          type="checkbox"
          id="f-isActive"
          name="isActive"
          value="true"
          ${values.isActive ? html`checked` : ""}
          ${described("isActive", errors, false)}
        />
        <label for="f-isActive">Active (deliver events)</label>
      </div>
      ${fieldError("isActive", errors)}

      <div class="actions">
        <button type="submit">${page.submit}</button>
        <a href="${page.cancel}">Cancel</a>
      </div>
    </form>`;
}

async function sendForm(
  request: FastifyRequest,
  reply: FastifyReply,
  page: Omit<FormPage, "tables">,
  options: { status?: number; error?: string } = {},
): Promise<void> {
  const tables = await tableNames(consoleOf(request).api, page.entity);
  sendPage(request, reply, {
    title: page.title,
    entity: page.entity,
    status: options.status,
    notice: options.error ? { kind: "error", text: options.error } : undefined,
    body: renderForm(request, { ...page, tables: [...new Set(tables.values())].sort() }),
  });
}

/** The form again after a refusal: 4xx, the values typed, the API's words. */
async function sendRefusal(
  request: FastifyRequest,
  reply: FastifyReply,
  page: Omit<FormPage, "tables" | "errors">,
  refusal: { status: number; message: string; errors: FieldErrors },
): Promise<void> {
  await sendForm(
    request,
    reply,
    { ...page, errors: refusal.errors },
    { status: refusal.status, error: refusal.message },
  );
}

type EntityParams = { Params: { entity: string } };
type SubscriptionParams = { Params: { entity: string; id: string } };

export function registerSubscriptionForms(app: FastifyInstance): void {
  app.get<EntityParams>("/e/:entity/subscriptions/new", async (request, reply) => {
    const { entity } = request.params;
    await sendForm(request, reply, newPage(entity, EMPTY_VALUES, {}));
  });

  app.post<EntityParams>("/e/:entity/subscriptions/new", async (request, reply) => {
    const { entity } = request.params;
    const values = valuesFromForm(formOf(request));
    const page = newPage(entity, values, {});
    const built = requestBody(values);
    if (built.kind === "unreadable")
      return sendRefusal(request, reply, page, {
        status: 400,
        message: "The headers cannot be read; nothing was created.",
        errors: built.errors,
      });
    try {
      const created = await consoleOf(request).api.post<SubscriptionJson>(
        apiPath(entity),
        built.body,
      );
      return reply.redirect(`${pageHref(entity, created.id)}?done=created`, 303);
    } catch (error) {
      if (!(error instanceof ConsoleApiError) || error.status >= 500) throw error;
      return sendRefusal(request, reply, page, {
        status: error.status,
        message: `${error.message}. Nothing was created.`,
        errors: fieldErrorsOf(error),
      });
    }
  });

  app.get<SubscriptionParams>("/e/:entity/subscriptions/:id/edit", async (request, reply) => {
    const { entity, id } = request.params;
    const current = await consoleOf(request).api.get<SubscriptionJson>(apiPath(entity, id));
    await sendForm(request, reply, editPage(entity, current, valuesFromSubscription(current), {}));
  });

  app.post<SubscriptionParams>("/e/:entity/subscriptions/:id/edit", async (request, reply) => {
    const { entity, id } = request.params;
    const { api } = consoleOf(request);
    const current = await api.get<SubscriptionJson>(apiPath(entity, id));
    const values = valuesFromForm(formOf(request));
    const page = editPage(entity, current, values, {});
    const built = requestBody(values);
    if (built.kind === "unreadable")
      return sendRefusal(request, reply, page, {
        status: 400,
        message: "The headers cannot be read; nothing was changed.",
        errors: built.errors,
      });
    try {
      // PATCH: what the form does not show keeps its stored value.
      await api.patch(apiPath(entity, id), built.body);
      return reply.redirect(`${pageHref(entity, current.id)}?done=updated`, 303);
    } catch (error) {
      if (!(error instanceof ConsoleApiError) || error.status >= 500) throw error;
      return sendRefusal(request, reply, page, {
        status: error.status,
        message: `${error.message}. Nothing was changed.`,
        errors: fieldErrorsOf(error),
      });
    }
  });
}

function newPage(entity: string, values: FormValues, errors: FieldErrors) {
  return {
    entity,
    title: "New subscription",
    action: pageHref(entity, "new"),
    submit: "Create subscription",
    values,
    errors,
    cancel: pageHref(entity),
  };
}

function editPage(
  entity: string,
  current: SubscriptionJson,
  values: FormValues,
  errors: FieldErrors,
) {
  return {
    entity,
    title: `Edit subscription ${current.id}`,
    action: pageHref(entity, current.id, "edit"),
    submit: "Save",
    values,
    errors,
    cancel: pageHref(entity, current.id),
    intro: html`<p class="help">
      Settings this form does not show (linger and wait times, concurrency, conditions, payload
      version${current.expiresAt ? html`, the expiry at ${when(current.expiresAt)}` : ""}) keep
      their stored values, and so does the signing secret.
    </p>`,
  };
}
