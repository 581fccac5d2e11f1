/**
 * Export destinations on SFTP against OpenSSH's sshd on a loopback port: a file is written under a
 * temporary name and renamed when the server has it complete, never partial under its final name.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { TransferContext } from "../../src/jobs/file-sources/index.js";
import { putDestinationFile } from "../../src/jobs/file-sources/index.js";
import type { SftpTestServer } from "../helpers/sftp-server.js";
import { sshdUnavailable, startSftpServer } from "../helpers/sftp-server.js";
import { chunks, refusal } from "../helpers/file-transfers.js";

const noSshd = sshdUnavailable();

function context(overrides: Partial<TransferContext> = {}): TransferContext {
  return {
    at: new Date("2026-12-31T23:30:00Z"),
    timeZone: "Europe/Brussels",
    timeoutMs: 15_000,
    maxBytes: 16 * 1024 * 1024,
    allowInsecureTargets: true,
    dropDir: undefined,
    ...overrides,
  };
}

describe("SFTP destinations (OpenSSH sshd)", { skip: noSshd }, () => {
  let server: SftpTestServer;
  let exports: string;

  before(async () => {
    server = await startSftpServer();
    exports = join(server.dir, "exports");
    mkdirSync(exports);
  });
  after(() => server?.stop());

  test("a path ending with / receives the file under its name; nothing partial under the final name", async () => {
    const part = Buffer.alloc(256 * 1024, "r");
    let during: string[] = [];
    async function* content(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < 8; i++) {
        yield part;
        if (i === 4) during = readdirSync(exports);
      }
    }
    const result = await putDestinationFile(
      server.source(`${exports}/`),
      "customers.csv",
      content(),
      context(),
    );
    assert.deepEqual(result, {
      location: `sftp://${server.username}@127.0.0.1:${server.port}${exports}/customers.csv`,
      bytes: 8 * part.length,
    });
    assert.equal(during.length, 1, server.log());
    assert.match(during[0] ?? "", /^\.customers\.csv\.[0-9a-f]+\.part$/);
    assert.deepEqual(readdirSync(exports), ["customers.csv"]);
    assert.deepEqual(
      readFileSync(join(exports, "customers.csv")),
      Buffer.concat(Array(8).fill(part)),
    );
  });

  test("any other path is the file's own name, placeholders expanded, replacing an older file", async () => {
    writeFileSync(join(exports, "daily_20270101.csv"), "old");
    const result = await putDestinationFile(
      server.source(`${exports}/daily_$yyyyMMdd.csv`),
      "unused.csv",
      chunks("id;name\n", "1;Ann\n"),
      context(),
    );
    assert.equal(result.bytes, 14);
    assert.equal(readFileSync(join(exports, "daily_20270101.csv"), "utf8"), "id;name\n1;Ann\n");
    assert.equal(existsSync(join(exports, "unused.csv")), false);
  });

  test("a failing or too large content leaves neither the final file nor the temporary one", async () => {
    async function* failing(): AsyncGenerator<Uint8Array> {
      yield Buffer.from("half a file");
      throw new Error("the export failed");
    }
    await assert.rejects(
      putDestinationFile(server.source(`${exports}/`), "broken.csv", failing(), context()),
      /the export failed/,
    );
    await refusal(
      putDestinationFile(
        server.source(`${exports}/`),
        "large.csv",
        chunks(Buffer.alloc(600), Buffer.alloc(600)),
        context({ maxBytes: 1000 }),
      ),
      "TOO_LARGE",
    );
    assert.deepEqual(readdirSync(exports).sort(), ["customers.csv", "daily_20270101.csv"]);
  });

  test("a missing remote directory, a bad file name, an unpinned host key", async () => {
    const missing = await refusal(
      putDestinationFile(server.source(`${server.dir}/nowhere/`), "a.csv", chunks("x"), context()),
      "REMOTE_ERROR",
    );
    assert.match(missing.message, /no such file or directory/);
    await refusal(
      putDestinationFile(server.source(`${exports}/`), "../a.csv", chunks("x"), context()),
      "INVALID_SOURCE",
    );
    await refusal(
      putDestinationFile(
        server.source(`${exports}/`, { hostKeySha256: null }),
        "a.csv",
        chunks("x"),
        context(),
      ),
      "HOST_KEY_NOT_PINNED",
    );
    assert.deepEqual(readdirSync(exports).sort(), ["customers.csv", "daily_20270101.csv"]);
  });
});
