/**
 * Reads files from, and writes files to, the operator's drop directory (HERALD_FILE_DROP_DIR).
 * The path was refused at definition time when absolute or holding `..`; here, with placeholders
 * expanded, it is resolved through every symbolic link (realpath) and refused when it ends outside
 * the drop directory's own real path. After opening, the open file's path is checked once more
 * (through /proc where there is one), so a link swapped in between the check and the open cannot
 * lead elsewhere either. Special files (FIFOs, devices) are refused without blocking on them.
 */
import { constants } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { open, readlink, realpath, rename, stat, unlink } from "node:fs/promises";
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import type { DirectorySource } from "../../domain/file-source.js";
import { dropPathProblem } from "../../domain/file-source.js";
import type { FetchedFile, TransferContext } from "./transfer-context.js";
import { errorCodeOf, FileTransferError, tooLarge } from "./file-transfer-error.js";
import { failureOf, foundFile, once, startDeadline, writeLimited } from "./transfer-deadline.js";
import { destinationPath, expandedPath, partFileName } from "./destination-path.js";

const MISSING = new Set(["ENOENT", "ENOTDIR"]);

function within(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === "" || (rel !== ".." && !rel.startsWith(`..${sep}`) && !isAbsolute(rel));
}

/** `relative` in messages and locations: the path as the reference names it, inside the drop directory. */
function locationOf(path: string): string {
  return `${path} in HERALD_FILE_DROP_DIR`;
}

function outside(location: string): FileTransferError {
  return new FileTransferError(
    "OUTSIDE_DROP_DIR",
    `${location}: leads outside the drop directory (through a symbolic link or otherwise) and is refused; only files inside HERALD_FILE_DROP_DIR may be read or written`,
  );
}

function fsFailure(error: unknown, location: string, doing: string): FileTransferError {
  const code = errorCodeOf(error);
  const reasons: Record<string, string> = {
    EACCES: "permission denied",
    EPERM: "permission denied",
    ENOSPC: "no space left on the device",
    EDQUOT: "the disk quota is exhausted",
    EISDIR: "it is a directory",
    ELOOP: "too many symbolic links",
    EROFS: "the file system is read-only",
    ENOENT: "the directory does not exist",
  };
  const reason =
    (code && reasons[code]) ?? (error instanceof Error ? error.message : String(error));
  return new FileTransferError(
    doing === "read" ? "NOT_A_FILE" : "WRITE_FAILED",
    `${location}: could not ${doing} it: ${reason}`,
  );
}

/** The drop directory's real path, or the reason it cannot be used. */
async function dropRoot(ctx: TransferContext): Promise<string> {
  if (ctx.dropDir === undefined || ctx.dropDir === "")
    throw new FileTransferError(
      "DROP_DIR_UNAVAILABLE",
      "DIRECTORY sources are refused: the operator has not set HERALD_FILE_DROP_DIR",
    );
  try {
    const root = await realpath(ctx.dropDir);
    if (!(await stat(root)).isDirectory()) throw Object.assign(new Error(), { code: "ENOTDIR" });
    return root;
  } catch (error) {
    const code = errorCodeOf(error);
    throw new FileTransferError(
      "DROP_DIR_UNAVAILABLE",
      `HERALD_FILE_DROP_DIR cannot be used: ${code === "ENOTDIR" ? "it is not a directory" : code === "ENOENT" ? "it does not exist" : (code ?? String(error))}`,
    );
  }
}

/** The path checked again at transfer time, placeholders expanded, and resolved lexically. */
function lexicalPath(root: string, path: string, location: string): string {
  if (dropPathProblem(path) !== undefined) throw outside(location);
  const lexical = resolve(root, path);
  if (!within(root, lexical)) throw outside(location);
  return lexical;
}

/** Where the open file really is (Linux: /proc/self/fd), or undefined where that cannot be read. */
async function openedPath(handle: FileHandle): Promise<string | undefined> {
  try {
    return await readlink(`/proc/self/fd/${handle.fd}`);
  } catch {
    return undefined;
  }
}

