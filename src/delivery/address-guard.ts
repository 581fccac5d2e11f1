/**
 * The SSRF guard (DESIGN §6): webhook targets may not reach private, loopback, link-local,
 * unique-local, multicast, reserved or cloud-metadata addresses. The check runs on the address the
 * socket is about to connect to (see http-sender.ts), so a DNS answer that changes between a check
 * and the connection (rebinding) cannot slip past it.
 *
 * The same rules judge a target when a subscription is created or its target changes
 * (`checkTargetHost`), so that a target every push would be refused is refused at once (SPEC §4)
 * instead of failing for days. That early check is a courtesy to the operator, not the defence:
 * the defence stays the check at connect time.
 */
import dns from "node:dns";
import { BlockList, isIP } from "node:net";

/** Ranges no webhook may reach unless the operator allows insecure targets; `label` names them in messages. */
export const FORBIDDEN_RANGES: readonly {
  network: string;
  prefix: number;
  family: "ipv4" | "ipv6";
  label: string;
}[] = [
  { network: "0.0.0.0", prefix: 8, family: "ipv4", label: "the unspecified 'this network' range" },
  { network: "10.0.0.0", prefix: 8, family: "ipv4", label: "a private address" },
  { network: "100.64.0.0", prefix: 10, family: "ipv4", label: "a carrier-grade NAT address" },
  { network: "127.0.0.0", prefix: 8, family: "ipv4", label: "a loopback address" },
  // Includes 169.254.169.254, the cloud metadata service.
  { network: "169.254.0.0", prefix: 16, family: "ipv4", label: "a link-local (metadata) address" },
  { network: "172.16.0.0", prefix: 12, family: "ipv4", label: "a private address" },
  { network: "192.0.0.0", prefix: 24, family: "ipv4", label: "an IETF protocol address" },
  { network: "192.0.2.0", prefix: 24, family: "ipv4", label: "a documentation address" },
  { network: "192.168.0.0", prefix: 16, family: "ipv4", label: "a private address" },
  { network: "198.18.0.0", prefix: 15, family: "ipv4", label: "a benchmarking address" },
  { network: "198.51.100.0", prefix: 24, family: "ipv4", label: "a documentation address" },
  { network: "203.0.113.0", prefix: 24, family: "ipv4", label: "a documentation address" },
  { network: "224.0.0.0", prefix: 4, family: "ipv4", label: "a multicast address" },
  { network: "240.0.0.0", prefix: 4, family: "ipv4", label: "a reserved or broadcast address" },
  { network: "::", prefix: 128, family: "ipv6", label: "the unspecified address" },
  { network: "::1", prefix: 128, family: "ipv6", label: "a loopback address" },
  // IPv4-compatible addresses (deprecated): ::7f00:1 is 127.0.0.1 written the old way.
  { network: "::", prefix: 96, family: "ipv6", label: "an IPv4-compatible address" },
  // IPv4-translated (SIIT) addresses, which a translator turns into any IPv4 address.
  { network: "::ffff:0:0:0", prefix: 96, family: "ipv6", label: "an IPv4-translated address" },
  // NAT64: a translator turns these into any IPv4 address, private ones included.
  { network: "64:ff9b::", prefix: 96, family: "ipv6", label: "a NAT64 address" },
  { network: "100::", prefix: 64, family: "ipv6", label: "a discard address" },
  { network: "2001:db8::", prefix: 32, family: "ipv6", label: "a documentation address" },
  // Includes fd00:ec2::254, the AWS metadata service over IPv6.
  { network: "fc00::", prefix: 7, family: "ipv6", label: "a unique-local (private) address" },
  { network: "fe80::", prefix: 10, family: "ipv6", label: "a link-local address" },
  { network: "fec0::", prefix: 10, family: "ipv6", label: "a site-local address" },
  { network: "ff00::", prefix: 8, family: "ipv6", label: "a multicast address" },
];

