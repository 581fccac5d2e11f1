/**
 * The bytes of one push (SPEC §5): the envelope around one event's data object (ONE_BY_ONE) or an
 * array of them (BULK), encoded once and then signed and sent as they are on every attempt.
 *
 * The text is assembled as pieces in one array and joined once (envelopeText's text, property-tested
 * in event-payload.test.ts): no data object and no intermediate string per event.
 */
import type { ChangeEvent } from "../domain/change-event.js";
import { appendDataText, envelopeFrame } from "../domain/event-payload.js";
import type { Subscription } from "../domain/subscription.js";
import { prerenderedParts } from "../storage/delivery-repository.js";

export function encodePushBody(
  pushId: string,
  subscription: Subscription,
  events: readonly ChangeEvent[],
  bulk: boolean,
): Buffer {
  const options = {
    entityName: subscription.entityName,
    includePrevious: subscription.includePrevious,
  };
  const [head, tail] = envelopeFrame(pushId, subscription);
  const out: string[] = [head];
  if (bulk) out.push("[");
  const count = bulk ? events.length : Math.min(1, events.length);
  for (let i = 0; i < count; i++) {
    if (i > 0) out.push(",");
    const event = events[i] as ChangeEvent;
    appendDataText(out, event, options, prerenderedParts(event));
  }
  if (!bulk && count === 0) out.push("null");
  out.push(bulk ? "]" : "", tail);
  return Buffer.from(out.join(""));
}
