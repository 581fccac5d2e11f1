/**
 * Text decoders of an import's file: UTF-8 (strict, naming the line of a defect), ISO-8859-1 and
 * WINDOWS-1252.
 */
import { Transform } from "node:stream";
import type { FileSettings } from "../domain/etl-definition.js";
import { ImportFileError } from "./import-file-error.js";

export function decoder(
  settings: FileSettings,
  onFailure: (error: ImportFileError) => void,
): Transform {
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