const forbidden = new BlockList();
for (const range of FORBIDDEN_RANGES)
  forbidden.addSubnet(range.network, range.prefix, range.family);

/** Each range on its own, to say which one an address fell in (messages only; never on the hot path). */
const labelled = FORBIDDEN_RANGES.map((range) => {
  const list = new BlockList();
  list.addSubnet(range.network, range.prefix, range.family);
  return { list, family: range.family, label: range.label };
});

/**
 * The canonical text of an IPv6 literal (lower case, zeros compressed, as WHATWG URL writes it:
 * `0:0:0:0:0:ffff:127.0.0.1` → `::ffff:7f00:1`), or undefined when it is not one URL accepts.
 */
function canonicalIpv6(address: string): string | undefined {
  try {
    return new URL(`http://[${address}]/`).hostname.slice(1, -1);
  } catch {
    return undefined;
  }
}

/** The eight 16-bit groups of a canonical IPv6 text (no embedded dotted quad: URL writes hex). */
function ipv6Groups(canonical: string): number[] {
  const [head = "", tail] = canonical.split("::");
  const parse = (part: string) => (part === "" ? [] : part.split(":").map((g) => parseInt(g, 16)));
  const left = parse(head);
  const right = tail === undefined ? [] : parse(tail);
  return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
}

/**
 * The IPv4 address inside an IPv6 one that leads to it: IPv4-mapped (`::ffff:7f00:1`), 6to4
 * (`2002:7f00:1::`, routed by relays to the embedded address) and Teredo (`2001:0:…`, whose last
 * 32 bits are the client's IPv4 address XOR 0xffffffff, where relays send the packets); undefined
 * otherwise. `canonical` is canonicalIpv6's text.
 */
