/**
 * The bytes of one push (SPEC §5): the envelope around one event's data object (ONE_BY_ONE) or an
 * array of them (BULK), encoded once and then signed and sent as they are on every attempt.
 *
 * The text is concatenated from each event's data text (dataText; the same as envelopeText, which is
 * property-tested in event-payload.test.ts): V8 links the pieces and copies them once, into the
 * bytes. No data object is built per event.
 */
import type { ChangeEvent } from "../domain/change-event.js";
import { dataText, envelopeFrame } from "../domain/event-payload.js";
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
  let body = bulk ? head + "[" : head;
  const count = bulk ? events.length : Math.min(1, events.length);
  for (let i = 0; i < count; i++) {
    const event = events[i] as ChangeEvent;
    const text = dataText(event, options, prerenderedParts(event));
    body += i > 0 ? "," + text : text;
  }
  if (!bulk && count === 0) body += "null";
  return Buffer.from(bulk ? body + "]" + tail : body + tail);
}
