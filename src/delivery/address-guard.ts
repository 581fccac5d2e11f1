/**
 * The SSRF guard (DESIGN §6): webhook targets may not reach private, loopback, link-local,
 * unique-local, multicast, reserved or cloud-metadata addresses. The check runs on the address the
 * socket is about to connect to (see http-sender.ts), so a DNS answer that changes between a check
 * and the connection (rebinding) cannot slip past it.
 */
import { BlockList, isIP } from "node:net";

/** Ranges no webhook may reach unless the operator allows insecure targets. */
export const FORBIDDEN_RANGES: readonly {
  network: string;
  prefix: number;
  family: "ipv4" | "ipv6";
}[] = [
  { network: "0.0.0.0", prefix: 8, family: "ipv4" }, // "this" network
  { network: "10.0.0.0", prefix: 8, family: "ipv4" }, // private
  { network: "100.64.0.0", prefix: 10, family: "ipv4" }, // carrier-grade NAT
  { network: "127.0.0.0", prefix: 8, family: "ipv4" }, // loopback
  { network: "169.254.0.0", prefix: 16, family: "ipv4" }, // link-local, incl. 169.254.169.254 metadata
  { network: "172.16.0.0", prefix: 12, family: "ipv4" }, // private
  { network: "192.0.0.0", prefix: 24, family: "ipv4" }, // IETF protocol assignments
  { network: "192.0.2.0", prefix: 24, family: "ipv4" }, // documentation
  { network: "192.168.0.0", prefix: 16, family: "ipv4" }, // private
  { network: "198.18.0.0", prefix: 15, family: "ipv4" }, // benchmarking
  { network: "198.51.100.0", prefix: 24, family: "ipv4" }, // documentation
  { network: "203.0.113.0", prefix: 24, family: "ipv4" }, // documentation
  { network: "224.0.0.0", prefix: 4, family: "ipv4" }, // multicast
  { network: "240.0.0.0", prefix: 4, family: "ipv4" }, // reserved, broadcast
  { network: "::", prefix: 128, family: "ipv6" }, // unspecified
  { network: "::1", prefix: 128, family: "ipv6" }, // loopback
  { network: "64:ff9b::", prefix: 96, family: "ipv6" }, // NAT64 (could reach private IPv4)
  { network: "100::", prefix: 64, family: "ipv6" }, // discard
  { network: "2001:db8::", prefix: 32, family: "ipv6" }, // documentation
  { network: "fc00::", prefix: 7, family: "ipv6" }, // unique-local, incl. fd00:ec2::254 metadata
  { network: "fe80::", prefix: 10, family: "ipv6" }, // link-local
  { network: "fec0::", prefix: 10, family: "ipv6" }, // site-local (deprecated)
  { network: "ff00::", prefix: 8, family: "ipv6" }, // multicast
];

const forbidden = new BlockList();
for (const range of FORBIDDEN_RANGES)
  forbidden.addSubnet(range.network, range.prefix, range.family);

/** An IPv4 address embedded in an IPv4-mapped or -compatible IPv6 address, else undefined. */
function embeddedIpv4(address: string): string | undefined {
  const match = /^::(?:ffff:)?(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (match) return match[1];
  const hex = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(address);
  if (hex) {
    const high = parseInt(hex[1] as string, 16);
    const low = parseInt(hex[2] as string, 16);
    return `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
  }
  return undefined;
}

/** True when `address` (an IP literal) is one a webhook may not reach. Non-IP text is refused too. */
export function isForbiddenAddress(address: string): boolean {
  const bare = address.startsWith("[") && address.endsWith("]") ? address.slice(1, -1) : address;
  const family = isIP(bare);
  if (family === 4) return forbidden.check(bare, "ipv4");
  if (family === 6) {
    const v4 = embeddedIpv4(bare);
    if (v4 !== undefined) return forbidden.check(v4, "ipv4");
    return forbidden.check(bare, "ipv6");
  }
  return true;
}

export class BlockedTargetError extends Error {
  override name = "BlockedTargetError";
  readonly code = "HERALD_BLOCKED_TARGET";
  constructor(readonly address: string) {
    super(
      `refusing to connect to ${address}: private, loopback, link-local and metadata addresses are not allowed as webhook targets (HERALD_ALLOW_INSECURE_TARGETS allows them for development)`,
    );
  }
}
