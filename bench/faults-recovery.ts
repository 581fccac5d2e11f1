/**
 * Part `recovery` of the faults bench: Herald with all roles (`node bin/herald.mjs start`) reaching
 * PostgreSQL through a TCP proxy (test/helpers/tcp-proxy.ts), CLIENTS clients updating profiles
 * with the v4 `PUT` as fast as they are answered, one ONE_BY_ONE subscription to a loopback endpoint. The proxy is cut for 5 s (every
 * connection reset, new ones refused), then restored. Measured from the restore: the first write
 * answered 2xx, and the first push of an event written after the restore (each write stamps the
 * time its request began, so the endpoint tells which writes came after). Also: how the requests
 * made during the cut were answered (503 with Retry-After is what SPEC §2 asks), and whether the
 * process lived through it.
 */
import { request } from "undici";
import { startTcpProxy } from "../test/helpers/tcp-proxy.js";
import type { BenchOptions } from "./bench-support.js";
import { apiClient, createBenchDatabase, fixed } from "./bench-support.js";
import type { ResultRow } from "./faults-support.js";
import {
  FAULTS_ADMIN_KEY,
  sleep,
  startHeraldProcess,
  startPushRecorder,
  until,
  verdict,
} from "./faults-support.js";

const CUT_MS = 5_000;
const CLIENTS = 8;
const RECORDS_PER_CLIENT = 5;
/** Pause of a client after an answer other than 2xx (after a 2xx it writes again at once). */
const PAUSE_AFTER_FAILURE_MS = 50;
/** A request with no answer by then counts as unanswered (status 0). */
const REQUEST_TIMEOUT_MS = 25_000;
const TARGET_MS = 2_000;

interface Outcome {
  startedAt: number;
  answeredAt: number;
  /** 0: no answer (connection error or timeout). */
  status: number;
  retryAfter: boolean;
}

/** Clients updating their own profiles in turn, each write's `stamp` the time its request began. */
function startWriteLoad(
  origin: string,
  token: string,
  tableId: string,
  records: string[][],
  created = new Set<string>(),
) {
  const outcomes: Outcome[] = [];
  const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" };
  let running = true;
  const write = async (record: string): Promise<Outcome> => {
    const startedAt = Date.now();
    const outcome: Outcome = { startedAt, answeredAt: 0, status: 0, retryAfter: false };
    try {
      // The first write creates the profile (v5 upsert); the others update it with the v4 PUT,
      // one transaction of several statements (lock, read, write, event): the kind of work the
      // cut must find in flight.
      const answer = created.has(record)
        ? await request(`${origin}/v4/entity/bench/table/Customers/profile/customerId=${record}`, {
            method: "PUT",
            headers,
            body: JSON.stringify({ attributes: [{ name: "stamp", value: String(startedAt) }] }),
            headersTimeout: REQUEST_TIMEOUT_MS,
            bodyTimeout: REQUEST_TIMEOUT_MS,
          })
        : await request(`${origin}/v5/entities/bench/profile-tables/${tableId}/profiles`, {
            method: "PUT",
            headers,
            body: JSON.stringify({
              key: { customerId: record },
              attributes: { stamp: String(startedAt) },
            }),
            headersTimeout: REQUEST_TIMEOUT_MS,
            bodyTimeout: REQUEST_TIMEOUT_MS,
          });
      await answer.body.dump();
      outcome.status = answer.statusCode;
      outcome.retryAfter = answer.headers["retry-after"] !== undefined;
    } catch {
      // Unanswered: status 0.
    }
    outcome.answeredAt = Date.now();
    outcomes.push(outcome);
    if (outcome.status === 201) created.add(record);
    return outcome;
  };
  const loops = records.map(async (own) => {
    for (let i = 0; running; i++) {
      const outcome = await write(own[i % own.length]!);
      if (outcome.status < 200 || outcome.status >= 300) await sleep(PAUSE_AFTER_FAILURE_MS);
    }
  });
  return {
    outcomes,
    write,
    stop: async () => {
      running = false;
      await Promise.all(loops);
    },
  };
}

