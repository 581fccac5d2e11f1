/**
 * SFTP sources against OpenSSH's sshd (test/helpers/sftp-server.ts) on a loopback port: reading,
 * the host key pin, credentials, the guard, limits and timeouts. Skipped, saying why, where there
 * is no sshd. Writing: file-sources-sftp-put.test.ts; password logins: file-sources-sftp-password.test.ts.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import type { AddressInfo, Socket } from "node:net";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { TransferContext } from "../../src/jobs/file-sources/index.js";
import { fetchSourceFile } from "../../src/jobs/file-sources/index.js";
import type { SftpTestServer } from "../helpers/sftp-server.js";
import { sshdUnavailable, startSftpServer } from "../helpers/sftp-server.js";
import type { TcpProxy } from "../helpers/tcp-proxy.js";
import { startTcpProxy } from "../helpers/tcp-proxy.js";
import { contentOf, refusal } from "../helpers/file-transfers.js";

const noSshd = sshdUnavailable();

function context(overrides: Partial<TransferContext> = {}): TransferContext {
  return {
    at: new Date("2026-12-31T23:30:00Z"),
    timeZone: "Europe/Brussels",
    timeoutMs: 15_000,
    maxBytes: 16 * 1024 * 1024,
    // Loopback is a guarded address: the tests that are not about the guard allow it.
    allowInsecureTargets: true,
    dropDir: undefined,
    ...overrides,
  };
}

async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

describe("SFTP sources (OpenSSH sshd)", { skip: noSshd }, () => {
  let server: SftpTestServer;
  const big = randomBytes(3 * 1024 * 1024);

  before(async () => {
    server = await startSftpServer();
    mkdirSync(join(server.dir, "out"));
    writeFileSync(join(server.dir, "out", "customers_20270101.csv"), big);
  });
  after(() => server?.stop());

  test("a file with key authentication and a pinned host key; placeholders in the path", async () => {
    const file = await fetchSourceFile(
      server.source(`${server.dir}/out/customers_$yyyyMMdd.csv`),
      context(),
    );
    assert.ok(file.found, server.log());
    assert.equal(file.name, "customers_20270101.csv");
    assert.equal(
      file.location,
      `sftp://${server.username}@127.0.0.1:${server.port}${server.dir}/out/customers_20270101.csv`,
    );
    assert.deepEqual(await contentOf(file), big);
  });

  test("a missing file is not found; a directory is not a file", async () => {
    const file = await fetchSourceFile(server.source(`${server.dir}/out/absent.csv`), context());
    assert.equal(file.found, false);
    await refusal(fetchSourceFile(server.source(`${server.dir}/out`), context()), "NOT_A_FILE");
  });

  test("a file over the size limit is refused before it is read", async () => {
    const error = await refusal(
      fetchSourceFile(
        server.source(`${server.dir}/out/customers_$yyyyMMdd.csv`),
        context({ maxBytes: 1024 * 1024 }),
      ),
      "TOO_LARGE",
    );
    assert.match(error.message, /is 3 MiB, over the limit of 1 MiB/);
  });

  test("without a pin the key is refused, and the message gives the fingerprint ssh-keygen prints", async () => {
    const error = await refusal(
      fetchSourceFile(
        server.source(`${server.dir}/out/absent.csv`, { hostKeySha256: null }),
        context(),
      ),
      "HOST_KEY_NOT_PINNED",
    );
    assert.ok(error.message.includes(`"hostKeySha256": "${server.hostKeySha256}"`), error.message);
    assert.match(error.message, /ssh-ed25519/);
  });

  test("a pin of another key is refused with both fingerprints; the hex form of the right one works", async () => {
    const other = mkdtempSync(join(tmpdir(), "herald-other-key-"));
    try {
      execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(other, "k")]);
      const printed = execFileSync("ssh-keygen", ["-lf", join(other, "k.pub")], {
        encoding: "utf8",
      });
      const forged = /SHA256:\S+/.exec(printed)?.[0] ?? "";
      const error = await refusal(
        fetchSourceFile(
          server.source(`${server.dir}/out/absent.csv`, { hostKeySha256: forged }),
          context(),
        ),
        "HOST_KEY_MISMATCH",
      );
      assert.ok(error.message.includes(forged) && error.message.includes(server.hostKeySha256));
      const hex = Buffer.from(server.hostKeySha256.slice("SHA256:".length), "base64").toString(
        "hex",
      );
      const file = await fetchSourceFile(
        server.source(`${server.dir}/out/absent.csv`, { hostKeySha256: hex }),
        context(),
      );
      assert.equal(file.found, false);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });

  test("a wrong password or an unauthorized key is refused, the secret never in the message", async () => {
    const { privateKey: _, ...withoutKey } = server.source(`${server.dir}/out/absent.csv`);
    const error = await refusal(
      fetchSourceFile({ ...withoutKey, password: "WRONG-PASSWORD-123" }, context()),
      "AUTHENTICATION_FAILED",
    );
    assert.match(error.message, new RegExp(`"${server.username}"`));
    assert.doesNotMatch(error.message, /WRONG-PASSWORD-123/);

    const other = mkdtempSync(join(tmpdir(), "herald-other-key-"));
    try {
      execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(other, "k")]);
      const stranger = readFileSync(join(other, "k"), "utf8");
      const keyError = await refusal(
        fetchSourceFile({ ...withoutKey, privateKey: stranger }, context()),
        "AUTHENTICATION_FAILED",
      );
      assert.match(keyError.message, /authorized_keys/);
      assert.doesNotMatch(keyError.message, /PRIVATE KEY/);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });

  test("the address guard refuses a loopback host before connecting, unless insecure targets are allowed", async () => {
    const proxy = await startTcpProxy({ host: "127.0.0.1", port: server.port });
    try {
      const source = server.source(`${server.dir}/out/absent.csv`, { port: proxy.port });
      const error = await refusal(
        fetchSourceFile(source, context({ allowInsecureTargets: false })),
        "BLOCKED_TARGET",
      );
      assert.match(error.message, /a loopback address/);
      await refusal(
        fetchSourceFile({ ...source, host: "localhost" }, context({ allowInsecureTargets: false })),
        "BLOCKED_TARGET",
      );
      assert.equal(proxy.accepted, 0, "no connection was opened");
      assert.equal((await fetchSourceFile(source, context())).found, false);
      assert.equal(proxy.accepted, 1);
    } finally {
      await proxy.close();
    }
  });

  test("an unreachable server: a refused connection says so", async () => {
    const error = await refusal(
      fetchSourceFile(server.source("/a.csv", { port: await closedPort() }), context()),
      "CONNECTION_FAILED",
    );
    assert.match(error.message, /refused/);
  });

  test("a server that never speaks SSH ends in TIMEOUT at the deadline, not a hang", async () => {
    const sockets = new Set<Socket>();
    const mute = createServer((socket) => void sockets.add(socket));
    await new Promise<void>((resolve) => mute.listen(0, "127.0.0.1", resolve));
    try {
      const started = performance.now();
      const error = await refusal(
        fetchSourceFile(
          server.source("/a.csv", { port: (mute.address() as AddressInfo).port }),
          context({ timeoutMs: 1_500 }),
        ),
        "TIMEOUT",
      );
      const ms = performance.now() - started;
      assert.ok(ms >= 1_400 && ms < 10_000, `${ms} ms`);
      assert.match(error.message, /SSH handshake/);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => mute.close(() => resolve()));
    }
  });

  test("a transfer that stalls half-way ends in TIMEOUT while reading", async () => {
    let proxy: TcpProxy | undefined = await startTcpProxy({ host: "127.0.0.1", port: server.port });
    try {
      const file = await fetchSourceFile(
        server.source(`${server.dir}/out/customers_$yyyyMMdd.csv`, { port: proxy.port }),
        context({ timeoutMs: 5_000 }),
      );
      assert.ok(file.found);
      const started = performance.now();
      const error = await refusal(
        (async () => {
          for await (const _ of file.content) proxy?.blackHole();
        })(),
        "TIMEOUT",
      );
      assert.match(error.message, /while reading the file/);
      assert.ok(performance.now() - started < 10_000);
    } finally {
      await proxy.close();
      proxy = undefined;
    }
  });

  test("a file closed without being read releases the session quietly", async () => {
    const file = await fetchSourceFile(
      server.source(`${server.dir}/out/customers_$yyyyMMdd.csv`),
      context(),
    );
    assert.ok(file.found);
    await file.close();
    await new Promise((resolve) => setTimeout(resolve, 200));
  });
});
