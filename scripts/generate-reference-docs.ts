/** `npm run openapi`: regenerates docs/openapi.json and docs/errors.md from the code. */
import { writeFileSync } from "node:fs";
import { ERRORS_DOC_PATH, OPENAPI_PATH, renderErrorsDoc, renderOpenApi } from "./reference-docs.js";

writeFileSync(OPENAPI_PATH, await renderOpenApi());
writeFileSync(ERRORS_DOC_PATH, renderErrorsDoc());
console.log(`wrote ${OPENAPI_PATH} and ${ERRORS_DOC_PATH}`);
