/**
 * The BULK bench's endpoint, in a process of its own (as a real receiver would be: on another
 * machine, not on the worker's event loop). Started by startReceiverProcess (receiver-launch.ts) with an
 * IPC channel; it listens on loopback, reads every body, counts its events without parsing it
 * (countEvents), and answers 200 once the body is in.
 *
 * Every SAMPLE_EVERY-th push (the first one included) is also checked the way a receiver would:
 * its Standard Webhooks signature with the subscription's secret (`HERALD_BENCH_SECRET`), its
 * `webhook-id` against the envelope's `id`, and its JSON parsed, `data` holding exactly the events
 * counted (an array, or the one object of a ONE_BY_ONE push), each with its `_event.id`. A push that
 * fails a check is counted in `rejected`.
 *
 * With `HERALD_BENCH_ARRIVALS=1` it also notes when each push arrived (its body read in full) and
 * keeps the body; asked, it parses them and answers when each event arrived, by its profile and
 * version (the benches' events are profile UPDATEs, so a profile's version names its event). The
 * parsing waits for the question, so the receiver's work while pushes arrive stays the same.
 *
 * Messages: posts `{ url }` once listening; answers "counts" with a ReceiverCounts and "arrivals"
 * with the Arrivals since the last such answer; exits on "close" or when the bench goes away.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { countEvents } from "./event-count.js";

export interface ReceiverCounts {
  requests: number;
  events: number;
  /** Pushes checked in full (signature, id, JSON). */
  checked: number;
  /** Checked pushes that failed a check. */
  rejected: number;
}

/** When each event arrived (ms since the epoch, to the µs), under `<profileId>:<version>`. */
export type Arrivals = Record<string, number>;

const SAMPLE_EVERY = 50;

const secret = process.env.HERALD_BENCH_SECRET ?? "";
const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
const counts: ReceiverCounts = { requests: 0, events: 0, checked: 0, rejected: 0 };
let started = 0;
const keepArrivals = process.env.HERALD_BENCH_ARRIVALS === "1";
let arrived: { body: Buffer; at: number }[] = [];

/** The checks a receiver makes (SPEC §5, Standard Webhooks), on one push. */
function pushHolds(headers: Record<string, unknown>, body: Buffer, events: number): boolean {
  const id = headers["webhook-id"];
  const timestamp = headers["webhook-timestamp"];
  const signatures = headers["webhook-signature"];
  if (typeof id !== "string" || typeof timestamp !== "string" || typeof signatures !== "string")
    return false;
  const expected = createHmac("sha256", key).update(`${id}.${timestamp}.`).update(body).digest();
  const signed = signatures.split(" ").some((signature) => {
    const given = Buffer.from(signature.replace(/^v1,/, ""), "base64");
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
  if (!signed) return false;
  const envelope = JSON.parse(body.toString("utf8")) as { id?: unknown; data?: unknown };
  const data = Array.isArray(envelope.data) || events !== 1 ? envelope.data : [envelope.data];
  return (
    envelope.id === id &&
    Array.isArray(data) &&
    data.length === events &&
    data.every((item: { _event?: { id?: unknown } }) => typeof item._event?.id === "string")
  );
}

/** Each event of the kept bodies under `<profileId>:<version>`, with its push's arrival. */
function arrivals(): Arrivals {
  const answer: Arrivals = {};
  for (const { body, at } of arrived) {
    const { data } = JSON.parse(body.toString("utf8")) as { data: unknown };
    for (const item of (Array.isArray(data) ? data : [data]) as {
      profileId?: unknown;
      _event?: { version?: unknown };
    }[]) {
      const key = `${String(item.profileId)}:${String(item._event?.version)}`;
      // A push sent again (at-least-once) does not move the first arrival.
      answer[key] ??= at;
    }
  }
  arrived = [];
  return answer;
}

const server = createServer((req, res) => {
  const sampled = started++ % SAMPLE_EVERY === 0;
  const kept = sampled || keepArrivals;
  const chunks: Buffer[] = [];
  const carry = { tail: Buffer.alloc(0) };
  let events = 0;
  req.on("data", (chunk: Buffer) => {
    events += countEvents(chunk, carry);
    if (kept) chunks.push(chunk);
  });
  req.on("end", () => {
    counts.requests++;
    counts.events += events;
    if (keepArrivals)
      arrived.push({ body: Buffer.concat(chunks), at: performance.timeOrigin + performance.now() });
    if (sampled) {
      counts.checked++;
      let holds: boolean;
      try {
        holds = pushHolds(req.headers, Buffer.concat(chunks), events);
      } catch {
        holds = false;
      }
      if (!holds) counts.rejected++;
    }
    res.writeHead(200, { "content-length": "0" });
    res.end();
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () => {
  const { port } = server.address() as AddressInfo;
  process.send?.({ url: `http://127.0.0.1:${port}/hook` });
});
process.on("message", (message) => {
  if (message === "counts") process.send?.(counts);
  else if (message === "arrivals") process.send?.(arrivals());
  else if (message === "close") {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  }
});
// The bench that started it is gone (it crashed or was killed before "close"): nothing will ask.
process.on("disconnect", () => process.exit(0));
