/**
 * The change log as a subscription reads it (the LogSource of its runner's LogFollower): windows
 * read with the SQL pre-filter of the subscription's definition, which a PUT may replace at any time.
 */
import type { ChangeEvent } from "../domain/change-event.js";
import type { Subscription } from "../domain/subscription.js";
import { readLogHead } from "../storage/change-event-repository.js";
import type { Database } from "../storage/database.js";
import { readLogWindow } from "../storage/log-window-reader.js";
import type { LogSource } from "./log-follower.js";

export class SubscriptionLog implements LogSource<Subscription> {
  constructor(
    private readonly db: Database,
    private readonly current: () => Subscription,
  ) {}

  definition(): Subscription {
    return this.current();
  }

  read(
    after: number,
    upTo: number,
    limit: number,
    sub: Subscription,
  ): Promise<readonly ChangeEvent[]> {
    return readLogWindow(this.db, after, upTo, limit, {
      entityId: sub.entityId,
      source: sub.on,
      sourceId: sub.onElementId,
      eventType: sub.eventType,
      onFields: sub.onFields,
      // With neither, events come back lean (state trimmed to what the payload shows).
      conditions: sub.conditions,
      includePrevious: sub.includePrevious,
    });
  }

  head(): Promise<number> {
    return readLogHead(this.db);
  }
}
