/**
 * Reads a file from, and writes a file to, an SFTP server (sftp-session.ts opens the session).
 * A missing remote file is NOT_FOUND; its size is checked against the limit before a byte is read;
 * a write goes to a temporary name in the same directory and is renamed over the final name only
 * once the server has confirmed the complete file.
 */
import { posix } from "node:path";
import type { SFTPWrapper, Stats } from "ssh2";
import type { SftpSource } from "../../domain/file-source.js";
import type { FetchedFile, TransferContext } from "./transfer-context.js";
import { FileTransferError, tooLarge } from "./file-transfer-error.js";
import type { Deadline } from "./transfer-deadline.js";
import { failureOf, foundFile, once, startDeadline, writeLimited } from "./transfer-deadline.js";
import { openSftpSession, sftpLocation } from "./sftp-session.js";
import { destinationPath, expandedPath, partFileName } from "./destination-path.js";

/** SFTP status codes (draft-ietf-secsh-filexfer-02 §7) that ssh2 puts in an error's `code`. */
const NO_SUCH_FILE = 2;
const PERMISSION_DENIED = 3;

/**
 * The error for a failed SFTP request: the server's refusal (an SFTP status code), or the
 * connection failing under it (ssh2's "No response from server" when the connection is gone).
 */
function remoteError(error: unknown, location: string, doing: string): FileTransferError {
  const code = (error as { code?: unknown }).code;
  const message = error instanceof Error ? error.message : String(error);
  if (typeof code !== "number")
    return new FileTransferError(
      "CONNECTION_FAILED",
      `${location}: the connection failed while trying ${doing}: ${message}`,
    );
  const reason =
    code === NO_SUCH_FILE
      ? "no such file or directory"
      : code === PERMISSION_DENIED
        ? "permission denied"
        : message;
  return new FileTransferError(
    "REMOTE_ERROR",
    `${location}: the server refused ${doing}: ${reason}`,
  );
}

/**
 * One SFTP request as a promise, which the deadline also ends: a request the server never answers
 * fails with the deadline's error instead of waiting on a connection that is gone.
 */
function call<T>(
  deadline: Deadline,
  run: (callback: (error?: Error | null, value?: T) => void) => void,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(deadline.signal.reason);
    if (deadline.signal.aborted) return onAbort();
    deadline.signal.addEventListener("abort", onAbort, { once: true });
    run((error, value) => {
      deadline.signal.removeEventListener("abort", onAbort);
      if (error) reject(error);
      else resolve(value as T);
    });
  });
}

export async function fetchSftpFile(
  source: SftpSource,
  ctx: TransferContext,
): Promise<FetchedFile> {
  const path = expandedPath(source.path, ctx);
  const location = sftpLocation(source, path);
  const deadline = startDeadline(ctx.timeoutMs, location, ctx.signal);
  let end: () => void = () => undefined;
  const release = once(async () => {
    deadline.clear();
    end();
  });
  try {
    const session = await openSftpSession(source, ctx, location, deadline);
    end = session.end;
    deadline.phase = "looking the file up";
    let stats: Stats;
    try {
      stats = await call<Stats>(deadline, (cb) => session.sftp.stat(path, cb));
    } catch (error) {
      if ((error as { code?: unknown }).code === NO_SUCH_FILE) {
        await release();
        return { found: false, location };
      }
      throw remoteError(error, location, "to look the file up");
    }
    if (!stats.isFile())
      throw new FileTransferError(
        "NOT_A_FILE",
        `${location}: is ${stats.isDirectory() ? "a directory" : "not a regular file"}, not a file`,
      );
    if (stats.size > ctx.maxBytes) throw tooLarge(location, ctx.maxBytes, stats.size);
    return foundFile(session.sftp.createReadStream(path), posix.basename(path), {
      maxBytes: ctx.maxBytes,
      location,
      deadline,
      describe: (error) => remoteError(error, location, "to read the file"),
      release,
    });
  } catch (error) {
    await release();
    throw failureOf(error, deadline, (e) => remoteError(e, location, "to transfer the file"));
  }
}

