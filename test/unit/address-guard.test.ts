import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { HostLookup } from "../../src/delivery/address-guard.js";
import {
  checkTargetHost,
  forbiddenRangeOf,
  isForbiddenAddress,
} from "../../src/delivery/address-guard.js";

describe("SSRF address guard", () => {
  const forbidden = [
    "127.0.0.1",
    "127.255.0.9",
    "10.1.2.3",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",
    "224.0.0.1",
    "255.255.255.255",
    "::1",
    "::",
    "[::1]",
    "0:0:0:0:0:0:0:1",
    "fd00:ec2::254",
    "fc00::1",
    "fe80::1",
    "fe80::1%eth0",
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:7f00:1",
    "::FFFF:7F00:1",
    "0:0:0:0:0:ffff:7f00:1",
    "::ffff:169.254.169.254",
    "::ffff:a00:1",
    "::7f00:1", // IPv4-compatible 127.0.0.1
    "::ffff:0:7f00:1", // IPv4-translated 127.0.0.1
    "2002:7f00:1::", // 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::1", // 6to4 of 169.254.169.254
    "2001:0:4136:e378:8000:63bf:80ff:fffe", // Teredo, client 127.0.0.1 (last 32 bits XOR ffffffff)
    "2001::f5ff:fffe", // Teredo, no server, client 10.0.0.1
    "2001:0:4136:e378:8000:63bf:5601:5601", // Teredo, client 169.254.169.254
    "64:ff9b::a9fe:a9fe",
    "not-an-ip",
    "0177.0.0.1", // not an IP literal here: only URL parsing reads it as one (see checkTargetHost)
  ];
  const allowed = [
    "93.184.216.34",
    "8.8.8.8",
    "172.32.0.1",
    "2606:4700::1111",
    "::ffff:8.8.8.8",
    "::ffff:808:808",
    "2002:808:808::1",
    "2001:0:4136:e378:8000:63bf:f7f7:f7f7", // Teredo, client 8.8.8.8
    "2001:4860::80ff:fffe", // not Teredo (2001:4860::/32, Google)
  ];

  for (const address of forbidden)
    test(`refuses ${address}`, () => assert.equal(isForbiddenAddress(address), true));
  for (const address of allowed)
    test(`allows ${address}`, () => assert.equal(isForbiddenAddress(address), false));

  test("names the range an address is in, for messages", () => {
    assert.equal(forbiddenRangeOf("127.0.0.1"), "a loopback address");
    assert.equal(forbiddenRangeOf("::ffff:7f00:1"), "a loopback address");
    assert.equal(forbiddenRangeOf("::1"), "a loopback address");
    assert.equal(forbiddenRangeOf("::"), "the unspecified address");
    assert.equal(forbiddenRangeOf("10.0.0.5"), "a private address");
    assert.equal(forbiddenRangeOf("169.254.169.254"), "a link-local (metadata) address");
    assert.equal(forbiddenRangeOf("fe80::1"), "a link-local address");
    assert.equal(forbiddenRangeOf("8.8.8.8"), undefined);
  });
});

/** A resolver that knows a few names, and records what it was asked. */
function fakeLookup(table: Record<string, string[]>): HostLookup & { asked: string[] } {
  const asked: string[] = [];
  const lookup = async (hostname: string) => {
    asked.push(hostname);
    const addresses = table[hostname];
    if (!addresses)
      throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: "ENOTFOUND" });
    return addresses.map((address) => ({ address, family: address.includes(":") ? 6 : 4 }));
  };
  return Object.assign(lookup, { asked });
}

