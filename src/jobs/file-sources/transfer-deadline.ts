/**
 * The two limits every transfer keeps, whatever the source: one deadline for the whole transfer
 * (connecting, the answer, every byte), and the size limit counted on the bytes as they stream.
 */
import type { Readable } from "node:stream";
import { FileTransferError, tooLarge } from "./file-transfer-error.js";
import type { FetchedFile } from "./transfer-context.js";

export interface Deadline {
  /** Aborted when the time is up or the caller cancels; the reason is the FileTransferError. */
  readonly signal: AbortSignal;
  /** What the transfer is doing, named in the timeout's message ("connecting", "reading the file"). */
  phase: string;
  /** Milliseconds left (at least 1). */
  remainingMs(): number;
  clear(): void;
}

export function startDeadline(
  timeoutMs: number,
  location: string,
  callerSignal: AbortSignal | undefined,
): Deadline {
  const controller = new AbortController();
  const ends = Date.now() + timeoutMs;
  const deadline: Deadline = {
    signal: controller.signal,
    phase: "connecting",
    remainingMs: () => Math.max(1, ends - Date.now()),
    clear: () => {
      clearTimeout(timer);
      callerSignal?.removeEventListener("abort", onCallerAbort);
    },
  };
  const timer = setTimeout(() => {
    controller.abort(
      new FileTransferError(
        "TIMEOUT",
        `${location}: the transfer did not complete within ${timeoutMs} ms (stalled while ${deadline.phase}; HERALD_FILE_FETCH_TIMEOUT_MS sets the limit)`,
      ),
    );
  }, timeoutMs);
  const onCallerAbort = () => {
    clearTimeout(timer);
    controller.abort(new FileTransferError("ABORTED", `${location}: the transfer was cancelled`));
  };
  if (callerSignal?.aborted) onCallerAbort();
  else callerSignal?.addEventListener("abort", onCallerAbort, { once: true });
  return deadline;
}

/** The error a transfer ended with: the deadline's, when it is what ended it. */
export function failureOf(
  error: unknown,
  deadline: Deadline,
  describe: (error: unknown) => FileTransferError,
): FileTransferError {
  if (error instanceof FileTransferError) return error;
  if (deadline.signal.aborted && deadline.signal.reason instanceof FileTransferError)
    return deadline.signal.reason;
  return describe(error);
}

export interface LimitedContentOptions {
  maxBytes: number;
  location: string;
  deadline: Deadline;
  /** Turns a stream error into the transfer's error. */
  describe: (error: unknown) => FileTransferError;
  /** Releases the connection or the file; called once, however the reading ends. */
  release: () => Promise<void>;
}

/**
 * The bytes of `stream`, counted against the size limit and cut off by the deadline: the stream is
 * destroyed the moment the deadline passes (a stalled read cannot outlive it), and the reader sees
 * the FileTransferError. Never more than one chunk in memory.
 */
export function limitedContent(
  stream: Readable,
  options: LimitedContentOptions,
): AsyncGenerator<Uint8Array> {
  // Until it is read (and after), an error of the stream is the reader's to see, not the process's:
  // a caller that closes without reading must not crash Herald with an unhandled stream error.
  stream.on("error", () => undefined);
  return readLimited(stream, options);
}

/** What a fetch hands back once the file is there: `stream` as limitedContent, named `name`. */
export function foundFile(
  stream: Readable,
  name: string,
  options: LimitedContentOptions,
): FetchedFile {
  return {
    found: true,
    name,
    location: options.location,
    content: limitedContent(stream, options),
    close: options.release,
  };
}

async function* readLimited(
  stream: Readable,
  options: LimitedContentOptions,
): AsyncGenerator<Uint8Array> {
  const { deadline } = options;
  const onAbort = () => stream.destroy(deadline.signal.reason as Error);
  if (deadline.signal.aborted) onAbort();
  else deadline.signal.addEventListener("abort", onAbort, { once: true });
  let bytes = 0;
  try {
    deadline.phase = "reading the file";
    for await (const chunk of stream as AsyncIterable<Uint8Array>) {
      bytes += chunk.length;
      if (bytes > options.maxBytes) throw tooLarge(options.location, options.maxBytes);
      yield chunk;
    }
  } catch (error) {
    throw failureOf(error, deadline, options.describe);
  } finally {
    deadline.signal.removeEventListener("abort", onAbort);
    stream.destroy();
    await options.release();
  }
}

/**
 * Writes every chunk of a put's `content` with `write` (given the chunk and its offset in the
 * file), one at a time, counted against the size limit and stopped by the deadline; returns the
 * number of bytes written.
 */
export async function writeLimited(
  content: AsyncIterable<Uint8Array>,
  limits: { location: string; maxBytes: number; deadline: Deadline },
  write: (chunk: Uint8Array, position: number) => Promise<void>,
): Promise<number> {
  let bytes = 0;
  for await (const chunk of content) {
    if (limits.deadline.signal.aborted) throw limits.deadline.signal.reason;
    bytes += chunk.length;
    if (bytes > limits.maxBytes) throw tooLarge(limits.location, limits.maxBytes);
    await write(chunk, bytes - chunk.length);
  }
  return bytes;
}

/** Runs `release` once, whoever calls first (the content's end or the caller's close()). */
export function once(release: () => Promise<void>): () => Promise<void> {
  let done: Promise<void> | undefined;
  return () => (done ??= release().catch(() => undefined));
}

/**
 * The content a put writes, with a way to let go of it when the put fails before or while reading
 * it (a connection refused, a missing directory): the producer (a stream of the file store) is then
 * ended instead of being left open.
 */
export function releasable(content: AsyncIterable<Uint8Array>): {
  chunks: AsyncIterable<Uint8Array>;
  release: () => Promise<void>;
} {
  const iterator = content[Symbol.asyncIterator]();
  return {
    chunks: { [Symbol.asyncIterator]: () => iterator },
    release: async () => {
      await Promise.resolve(iterator.return?.()).catch(() => undefined);
    },
  };
}