/**
 * Writes `content` as `fileName` (or as the destination's own file name, see destination-path.ts)
 * on the server: to `.<name>.<random>.part` first, then renamed over the final name (OpenSSH's
 * posix-rename, which replaces an existing file atomically; elsewhere the old file is removed
 * first). On any failure the temporary file is removed and nothing is under the final name.
 * Through putDestinationFile (index.ts), which checks `fileName` and lets go of `content`.
 */
export async function putSftpFile(
  destination: SftpSource,
  fileName: string,
  content: AsyncIterable<Uint8Array>,
  ctx: TransferContext,
): Promise<{ location: string; bytes: number }> {
  const finalPath = destinationPath(destination.path, fileName, ctx);
  const location = sftpLocation(destination, finalPath);
  const temporary = posix.join(posix.dirname(finalPath), partFileName(posix.basename(finalPath)));
  const deadline = startDeadline(ctx.timeoutMs, location, ctx.signal);
  let session: Awaited<ReturnType<typeof openSftpSession>> | undefined;
  let written = false;
  try {
    session = await openSftpSession(destination, ctx, location, deadline);
    const { sftp } = session;
    deadline.phase = "writing the file";
    let handle: Buffer;
    try {
      handle = await call<Buffer>(deadline, (cb) =>
        sftp.open(temporary, "wx", { mode: 0o644 }, cb),
      );
    } catch (error) {
      throw remoteError(error, location, `to create ${temporary}`);
    }
    written = true;
    const bytes = await writeAll(sftp, handle, content, location, ctx.maxBytes, deadline);
    deadline.phase = "renaming the file into place";
    await rename(sftp, temporary, finalPath, location, deadline);
    written = false;
    return { location, bytes };
  } catch (error) {
    throw failureOf(error, deadline, (e) => remoteError(e, location, "to write the file"));
  } finally {
    if (written && session && !deadline.signal.aborted)
      await call(deadline, (cb) => session?.sftp.unlink(temporary, cb)).catch(() => undefined);
    deadline.clear();
    session?.end();
  }
}

async function writeAll(
  sftp: SFTPWrapper,
  handle: Buffer,
  content: AsyncIterable<Uint8Array>,
  location: string,
  maxBytes: number,
  deadline: Deadline,
): Promise<number> {
  let closed = false;
  try {
    const bytes = await writeLimited(
      content,
      { location, maxBytes, deadline },
      async (chunk, at) => {
        const buffer = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
        try {
          await call(deadline, (cb) => sftp.write(handle, buffer, 0, buffer.length, at, cb));
        } catch (error) {
          throw remoteError(error, location, "to write the file");
        }
      },
    );
    closed = true;
    // The close's answer is the server saying the file is complete: only then is it renamed.
    await call(deadline, (cb) => sftp.close(handle, cb)).catch((error: unknown) => {
      throw remoteError(error, location, "to complete the file");
    });
    return bytes;
  } finally {
    if (!closed) sftp.close(handle, () => undefined);
  }
}

async function rename(
  sftp: SFTPWrapper,
  from: string,
  to: string,
  location: string,
  deadline: Deadline,
) {
  try {
    await call(deadline, (cb) => sftp.ext_openssh_rename(from, to, cb));
    return;
  } catch (error) {
    // Thrown synchronously (hence caught here too) when the server lacks the extension.
    if (!/not support/i.test((error as Error).message))
      throw remoteError(error, location, "to rename the file into place");
  }
  await call(deadline, (cb) => sftp.unlink(to, cb)).catch(() => undefined);
  try {
    await call(deadline, (cb) => sftp.rename(from, to, cb));
  } catch (error) {
    throw remoteError(error, location, "to rename the file into place");
  }
}
