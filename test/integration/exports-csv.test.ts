/**
 * The export's CSV writer against csv-stringify, the reference it must match byte for byte (SPEC
 * §7.3: quoted only when a field holds the separator, a quote or a line break; quotes doubled): rows
 * of fields made to be hard, for each separator, and csv-parse reads every line back.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { parse } from "csv-parse/sync";
import { stringify } from "csv-stringify/sync";
import { csvLineWriter } from "../../src/jobs/export-file-writer.js";

/** A deterministic generator (xorshift32): every run checks the same rows. */
function randomSource(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 4_294_967_296;
  };
}

const PIECES = [
  "a",
  "Z",
  " ",
  ";",
  ",",
  "|",
  "\t",
  '"',
  '""',
  "\n",
  "\r",
  "\r\n",
  "é",
  "日本",
  "😀",
  "0",
  "=1+2",
  "#",
];

test("csvLineWriter writes what csv-stringify writes, for every separator", () => {
  const random = randomSource(16_2026);
  const field = () => {
    if (random() < 0.1) return null;
    let text = "";
    const length = Math.floor(random() * 6);
    for (let i = 0; i < length; i++) text += PIECES[Math.floor(random() * PIECES.length)];
    return text;
  };
  for (const separator of [";", ",", "\t", "|"]) {
    const write = csvLineWriter(separator);
    const rows = Array.from({ length: 2_000 }, () => Array.from({ length: 4 }, field));
    const mine = rows.map((row) => write(row)).join("");
    // csv-stringify's default record delimiter is "\n" and it then quotes a lone CR too (told
    // record_delimiter "\n" explicitly, it does not: a CR is a line break to Actito's rule).
    const reference = stringify(rows, { delimiter: separator });
    assert.equal(mine, reference, `separator ${JSON.stringify(separator)}`);
    const back = parse(mine, { delimiter: separator, relax_column_count: false }) as string[][];
    assert.deepEqual(
      back,
      rows.map((row) => row.map((value) => value ?? "")),
    );
  }
});

test("a multi-value is one field, its values joined by commas", () => {
  const write = csvLineWriter(",");
  assert.equal(write(["x", ["a", "b"], null]), 'x,"a,b",\n');
  assert.equal(csvLineWriter(";")(["x", ["a", "b"], ""]), "x;a,b;\n");
});
