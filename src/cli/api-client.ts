/**
 * The Herald API as the CLI calls it: trades the API key for a bearer token, renews the token when
 * a call answers 401 (tokens last 15 minutes; an import can be followed, or `herald listen` run, for
 * longer), turns every error answer into one `HeraldApiError`, sends JSON bodies, streams
 * multipart uploads from disk, and streams downloads (an export's file) to the caller.
 */
import { randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { Readable } from "node:stream";
import type { Dispatcher } from "undici";
import { request } from "undici";

export interface ErrorDetail {
  path: string;
  message: string;
}

/** An error answer of the API (SPEC §2): `{status, code, message, details}`. */
export class HeraldApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: ErrorDetail[],
  ) {
    super(message);
    this.name = "HeraldApiError";
  }
}

/** Herald could not be reached at all: refused, reset, unknown host, timed out. */
export class HeraldUnreachableError extends Error {
  override name = "HeraldUnreachableError";
}

/** The file being uploaded could not be read to the end (removed, unreadable, changed meanwhile). */
export class UploadFileError extends Error {
  override name = "UploadFileError";
}

/** A text part and one file part, the file streamed from disk after the text parts. */
export interface MultipartUpload {
  fields: { name: string; value: string }[];
  file: { field: string; path: string; filename: string; size: number };
  /** Called with the number of the file's bytes handed to the socket so far. */
  onProgress?: (sentBytes: number) => void;
}

export interface JsonAnswer<T> {
  status: number;
  json: T;
  headers: Dispatcher.ResponseData["headers"];
}

type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

interface SendInit {
  method: Method;
  path: string;
  /** A new body for each attempt: a stream can be sent only once, and a 401 means sending again. */
  body?: () => { body: string | Readable; headers: Record<string, string> };
  signal?: AbortSignal;
}

export class HeraldClient {
  #token: string | undefined;

  /** `baseUrl` has no trailing slash; paths start with one. */
  constructor(
    readonly baseUrl: string,
    private readonly apiKey: string,
  ) {}

  url(path: string): string {
    return `${this.baseUrl}${path}`;
  }

  getJson<T>(path: string, signal?: AbortSignal): Promise<JsonAnswer<T>> {
    return this.#send<T>({ method: "GET", path, ...(signal ? { signal } : {}) });
  }

  /** A call with a JSON body (none when `body` is undefined); the answer read as JSON. */
  sendJson<T>(
    method: Method,
    path: string,
    body?: unknown,
    signal?: AbortSignal,
  ): Promise<JsonAnswer<T>> {
    const text = body === undefined ? undefined : JSON.stringify(body);
    return this.#send<T>({
      method,
      path,
      ...(text === undefined
        ? {}
        : { body: () => ({ body: text, headers: { "content-type": "application/json" } }) }),
      ...(signal ? { signal } : {}),
    });
  }

  upload<T>(path: string, upload: MultipartUpload, signal?: AbortSignal): Promise<JsonAnswer<T>> {
    return this.#send<T>({
      method: "POST",
      path,
      body: () => multipartBody(upload),
      ...(signal ? { signal } : {}),
    });
  }

  /**
   * A GET whose body (a file) is streamed to the caller, with the token handling of the JSON calls;
   * any answer but 200 throws a HeraldApiError as they do. The caller reads or dumps the body.
   */
  async download(path: string, signal?: AbortSignal): Promise<Dispatcher.ResponseData> {
    const res = await this.#authorized({ method: "GET", path, ...(signal ? { signal } : {}) });
    if (res.statusCode !== 200) throw errorFromAnswer(res.statusCode, await res.body.text());
    return res;
  }

  async #send<T>(init: SendInit): Promise<JsonAnswer<T>> {
    return readAnswer<T>(await this.#authorized(init));
  }

  /** The call with the bearer token; a 401 (the token expired) renews it and calls once more. */
  async #authorized(init: SendInit): Promise<Dispatcher.ResponseData> {
    let renewed = false;
    for (;;) {
      const token = await this.#bearerToken(renewed, init.signal);
      const made = init.body?.();
      const res = await this.#request(init.method, init.path, {
        headers: { authorization: `Bearer ${token}`, ...made?.headers },
        ...(made ? { body: made.body } : {}),
        ...(init.signal ? { signal: init.signal } : {}),
      });
      // An expired token: fetch a new one and try once more; a second 401 is a real refusal.
      if (res.statusCode === 401 && !renewed) {
        await res.body.dump();
        renewed = true;
        continue;
      }
      return res;
    }
  }

  async #bearerToken(renew: boolean, signal?: AbortSignal): Promise<string> {
    if (this.#token && !renew) return this.#token;
    const res = await this.#request("GET", "/auth/token", {
      headers: { authorization: this.apiKey },
      ...(signal ? { signal } : {}),
    });
    try {
      const answer = await readAnswer<{ accessToken?: unknown }>(res);
      if (typeof answer.json.accessToken !== "string") {
        throw new HeraldApiError(
          answer.status,
          "HERALD_CLI_BAD_TOKEN_ANSWER",
          `GET ${this.url("/auth/token")} answered without an accessToken; is ${this.baseUrl} a Herald server?`,
          [],
        );
      }
      this.#token = answer.json.accessToken;
      return this.#token;
    } catch (error) {
      if (error instanceof HeraldApiError && error.status === 401) {
        throw new HeraldApiError(
          401,
          error.code,
          `Herald refused the API key (check --api-key or HERALD_API_KEY): ${error.message}`,
          error.details,
        );
      }
      throw error;
    }
  }

  async #request(
    method: Method,
    path: string,
    options: { headers: Record<string, string>; body?: string | Readable; signal?: AbortSignal },
  ): Promise<Dispatcher.ResponseData> {
    try {
      return await request(this.url(path), { method, ...options });
    } catch (error) {
      // Ctrl-C aborts on purpose, and a file that fails mid-read is no network fault: let the
      // caller say what happened rather than blame the connection.
      if (options.signal?.aborted || error instanceof UploadFileError) throw error;
      throw new HeraldUnreachableError(
        `cannot reach Herald at ${this.baseUrl} (${method} ${path}): ${describeNetworkError(error)}`,
      );
    }
  }
}

