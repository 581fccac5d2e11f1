/**
 * Counting the events of a push body without parsing it (the bench receivers): one `"_event":`
 * member per data object.
 */
const EVENT_MARK = Buffer.from('"_event":');

/**
 * Occurrences of `"_event":` in a body that arrives in chunks (`carry` holds the end of the previous
 * chunk, so a mark split between two chunks counts once). Every data object has exactly one: its
 * attribute names cannot begin with `_` and a JSON string cannot hold an unescaped quote, so the
 * count is the number of events pushed, found without parsing the JSON.
 */
export function countEvents(chunk: Buffer, carry: { tail: Buffer }): number {
  let count = 0;
  const joined = Buffer.concat([carry.tail, chunk.subarray(0, EVENT_MARK.length - 1)]);
  for (let at = joined.indexOf(EVENT_MARK); at >= 0; at = joined.indexOf(EVENT_MARK, at + 1))
    if (at < carry.tail.length) count++;
  for (let at = chunk.indexOf(EVENT_MARK); at >= 0; at = chunk.indexOf(EVENT_MARK, at + 1)) count++;
  const keep = EVENT_MARK.length - 1;
  carry.tail = Buffer.from(
    chunk.length >= keep
      ? chunk.subarray(chunk.length - keep)
      : Buffer.concat([carry.tail, chunk]).subarray(-keep),
  );
  return count;
}
