import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { isForbiddenAddress } from "../../src/delivery/address-guard.js";

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
    "fd00:ec2::254",
    "fc00::1",
    "fe80::1",
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:7f00:1",
    "::ffff:169.254.169.254",
    "64:ff9b::a9fe:a9fe",
    "not-an-ip",
  ];
  const allowed = ["93.184.216.34", "8.8.8.8", "172.32.0.1", "2606:4700::1111", "::ffff:8.8.8.8"];

  for (const address of forbidden)
    test(`refuses ${address}`, () => assert.equal(isForbiddenAddress(address), true));
  for (const address of allowed)
    test(`allows ${address}`, () => assert.equal(isForbiddenAddress(address), false));
});
