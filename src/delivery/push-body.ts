/**
 * The bytes of one push (SPEC §5): the envelope around one event's data object (ONE_BY_ONE) or an
 * array of them (BULK), encoded once and then signed and sent as they are on every attempt.
 *
 * Each event's data text (DataTextWriter.dataText; the same as envelopeText, which is
 * property-tested in event-payload.test.ts) is written as UTF-8 into a scratch buffer as soon as it is made, and the
 * push's bytes are one copy of that buffer's used part. No data object is built per event, and no
 * text of the whole block exists: linking a block's few thousand pieces into one string and then
 * flattening and encoding it costs far more per event, most of it in allocating and faulting in the
 * memory of strings too large for V8's young generation (docs/performance-notes.md, "Push bodies").
 *
 * Payload version 1 (`subscription.payloadVersion`, event-payload-v1.ts) changes only the event
 * objects: each is built as an object and stringified (a compatibility format, not the fast path),
 * in the same envelope.
 */
import type { ChangeEvent } from "../domain/change-event.js";
import type { PayloadOptions, PrerenderedParts } from "../domain/event-payload.js";
import { DataTextWriter, envelopeFrame } from "../domain/event-payload.js";
import { toEventObjectV1 } from "../domain/event-payload-v1.js";
import type { Subscription } from "../domain/subscription.js";
import { prerenderedParts } from "../storage/log-page-codec.js";

/**
 * Reused between calls (encoding is synchronous, so one at a time): grows to the largest push seen,
 * bounded by the largest block a subscription may ask for.
 */
let scratch = Buffer.allocUnsafeSlow(256 * 1024);

/** Writes `text` at `offset`, growing the scratch buffer first when it might not fit. */
function put(text: string, offset: number): number {
  // A UTF-16 code unit never takes more than 3 bytes in UTF-8.
  const worst = text.length * 3;
  if (offset + worst > scratch.length) {
    const grown = Buffer.allocUnsafeSlow(Math.max(scratch.length * 2, offset + worst));
    scratch.copy(grown, 0, 0, offset);
    scratch = grown;
  }
  return offset + scratch.write(text, offset);
}

/** The JSON text of one event object in a push (the `data`, or one item of it). */
type EventText = (
  event: ChangeEvent,
  options: PayloadOptions,
  parts: PrerenderedParts | undefined,
) => string;

const eventTextV1: EventText = (event, options) => JSON.stringify(toEventObjectV1(event, options));

/** This encoder's data text writer: what it remembers serves every push encoded here. */
const dataTexts = new DataTextWriter();
const eventTextV2: EventText = (event, options, parts) => dataTexts.dataText(event, options, parts);

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
  const eventText: EventText = subscription.payloadVersion === 1 ? eventTextV1 : eventTextV2;
  const [head, tail] = envelopeFrame(pushId, subscription);
  let at = put(bulk ? head + "[" : head, 0);
  const count = bulk ? events.length : Math.min(1, events.length);
  for (let i = 0; i < count; i++) {
    const event = events[i] as ChangeEvent;
    const text = eventText(event, options, prerenderedParts(event));
    at = put(i > 0 ? "," + text : text, at);
  }
  if (!bulk && count === 0) at = put("null", at);
  at = put(bulk ? "]" + tail : tail, at);
  const body = Buffer.allocUnsafeSlow(at);
  scratch.copy(body, 0, 0, at);
  return body;
}
