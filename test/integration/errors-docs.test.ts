import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { ERRORS } from "../../src/domain/errors.js";
import { ERRORS_DOC_PATH, renderErrorsDoc } from "../../scripts/reference-docs.js";

test("docs/errors.md is generated from the catalogue and up to date (npm run openapi)", () => {
  const committed = readFileSync(ERRORS_DOC_PATH, "utf8");
  assert.equal(
    committed,
    renderErrorsDoc(),
    `${ERRORS_DOC_PATH} is stale: run \`npm run openapi\` and commit the result`,
  );
  for (const code of Object.keys(ERRORS)) assert.ok(committed.includes(`\`${code}\``), code);
});
