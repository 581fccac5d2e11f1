/**
 * The console's way to the API: every read and write a page makes is an in-process call
 * (`app.inject`) to the same JSON routes a client calls, authenticated as the signed-in key. So a
 * form is validated by the API's own rules, the key's entity scope applies to every page and
 * action, and the console holds no second copy of either.
 */
import type { Readable } from "node:stream";
import type { FastifyInstance } from "fastify";
import type { ErrorDetail } from "../domain/errors.js";

type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

/** A refusal by the API, with the catalogue's code and message (SPEC §2). */
export class ConsoleApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: ErrorDetail[],
  ) {
    super(message);
  }
}

/** A refusal the API answered to a raw call or a download: its JSON error, else its status. */
export function apiRefusal(status: number, body: Buffer): ConsoleApiError {
  let error: { code?: string; message?: string } = {};
  try {
    error = JSON.parse(body.toString("utf8")) as typeof error;
  } catch {
    // not JSON: the status says enough
  }
  return new ConsoleApiError(
    status,
    error.code ?? `HTTP_${status}`,
    error.message ?? `The API answered ${status}`,
    [],
  );
}

export type Query = Record<string, string | number | boolean | undefined>;

export interface ConsoleApi {
  get<T>(path: string, query?: Query): Promise<T>;
  post<T>(path: string, body?: unknown): Promise<T>;
  put<T>(path: string, body?: unknown): Promise<T>;
  patch<T>(path: string, body?: unknown): Promise<T>;
  delete<T>(path: string): Promise<T>;
  /** The raw answer, for downloads: status, headers and body bytes, errors included. */
  raw(
    method: Method,
    path: string,
  ): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }>;
  /**
   * A GET answered as a stream, for file downloads: the body is never whole in memory (a stored
   * file may be HERALD_MAX_FILE_BYTES). An error answer (small JSON) is thrown as ConsoleApiError.
   */
  download(path: string): Promise<{ headers: Record<string, unknown>; stream: Readable }>;
}

export function consoleApi(app: FastifyInstance, authorization: string): ConsoleApi {
  const call = async <T>(method: Method, path: string, body?: unknown, query?: Query) => {
    const url = withQuery(path, query);
    const response = await app.inject({
      method,
      url,
      headers:
        body === undefined
          ? { authorization }
          : { authorization, "content-type": "application/json" },
      ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
    });
    const text = response.body;
    const parsed: unknown = text.length > 0 ? safeJson(text) : undefined;
    if (response.statusCode >= 400) {
      const error = (parsed ?? {}) as {
        code?: string;
        message?: string;
        details?: ErrorDetail[];
      };
      throw new ConsoleApiError(
        response.statusCode,
        error.code ?? `HTTP_${response.statusCode}`,
        error.message ?? `The API answered ${response.statusCode}`,
        Array.isArray(error.details) ? error.details : [],
      );
    }
    return parsed as T;
  };
  return {
    get: (path, query) => call("GET", path, undefined, query),
    post: (path, body) => call("POST", path, body ?? {}),
    put: (path, body) => call("PUT", path, body ?? {}),
    patch: (path, body) => call("PATCH", path, body ?? {}),
    delete: (path) => call("DELETE", path),
    async download(path) {
      const response = await app.inject({
        method: "GET",
        url: path,
        headers: { authorization },
        payloadAsStream: true,
      });
      const stream = response.stream();
      if (response.statusCode >= 400) {
        const parts: Buffer[] = [];
        for await (const part of stream) parts.push(Buffer.from(part as Uint8Array));
        throw apiRefusal(response.statusCode, Buffer.concat(parts));
      }
      return { headers: response.headers as Record<string, unknown>, stream };
    },
    async raw(method, path) {
      const response = await app.inject({ method, url: path, headers: { authorization } });
      return {
        status: response.statusCode,
        headers: response.headers as Record<string, unknown>,
        body: response.rawPayload,
      };
    },
  };
}

function withQuery(path: string, query: Query | undefined): string {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query))
    if (value !== undefined && value !== "") params.set(name, String(value));
  const text = params.toString();
  return text ? `${path}${path.includes("?") ? "&" : "?"}${text}` : path;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
