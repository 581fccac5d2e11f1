/**
 * The subscriptions `herald listen` holds while it runs: one per event type of one table, pointed
 * at its local receiver, each created with an `expiresAt` a little ahead (docs/subscriptions.md
 * "Temporary subscriptions") that the command pushes forward while it runs. Deleted when the command
 * stops; if it is killed, nothing renews them and Herald's housekeeping deletes them.
 */
import type { EventType } from "../domain/change-event.js";
import type { HeraldClient } from "./api-client.js";
import { HeraldApiError } from "./api-client.js";
import { entitySegment, isApiError } from "./cli-support.js";
import type { TableInfo } from "./table-directory.js";

interface Held {
  eventType: EventType;
  id: number;
  secret: string;
}

/** What a renewal round did, for the command to report. */
export interface RenewalReport {
  /** Subscriptions that were gone (deleted by someone, or expired) and were made again. */
  recreated: { eventType: EventType; oldId: number; newId: number }[];
  /** The first failure of the round, when some renewal failed (Herald unreachable, say). */
  failure: Error | undefined;
}

export class TemporarySubscriptions {
  #held: Held[] = [];
  readonly #path: string;

  constructor(
    private readonly client: HeraldClient,
    entity: string,
    private readonly table: TableInfo,
    private readonly targetUrl: string,
    private readonly expirySeconds: number,
  ) {
    this.#path = `/v4/entity/${entitySegment(entity)}/webhookSubscription`;
  }

  ids(): number[] {
    return this.#held.map((h) => h.id);
  }

  /** The secrets a push to the receiver may be signed with. */
  secrets(): string[] {
    return this.#held.map((h) => h.secret);
  }

  #expiresAt(): string {
    return new Date(Date.now() + this.expirySeconds * 1000).toISOString();
  }

  async #create(eventType: EventType): Promise<Held> {
    try {
      const answer = await this.client.sendJson<{ id?: unknown; secret?: unknown }>(
        "POST",
        this.#path,
        {
          on: this.table.kind,
          onElementId: this.table.id,
          eventType,
          targetUrl: this.targetUrl,
          expiresAt: this.#expiresAt(),
        },
      );
      const { id, secret } = answer.json;
      if (typeof id !== "number" || typeof secret !== "string")
        throw new HeraldApiError(
          answer.status,
          "HERALD_CLI_BAD_ANSWER",
          "Herald created a subscription but its answer has no id or secret",
          [],
        );
      return { eventType, id, secret };
    } catch (error) {
      throw refusedTarget(error, this.targetUrl) ?? error;
    }
  }

  /** Creates one subscription per event type. On a failure, those already made are deleted again. */
  async createAll(eventTypes: readonly EventType[]): Promise<void> {
    try {
      for (const eventType of eventTypes) this.#held.push(await this.#create(eventType));
    } catch (error) {
      await this.deleteAll();
      throw error;
    }
  }

  /** Pushes every `expiresAt` forward; one that is gone is made again (new id, new secret). */
  async renewAll(): Promise<RenewalReport> {
    const report: RenewalReport = { recreated: [], failure: undefined };
    for (const held of [...this.#held]) {
      try {
        await this.client.sendJson("PATCH", `${this.#path}/${held.id}`, {
          expiresAt: this.#expiresAt(),
        });
      } catch (error) {
        try {
          if (!isApiError(error, 404)) throw error;
          const made = await this.#create(held.eventType);
          this.#held[this.#held.indexOf(held)] = made;
          report.recreated.push({ eventType: held.eventType, oldId: held.id, newId: made.id });
        } catch (failure) {
          report.failure ??= failure as Error;
        }
      }
    }
    return report;
  }

  /**
   * Deletes every subscription held (one already gone counts as deleted); returns the failures.
   * `signal` bounds the time a Herald that does not answer can hold the command up.
   */
  async deleteAll(signal?: AbortSignal): Promise<{ id: number; error: Error }[]> {
    const failures: { id: number; error: Error }[] = [];
    for (const held of this.#held) {
      try {
        await this.client.sendJson("DELETE", `${this.#path}/${held.id}`, undefined, signal);
      } catch (error) {
        if (!isApiError(error, 404)) failures.push({ id: held.id, error: error as Error });
      }
    }
    this.#held = this.#held.filter((h) => failures.some((f) => f.id === h.id));
    return failures;
  }
}

/**
 * Herald refusing the receiver's address (SPEC §4: loopback and plain http need
 * HERALD_ALLOW_INSECURE_TARGETS) as the one thing to do about it, or undefined for other errors.
 */
function refusedTarget(error: unknown, targetUrl: string): HeraldApiError | undefined {
  const refused =
    isApiError(error, 422, "HERALD_BLOCKED_TARGET") ||
    (isApiError(error, 400, "HERALD_VALIDATION") &&
      error.details.some((d) => d.path === "targetUrl"));
  if (!refused) return undefined;
  return new HeraldApiError(
    (error as HeraldApiError).status,
    (error as HeraldApiError).code,
    `Herald refuses to push to this machine (${targetUrl}): start Herald with --allow-insecure-targets ` +
      "(or HERALD_ALLOW_INSECURE_TARGETS=true), for local development only, and run herald listen again",
    [],
  );
}