export async function fetchDirectoryFile(
  source: DirectorySource,
  ctx: TransferContext,
): Promise<FetchedFile> {
  const path = expandedPath(source.path, ctx);
  const location = locationOf(path);
  const root = await dropRoot(ctx);
  const lexical = lexicalPath(root, path, location);
  let real: string;
  try {
    real = await realpath(lexical);
  } catch (error) {
    if (MISSING.has(errorCodeOf(error) ?? "")) return { found: false, location };
    throw fsFailure(error, location, "read");
  }
  if (!within(root, real)) throw outside(location);
  let handle: FileHandle;
  try {
    // O_NONBLOCK: opening a FIFO must not wait for a writer; O_NOFOLLOW: no link swapped in since.
    handle = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    if (MISSING.has(errorCodeOf(error) ?? "")) return { found: false, location };
    if (errorCodeOf(error) === "ELOOP") throw outside(location);
    throw fsFailure(error, location, "read");
  }
  const deadline = startDeadline(ctx.timeoutMs, location, ctx.signal);
  const release = once(async () => {
    deadline.clear();
    await handle.close();
  });
  // Past the deadline the file is let go even if the reader never comes back to it.
  deadline.signal.addEventListener("abort", () => void release(), { once: true });
  try {
    const opened = await openedPath(handle);
    if (opened !== undefined && !within(root, opened)) throw outside(location);
    const stats = await handle.stat();
    if (!stats.isFile())
      throw new FileTransferError(
        "NOT_A_FILE",
        `${location}: is ${stats.isDirectory() ? "a directory" : "a special file"}, not a regular file`,
      );
    if (stats.size > ctx.maxBytes) throw tooLarge(location, ctx.maxBytes, stats.size);
    return foundFile(handle.createReadStream({ autoClose: false }), basename(path), {
      maxBytes: ctx.maxBytes,
      location,
      deadline,
      describe: (error) => fsFailure(error, location, "read"),
      release,
    });
  } catch (error) {
    await release();
    throw failureOf(error, deadline, (e) => fsFailure(e, location, "read"));
  }
}

/**
 * Writes `content` into the drop directory under `.<name>.<random>.part`, flushed to disk, then
 * renamed over the final name: a reader never sees a partial file under it. The directory must
 * exist (it is not created). Through putDestinationFile (index.ts), which checks `fileName` and
 * lets go of `content` when the put ends.
 */
export async function putDirectoryFile(
  destination: DirectorySource,
  fileName: string,
  content: AsyncIterable<Uint8Array>,
  ctx: TransferContext,
): Promise<{ location: string; bytes: number }> {
  const path = destinationPath(destination.path, fileName, ctx);
  const location = locationOf(path);
  const root = await dropRoot(ctx);
  const lexical = lexicalPath(root, path, location);
  let directory: string;
  try {
    directory = await realpath(dirname(lexical));
  } catch (error) {
    throw fsFailure(error, `${locationOf(dirname(path))}`, "write into");
  }
  if (!within(root, directory)) throw outside(location);
  const target = join(directory, basename(lexical));
  const existing = await stat(target).catch(() => undefined);
  if (existing?.isDirectory())
    throw new FileTransferError(
      "NOT_A_FILE",
      `${location}: is a directory; end the destination's path with / to write into it`,
    );
  const temporary = join(directory, partFileName(basename(lexical)));
  const deadline = startDeadline(ctx.timeoutMs, location, ctx.signal);
  deadline.phase = "writing the file";
  let handle: FileHandle | undefined;
  try {
    // "wx": created here and now (O_EXCL), never an existing file or a link planted at that name.
    const file = await open(temporary, "wx", 0o644);
    handle = file;
    const limits = { location, maxBytes: ctx.maxBytes, deadline };
    const bytes = await writeLimited(content, limits, async (chunk) => {
      // A write may take only part of a chunk (a signal, a nearly full disk): the rest follows.
      for (let offset = 0; offset < chunk.length;) {
        const { bytesWritten } = await file.write(chunk, offset, chunk.length - offset);
        offset += bytesWritten;
      }
    });
    await handle.sync();
    await handle.close();
    handle = undefined;
    await rename(temporary, target);
    return { location, bytes };
  } catch (error) {
    await handle?.close().catch(() => undefined);
    await unlink(temporary).catch(() => undefined);
    throw failureOf(error, deadline, (e) => fsFailure(e, location, "write"));
  } finally {
    deadline.clear();
  }
}
