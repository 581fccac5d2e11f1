/**
 * Password logins to an SFTP source. sshd can only accept a password of a real account of the
 * machine, and the tests do not change the machine's users, so the positive case runs against the
 * SSH library's own server (ssh2's Server, serving one file over SFTP from memory) on a loopback
 * port; sshd's refusal of a wrong password is in file-sources-sftp.test.ts.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import ssh2 from "ssh2";
import type { SftpSource } from "../../src/domain/file-source.js";
import type { TransferContext } from "../../src/jobs/file-sources/index.js";
import { fetchSourceFile, FileTransferError } from "../../src/jobs/file-sources/index.js";
import { fingerprintOf } from "../helpers/sftp-server.js";

const USER = "herald-sync";
const PASSWORD = "correct horse battery staple";
const FILE = "/outgoing/customers.csv";
const DATA = Buffer.from("id;name\n1;Ann\n2;Bob\n");
/** SFTP status codes (draft-ietf-secsh-filexfer-02 §7). */
const OK = 0;
const EOF = 1;
const NO_SUCH_FILE = 2;

function context(): TransferContext {
  return {
    at: new Date(),
    timeZone: "UTC",
    timeoutMs: 15_000,
    maxBytes: 1024 * 1024,
    allowInsecureTargets: true,
    dropDir: undefined,
  };
}

describe("SFTP password authentication (ssh2's server)", () => {
  let keys: string;
  let server: ssh2.Server;
  let source: SftpSource;
  const passwordsTried: string[] = [];

  before(async () => {
    keys = mkdtempSync(join(tmpdir(), "herald-ssh2-server-"));
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(keys, "host")]);
    server = new ssh2.Server({ hostKeys: [readFileSync(join(keys, "host"))] }, (client) => {
      client.on("error", () => undefined);
      client.on("authentication", (auth) => {
        if (auth.method === "password") passwordsTried.push(auth.password);
        if (auth.method === "password" && auth.username === USER && auth.password === PASSWORD)
          auth.accept();
        else auth.reject(["password"]);
      });
      client.on("ready", () =>
        client.on("session", (acceptSession) =>
          acceptSession().on("sftp", (acceptSftp) => {
            const sftp = acceptSftp();
            const attrs = { mode: 0o100644, uid: 0, gid: 0, size: DATA.length, atime: 0, mtime: 0 };
            const stat = (id: number, path: string) =>
              path === FILE ? sftp.attrs(id, attrs) : sftp.status(id, NO_SUCH_FILE);
            sftp.on("STAT", stat);
            sftp.on("LSTAT", stat);
            sftp.on("FSTAT", (id) => sftp.attrs(id, attrs));
            sftp.on("OPEN", (id, path) =>
              path === FILE ? sftp.handle(id, Buffer.from("1")) : sftp.status(id, NO_SUCH_FILE),
            );
            sftp.on("READ", (id, _handle, offset, length) =>
              offset >= DATA.length
                ? sftp.status(id, EOF)
                : sftp.data(id, DATA.subarray(offset, offset + length)),
            );
            sftp.on("CLOSE", (id) => sftp.status(id, OK));
          }),
        ),
      );
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    source = {
      type: "SFTP",
      host: "127.0.0.1",
      port: (server.address() as AddressInfo).port,
      username: USER,
      path: FILE,
      hostKeySha256: fingerprintOf(join(keys, "host.pub")),
      password: PASSWORD,
    };
  });

  after(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(keys, { recursive: true, force: true });
  });

  test("the right password logs in and the file is read", async () => {
    const file = await fetchSourceFile(source, context());
    assert.ok(file.found);
    const chunks: Buffer[] = [];
    for await (const chunk of file.content) chunks.push(Buffer.from(chunk));
    assert.deepEqual(Buffer.concat(chunks), DATA);
    assert.equal(passwordsTried.at(-1), PASSWORD);
    assert.equal(
      (await fetchSourceFile({ ...source, path: "/absent.csv" }, context())).found,
      false,
    );
  });

  test("a server whose host key is not the pinned one never receives the password", async () => {
    const tried = passwordsTried.length;
    for (const hostKeySha256 of [null, "SHA256:" + "A".repeat(43)])
      await assert.rejects(
        fetchSourceFile({ ...source, hostKeySha256 }, context()),
        (error: unknown) => {
          assert.ok(error instanceof FileTransferError);
          assert.match(error.code, /^HOST_KEY_(NOT_PINNED|MISMATCH)$/);
          return true;
        },
      );
    assert.equal(passwordsTried.length, tried);
  });

  test("a wrong password is refused, and the message does not repeat it", async () => {
    await assert.rejects(
      fetchSourceFile({ ...source, password: "Tr0ub4dor&3" }, context()),
      (error: unknown) => {
        assert.ok(error instanceof FileTransferError);
        assert.equal(error.code, "AUTHENTICATION_FAILED");
        assert.match(error.message, /"herald-sync"/);
        assert.doesNotMatch(error.message, /Tr0ub4dor/);
        return true;
      },
    );
    assert.equal(passwordsTried.at(-1), "Tr0ub4dor&3");
  });
});
