import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { OPENAPI_PATH, renderOpenApi } from "../../scripts/reference-docs.js";

test("docs/openapi.json matches the routes (regenerate with npm run openapi)", async () => {
  const committed = readFileSync(OPENAPI_PATH, "utf8");
  const current = await renderOpenApi();
  if (committed !== current) {
    const paths = (doc: string) => Object.keys((JSON.parse(doc) as { paths: object }).paths);
    const added = paths(current).filter((p) => !paths(committed).includes(p));
    const removed = paths(committed).filter((p) => !paths(current).includes(p));
    assert.fail(
      `${OPENAPI_PATH} is stale: run \`npm run openapi\` and commit the result` +
        (added.length ? `\n  paths missing from the file: ${added.join(", ")}` : "") +
        (removed.length ? `\n  paths no longer served: ${removed.join(", ")}` : ""),
    );
  }
});
