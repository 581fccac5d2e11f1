/**
 * Turns an export's rows into its file's bytes (SPEC §7.3), as a stream: CSV as Actito writes it
 * (UTF-8 without BOM, the separator, a header row, a field quoted with `"` only when it holds the
 * separator, a quote or a line break, quotes doubled, lines ending in `\n`) or NDJSON (one object
 * per line), then NONE, GZIP (node:zlib) or ZIP (one entry, yazl). Each batch of rows becomes one
 * piece of text, pulled by the stage after it, so only a few batches are in memory whatever the
 * table's size.
 *
 * The CSV rule is written here rather than through csv-stringify's stream: that rule is three lines,
 * and the object-mode stream costs about as much CPU per row as reading the rows from PostgreSQL
 * (docs/performance-notes.md, "Export CSV lines"). csv-stringify stays the reference: exports-csv.test.ts checks
 * that both write the same bytes for fields made to be hard (separators, quotes, CR, LF, empty
 * values, non-ASCII text).
 */
import type { Readable } from "node:stream";
import { pipeline, Readable as ReadableStream } from "node:stream";
import { createGzip } from "node:zlib";
import yazl from "yazl";
import type { ExportFormat } from "../domain/export-definition.js";

/** A value as a row holds it: text, a multi-value, or nothing. */
export type ExportValue = string | string[] | null;

function specialCharacters(separator: string): RegExp {
  return new RegExp(`[${separator.replace(/[\\\]^-]/g, "\\$&")}"\\r\\n]`);
}

/**
 * One CSV line (with its `\n`): a multi-value's values joined by commas, nothing as an empty field,
 * a field quoted only when it holds the separator, a quote or a line break.
 */
export function csvLineWriter(separator: string): (values: readonly ExportValue[]) => string {
  const special = specialCharacters(separator);
  const field = (value: ExportValue): string => {
    if (value === null) return "";
    const text = Array.isArray(value) ? value.join(",") : value;
    return special.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  };
  return (values) => {
    let line = "";
    for (let i = 0; i < values.length; i++) line += (i === 0 ? "" : separator) + field(values[i]!);
    return `${line}\n`;
  };
}

function ndjsonLineWriter(columns: readonly string[]): (values: readonly ExportValue[]) => string {
  return (values) => {
    const object: Record<string, ExportValue> = {};
    for (let i = 0; i < columns.length; i++) object[columns[i]!] = values[i] ?? null;
    return `${JSON.stringify(object)}\n`;
  };
}

/** The text of the file, one piece per batch (the CSV header first). */
async function* text(
  columns: readonly string[],
  batches: AsyncIterable<ExportValue[][]>,
  format: ExportFormat,
): AsyncGenerator<Buffer> {
  const line = format.type === "CSV" ? csvLineWriter(format.separator) : ndjsonLineWriter(columns);
  if (format.type === "CSV") yield Buffer.from(line(columns), "utf8");
  for await (const batch of batches) {
    let piece = "";
    for (const row of batch) piece += line(row);
    if (piece !== "") yield Buffer.from(piece, "utf8");
  }
}

/**
 * The file's content: `rows` (batches of rows, each a value per column) written in `format`.
 * `entryName` names the one entry of a ZIP. A failure of `rows` fails the stream.
 */
export function exportFileContent(
  columns: readonly string[],
  rows: AsyncIterable<ExportValue[][]>,
  format: ExportFormat,
  entryName: string,
): AsyncIterable<Uint8Array> {
  return compressed(text(columns, rows, format), format, entryName);
}

/**
 * A CSV file's content from lines PostgreSQL wrote (`COPY … TO STDOUT`, see export-run.ts): the
 * header row, written here as for any CSV export, then `body` as it comes, compressed the same way.
 */
export function exportCsvContent(
  columns: readonly string[],
  body: AsyncIterable<Buffer>,
  format: ExportFormat,
  entryName: string,
): AsyncIterable<Uint8Array> {
  async function* content(): AsyncGenerator<Buffer> {
    yield Buffer.from(csvLineWriter(format.separator)(columns), "utf8");
    yield* body;
  }
  return compressed(content(), format, entryName);
}

/** `content` compressed as `format` says (NONE, GZIP, or ZIP with one entry named `entryName`). */
function compressed(
  content: AsyncIterable<Buffer>,
  format: ExportFormat,
  entryName: string,
): AsyncIterable<Uint8Array> {
  switch (format.compression) {
    case "NONE":
      return content;
    case "GZIP": {
      const gzip = createGzip();
      return pipeline(ReadableStream.from(content), gzip, (error) => {
        if (error) gzip.destroy(error);
      }) as unknown as Readable;
    }
    case "ZIP": {
      const zip = new yazl.ZipFile();
      const output = zip.outputStream as unknown as Readable;
      const entry = ReadableStream.from(content);
      entry.on("error", (error) => output.destroy(error));
      // A reader that stops early ends the rows too (yazl leaves its entry's stream alone).
      output.on("close", () => entry.destroy());
      zip.addReadStream(entry, entryName, { mtime: new Date() });
      zip.end();
      return output;
    }
  }
}

/** The Content-Type a downloaded export file is served with, from its name's extension. */
export function exportContentType(fileName: string): string {
  if (fileName.endsWith(".gz")) return "application/gzip";
  if (fileName.endsWith(".zip")) return "application/zip";
  if (fileName.endsWith(".csv")) return "text/csv; charset=utf-8";
  return "application/x-ndjson; charset=utf-8";
}
