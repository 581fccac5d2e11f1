/** What the delivery engine sends: pushes of one or more events, keyed by record for ordering. */
import { randomUUID } from "node:crypto";
import type { ChangeEvent } from "../domain/change-event.js";
import type { Subscription } from "../domain/subscription.js";
import type { ParkedState } from "./parked-state.js";
import { encodePushBody } from "./push-body.js";

/** A matching event waiting to be sent, with its ordering key. */
export interface PendingEvent {
  key: string;
  event: ChangeEvent;
}

export interface Push {
  /** The envelope id and `webhook-id`: the same on every attempt. */
  id: string;
  events: PendingEvent[];
  /** UTF-8 bytes of the envelope: encoded once, then signed and sent as they are on every attempt. */
  body: Buffer;
  attempts: number;
  /** How many pushes had been delivered when this one first failed (parking and circuit evidence). */
  deliveriesAtFirstFailure?: number;
  /** The head push of a parked record (its events are in `parked_events`, not in the scheduler). */
  parked?: ParkedState;
  /** Sent as the circuit's probe. */
  probe?: boolean;
}

/**
 * The ordering key of an event: one record of one source. The unit separator keeps it storable in
 * PostgreSQL text (parked records).
 */
export function recordKeyOf(event: Pick<ChangeEvent, "source" | "sourceId" | "recordKey">): string {
  return `${event.source}\u001f${event.sourceId}\u001f${event.recordKey}`;
}

/** The log position of the push's first event. */
export function firstPosition(push: Push): number {
  return push.events[0]?.event.position ?? 0;
}

/** A new push of `items` for the subscription: one event, or a BULK block of them. */
export function newPush(items: PendingEvent[], subscription: Subscription, bulk: boolean): Push {
  const id = randomUUID();
  const events = items.map((item) => item.event);
  return { id, events: items, body: encodePushBody(id, subscription, events, bulk), attempts: 0 };
}
