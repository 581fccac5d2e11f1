/**
 * Reads an import's file from the file store as a stream of rows (DESIGN §6b): decompress (GZIP
 * through node:zlib, ZIP through yauzl over random reads of the stored chunks) → cap the expanded
 * size (a zip bomb stops there) → decode (UTF-8, strictly; ISO-8859-1; WINDOWS-1252) → parse (CSV
 * through csv-parse, RFC 4180 with the definition's separator, quote and escape; NDJSON a line at
 * a time). Nothing holds the whole file.
 *
 * A defect of the file (not the zip or gzip it claims, bytes that are not UTF-8, no header, an
 * unterminated quote) throws ImportFileError: the execution ends ERROR with its message. A defect
 * of one line (the wrong column count, a line of NDJSON that is no JSON object) comes out as a row
 * with a `problem`, which the execution rejects while the others go on.
 */
import { Readable, Transform, pipeline } from "node:stream";
import { createGunzip } from "node:zlib";
import { parse as parseCsv } from "csv-parse";
import yauzl from "yauzl";
import type { FileSettings } from "../domain/etl-definition.js";
import type { Queryable } from "../storage/database.js";
import { readFileRange, readFileStream } from "../storage/file-store.js";

/** The file cannot be read to its end; the message says why, for the person who sent it. */
export class ImportFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ImportFileError";
  }
}

/** An NDJSON key that the row does not have: the attribute is not provided (not cleared). */
export const ABSENT = Symbol("absent");

export interface FileRow {
  /** 0-based number of the data record (the header is not one). */
  index: number;
  /** 1-based line of the file where the record starts (the header is line 1 in CSV). */
  line: number;
  /** The record as it was written (without its line break). */
  raw: string;
  /** CSV: the cells in header order. NDJSON: the parsed object. */
  cells: readonly string[] | Record<string, unknown>;
  problem?: { code: string; message: string };
}

export interface ImportReader {
  /** CSV: the header row. NDJSON: the first object's keys. */
  header: string[];
  rows: AsyncIterator<FileRow>;
  /** Bytes of the stored file read so far (compressed bytes for ZIP and GZIP). */
  bytesRead(): number;
  close(): void;
}

export interface ReadLimits {
  /** Most bytes a compressed file may expand to. */
  maxExpandedBytes: number;
}

interface FileRef {
  id: string;
  bytes: number;
}

/** Opens the file and reads its header. Throws ImportFileError for a file that has none. */
export async function openImportReader(
  db: Queryable,
  file: FileRef,
  settings: FileSettings,
  limits: ReadLimits,
): Promise<ImportReader> {
  let bytesRead = 0;
  const streams: { destroy(): void }[] = [];
  const expanded = await expandedContent(
    db,
    file,
    settings,
    limits,
    (n) => (bytesRead = n),
    streams,
  );
  const text = pipeline(expanded, decoder(settings), () => {});
  streams.push(text);
  const rows = settings.format === "CSV" ? csvRows(text, settings) : ndjsonRows(text);
  const first = await rows.next().catch((error: unknown) => {
    for (const s of streams) s.destroy();
    throw error;
  });
  if (first.done) {
    for (const s of streams) s.destroy();
    throw new ImportFileError(
      settings.format === "CSV"
        ? "the file is empty: it has no header row"
        : "the file holds no JSON object",
    );
  }
  const header = first.value.header;
  let pushedBack: FileRow | undefined = first.value.row;
  const iterator: AsyncIterator<FileRow> = {
    next: async () => {
      if (pushedBack) {
        const row = pushedBack;
        pushedBack = undefined;
        return { done: false, value: row };
      }
      const next = await rows.next();
      return next.done ? { done: true, value: undefined } : { done: false, value: next.value.row! };
    },
  };
  return {
    header,
    rows: iterator,
    bytesRead: () => bytesRead,
    close: () => {
      for (const s of streams) s.destroy();
    },
  };
}

// Bytes -------------------------------------------------------------------------------------------