export async function recovery(options: BenchOptions): Promise<ResultRow[]> {
  const admin = new URL(options.adminUrl);
  const bench = await createBenchDatabase(options.adminUrl);
  const proxy = await startTcpProxy({
    host: admin.hostname || "127.0.0.1",
    port: Number(admin.port || 5432),
  });
  const recorder = await startPushRecorder();
  const herald = startHeraldProcess({
    roles: "api,sequencer,worker",
    databaseUrl: proxy.urlFor(bench.url),
    env: { HERALD_DEFAULT_ENTITY: "bench" },
  });
  let load: ReturnType<typeof startWriteLoad> | undefined;
  try {
    const origin = await herald.listening();
    await herald.waitFor("delivery worker started");
    const { call, token } = await apiClient(origin, FAULTS_ADMIN_KEY);
    const table = await call<{ id: string | number }>("POST", "/v5/entities/bench/profile-tables", {
      name: "Customers",
      attributes: [
        { name: "customerId", type: "CUSTOM", valueType: "STRING", unique: true },
        { name: "stamp", type: "CUSTOM", valueType: "STRING" },
      ],
    });
    const tableId = String(table.id);
    const records = Array.from({ length: CLIENTS }, (_, c) =>
      Array.from({ length: RECORDS_PER_CLIENT }, (_, r) => `c${c}r${r}`),
    );
    const created = new Set<string>();
    load = startWriteLoad(origin, token, tableId, [], created);
    // Every profile exists before the subscription: each write of the load is an UPDATE.
    for (const record of records.flat()) {
      const created = await load.write(record);
      if (created.status !== 201) throw new Error(`creating profile ${record}: ${created.status}`);
    }
    await call("POST", "/v4/entity/bench/webhookSubscription", {
      on: "PROFILE_TABLE",
      onElementId: tableId,
      eventType: "UPDATE",
      targetUrl: `${recorder.origin}/updates`,
      pushMode: "ONE_BY_ONE",
    });
    const pushedSince = (since: number) =>
      recorder.pushes.find((p) => p.data.some((d) => Number(d.stamp) >= since))?.receivedAt;

    load = startWriteLoad(origin, token, tableId, records, created);
    const warmUp = Date.now();
    if ((await until(() => pushedSince(warmUp) !== undefined, 30_000)) === undefined)
      throw new Error("no write was delivered within 30 s of the start");
    await sleep(options.warmupMs);

    const cutAt = Date.now();
    proxy.cut();
    await sleep(CUT_MS);
    const restoredAt = Date.now();
    proxy.restore();
    const outcomes = load.outcomes;
    const firstWrite = () =>
      outcomes.find((o) => o.answeredAt >= restoredAt && o.status >= 200 && o.status < 300);
    await until(() => firstWrite() !== undefined && pushedSince(restoredAt) !== undefined, 30_000);
    await sleep(500);
    await load.stop();
    const alive = herald.alive();

    const writeMs = firstWrite() ? firstWrite()!.answeredAt - restoredAt : NaN;
    const ms = (value: number) => (Number.isFinite(value) ? `${fixed(value)} ms` : "none");
    const pushAt = pushedSince(restoredAt);
    const pushMs = pushAt === undefined ? NaN : pushAt - restoredAt;
    const anyPush = recorder.pushes.find((p) => p.receivedAt >= restoredAt)?.receivedAt;
    const during = outcomes.filter((o) => o.startedAt >= cutAt && o.startedAt < restoredAt);
    const with503 = during.filter((o) => o.status === 503);
    const other = new Map<number, number>();
    for (const o of during)
      if (o.status !== 503) other.set(o.status, (other.get(o.status) ?? 0) + 1);
    const otherText =
      other.size === 0
        ? "none"
        : [...other]
            .map(([status, n]) => `${n} × ${status === 0 ? "no answer" : status}`)
            .join(", ");
    const slowest = Math.max(0, ...during.map((o) => o.answeredAt - o.startedAt));
    console.log(
      `recovery: ${CLIENTS} clients writing, a ${CUT_MS / 1000} s cut; during it ${during.length} requests: ` +
        `${with503.length} × 503 (${with503.filter((o) => o.retryAfter).length} with Retry-After), other: ${otherText}; ` +
        `slowest answer ${fixed(slowest)} ms; first 2xx write ${ms(writeMs)} and first push of a later write ` +
        `${ms(pushMs)} after the restore (first push of any event ${ms((anyPush ?? NaN) - restoredAt)}); process ${alive ? "alive" : `DIED (${herald.child.exitCode ?? herald.child.signalCode})`}`,
    );
    const recovered = (ms: number) => Number.isFinite(ms) && ms <= TARGET_MS;
    return [
      [
        "recovery after a 5 s database cut: first 2xx write (ms after restore)",
        Number.isFinite(writeMs) ? fixed(writeMs) : "none in 30 s",
        `≤ ${TARGET_MS}`,
        verdict(recovered(writeMs)),
      ],
      [
        "recovery: first push of an event written after the restore (ms)",
        Number.isFinite(pushMs) ? fixed(pushMs) : "none in 30 s",
        `≤ ${TARGET_MS}`,
        verdict(recovered(pushMs)),
      ],
      [
        "requests during the cut answered 503 (with Retry-After) / all",
        `${with503.length} (${with503.filter((o) => o.retryAfter).length}) / ${during.length}`,
        "all",
        verdict(during.length > 0 && during.every((o) => o.status === 503 && o.retryAfter)),
      ],
      ["Herald process alive after the cut", alive ? "yes" : "no", "yes", verdict(alive)],
    ];
  } finally {
    await load?.stop();
    await herald.stop();
    await proxy.close();
    await recorder.close();
    await bench.drop();
  }
}