async function readAnswer<T>(res: Dispatcher.ResponseData): Promise<JsonAnswer<T>> {
  const text = await res.body.text();
  if (res.statusCode >= 400) throw errorFromAnswer(res.statusCode, text);
  let json: T;
  try {
    json = (text === "" ? {} : JSON.parse(text)) as T;
  } catch {
    throw new HeraldApiError(
      res.statusCode,
      "HERALD_CLI_NOT_JSON",
      `Herald answered ${res.statusCode} with a body that is not JSON: ${text.slice(0, 200)}`,
      [],
    );
  }
  return { status: res.statusCode, json, headers: res.headers };
}

/** Reads SPEC §2's error body; a proxy's HTML page or an empty body still gives a usable message. */
function errorFromAnswer(status: number, text: string): HeraldApiError {
  try {
    const body = JSON.parse(text) as { code?: unknown; message?: unknown; details?: unknown };
    if (typeof body.message === "string") {
      const details = Array.isArray(body.details)
        ? (body.details as Partial<ErrorDetail>[]).map((d) => ({
            path: String(d.path ?? ""),
            message: String(d.message ?? ""),
          }))
        : [];
      return new HeraldApiError(status, String(body.code ?? ""), body.message, details);
    }
  } catch {
    // Not JSON: fall through to the raw text.
  }
  const excerpt = text.trim().slice(0, 200);
  return new HeraldApiError(
    status,
    "",
    `Herald answered HTTP ${status}${excerpt ? `: ${excerpt}` : ""}`,
    [],
  );
}

function describeNetworkError(error: unknown): string {
  const e = error as { code?: string; message?: string; cause?: { code?: string } };
  const code = e.code ?? e.cause?.code;
  return code && !e.message?.includes(code)
    ? `${code}: ${e.message}`
    : (e.message ?? String(error));
}

/**
 * A multipart/form-data body whose length is known before sending (so the server can refuse an
 * oversized upload at once, and a proxy need not buffer it), with the file read from disk chunk by
 * chunk: a 100 MiB file never sits in memory.
 */
export function multipartBody(upload: MultipartUpload): {
  body: Readable;
  headers: Record<string, string>;
} {
  const boundary = `herald-${randomBytes(16).toString("hex")}`;
  const texts = upload.fields.map(
    (f) =>
      `--${boundary}\r\nContent-Disposition: form-data; name="${quoted(f.name)}"\r\n\r\n${f.value}\r\n`,
  );
  const { file } = upload;
  const head = Buffer.from(
    `${texts.join("")}--${boundary}\r\n` +
      `Content-Disposition: form-data; name="${quoted(file.field)}"; filename="${quoted(file.filename)}"\r\n` +
      `Content-Type: application/octet-stream\r\n\r\n`,
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);

  async function* parts(): AsyncGenerator<Buffer> {
    yield head;
    let sent = 0;
    const stream = createReadStream(file.path);
    const chunks = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    try {
      for (;;) {
        let next: IteratorResult<Buffer>;
        try {
          next = await chunks.next();
        } catch (error) {
          throw new UploadFileError(`cannot read ${file.path}: ${(error as Error).message}`);
        }
        if (next.done) break;
        sent += next.value.length;
        // The length was announced up front; a file that changes meanwhile would corrupt the body.
        if (sent > file.size) throw new UploadFileError(`${file.path} grew while it was uploaded`);
        yield next.value;
        upload.onProgress?.(sent);
      }
    } finally {
      // An aborted upload (Ctrl-C, the server answering early) must not leave the file open.
      stream.destroy();
    }
    if (sent !== file.size) throw new UploadFileError(`${file.path} shrank while it was uploaded`);
    yield tail;
  }

  return {
    body: Readable.from(parts(), { objectMode: false }),
    headers: {
      "content-type": `multipart/form-data; boundary=${boundary}`,
      "content-length": String(head.length + file.size + tail.length),
    },
  };
}

/** Quoted-string escaping of form-data names, as browsers do it (WHATWG HTML, multipart/form-data). */
function quoted(name: string): string {
  return name.replace(/"/g, "%22").replace(/\r/g, "%0D").replace(/\n/g, "%0A");
}
