/**
 * File reference tests: an API with an import worker and a file synchronisation worker on one
 * database, a temporary drop directory, and shortcuts to define references and wait for their
 * synchronisations.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { HeraldConfig } from "../../src/config/config.js";
import type { FileSyncWorker } from "../../src/jobs/file-sync-worker.js";
import { startFileSyncWorker } from "../../src/jobs/file-sync-worker.js";
import { createLogger } from "../../src/logger.js";
import type { ImportTestApp } from "./imports.js";
import { createImportTestApp } from "./imports.js";
import type { Backend } from "./test-database.js";

export const REFERENCES = "/v5/entities/acme/file-references";

export interface SynchronizationJson {
  id: string;
  fileReferenceId: string;
  status: string;
  startedAt: string | null;
  finishedAt: string | null;
  fileName: string | null;
  bytes: number | null;
  sha256: string | null;
  error: { code: string; message: string } | null;
  _links: Record<string, { href: string }>;
}

export interface FileSyncTestApp extends ImportTestApp {
  syncWorker: FileSyncWorker;
  /** HERALD_FILE_DROP_DIR of this app (removed at close). */
  dropDir: string;
  /** POSTs a reference; returns its id (asserts 201). */
  createReference(body: unknown): Promise<string>;
  /** Starts a synchronisation; returns its id (asserts 202). */
  synchronize(referenceId: string): Promise<string>;
  /** Polls a synchronisation until it is final; returns its JSON. */
  synced(referenceId: string, syncId: string, timeoutMs?: number): Promise<SynchronizationJson>;
}

/**
 * What a job worker of a test app starts with (a file synchronisation or an export worker): the
 * app's database, signals, configuration and secrets, polling every 50 ms under a 5 s lease.
 */
export function jobWorkerOptions(t: ImportTestApp) {
  return {
    db: t.database.db,
    logSignals: t.database.logSignals,
    jobSignals: t.database.jobSignals,
    logger: createLogger("silent"),
    config: t.config,
    secrets: t.database.secrets,
    pollMs: 50,
    leaseMs: 5_000,
  };
}

export async function createFileSyncTestApp(
  backend: Backend,
  overrides: Partial<HeraldConfig> = {},
  options: { trustedCa?: string | Buffer; leaseMs?: number } = {},
): Promise<FileSyncTestApp> {
  const dropDir = mkdtempSync(join(tmpdir(), "herald-drop-"));
  const t = await createImportTestApp(backend, { fileDropDir: dropDir, ...overrides });
  const syncWorker = await startFileSyncWorker({
    ...jobWorkerOptions(t),
    leaseMs: options.leaseMs ?? 5_000,
    ...(options.trustedCa !== undefined ? { trustedCa: options.trustedCa } : {}),
  });
  const synced = async (referenceId: string, syncId: string, timeoutMs = 30_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const response = await t.request(
        "GET",
        `${REFERENCES}/${referenceId}/synchronizations/${syncId}`,
      );
      if (response.statusCode !== 200)
        throw new Error(`synchronisation ${syncId}: ${response.statusCode} ${response.body}`);
      const sync = response.json() as SynchronizationJson;
      if (!["PENDING", "RUNNING"].includes(sync.status)) return sync;
      if (Date.now() > deadline)
        throw new Error(`synchronisation ${syncId} still ${sync.status} after ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  };
  return {
    ...t,
    syncWorker,
    dropDir,
    createReference: async (body) => {
      const response = await t.request("POST", REFERENCES, body);
      if (response.statusCode !== 201)
        throw new Error(`POST file-references answered ${response.statusCode}: ${response.body}`);
      return (response.json() as { id: string }).id;
    },
    synchronize: async (referenceId) => {
      const response = await t.request("POST", `${REFERENCES}/${referenceId}/synchronizations`);
      if (response.statusCode !== 202)
        throw new Error(`POST synchronizations answered ${response.statusCode}: ${response.body}`);
      return (response.json() as { synchronizationId: string }).synchronizationId;
    },
    synced,
    close: async () => {
      await syncWorker.stop();
      await t.close();
      rmSync(dropDir, { recursive: true, force: true });
    },
  };
}