/** The stored bytes from `start`, counting what was read. */
function storedBytes(db: Queryable, file: FileRef, onRead: (total: number) => void): Readable {
  let total = 0;
  async function* counted() {
    for await (const chunk of readFileStream(db, file.id)) {
      total += chunk.length;
      onRead(total);
      yield chunk;
    }
  }
  return Readable.from(counted(), { objectMode: false });
}

/** Fails the stream once more than `max` bytes went through. */
function sizeCap(max: number, what: string): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seen += chunk.length;
      if (seen > max)
        callback(
          new ImportFileError(
            `${what} expands past ${max} bytes (HERALD_MAX_EXPANDED_BYTES); it was not imported further`,
          ),
        );
      else callback(null, chunk);
    },
  });
}

async function expandedContent(
  db: Queryable,
  file: FileRef,
  settings: FileSettings,
  limits: ReadLimits,
  onRead: (total: number) => void,
  streams: { destroy(): void }[],
): Promise<Readable> {
  if (settings.compression === "NONE") {
    const source = storedBytes(db, file, onRead);
    streams.push(source);
    return source;
  }
  if (settings.compression === "GZIP") {
    const source = storedBytes(db, file, onRead);
    const gunzip = createGunzip();
    const out = pipeline(
      source,
      gunzip,
      sizeCap(limits.maxExpandedBytes, "the GZIP file"),
      () => {},
    );
    streams.push(source, gunzip, out);
    // zlib's own words ("incorrect header check") mean little to the sender: say what it is not.
    return renameErrors(out, "the file is not a valid GZIP file");
  }
  return zipEntry(db, file, limits, onRead, streams);
}

/** Rewrites a stream's non-ImportFileError errors into ImportFileError(`message: cause`). */
function renameErrors(stream: Readable, message: string): Readable {
  const out = new Transform({ transform: (chunk, _e, cb) => cb(null, chunk) });
  stream.on("error", (error) =>
    out.destroy(
      error instanceof ImportFileError
        ? error
        : new ImportFileError(`${message} (${error.message})`),
    ),
  );
  stream.pipe(out);
  return out;
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
  limits: ReadLimits,
  onRead: (total: number) => void,
  streams: { destroy(): void }[],
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
  if (entries.length !== 1) {
    zip.close();
    throw new ImportFileError(
      entries.length === 0
        ? "the ZIP file holds no file"
        : `the ZIP file holds ${entries.length} files (${entries
            .slice(0, 5)
            .map((e) => e.fileName)
            .join(", ")}); an import reads a ZIP with exactly one data file`,
    );
  }
  const entry = entries[0]!;
  if (entry.uncompressedSize > limits.maxExpandedBytes) {
    zip.close();
    throw new ImportFileError(
      `'${entry.fileName}' in the ZIP file expands to ${entry.uncompressedSize} bytes, past ${limits.maxExpandedBytes} (HERALD_MAX_EXPANDED_BYTES)`,
    );
  }
  const content = await new Promise<Readable>((resolve, reject) =>
    zip.openReadStream(entry, (error, stream) =>
      error
        ? reject(new ImportFileError(`the ZIP file is damaged (${error.message})`))
        : resolve(stream),
    ),
  );
  // The declared size may lie (yauzl checks it too): the cap holds whatever the header says.
  const capped = pipeline(
    content,
    sizeCap(limits.maxExpandedBytes, `'${entry.fileName}' in the ZIP file`),
    () => {},
  );
  streams.push(content, capped, { destroy: () => zip.close() });
  return renameErrors(capped, "the ZIP file is damaged");
}

// Text --------------------------------------------------------------------------------------------

