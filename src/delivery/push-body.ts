/**
 * The bytes of one push (SPEC §5): the envelope around one event's data object (ONE_BY_ONE) or an
 * array of them (BULK), encoded once and then signed and sent as they are on every attempt.
 */
import type { ChangeEvent } from "../domain/change-event.js";
import { envelopeText, toDataObject } from "../domain/event-payload.js";
import type { Subscription } from "../domain/subscription.js";

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
  const texts = new Array<string>(events.length);
  for (let i = 0; i < events.length; i++)
    texts[i] = JSON.stringify(toDataObject(events[i] as ChangeEvent, options));
  return Buffer.from(envelopeText(pushId, subscription, texts, bulk));
}
