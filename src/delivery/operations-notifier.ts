/**
 * Operational events (SPEC §6 "an operational event is raised"): an endpoint failing for 24 h, a
 * subscription deactivated after 3 days, a subscription that recovered. Each one is logged
 * (warn, or error for a deactivation) and, when HERALD_OPERATIONS_WEBHOOK_URL is set, POSTed there as
 * JSON with a timeout and a few bounded retries. `notify` never throws and never blocks delivery for
 * long: callers may `void` it.
 *
 * The operations URL is the operator's own (not a customer's target), so it is not subject to the
 * SSRF guard nor to HERALD_ALLOW_INSECURE_TARGETS.
 */
import type { Logger } from "pino";
import type { HeraldConfig } from "../config/config.js";
import type { OperationalEventType } from "../domain/endpoint-health.js";
import { HERALD_VERSION } from "../version.js";

export interface OperationalEvent {
  type: OperationalEventType;
  subscriptionId: number;
  /** The entity's name. */
  entity: string;
  reason: string;
  at: Date;
}

/** What became of one notification (for logs and tests). */
export type NotifyResult =
  | { kind: "logged-only" }
  | { kind: "posted"; attempts: number; status: number }
  | { kind: "gave-up"; attempts: number; lastError: string };

export interface OperationsNotifier {
  notify(event: OperationalEvent): Promise<NotifyResult>;
  /** Waits for notifications in flight (each is bounded by its timeout and retries). */
  close(): Promise<void>;
}

export interface OperationsNotifierOptions {
  config: Pick<HeraldConfig, "operationsWebhookUrl">;
  logger: Logger;
  /** Per POST. Default 5 s. */
  timeoutMs?: number;
  /** Waits between attempts; its length + 1 is the number of attempts. Default 1 s, 5 s. */
  retryDelaysMs?: readonly number[];
}

export const OPERATIONS_NOTIFIER_DEFAULTS = {
  timeoutMs: 5_000,
  retryDelaysMs: [1_000, 5_000],
} as const;

const LOG_LEVELS: Record<OperationalEventType, "warn" | "error"> = {
  SUBSCRIPTION_FAILING_WARNING: "warn",
  SUBSCRIPTION_DISABLED: "error",
  SUBSCRIPTION_RECOVERED: "warn",
};

/** The JSON body POSTed to the operations URL. */
export function operationalEventBody(event: OperationalEvent): string {
  return JSON.stringify({
    type: event.type,
    subscriptionId: event.subscriptionId,
    entity: event.entity,
    reason: event.reason,
    at: event.at.toISOString(),
    herald: { version: HERALD_VERSION },
  });
}

/** 5xx, 429 and network errors are worth another try; other answers are final. */
function retryable(status: number): boolean {
  return status >= 500 || status === 429 || status === 408;
}

export function createOperationsNotifier(options: OperationsNotifierOptions): OperationsNotifier {
  const url = options.config.operationsWebhookUrl;
  const timeoutMs = options.timeoutMs ?? OPERATIONS_NOTIFIER_DEFAULTS.timeoutMs;
  const delays = options.retryDelaysMs ?? OPERATIONS_NOTIFIER_DEFAULTS.retryDelaysMs;
  const logger = options.logger.child({ component: "operations-notifier" });
  const inFlight = new Set<Promise<NotifyResult>>();

  async function post(body: string): Promise<NotifyResult> {
    let lastError = "";
    for (let attempt = 1; attempt <= delays.length + 1; attempt++) {
      try {
        const response = await fetch(url!, {
          method: "POST",
          headers: { "content-type": "application/json", "user-agent": `Herald/${HERALD_VERSION}` },
          body,
          redirect: "manual",
          signal: AbortSignal.timeout(timeoutMs),
        });
        await response.body?.cancel().catch(() => {});
        if (response.status >= 200 && response.status < 300)
          return { kind: "posted", attempts: attempt, status: response.status };
        lastError = `HTTP ${response.status}`;
        if (!retryable(response.status)) return { kind: "gave-up", attempts: attempt, lastError };
      } catch (error) {
        lastError = `${(error as Error).name}: ${(error as Error).message}`;
      }
      const delay = delays[attempt - 1];
      if (delay === undefined) return { kind: "gave-up", attempts: attempt, lastError };
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
    return { kind: "gave-up", attempts: delays.length + 1, lastError };
  }

  async function deliver(event: OperationalEvent): Promise<NotifyResult> {
    const fields = {
      operationalEvent: event.type,
      subscriptionId: event.subscriptionId,
      entity: event.entity,
      reason: event.reason,
      at: event.at.toISOString(),
    };
    logger[LOG_LEVELS[event.type]](fields, `operational event ${event.type}`);
    if (!url) return { kind: "logged-only" };
    try {
      const result = await post(operationalEventBody(event));
      if (result.kind === "gave-up")
        logger.error(
          { ...fields, attempts: result.attempts, lastError: result.lastError },
          "could not POST the operational event to HERALD_OPERATIONS_WEBHOOK_URL",
        );
      return result;
    } catch (error) {
      // post() catches its own failures; this is a last guard so notify never rejects.
      logger.error({ ...fields, err: error }, "operational event notification crashed");
      return { kind: "gave-up", attempts: 0, lastError: String(error) };
    }
  }

  return {
    notify(event) {
      const running = deliver(event);
      inFlight.add(running);
      void running.finally(() => inFlight.delete(running));
      return running;
    },
    async close() {
      await Promise.allSettled([...inFlight]);
    },
  };
}
