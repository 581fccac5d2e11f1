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
  /**
   * How far into the stored file the rows handed out so far reach: bytes parsed for a plain file;
   * for ZIP and GZIP, compressed bytes read (the parser reads a little ahead of them).
   */
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
  // A defect of the bytes (a damaged or oversized archive, bytes not in the encoding, a failed
  // read) stops the reading but does not throw away what came before it: the gate passes on what
  // it holds and ends, the parser yields every whole row before the defect, and the failure is
  // thrown once those are read.
  let failure: Error | undefined;
  // A stored file is within HERALD_MAX_FILE_BYTES already: only what expands is capped.
  const cap = settings.compression === "NONE" ? Infinity : limits.maxExpandedBytes;
  const gate = sizeGate(cap, settings.compression, (error) => fail(error));
  const text = decoder(settings, (error) => fail(error));
  const raw: { destroy(): void }[] = [];
  const fail = (error: Error) => {
    failure ??= error;
    for (const stream of raw) stream.destroy();
    queueMicrotask(() => {
      if (!gate.writableEnded) gate.end();
    });
  };
  try {
    const source = await expandedContent(
      db,
      file,
      settings,
      limits.maxExpandedBytes,
      (n) => (bytesRead = n),
      fail,
      raw,
    );
    source.pipe(gate);
  } catch (error) {
    for (const stream of raw) stream.destroy();
    throw error;
  }
  gate.pipe(text);
  const streams = [...raw, gate, text];
  const close = () => {
    for (const stream of streams) stream.destroy();
  };
  const parsed = settings.format === "CSV" ? csvRows(text, settings) : ndjsonRows(text);
  const rows = {
    next: async () => {
      const next = await parsed.next();
      if (next.done && failure) throw failure;
      return next;
    },
  };
  const first = await rows.next().catch((error: unknown) => {
    close();
    throw error;
  });
  if (first.done) {
    close();
    throw new ImportFileError(
      settings.format === "CSV"
        ? "the file is empty: it has no header row"
        : "the file holds no JSON object",
    );
  }
  const header = first.value.header;
  // A plain file's position is counted from the rows themselves: the stream reads megabytes ahead.
  const utf8 = settings.encoding === "UTF-8";
  const lineBytes = (text: string) => (utf8 ? Buffer.byteLength(text, "utf8") : text.length) + 1;
  let handedOut = settings.format === "CSV" ? lineBytes(header.join(settings.separator)) : 0;
  let finished = false;
  const handOut = (row: FileRow): IteratorResult<FileRow> => {
    handedOut += lineBytes(row.raw);
    return { done: false, value: row };
  };
  let pushedBack: FileRow | undefined = first.value.row;
  const iterator: AsyncIterator<FileRow> = {
    next: async () => {
      if (pushedBack) {
        const row = pushedBack;
        pushedBack = undefined;
        return handOut(row);
      }
      const next = await rows.next();
      if (next.done) {
        finished = true;
        return { done: true, value: undefined };
      }
      return handOut(next.value.row!);
    },
  };
  const position = () =>
    settings.compression !== "NONE"
      ? bytesRead
      : finished
        ? file.bytes
        : Math.min(handedOut, file.bytes);
  return { header, rows: iterator, bytesRead: position, close };
}

// Bytes -------------------------------------------------------------------------------------------

/** The stored bytes, counting what was read. */
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

/**
 * Passes at most `max` bytes: the bytes up to the limit go on, then `onOver` is told (a zip bomb
 * stops here, with what it expanded to so far imported).
 */
function sizeGate(
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
async function expandedContent(
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

// Text --------------------------------------------------------------------------------------------

function decoder(settings: FileSettings, onFailure: (error: ImportFileError) => void): Transform {
  if (settings.encoding === "ISO-8859-1") {
    // Every byte is one character: Node's latin1 is exact (WHATWG's TextDecoder would read
    // 0x80–0x9F as WINDOWS-1252).
    return new Transform({
      transform: (chunk: Buffer, _e, cb) => cb(null, chunk.toString("latin1")),
    });
  }
  if (settings.encoding === "WINDOWS-1252") {
    // Every byte decodes (the five unassigned ones to C1 controls, as WHATWG says).
    const decode = new TextDecoder("windows-1252");
    return new Transform({
      transform: (chunk: Buffer, _e, cb) => cb(null, decode.decode(chunk, { stream: true })),
      flush: (cb) => cb(null, decode.decode()),
    });
  }
  return utf8Decoder(onFailure);
}

/** How much of `data` ends on a whole UTF-8 sequence (the rest waits for the next chunk). */
function wholeSequences(data: Buffer): number {
  for (let i = data.length - 1; i >= Math.max(0, data.length - 4); i--) {
    const byte = data[i]!;
    if ((byte & 0xc0) === 0x80) continue; // a continuation byte: look further back
    const length = byte < 0x80 ? 1 : byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1;
    return i + length > data.length ? i : data.length;
  }
  return data.length;
}

/**
 * Strict UTF-8: a byte sequence that is not UTF-8 fails the file, with the line it is on. The
 * lines before it are decoded and passed on first, so the rows before the defect are applied and
 * the failure names the right line. A BOM at the start is dropped.
 */
function utf8Decoder(onFailure: (error: ImportFileError) => void): Transform {
  const strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  let carry: Buffer = Buffer.alloc(0);
  let line = 1;
  let first = true;
  let failed = false;
  const failure = () =>
    new ImportFileError(
      `line ${line} is not valid UTF-8; set file.encoding to ISO-8859-1 or WINDOWS-1252 if the file was written in one of those`,
    );
  const newlines = (text: string) => {
    let n = 0;
    for (let i = text.indexOf("\n"); i >= 0; i = text.indexOf("\n", i + 1)) n++;
    return n;
  };
  return new Transform({
    transform(chunk: Buffer, _e, cb) {
      if (failed) {
        cb();
        return;
      }
      let data = carry.length > 0 ? Buffer.concat([carry, chunk]) : chunk;
      if (first && data.length >= 3) {
        first = false;
        if (data[0] === 0xef && data[1] === 0xbb && data[2] === 0xbf) data = data.subarray(3);
      }
      const cut = wholeSequences(data);
      carry = Buffer.from(data.subarray(cut));
      const body = data.subarray(0, cut);
      try {
        const text = strict.decode(body);
        line += newlines(text);
        cb(null, text);
        return;
      } catch {
        // Find the line: decode line by line (a newline byte is never inside a UTF-8 sequence).
      }
      let start = 0;
      let good = "";
      for (;;) {
        const newline = body.indexOf(10, start);
        const end = newline < 0 ? body.length : newline + 1;
        try {
          good += strict.decode(body.subarray(start, end));
        } catch {
          failed = true;
          cb(null, good);
          onFailure(failure());
          return;
        }
        if (newline < 0) break;
        line++;
        start = end;
      }
      cb(null, good);
    },
    flush(cb) {
      cb();
      if (carry.length > 0 && !failed) onFailure(failure());
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
      // csv-parse counts CR LF, a lone LF and a lone CR each as one line break.
      const line = item.info.lines - (raw.match(/\r\n|\r|\n/g)?.length ?? 0);
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