describe("checkTargetHost (a target judged when it is set)", () => {
  const noNames = fakeLookup({});

  // Every spelling WHATWG URL parsing turns into a loopback, private or link-local literal.
  const literalSpellings: [string, string][] = [
    ["https://127.0.0.1/h", "127.0.0.1 is a loopback address"],
    ["https://2130706433/h", "127.0.0.1 is a loopback address"], // decimal
    ["https://017700000001/h", "127.0.0.1 is a loopback address"], // octal, one number
    ["https://0177.0.0.1/h", "127.0.0.1 is a loopback address"], // octal
    ["https://0x7f.0.0.1/h", "127.0.0.1 is a loopback address"], // hex
    ["https://0x7f000001/h", "127.0.0.1 is a loopback address"], // hex, one number
    ["https://0x7f.1/h", "127.0.0.1 is a loopback address"], // hex, short form
    ["https://127.1/h", "127.0.0.1 is a loopback address"], // short form
    ["https://127.000.000.001/h", "127.0.0.1 is a loopback address"], // zero-padded
    ["https://127.0.0.1./h", "127.0.0.1 is a loopback address"], // trailing dot
    ["https://%31%32%37.0.0.1/h", "127.0.0.1 is a loopback address"], // percent-encoded
    ["https://[::ffff:127.0.0.1]/h", "[::ffff:7f00:1] is a loopback address"], // IPv4-mapped
    ["https://[::ffff:7f00:1]/h", "[::ffff:7f00:1] is a loopback address"], // mapped, hex
    ["https://[::FFFF:7F00:1]/h", "[::ffff:7f00:1] is a loopback address"], // upper case
    ["https://[0:0:0:0:0:0:0:1]/h", "[::1] is a loopback address"],
    // Issue #19: IPv4-compatible, IPv4-translated, 6to4 and Teredo spellings of 127.0.0.1.
    ["https://[::127.0.0.1]/", "[::7f00:1] is an IPv4-compatible address"],
    ["https://[::ffff:0:127.0.0.1]/", "[::ffff:0:7f00:1] is an IPv4-translated address"],
    ["https://[2002:7f00:1::]/", "[2002:7f00:1::] is a loopback address"],
    [
      "https://[2001:0:4136:e378:8000:63bf:80ff:fffe]/",
      "[2001:0:4136:e378:8000:63bf:80ff:fffe] is a loopback address",
    ],
    ["https://[::]/h", "[::] is the unspecified address"],
    ["https://0/h", "0.0.0.0 is the unspecified 'this network' range"],
    ["https://0.0.0.0:8443/h", "0.0.0.0 is the unspecified 'this network' range"],
    ["https://10.1.2.3/h", "10.1.2.3 is a private address"],
    ["https://0xa.1.2.3/h", "10.1.2.3 is a private address"],
    [
      "https://169.254.169.254/latest/meta-data",
      "169.254.169.254 is a link-local (metadata) address",
    ],
    ["https://[fd00:ec2::254]/h", "[fd00:ec2::254] is a unique-local (private) address"],
    ["https://[fe80::1]/h", "[fe80::1] is a link-local address"],
  ];
  for (const [url, reason] of literalSpellings)
    test(`refuses ${url} without asking DNS`, async () => {
      assert.deepEqual(await checkTargetHost(url, noNames), {
        kind: "refused",
        host: new URL(url).hostname,
        reason,
      });
    });
  test("literals never reach the resolver", () => assert.deepEqual(noNames.asked, []));

  test("public literals are allowed", async () => {
    for (const url of [
      "https://93.184.216.34/h",
      "https://[2606:4700::1111]/h",
      "https://0x5db8d822/",
    ])
      assert.deepEqual(await checkTargetHost(url, noNames), { kind: "allowed" });
  });

  test("localhost names are the loopback whatever DNS says (RFC 6761), trailing dot and case included", async () => {
    for (const url of [
      "https://localhost/h",
      "https://LOCALHOST/h",
      "https://localhost./h",
      "https://api.localhost/h",
      "https://Api.Localhost./h",
    ]) {
      const verdict = await checkTargetHost(url, noNames);
      assert.equal(verdict.kind, "refused", url);
      assert.match((verdict as { reason: string }).reason, /localhost name/);
    }
    assert.deepEqual(noNames.asked, []);
  });

  test("a name is refused when any address it resolves to is forbidden, as the connection would be", async () => {
    const lookup = fakeLookup({
      "loopback.example.test": ["127.0.0.1"],
      "v6loop.example.test": ["::1"],
      "mapped.example.test": ["::ffff:7f00:1"],
      "internal.example.test": ["10.0.0.5"],
      "mixed.example.test": ["93.184.216.34", "192.168.1.10"],
      "metadata.example.test": ["169.254.169.254"],
    });
    const reasons: Record<string, string> = {
      "loopback.example.test": "resolves to 127.0.0.1, a loopback address",
      "v6loop.example.test": "resolves to ::1, a loopback address",
      "mapped.example.test": "resolves to ::ffff:7f00:1, a loopback address",
      "internal.example.test": "resolves to 10.0.0.5, a private address",
      "mixed.example.test": "resolves to 192.168.1.10, a private address",
      "metadata.example.test": "resolves to 169.254.169.254, a link-local (metadata) address",
    };
    for (const [name, reason] of Object.entries(reasons))
      assert.deepEqual(await checkTargetHost(`https://${name}/hook`, lookup), {
        kind: "refused",
        host: name,
        reason: `${name} ${reason}`,
      });
  });

  test("a trailing dot or upper case names the same host: the resolver is asked the plain name", async () => {
    const lookup = fakeLookup({ "internal.example.test": ["10.0.0.5"] });
    for (const url of ["https://internal.example.test./h", "https://INTERNAL.Example.TEST/h"])
      assert.equal((await checkTargetHost(url, lookup)).kind, "refused", url);
    assert.deepEqual(lookup.asked, ["internal.example.test", "internal.example.test"]);
  });

  test("a name whose every address is public is allowed", async () => {
    const lookup = fakeLookup({ "hooks.example.test": ["93.184.216.34", "2606:4700::1111"] });
    assert.deepEqual(await checkTargetHost("https://hooks.example.test/h", lookup), {
      kind: "allowed",
    });
  });

  test("a name that does not resolve, resolves to nothing, or not in time is unresolved (not refused)", async () => {
    assert.deepEqual(await checkTargetHost("https://nowhere.example.test/h", noNames), {
      kind: "unresolved",
      host: "nowhere.example.test",
      reason: "nowhere.example.test did not resolve (ENOTFOUND)",
    });
    const empty: HostLookup = async () => [];
    assert.equal((await checkTargetHost("https://a.example.test/", empty)).kind, "unresolved");
    const never: HostLookup = () => new Promise(() => {});
    const started = Date.now();
    const slow = await checkTargetHost("https://slow.example.test/", never, 50);
    assert.equal(slow.kind, "unresolved");
    assert.match((slow as { reason: string }).reason, /ETIMEOUT/);
    assert.ok(Date.now() - started < 2_000);
  });
});
