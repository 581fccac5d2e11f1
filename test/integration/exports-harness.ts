/** Export tests: an API with an export worker on one database, and the calls the tests repeat. */
import assert from "node:assert/strict";
import { gunzipSync } from "node:zlib";
import yauzl from "yauzl";
import type { HeraldConfig } from "../../src/config/config.js";
import type { DestinationCopier } from "../../src/jobs/export-run.js";
import type { ExportWorker } from "../../src/jobs/export-worker.js";
import { startExportWorker } from "../../src/jobs/export-worker.js";
import { createLogger } from "../../src/logger.js";
import type { TestApp } from "../helpers/test-app.js";
import { createTestApp } from "../helpers/test-app.js";
import type { Backend } from "../helpers/test-database.js";

export const EXPORTS = "/v5/entities/acme/exports";
export const PROFILES = "/v5/entities/acme/profile-tables/Customers/profiles";

/** A profile table with a subscription, segmentations and text that needs quoting. */
export const CUSTOMERS = {
  name: "Customers",
  attributes: [
    { name: "customerId", type: "CUSTOM", valueType: "STRING", unique: true },
    { name: "emailAddress", type: "EMAIL_ADDRESS", unique: true },
    { name: "firstName", type: "FIRSTNAME" },
    { name: "points", type: "CUSTOM", valueType: "INTEGER" },
    { name: "vip", type: "CUSTOM", valueType: "BOOLEAN" },
    { name: "note", type: "CUSTOM", valueType: "STRING" },
  ],
  subscriptions: [{ name: "newsletter" }],
  segmentations: [
    { name: "Active", type: "SIMPLE" },
    { name: "ClientType", type: "EXCLUSIVE", segments: ["Gold", "Silver", "Bronze"] },
  ],
};

export interface ExportExecution {
  id: string;
  exportId: string;
  status: string;
  rowCount: number | null;
  bytes: number | null;
  fromPosition: number | null;
  toPosition: number | null;
  destination: string | null;
  error: { code: string; message: string } | null;
  _links: { self: { href: string }; file?: { href: string } };
}

export interface ExportTestApp extends TestApp {
  worker: ExportWorker | undefined;
  /** Defines an export (asserts 201); returns its id. */
  define(body: Record<string, unknown>): Promise<string>;
  /** Starts an execution and waits for its end; returns it. */
  run(exportId: string, timeoutMs?: number): Promise<ExportExecution>;
  /** Waits for an execution's end. */
  finished(exportId: string, executionId: string, timeoutMs?: number): Promise<ExportExecution>;
  /** A SUCCESS execution's file, as served. */
  download(
    execution: ExportExecution,
  ): Promise<{ body: Buffer; type: string; disposition: string }>;
  /** Writes a profile through the v5 API (asserts 2xx). */
  profile(body: Record<string, unknown>): Promise<number>;
}

export async function createExportTestApp(
  backend: Backend,
  options: {
    config?: Partial<HeraldConfig>;
    worker?: boolean;
    batchRows?: number;
    copy?: DestinationCopier;
  } = {},
): Promise<ExportTestApp> {
  const t = await createTestApp(backend, options.config ?? {});
  const worker =
    options.worker === false
      ? undefined
      : await startExportWorker({
          db: t.database.db,
          logSignals: t.database.logSignals,
          jobSignals: t.database.jobSignals,
          logger: createLogger("silent"),
          config: t.config,
          pollMs: 50,
          leaseMs: 5_000,
          ...(options.batchRows ? { batchRows: options.batchRows } : {}),
          ...(options.copy ? { copy: options.copy } : {}),
        });
  const finished = async (exportId: string, executionId: string, timeoutMs = 60_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const response = await t.request("GET", `${EXPORTS}/${exportId}/executions/${executionId}`);
      assert.equal(response.statusCode, 200, response.body);
      const execution = response.json() as ExportExecution;
      if (!["PENDING", "RUNNING"].includes(execution.status)) return execution;
      if (Date.now() > deadline)
        throw new Error(`execution ${executionId} still ${execution.status} after ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  };
  return {
    ...t,
    worker,
    define: async (body) => {
      const response = await t.request("POST", EXPORTS, body);
      assert.equal(response.statusCode, 201, response.body);
      return (response.json() as { id: string }).id;
    },
    finished,
    run: async (exportId, timeoutMs) => {
      const started = await t.request("POST", `${EXPORTS}/${exportId}/executions`);
      assert.equal(started.statusCode, 202, started.body);
      const { executionId } = started.json() as { executionId: string };
      assert.equal(started.headers.location, `${EXPORTS}/${exportId}/executions/${executionId}`);
      return finished(exportId, executionId, timeoutMs);
    },
    download: async (execution) => {
      assert.ok(execution._links.file, `execution ${execution.id} has no file link`);
      const response = await t.request("GET", execution._links.file.href);
      assert.equal(response.statusCode, 200, response.body);
      return {
        body: response.rawPayload,
        type: String(response.headers["content-type"]),
        disposition: String(response.headers["content-disposition"]),
      };
    },
    profile: async (body) => {
      const response = await t.request("PUT", PROFILES, body);
      assert.ok([200, 201].includes(response.statusCode), response.body);
      return (response.json() as { profileId: number }).profileId;
    },
    close: async () => {
      await worker?.stop();
      await t.close();
    },
  };
}

export function gunzip(body: Buffer): string {
  return gunzipSync(body).toString("utf8");
}

/** The entries of a ZIP archive, read back with yauzl. */
export async function unzip(body: Buffer): Promise<Record<string, string>> {
  const zip = await new Promise<yauzl.ZipFile>((resolve, reject) =>
    yauzl.fromBuffer(body, { lazyEntries: true }, (error, file) =>
      error ? reject(error) : resolve(file),
    ),
  );
  const entries: Record<string, string> = {};
  await new Promise<void>((resolve, reject) => {
    zip.on("entry", (entry: yauzl.Entry) => {
      zip.openReadStream(entry, (error, stream) => {
        if (error) return reject(error);
        const chunks: Buffer[] = [];
        stream.on("data", (chunk: Buffer) => chunks.push(chunk));
        stream.on("end", () => {
          entries[entry.fileName] = Buffer.concat(chunks).toString("utf8");
          zip.readEntry();
        });
        stream.on("error", reject);
      });
    });
    zip.on("end", () => resolve());
    zip.on("error", reject);
    zip.readEntry();
  });
  return entries;
}
