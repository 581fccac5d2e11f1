/**
 * What the parts of the API are handed: the Fastify instance they register on (with TypeBox as its
 * type provider) and the deps that buildApp makes, or is given by main.ts, for every route module.
 * A module of its own, importing no route, so that buildApp, the plugins and the route modules all
 * depend on it and none of them on each other.
 */
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import type { FastifyBaseLogger, FastifyInstance, RawServerDefault } from "fastify";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { ProfileUpserts } from "../capture/profile-upsert.js";
import type { TableCache } from "./table-cache.js";
import type { HeraldConfig } from "../config/config.js";
import type { SecretBox } from "../domain/secret-box.js";
import type { Database } from "../storage/database.js";
import type { JobSignals } from "../storage/job-signals.js";
import type { LogSignals } from "../storage/log-signals.js";
import type { Authenticator, EntityCache } from "./auth.js";

export type HeraldApp = FastifyInstance<
  RawServerDefault,
  IncomingMessage,
  ServerResponse,
  FastifyBaseLogger,
  TypeBoxTypeProvider
>;

/** Hooks the API calls to wake other parts of the process (set by main; no-ops in API-only tests). */
export interface AppHooks {
  /** A subscription was created, changed or deleted. */
  subscriptionsChanged(): void;
}

export interface AppDeps {
  db: Database;
  /** This process's log signals: capture wakes the sequencer through them (main.ts makes them). */
  logSignals: LogSignals;
  /** This process's job signals: a job the API creates wakes the workers of this process. */
  jobSignals: JobSignals;
  config: HeraldConfig;
  logger: FastifyBaseLogger;
  authenticator: Authenticator;
  /** The tables and entities this API has looked up lately (the write path's hot reads). */
  tableCache: TableCache;
  entityCache: EntityCache;
  /** Profile upserts, group-committed across the requests that arrive together. */
  profileUpserts: ProfileUpserts;
  hooks: AppHooks;
  /** Seals and opens credentials and signing secrets (src/domain/secret-box.ts). */
  secrets: SecretBox;
}