function decoder(settings: FileSettings): Transform {
  if (settings.encoding === "ISO-8859-1") {
    // Every byte is one character: Node's latin1 is exact (WHATWG's TextDecoder would read
    // 0x80–0x9F as WINDOWS-1252).
    return new Transform({
      transform: (chunk: Buffer, _e, cb) => cb(null, chunk.toString("latin1")),
    });
  }
  const decode = new TextDecoder(settings.encoding === "UTF-8" ? "utf-8" : "windows-1252", {
    fatal: settings.encoding === "UTF-8",
  });
  let offset = 0;
  const failure = () =>
    new ImportFileError(
      `the file is not valid UTF-8 (near byte ${offset}); set file.encoding to ISO-8859-1 or WINDOWS-1252 if it was written in one of those`,
    );
  return new Transform({
    transform(chunk: Buffer, _e, cb) {
      try {
        const text = decode.decode(chunk, { stream: true });
        offset += chunk.length;
        cb(null, text);
      } catch {
        cb(failure());
      }
    },
    flush(cb) {
      try {
        cb(null, decode.decode());
      } catch {
        cb(failure());
      }
    },
  });
}

interface ParsedRecord {
  header: string[];
  row: FileRow | undefined;
}

function withoutLineBreak(raw: string): string {
  return raw.replace(/\r?\n$|\r$/, "");
}

async function* csvRows(text: Readable, settings: FileSettings): AsyncGenerator<ParsedRecord> {
  const parser = parseCsv({
    delimiter: settings.separator,
    quote: settings.quote,
    escape: settings.escape,
    relax_column_count: true,
    relax_quotes: true,
    skip_empty_lines: true,
    info: true,
    raw: true,
  });
  const records = pipeline(text, parser, () => {});
  let header: string[] | undefined;
  let index = 0;
  try {
    for await (const item of records as AsyncIterable<{
      record: string[];
      raw: string;
      info: { lines: number };
    }>) {
      const raw = withoutLineBreak(item.raw);
      const line = item.info.lines - (raw.match(/\n/g)?.length ?? 0);
      if (!header) {
        header = item.record.map((name, i) =>
          (i === 0 ? name.replace(/^\uFEFF/, "") : name).trim(),
        );
        yield { header, row: undefined };
        continue;
      }
      const row: FileRow = { index: index++, line, raw, cells: item.record };
      if (item.record.length !== header.length)
        row.problem = {
          code: "HERALD_INVALID_ROW",
          message: `Line ${line} has ${item.record.length} fields; the header has ${header.length}`,
        };
      yield { header, row };
    }
  } catch (error) {
    if (error instanceof ImportFileError) throw error;
    const code = (error as { code?: string }).code;
    if (typeof code === "string" && code.startsWith("CSV_"))
      throw new ImportFileError(`the CSV cannot be read: ${(error as Error).message}`);
    throw error;
  }
}

async function* ndjsonRows(text: Readable): AsyncGenerator<ParsedRecord> {
  let header: string[] | undefined;
  let buffered = "";
  let lineNumber = 0;
  let index = 0;
  const parseLine = function* (rawLine: string): Generator<ParsedRecord> {
    lineNumber++;
    const raw = rawLine.replace(/\r$/, "");
    if (raw.trim() === "") return;
    let value: unknown;
    let problem: FileRow["problem"];
    try {
      value = JSON.parse(raw);
      if (typeof value !== "object" || value === null || Array.isArray(value))
        problem = {
          code: "HERALD_INVALID_ROW",
          message: `Line ${lineNumber} is not a JSON object`,
        };
    } catch (error) {
      problem = {
        code: "HERALD_INVALID_ROW",
        message: `Line ${lineNumber} is not valid JSON (${(error as Error).message})`,
      };
    }
    const cells = problem ? {} : (value as Record<string, unknown>);
    if (!header) {
      if (problem)
        throw new ImportFileError(`the first line is no JSON object: ${problem.message}`);
      header = Object.keys(cells);
      yield { header, row: undefined };
    }
    const row: FileRow = { index: index++, line: lineNumber, raw, cells };
    if (problem) row.problem = problem;
    yield { header, row };
  };
  for await (const chunk of text as AsyncIterable<string>) {
    buffered += chunk;
    let start = 0;
    let newline = buffered.indexOf("\n");
    while (newline >= 0) {
      yield* parseLine(buffered.slice(start, newline));
      start = newline + 1;
      newline = buffered.indexOf("\n", start);
    }
    buffered = buffered.slice(start);
  }
  if (buffered !== "") yield* parseLine(buffered);
}
