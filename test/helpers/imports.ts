/** Import tests: an API with an import worker on one database, uploads, and files to upload. */
import { gzipSync } from "node:zlib";
import yazl from "yazl";
import { startImportWorker } from "../../src/jobs/import-worker.js";
import type { ImportWorker } from "../../src/jobs/import-worker.js";
import { createLogger } from "../../src/logger.js";
import type { HeraldConfig } from "../../src/config/config.js";
import type { TestApp } from "./test-app.js";
import { createTestApp } from "./test-app.js";
import type { Backend } from "./test-database.js";
import type { Part } from "./multipart.js";
import { multipartBody } from "./multipart.js";

export interface ImportTestApp extends TestApp {
  worker: ImportWorker;
  /** POSTs a multipart body to `url` (default: the one-shot executions of entity acme). */
  upload(parts: readonly Part[], url?: string): ReturnType<TestApp["request"]>;
  /** Uploads a file with a definition; returns the execution id (asserts 202). */
  startImport(
    definition: unknown,
    file: { name: string; content: string | Buffer },
  ): Promise<string>;
  /** Polls an execution until it is final; returns its JSON. */
  finished(id: string, timeoutMs?: number): Promise<Execution>;
}

export interface Execution {
  id: string;
  etlId: string | null;
  status: string;
  counts: { read: number; created: number; updated: number; unchanged: number; rejected: number };
  rejectedRows: { line: number; column: string | null; code: string; message: string }[];
  error: { code: string; message: string } | null;
  progress: { bytesRead: number; bytesTotal: number; rowsRead: number };
  file: { name: string; bytes: number; sha256: string };
}

export const EXECUTIONS_URL = "/mass-imports/v5/entities/acme/etl-executions";

export async function createImportTestApp(
  backend: Backend,
  overrides: Partial<HeraldConfig> = {},
  worker: { batchRows?: number; leaseMs?: number } = {},
): Promise<ImportTestApp> {
  const t = await createTestApp(backend, overrides);
  const importWorker = await startImportWorker({
    db: t.database.db,
    logSignals: t.database.logSignals,
    jobSignals: t.database.jobSignals,
    logger: createLogger("silent"),
    config: t.config,
    pollMs: 50,
    leaseMs: worker.leaseMs ?? 5_000,
    ...(worker.batchRows ? { batchRows: worker.batchRows } : {}),
  });
  const upload = (parts: readonly Part[], url = EXECUTIONS_URL) => {
    const body = multipartBody(parts);
    return t.app.inject({
      method: "POST",
      url,
      headers: { authorization: `Bearer ${t.token}`, "content-type": body.contentType },
      payload: body.payload,
    });
  };
  const app: ImportTestApp = {
    ...t,
    worker: importWorker,
    upload,
    startImport: async (definition, file) => {
      const response = await upload([
        { name: "etlDefinition", content: JSON.stringify(definition) },
        { name: "inputFile", filename: file.name, content: file.content },
      ]);
      if (response.statusCode !== 202)
        throw new Error(`upload answered ${response.statusCode}: ${response.body}`);
      return (response.json() as { executionId: string }).executionId;
    },
    finished: async (id, timeoutMs = 30_000) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const response = await t.request("GET", `${EXECUTIONS_URL}/${id}`);
        const execution = response.json() as Execution;
        if (!["PENDING", "RUNNING"].includes(execution.status)) return execution;
        if (Date.now() > deadline)
          throw new Error(`execution ${id} still ${execution.status} after ${timeoutMs} ms`);
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    },
    close: async () => {
      await importWorker.stop();
      await t.close();
    },
  };
  return app;
}

/** A ZIP archive of the given entries, written by yazl. */
export async function zipOf(entries: Record<string, string | Buffer>): Promise<Buffer> {
  const zip = new yazl.ZipFile();
  for (const [name, content] of Object.entries(entries)) {
    if (name.endsWith("/")) zip.addEmptyDirectory(name.slice(0, -1));
    else zip.addBuffer(Buffer.from(content), name);
  }
  zip.end();
  const chunks: Buffer[] = [];
  for await (const chunk of zip.outputStream as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

export function gzipOf(content: string | Buffer): Buffer {
  return gzipSync(Buffer.from(content));
}

/** A profile table with every kind of target an import maps to. */
export const CUSTOMERS = {
  name: "Customers",
  attributes: [
    { name: "customerId", type: "CUSTOM", valueType: "STRING", unique: true },
    { name: "emailAddress", type: "EMAIL_ADDRESS", unique: true, mandatory: true },
    { name: "firstName", type: "FIRSTNAME" },
    { name: "points", type: "CUSTOM", valueType: "INTEGER" },
    { name: "born", type: "BIRTHDATE" },
    { name: "vip", type: "CUSTOM", valueType: "BOOLEAN" },
  ],
  subscriptions: [{ name: "newsletter" }],
  segmentations: [
    { name: "Active", type: "SIMPLE" },
    { name: "ClientType", type: "EXCLUSIVE", segments: ["Gold", "Silver", "Bronze"] },
  ],
};

/** A custom table with a declared UPDATE event and a CREATE rule. */
export const ORDERS = {
  name: "Orders",
  type: "INTERACTIONS",
  primaryKeyAttribute: "orderId",
  attributes: [
    { name: "orderId", valueType: "STRING", mandatory: true, unique: true },
    {
      name: "status",
      valueType: "STRING",
      valueRestriction: { acceptedValues: ["NEW", "SHIPPED"] },
    },
    { name: "amount", valueType: "NUMBER" },
    { name: "ref", valueType: "STRING", unique: true },
  ],
  eventsToTrigger: [
    {
      name: "order-shipped",
      triggerRules: [
        {
          onOperation: "UPDATE",
          onAnyAttribute: ["status"],
          matchingConditions: {
            stateBeforeOperation: [{ attribute: "status", operator: "!=", value: "SHIPPED" }],
            stateAfterOperation: [{ attribute: "status", operator: "=", value: "SHIPPED" }],
          },
        },
      ],
    },
    {
      name: "big-order",
      triggerRules: [
        {
          onOperation: "CREATE",
          matchingConditions: {
            stateAfterOperation: [{ attribute: "amount", operator: ">", value: 100 }],
          },
        },
      ],
    },
  ],
};
