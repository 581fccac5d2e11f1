/**
 * A real SFTP server for tests: Debian's OpenSSH sshd, started on a free loopback port with its own
 * temporary configuration, a fresh ed25519 host key and an authorized client key, serving SFTP
 * only (internal-sftp, no shell, no forwarding). It logs in the user running the tests, with the
 * key: the machine's users and its own sshd are left alone.
 *
 *   const why = sshdUnavailable();                          // skip the tests when defined
 *   const server = await startSftpServer();
 *   writeFileSync(join(server.dir, "a.csv"), "…");
 *   await fetchSourceFile(server.source(`${server.dir}/a.csv`), { …, allowInsecureTargets: true });
 *   await server.stop();
 *
 * Paths on the server are the machine's own (no chroot: ChrootDirectory would need every parent
 * of the directory to be root-owned and not writable by others, which /tmp is not).
 *
 * Choices, since the tests run as root in a container: UsePAM no (PAM's session modules fail in
 * containers), so the user's password must not be locked with `!` (sshd then refuses every method:
 * sshdUnavailable() says so); StrictModes no (the temporary files are not in a home directory);
 * PermitRootLogin yes (so that a password attempt is really judged, and refused: the password is
 * not known). The privilege-separation directory /run/sshd is created when missing.
 */
import type { ChildProcess } from "node:child_process";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { createServer } from "node:net";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import type { SftpSource } from "../../src/domain/file-source.js";

export const SSHD_PATH = process.env.HERALD_TEST_SSHD ?? "/usr/sbin/sshd";
const PRIVSEP_DIR = "/run/sshd";
const START_TIMEOUT_MS = 15_000;

/** Why the SFTP tests cannot run here, or undefined when they can. */
export function sshdUnavailable(): string | undefined {
  if (!existsSync(SSHD_PATH))
    return `no OpenSSH server at ${SSHD_PATH} (apt-get install openssh-server openssh-sftp-server; .ci/run does it)`;
  if (!existsSync(PRIVSEP_DIR) && process.getuid?.() !== 0)
    return `${PRIVSEP_DIR} (sshd's privilege separation directory) is missing and only root can create it`;
  const user = userInfo().username;
  try {
    const entry = readFileSync("/etc/shadow", "utf8")
      .split("\n")
      .find((line) => line.startsWith(`${user}:`));
    if (entry?.split(":")[1]?.startsWith("!"))
      return `the account ${user} is locked ('!' in /etc/shadow), and sshd without PAM refuses locked accounts`;
  } catch {
    // Unreadable shadow file: not root; sshd will judge.
  }
  return undefined;
}

export interface SftpTestServer {
  readonly host: "127.0.0.1";
  readonly port: number;
  /** The user that logs in (the one running the tests). */
  readonly username: string;
  /** An unencrypted OpenSSH private key whose public half is authorized. */
  readonly privateKey: string;
  /** The server's host key fingerprint, as `ssh-keygen -lf` prints it (`SHA256:…`). */
  readonly hostKeySha256: string;
  /** A directory for the test's files; its absolute path is the path on the server too. */
  readonly dir: string;
  /** An SFTP source for `path` on this server: key authentication, host key pinned. */
  source(path: string, overrides?: Partial<SftpSource>): SftpSource;
  /** What sshd wrote to its log (for a failing test's message). */
  log(): string;
  stop(): Promise<void>;
}

function keygen(file: string): void {
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "herald-test", "-f", file], {
    stdio: "pipe",
  });
}

/** The fingerprint `ssh-keygen -lf` prints for a public key file. */
export function fingerprintOf(publicKeyFile: string): string {
  const printed = execFileSync("ssh-keygen", ["-l", "-E", "sha256", "-f", publicKeyFile], {
    encoding: "utf8",
  });
  const match = /SHA256:[A-Za-z0-9+/]+/.exec(printed);
  if (!match) throw new Error(`ssh-keygen printed no fingerprint: ${printed}`);
  return match[0];
}

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

function config(dir: string, port: number, username: string): string {
  return [
    `ListenAddress 127.0.0.1:${port}`,
    `HostKey ${join(dir, "host_key")}`,
    "PidFile none",
    `AuthorizedKeysFile ${join(dir, "authorized_keys")}`,
    `AllowUsers ${username}`,
    "StrictModes no",
    "UsePAM no",
    "PermitRootLogin yes",
    "PubkeyAuthentication yes",
    "PasswordAuthentication yes",
    "KbdInteractiveAuthentication no",
    "Subsystem sftp internal-sftp",
    "ForceCommand internal-sftp",
    "DisableForwarding yes",
    "PermitTTY no",
    "LoginGraceTime 60",
    "MaxStartups 50:30:100",
    "LogLevel VERBOSE",
    "",
  ].join("\n");
}

/** Starts sshd and resolves once it listens (retried on another port if the one picked was taken). */
export async function startSftpServer(): Promise<SftpTestServer> {
  const reason = sshdUnavailable();
  if (reason) throw new Error(reason);
  if (!existsSync(PRIVSEP_DIR)) mkdirSync(PRIVSEP_DIR, { recursive: true, mode: 0o755 });
  const home = mkdtempSync(join(tmpdir(), "herald-sshd-"));
  const dir = join(home, "files");
  mkdirSync(dir);
  keygen(join(home, "host_key"));
  keygen(join(home, "client_key"));
  writeFileSync(join(home, "authorized_keys"), readFileSync(join(home, "client_key.pub")));
  const username = userInfo().username;
  const hostKeySha256 = fingerprintOf(join(home, "host_key.pub"));
  const privateKey = readFileSync(join(home, "client_key"), "utf8");

  let lastError: Error | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    writeFileSync(join(home, "sshd_config"), config(home, port, username));
    const started = await launch(join(home, "sshd_config")).catch((error: Error) => {
      lastError = error;
      return undefined;
    });
    if (!started) continue;
    const { child, log } = started;
    // A test process that dies without stop() must not leave its sshd listening.
    const killOnExit = () => child.kill("SIGKILL");
    process.once("exit", killOnExit);
    return {
      host: "127.0.0.1",
      port,
      username,
      privateKey,
      hostKeySha256,
      dir,
      source: (path, overrides = {}) => ({
        type: "SFTP",
        host: "127.0.0.1",
        port,
        username,
        path,
        hostKeySha256,
        privateKey,
        ...overrides,
      }),
      log: () => log.join(""),
      stop: async () => {
        process.off("exit", killOnExit);
        if (child.exitCode === null && child.signalCode === null) {
          const exited = new Promise((resolve) => child.once("exit", resolve));
          child.kill("SIGTERM");
          await exited;
        }
        rmSync(home, { recursive: true, force: true });
      },
    };
  }
  rmSync(home, { recursive: true, force: true });
  throw lastError ?? new Error("sshd did not start");
}

async function launch(configFile: string): Promise<{ child: ChildProcess; log: string[] }> {
  // -D: stay in the foreground (the test owns the process); -e: log to stderr.
  const child = spawn(SSHD_PATH, ["-D", "-e", "-f", configFile], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  const log: string[] = [];
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`sshd did not listen within ${START_TIMEOUT_MS} ms: ${log.join("")}`));
    }, START_TIMEOUT_MS);
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (text: string) => {
      log.push(text);
      if (/Server listening on/.test(log.join(""))) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`sshd exited (${code ?? signal}) before listening: ${log.join("")}`));
    });
    child.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
  return { child, log };
}
