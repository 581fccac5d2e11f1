/**
 * The first start on a new data directory: PostgreSQL's `initdb` runs in a short-lived child
 * process, and Herald then opens the directory as on any later start.
 *
 * Why a process of its own: PGlite runs initdb as a second WebAssembly instance with its own
 * memory and hands the result over through an in-memory copy of the directory. Run in Herald's
 * process, hundreds of megabytes of that stayed resident (garbage that V8 has no reason to collect
 * while the JavaScript heap is small), so a first start idled far above a restart on the same
 * directory. A worker thread does not return it all either (compiled WebAssembly code and the
 * allocator's arenas belong to the process). A child process's memory goes back to the system
 * when it exits.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";

/** The child's program (plain JavaScript: it loads PGlite itself, none of Herald's sources). */
const INITDB_SOURCE = `
const { PGlite } = await import(process.env.HERALD_PGLITE_MODULE);
const db = await PGlite.create(process.env.HERALD_INITDB_DIR);
await db.close();
`;

/** Creates the database cluster in `dataDir` unless it holds one already. */
export async function prepareDataDir(dataDir: string): Promise<void> {
  if (existsSync(join(dataDir, "PG_VERSION"))) return;
  const child = spawn(process.execPath, ["--input-type=module", "--eval", INITDB_SOURCE], {
    env: {
      ...process.env,
      HERALD_PGLITE_MODULE: import.meta.resolve("@electric-sql/pglite"),
      HERALD_INITDB_DIR: dataDir,
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => {
    if (stderr.length < 10_000) stderr += chunk.toString();
  });
  await new Promise<void>((resolve, reject) => {
    child.once("error", (error) =>
      reject(new Error(`cannot create the embedded database in ${dataDir}: ${error.message}`)),
    );
    child.once("exit", (code, signal) => {
      if (code === 0) resolve();
      else
        reject(
          new Error(
            `cannot create the embedded database in ${dataDir} (initdb exited with ${signal ?? code}): ${stderr.trim()}`,
          ),
        );
    });
  });
}
