/**
 * Turns an export's rows into its file's bytes (SPEC §7.3), as a stream: CSV as Actito writes it
 * (UTF-8 without BOM, the separator, a header row, a field quoted with `"` only when it holds the
 * separator, a quote or a line break, quotes doubled; written by csv-stringify) or NDJSON (one
 * object per line), then NONE, GZIP (node:zlib) or ZIP (one entry, yazl). Every stage is pulled by
 * the one after it, so only a few batches are in memory whatever the table's size.
 */
import type { Readable } from "node:stream";
import { pipeline, Readable as ReadableStream, Transform } from "node:stream";
import { createGzip } from "node:zlib";
import { stringify } from "csv-stringify";
import yazl from "yazl";
import type { ExportFormat } from "../domain/export-definition.js";

/** A value as a row holds it: text, a multi-value, or nothing. */
export type ExportValue = string | string[] | null;

/** A multi-value in one CSV field: its values joined by commas (the field is quoted if needed). */
function csvField(value: ExportValue): string {
  if (value === null) return "";
  return Array.isArray(value) ? value.join(",") : value;
}

function csvStream(columns: readonly string[], separator: string): Transform {
  return stringify({
    delimiter: separator,
    header: true,
    columns: [...columns],
    bom: false,
    record_delimiter: "\n",
    quote: '"',
    escape: '"',
  });
}

function ndjsonStream(columns: readonly string[]): Transform {
  return new Transform({
    writableObjectMode: true,
    transform(row: ExportValue[], _encoding, done) {
      const object: Record<string, ExportValue> = {};
      columns.forEach((name, i) => {
        object[name] = row[i] ?? null;
      });
      done(null, `${JSON.stringify(object)}\n`);
    },
  });
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
  // csv-stringify takes the rows once their values are CSV fields.
  const source = ReadableStream.from(flatten(rows, format.type === "CSV"), { objectMode: true });
  const text = format.type === "CSV" ? csvStream(columns, format.separator) : ndjsonStream(columns);
  const fail = (error: Error | null | undefined, target: Readable) => {
    if (error) target.destroy(error);
  };
  switch (format.compression) {
    case "NONE":
      return pipeline(source, text, (error) => fail(error, text)) as unknown as Readable;
    case "GZIP": {
      const gzip = createGzip();
      return pipeline(source, text, gzip, (error) => fail(error, gzip)) as unknown as Readable;
    }
    case "ZIP": {
      const zip = new yazl.ZipFile();
      const output = zip.outputStream as unknown as Readable;
      const entry = pipeline(source, text, (error) => {
        if (error) output.destroy(error);
      }) as unknown as Readable;
      zip.addReadStream(entry, entryName, { mtime: new Date() });
      zip.end();
      return output;
    }
  }
}

async function* flatten(
  batches: AsyncIterable<ExportValue[][]>,
  csv: boolean,
): AsyncGenerator<ExportValue[]> {
  for await (const batch of batches) for (const row of batch) yield csv ? row.map(csvField) : row;
}

/** The Content-Type a downloaded export file is served with, from its name's extension. */
export function exportContentType(fileName: string): string {
  if (fileName.endsWith(".gz")) return "application/gzip";
  if (fileName.endsWith(".zip")) return "application/zip";
  if (fileName.endsWith(".csv")) return "text/csv; charset=utf-8";
  return "application/x-ndjson; charset=utf-8";
}
