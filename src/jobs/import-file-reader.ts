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
import type { Readable } from "node:stream";
import { pipeline } from "node:stream";
import { parse as parseCsv } from "csv-parse";
import type { FileSettings } from "../domain/etl-definition.js";
import type { Queryable } from "../storage/database.js";
import type { FileRef } from "./import-file-bytes.js";
import { expandedContent, sizeGate } from "./import-file-bytes.js";
import { ImportFileError } from "./import-file-error.js";
import { decoder } from "./import-text-decoders.js";

export { ImportFileError } from "./import-file-error.js";

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

/** The longest record (CSV) or line (NDJSON) read, in characters: far beyond any real row. */
export const MAX_RECORD_CHARACTERS = 1 << 20;

interface ParsedRecord {
  header: string[];
  row: FileRow | undefined;
}

function withoutLineBreak(raw: string): string {
  return raw.replace(/\r?\n$|\r$/, "");
}

/**
 * The record without the record delimiter csv-parse found in the file (it detects `\n`, `\r\n` or
 * `\r` from the first record): in a file of `\n` records, a field ending in a bare `\r` keeps it
 * (stripping `\r\n` there took it from the cell's text and miscounted the record's line).
 */
function withoutRecordDelimiter(raw: string, delimiters: readonly string[]): string {
  for (const delimiter of delimiters)
    if (raw.endsWith(delimiter)) return raw.slice(0, -delimiter.length);
  return withoutLineBreak(raw);
}

/**
 * The record without the empty lines skipped before it (csv-parse's raw holds them): leading record
 * delimiters, once known; a first cell that begins with a bare `\r` in a file of `\n` records keeps it.
 */
function withoutSkippedLines(raw: string, delimiters: readonly string[]): string {
  if (delimiters.length === 0) return raw.replace(/^(?:\r\n|\r|\n)+/, "");
  let start = 0;
  for (let again = true; again;) {
    again = false;
    for (const delimiter of delimiters)
      if (raw.startsWith(delimiter, start)) {
        start += delimiter.length;
        again = true;
        break;
      }
  }
  return raw.slice(start);
}

function lineBreaks(text: string): number {
  return text.match(/\r\n|\r|\n/g)?.length ?? 0;
}

/** The record delimiters csv-parse has detected so far, longest first (none before the first). */
function recordDelimiters(parser: { options: unknown }): string[] {
  const found = (parser.options as { record_delimiter?: Buffer[] }).record_delimiter ?? [];
  return found
    .map((b) => b.toString())
    .filter((d) => d.length > 0)
    .sort((x, y) => y.length - x.length);
}

async function* csvRows(text: Readable, settings: FileSettings): AsyncGenerator<ParsedRecord> {
  const parser = parseCsv({
    // A file without line breaks (or a quote left open) must not become one record the size of
    // the file in memory: past this it stops with CSV_MAX_RECORD_SIZE.
    max_record_size: MAX_RECORD_CHARACTERS,
    delimiter: settings.separator,
    quote: settings.quote,
    escape: settings.escape,
    relax_column_count: true,
    relax_quotes: true,
    skip_empty_lines: true,
    raw: true,
  });
  const records = pipeline(text, parser, () => {});
  let header: string[] | undefined;
  let index = 0;
  let delimiters: string[] = [];
  /** The line the next record's text starts on. */
  let nextLine = 1;
  try {
    for await (const item of records as AsyncIterable<{
      record: string[];
      raw: string;
    }>) {
      // raw also holds the line breaks of the empty lines skipped before the record (a record
      // never starts with a line break: a quoted one starts with its quote).
      // Detected with the first line break and never changed after: read once it is known.
      if (delimiters.length === 0) delimiters = recordDelimiters(parser);
      const unskipped = withoutRecordDelimiter(item.raw, delimiters);
      const raw = withoutSkippedLines(unskipped, delimiters);
      // Counted here, CR LF, a lone LF and a lone CR each as one line break, rather than taken from
      // csv-parse's info.lines, which counts a CR LF inside a quoted field of a file of LF records
      // as two lines.
      const line = nextLine + lineBreaks(unskipped.slice(0, unskipped.length - raw.length));
      nextLine = line + lineBreaks(raw) + 1;
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
    if (buffered.length > MAX_RECORD_CHARACTERS)
      throw new ImportFileError(
        `line ${lineNumber + 1} is longer than ${MAX_RECORD_CHARACTERS} characters; a line of NDJSON holds one record`,
      );
  }
  if (buffered !== "") yield* parseLine(buffered);
}