function embeddedIpv4(canonical: string): string | undefined {
  const quad = (high: number, low: number) => `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
  const groups = ipv6Groups(canonical);
  const at = (i: number) => groups[i] ?? 0;
  if (groups.slice(0, 6).join(":") === "0:0:0:0:0:65535") return quad(at(6), at(7));
  if (at(0) === 0x2002) return quad(at(1), at(2));
  if (at(0) === 0x2001 && at(1) === 0) return quad(at(6) ^ 0xffff, at(7) ^ 0xffff);
  return undefined;
}

/** The address to check and its family, or undefined for text that is no IP literal URL would take. */
function normalised(address: string): { address: string; family: "ipv4" | "ipv6" } | undefined {
  const bare = address.startsWith("[") && address.endsWith("]") ? address.slice(1, -1) : address;
  const family = isIP(bare);
  if (family === 4) return { address: bare, family: "ipv4" };
  if (family !== 6) return undefined;
  const canonical = canonicalIpv6(bare);
  if (canonical === undefined) return undefined;
  const v4 = embeddedIpv4(canonical);
  return v4 !== undefined
    ? { address: v4, family: "ipv4" }
    : { address: canonical, family: "ipv6" };
}

/** True when `address` (an IP literal) is one a webhook may not reach. Non-IP text is refused too. */
export function isForbiddenAddress(address: string): boolean {
  const checked = normalised(address);
  return checked === undefined || forbidden.check(checked.address, checked.family);
}

/** Which forbidden range `address` is in ("a loopback address"…), or undefined when it is allowed. */
export function forbiddenRangeOf(address: string): string | undefined {
  const checked = normalised(address);
  if (checked === undefined) return "not an IP address";
  if (!forbidden.check(checked.address, checked.family)) return undefined;
  return (
    labelled.find((r) => r.family === checked.family && r.list.check(checked.address, r.family))
      ?.label ?? "a forbidden address"
  );
}

export class BlockedTargetError extends Error {
  override name = "BlockedTargetError";
  readonly code = "HERALD_BLOCKED_TARGET";
  constructor(readonly address: string) {
    super(
      `refusing to connect to ${address}: private, loopback, link-local and metadata addresses are not allowed as webhook targets (HERALD_ALLOW_INSECURE_TARGETS or --allow-insecure-targets allows them for development)`,
    );
  }
}

// --- The check of a target when it is set ------------------------------------------------------

/** A resolver of host names: every address of the name (as `dns.lookup` with `all: true`). */
export type HostLookup = (
  hostname: string,
) => Promise<readonly { address: string; family: number }[]>;

/**
 * The system resolver, as the push's connection uses it (node:dns lookup: /etc/hosts, then DNS).
 * Called through the module object, so a test can point names where it wants with `mock.method`.
 */
export const systemHostLookup: HostLookup = (hostname) =>
  new Promise((resolve, reject) => {
    dns.lookup(hostname, { all: true }, (error, addresses) =>
      error ? reject(error) : resolve(addresses),
    );
  });

/** How long a target's name may take to resolve before the check gives up on it (and accepts it). */
const TARGET_LOOKUP_TIMEOUT_MS = 3_000;

export type TargetVerdict =
  /** A public IP literal, or a name whose every address is public. */
  | { kind: "allowed" }
  /** Pushes would be refused: `reason` says why, for the person who set the target. */
  | { kind: "refused"; host: string; reason: string }
  /** The name did not resolve (or not in time): nothing to judge; pushes meet the guard anyway. */
  | { kind: "unresolved"; host: string; reason: string };

/** `localhost`, `*.localhost` (RFC 6761: always the loopback, whatever DNS says). */
function isLocalhostName(name: string): boolean {
  return name === "localhost" || name.endsWith(".localhost");
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(Object.assign(new Error(`no answer within ${ms} ms`), { code: "ETIMEOUT" })),
      ms,
    );
    // Not unref'd: the timer is cleared as soon as either side settles, and a caller awaiting the
    // answer must not see the process exit under it with the promise still pending.
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Judges a target URL (already checked to be an absolute http(s) URL) as the connect-time guard
 * would: its host as an IP literal in whatever spelling (WHATWG URL parsing turns `2130706433`,
 * `0177.0.0.1`, `0x7f.1`, `127.1` into `127.0.0.1`, and `[::ffff:127.0.0.1]` into `[::ffff:7f00:1]`),
 * or its name through `lookup`: refused when ANY address it resolves to is forbidden, as the
 * connection would be. A trailing dot (`localhost.`) names the same host; `localhost` names are the
 * loopback by definition.
 */
export async function checkTargetHost(
  targetUrl: string,
  lookup: HostLookup,
  timeoutMs = TARGET_LOOKUP_TIMEOUT_MS,
): Promise<TargetVerdict> {
  let url: URL;
  try {
    url = new URL(targetUrl);
  } catch {
    return { kind: "refused", host: targetUrl, reason: "it is not an absolute URL" };
  }
  const host = url.hostname;
  if (host.startsWith("[") || isIP(host) !== 0) {
    const range = forbiddenRangeOf(host);
    return range === undefined
      ? { kind: "allowed" }
      : { kind: "refused", host, reason: `${host} is ${range}` };
  }
  const name = host.endsWith(".") ? host.slice(0, -1) : host;
  if (isLocalhostName(name))
    return { kind: "refused", host, reason: `${host} is a localhost name (the loopback)` };
  let addresses: readonly { address: string }[];
  try {
    addresses = await withTimeout(lookup(name), timeoutMs);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    return {
      kind: "unresolved",
      host,
      reason: `${host} did not resolve (${typeof code === "string" ? code : String(error)})`,
    };
  }
  if (addresses.length === 0)
    return { kind: "unresolved", host, reason: `${host} resolved to no address` };
  for (const { address } of addresses) {
    const range = forbiddenRangeOf(address);
    if (range !== undefined)
      return { kind: "refused", host, reason: `${host} resolves to ${address}, ${range}` };
  }
  return { kind: "allowed" };
}
