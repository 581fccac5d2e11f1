import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
/** Herald's version, from package.json. */
export const HERALD_VERSION: string = (require("../package.json") as { version: string }).version;
