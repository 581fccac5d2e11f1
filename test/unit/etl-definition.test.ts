import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { HeraldError } from "../../src/domain/errors.js";
import { parseEtlDefinition, parseEtlDefinitionText } from "../../src/domain/etl-definition.js";
import {
  compileTransformations,
  parseTransformations,
  transformCell,
  TransformationFailed,
} from "../../src/domain/import-transformations.js";

function problemPaths(raw: unknown): string[] {
  try {
    parseEtlDefinition(raw);
  } catch (error) {
    assert.ok(error instanceof HeraldError);
    assert.equal(error.code, "HERALD_INVALID_ETL_DEFINITION");
    return error.details.map((d) => d.path);
  }
  return [];
}

describe("ETL definitions", () => {
  test("defaults: CSV with a comma, double quotes, UTF-8, no compression, CREATE_UPDATE", () => {
    const { definition, warnings } = parseEtlDefinition({ target: { table: "Customers" } });
    assert.deepEqual(definition, {
      target: { table: "Customers" },
      mode: "CREATE_UPDATE",
      file: {
        format: "CSV",
        separator: ",",
        quote: '"',
        escape: '"',
        encoding: "UTF-8",
        compression: "NONE",
      },
      transformations: [],
    });
    assert.deepEqual(warnings, []);
  });

  test("Actito's aliases and v4 parameter names", () => {
    const { definition } = parseEtlDefinition({
      table: "7",
      tableType: "PROFILE",
      mode: "insert_or_update",
      format: "SEMI_COLON_SEPARATED_VALUES",
      charset: "ISO-8859-1",
      headerKeyColumn: "customerId",
    });
    assert.deepEqual(definition.target, { table: "7", tableType: "PROFILE_TABLE" });
    assert.equal(definition.mode, "CREATE_UPDATE");
    assert.equal(definition.file.separator, ";");
    assert.equal(definition.file.encoding, "ISO-8859-1");
    assert.equal(definition.keyAttribute, "customerId");
    assert.equal(
      parseEtlDefinition({ table: "t", mode: "INSERT_ONLY" }).definition.mode,
      "CREATE_ONLY",
    );
    assert.equal(
      parseEtlDefinition({ table: "t", file: { format: "jsonl", compression: "gz" } }).definition
        .file.format,
      "NDJSON",
    );
  });

  test("unknown keys are warnings, never errors", () => {
    const { warnings } = parseEtlDefinition({
      target: { table: "t", schema: "x" },
      colour: "blue",
      file: { sheet: 1 },
      mapping: [{ column: "a", attribute: "b", note: "x" }],
    });
    assert.deepEqual(
      warnings.map((w) => w.path),
      ["colour", "target.schema", "file.sheet", "mapping[0].note"],
    );
  });

  test("every problem is reported with its path", () => {
    assert.deepEqual(
      problemPaths({
        mode: "MERGE",
        file: { separator: "ab", quote: 1, encoding: "EBCDIC", compression: "RAR" },
        mapping: [{ column: "a" }, { column: "a", attribute: "x", subscription: "y" }, "z"],
        transformations: [{ column: "a", type: "ROT13" }, { type: "TRIM" }],
        maxRejectedRows: -1,
      }),
      [
        "target.table",
        "mode",
        "file.separator",
        "file.quote",
        "file.encoding",
        "file.compression",
        "transformations[0].type",
        "transformations[1].column",
        "mapping[0]",
        "mapping[1].column",
        "mapping[1]",
        "mapping[2]",
        "maxRejectedRows",
      ],
    );
    assert.deepEqual(problemPaths([]), [""]);
    assert.throws(() => parseEtlDefinitionText("{nope"), /not valid JSON/);
  });
});

describe("transformations", () => {
  const run = (list: unknown[], column: string, value: string) => {
    const problems: string[] = [];
    const parsed = parseTransformations(list, (path) => problems.push(path));
    assert.deepEqual(problems, []);
    return transformCell(compileTransformations(parsed), column, value);
  };

  test("TRIM, LOWERCASE, UPPERCASE, VALUE_MAP and DEFAULT apply in order, per column", () => {
    const list = [
      { column: "m", type: "TRIM" },
      { column: "m", type: "LOWERCASE" },
      { column: "t", type: "VALUE_MAP", values: { G: "Gold", 1: true } },
      { column: "d", type: "DEFAULT", value: 0 },
      { column: "u", type: "uppercase" },
    ];
    assert.equal(run(list, "m", "  Ann@X.IO "), "ann@x.io");
    assert.equal(run(list, "t", "G"), "Gold");
    assert.equal(run(list, "t", "1"), "true");
    assert.equal(run(list, "t", "S"), "S");
    assert.equal(run(list, "d", ""), "0");
    assert.equal(run(list, "d", "5"), "5");
    assert.equal(run(list, "u", "abc"), "ABC");
    assert.equal(run(list, "other", " x "), " x ");
  });

  test("DATE_FORMAT reads its pattern and writes ISO 8601", () => {
    const date = [{ column: "d", type: "DATE_FORMAT", from: "dd/MM/yyyy" }];
    assert.equal(run(date, "d", "31/12/1990"), "1990-12-31");
    assert.equal(run(date, "d", "1/2/2000"), "2000-02-01");
    assert.equal(run(date, "d", ""), "");
    const stamp = [{ column: "d", type: "DATE_FORMAT", from: "yyyyMMdd HH:mm" }];
    assert.equal(run(stamp, "d", "20240229 07:05"), "2024-02-29T07:05:00.000Z");
    assert.throws(() => run(date, "d", "1990-12-31"), TransformationFailed);
    const problems: string[] = [];
    parseTransformations(
      [
        { column: "d", type: "DATE_FORMAT", from: "dd/QQ/yyyy" },
        { column: "d", type: "DATE_FORMAT", from: "HH:mm" },
        { column: "d", type: "DATE_FORMAT" },
      ],
      (path) => problems.push(path),
    );
    assert.deepEqual(problems, [
      "transformations[0].from",
      "transformations[1].from",
      "transformations[2].from",
    ]);
  });
});
