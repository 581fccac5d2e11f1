/**
 * The bytes of an import's file (import-file-reader.ts): read from the file store, decompressed
 * (GZIP through node:zlib, ZIP through yauzl over random reads of the stored chunks) and capped
 * (HERALD_MAX_EXPANDED_BYTES: a zip bomb stops there, with what it expanded to so far passed on).
 */
import { Readable, Transform } from "node:stream";
import { createGunzip } from "node:zlib";
import yauzl from "yauzl";
import type { FileSettings } from "../domain/etl-definition.js";
import type { Queryable } from "../storage/database.js";
import { readFileRange, readFileStream } from "../storage/file-store.js";
import { ImportFileError } from "./import-file-error.js";

export interface FileRef {
  id: string;
  bytes: number;
}

/**
 * Pieces the stored chunks are passed on in. Every stage after this one (decompress, decode,
 * parse) holds about one piece ahead of the reader; a whole 1 MiB chunk parsed at once held some
 * 10,000 parsed rows (tens of MB) waiting.
 */
const PIECE_BYTES = 64 * 1024;

/** The stored bytes in pieces, counting what was read. */
function storedBytes(db: Queryable, file: FileRef, onRead: (total: number) => void): Readable {
  let total = 0;
  async function* counted() {
    for await (const chunk of readFileStream(db, file.id)) {
      for (let at = 0; at < chunk.length; at += PIECE_BYTES) {
        const piece = chunk.subarray(at, at + PIECE_BYTES);
        total += piece.length;
        onRead(total);
        yield piece;
      }
    }
  }
  return Readable.from(counted(), { objectMode: false });
}

/**
 * Passes at most `max` bytes: the bytes up to the limit go on, then `onOver` is told (a zip bomb
 * stops here, with what it expanded to so far imported).
 */
export function sizeGate(
  max: number,
  compression: FileSettings["compression"],
  onOver: (error: ImportFileError) => void,
): Transform {
  let seen = 0;
  let over = false;
  const what = `the ${compression} file`;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      if (over) return callback();
      const room = max - seen;
      seen += chunk.length;
      if (chunk.length <= room) return callback(null, chunk);
      over = true;
      callback(null, chunk.subarray(0, room));
      onOver(
        new ImportFileError(
          `${what} expands past ${max} bytes (HERALD_MAX_EXPANDED_BYTES); it was not imported further`,
        ),
      );
    },
  });
}

/**
 * The file's content, decompressed. Errors go to `fail` (renamed for the person who sent the
 * file); `raw` collects the streams to destroy when reading stops.
 */
export async function expandedContent(
  db: Queryable,
  file: FileRef,
  settings: FileSettings,
  maxExpandedBytes: number,
  onRead: (total: number) => void,
  fail: (error: Error) => void,
  raw: { destroy(): void }[],
): Promise<Readable> {
  if (settings.compression === "ZIP")
    return zipEntry(db, file, maxExpandedBytes, onRead, fail, raw);
  const source = storedBytes(db, file, onRead);
  raw.push(source);
  source.on("error", (error) => fail(error));
  if (settings.compression === "NONE") return source;
  const gunzip = createGunzip();
  raw.push(gunzip);
  // zlib's own words ("incorrect header check") mean little to the sender: say what it is not.
  gunzip.on("error", (error) =>
    fail(new ImportFileError(`the file is not a valid GZIP file (${error.message})`)),
  );
  return source.pipe(gunzip);
}

/** yauzl reads a ZIP by ranges: its central directory at the end first, then the entry. */
class StoredFileReader extends yauzl.RandomAccessReader {
  constructor(
    private readonly db: Queryable,
    private readonly fileId: string,
    private readonly onRead: (bytes: number) => void,
  ) {
    super();
  }
  override _readStreamForRange(start: number, end: number): Readable {
    const { db, fileId, onRead } = this;
    async function* range() {
      // Pieces of at most 1 MiB, so a large entry streams.
      for (let offset = start; offset < end; offset += 1 << 20) {
        const piece = await readFileRange(db, fileId, offset, Math.min(end, offset + (1 << 20)));
        onRead(offset + piece.length);
        if (piece.length === 0) return;
        yield piece;
      }
    }
    return Readable.from(range(), { objectMode: false });
  }
}

async function zipEntry(
  db: Queryable,
  file: FileRef,
  maxExpandedBytes: number,
  onRead: (total: number) => void,
  fail: (error: Error) => void,
  raw: { destroy(): void }[],
): Promise<Readable> {
  const reader = new StoredFileReader(db, file.id, onRead);
  let zip: yauzl.ZipFile;
  try {
    zip = await yauzl.fromRandomAccessReaderPromise(reader, file.bytes, {
      lazyEntries: true,
      autoClose: false,
    });
  } catch (error) {
    throw new ImportFileError(`the file is not a valid ZIP file (${(error as Error).message})`);
  }
  raw.push({ destroy: () => zip.close() });
  const entries: yauzl.Entry[] = [];
  await new Promise<void>((resolve, reject) => {
    zip.on("entry", (entry: yauzl.Entry) => {
      // Folders and the resource forks macOS adds are not data.
      if (!entry.fileName.endsWith("/") && !entry.fileName.startsWith("__MACOSX/"))
        entries.push(entry);
      zip.readEntry();
    });
    zip.on("end", () => resolve());
    zip.on("error", (error: Error) =>
      reject(new ImportFileError(`the ZIP file is damaged (${error.message})`)),
    );
    zip.readEntry();
  });
  if (entries.length !== 1)
    throw new ImportFileError(
      entries.length === 0
        ? "the ZIP file holds no file"
        : `the ZIP file holds ${entries.length} files (${entries
            .slice(0, 5)
            .map((e) => e.fileName)
            .join(", ")}); an import reads a ZIP with exactly one data file`,
    );
  const entry = entries[0]!;
  if (entry.uncompressedSize > maxExpandedBytes)
    throw new ImportFileError(
      `'${entry.fileName}' in the ZIP file expands to ${entry.uncompressedSize} bytes, past ${maxExpandedBytes} (HERALD_MAX_EXPANDED_BYTES)`,
    );
  const content = await new Promise<Readable>((resolve, reject) =>
    zip.openReadStream(entry, (error, stream) =>
      error
        ? reject(new ImportFileError(`the ZIP file is damaged (${error.message})`))
        : resolve(stream),
    ),
  );
  raw.push(content);
  // yauzl checks the sizes the entry declares; the size gate holds whatever they say.
  content.on("error", (error) =>
    fail(new ImportFileError(`the ZIP file is damaged (${error.message})`)),
  );
  return content;
}
