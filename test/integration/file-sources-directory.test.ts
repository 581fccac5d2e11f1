import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { DirectorySource } from "../../src/domain/file-source.js";
import type { TransferContext } from "../../src/jobs/file-sources/index.js";
import { fetchSourceFile, putDestinationFile } from "../../src/jobs/file-sources/index.js";
import { chunks, contentOf, refusal } from "../helpers/file-transfers.js";

let root: string;
let drop: string;
let outside: string;

function context(overrides: Partial<TransferContext> = {}): TransferContext {
  return {
    at: new Date("2026-12-31T23:30:00Z"),
    timeZone: "Europe/Brussels",
    timeoutMs: 10_000,
    maxBytes: 1024 * 1024,
    allowInsecureTargets: false,
    dropDir: drop,
    ...overrides,
  };
}

function source(path: string): DirectorySource {
  return { type: "DIRECTORY", path };
}

before(() => {
  root = mkdtempSync(join(tmpdir(), "herald-drop-test-"));
  drop = join(root, "drop");
  outside = join(root, "outside");
  mkdirSync(join(drop, "crm"), { recursive: true });
  mkdirSync(outside);
  writeFileSync(join(outside, "secret.csv"), "not for you\n");
});
after(() => rmSync(root, { recursive: true, force: true }));

describe("DIRECTORY sources: reading", () => {
  test("a file inside the drop directory, its date placeholders evaluated in the time zone", async () => {
    const bytes = Buffer.alloc(300_000, "a");
    // 2026-12-31 23:30 UTC is already 2027-01-01 in Brussels.
    writeFileSync(join(drop, "crm", "customers_20270101.csv"), bytes);
    const file = await fetchSourceFile(source("crm/customers_$yyyyMMdd.csv"), context());
    assert.ok(file.found);
    assert.equal(file.name, "customers_20270101.csv");
    assert.equal(file.location, "crm/customers_20270101.csv in HERALD_FILE_DROP_DIR");
    assert.deepEqual(await contentOf(file), bytes);
  });

  test("a missing file is not found (NOT_FOUND), not an error", async () => {
    const file = await fetchSourceFile(source("crm/absent.csv"), context());
    assert.deepEqual(file, { found: false, location: "crm/absent.csv in HERALD_FILE_DROP_DIR" });
    const underMissingDir = await fetchSourceFile(source("nowhere/a.csv"), context());
    assert.equal(underMissingDir.found, false);
  });

  test("refused without HERALD_FILE_DROP_DIR, with a message naming it", async () => {
    const error = await refusal(
      fetchSourceFile(source("crm/a.csv"), context({ dropDir: undefined })),
      "DROP_DIR_UNAVAILABLE",
    );
    assert.match(error.message, /HERALD_FILE_DROP_DIR/);
    await refusal(
      fetchSourceFile(source("a.csv"), context({ dropDir: join(root, "missing") })),
      "DROP_DIR_UNAVAILABLE",
    );
  });

  test("`..` and absolute paths are refused at transfer time too (a stored source is not trusted)", async () => {
    for (const path of [
      "../outside/secret.csv",
      "crm/../../outside/secret.csv",
      join(outside, "secret.csv"),
    ]) {
      const error = await refusal(fetchSourceFile(source(path), context()), "OUTSIDE_DROP_DIR");
      assert.doesNotMatch(error.message, /not for you/);
    }
  });

  test("a symbolic link that leads out of the drop directory is refused, one inside is followed", async () => {
    symlinkSync(join(outside, "secret.csv"), join(drop, "link-out.csv"));
    symlinkSync(outside, join(drop, "dir-out"));
    symlinkSync(join(drop, "crm", "customers_20270101.csv"), join(drop, "link-in.csv"));
    await refusal(fetchSourceFile(source("link-out.csv"), context()), "OUTSIDE_DROP_DIR");
    await refusal(fetchSourceFile(source("dir-out/secret.csv"), context()), "OUTSIDE_DROP_DIR");
    const inside = await fetchSourceFile(source("link-in.csv"), context());
    assert.equal((await contentOf(inside)).length, 300_000);
  });

  test("the drop directory may itself be reached through a symbolic link", async () => {
    const alias = join(root, "drop-alias");
    symlinkSync(drop, alias);
    const file = await fetchSourceFile(source("link-in.csv"), context({ dropDir: alias }));
    assert.equal((await contentOf(file)).length, 300_000);
  });

  test("a directory or a FIFO is not a file (and a FIFO does not block the read)", async () => {
    await refusal(fetchSourceFile(source("crm"), context()), "NOT_A_FILE");
    execFileSync("mkfifo", [join(drop, "pipe.csv")]);
    const started = Date.now();
    await refusal(fetchSourceFile(source("pipe.csv"), context()), "NOT_A_FILE");
    assert.ok(Date.now() - started < 5_000);
  });

  test("a file over the size limit is refused before it is read", async () => {
    writeFileSync(join(drop, "big.csv"), Buffer.alloc(2048, "b"));
    const error = await refusal(
      fetchSourceFile(source("big.csv"), context({ maxBytes: 1024 })),
      "TOO_LARGE",
    );
    assert.match(error.message, /2 KiB, over the limit of 1 KiB/);
  });
});

describe("DIRECTORY destinations: writing", () => {
  test("a path ending with / receives the file under its name; never partial under the final name", async () => {
    mkdirSync(join(drop, "exports"));
    const final = join(drop, "exports", "customers.csv");
    let seenDuringWrite: string[] = [];
    async function* content(): AsyncGenerator<Uint8Array> {
      yield Buffer.from("id;name\n");
      seenDuringWrite = readdirSync(join(drop, "exports"));
      yield Buffer.from("1;Ann\n");
    }
    const result = await putDestinationFile(
      source("exports/"),
      "customers.csv",
      content(),
      context(),
    );
    assert.deepEqual(result, {
      location: "exports/customers.csv in HERALD_FILE_DROP_DIR",
      bytes: 14,
    });
    assert.equal(readFileSync(final, "utf8"), "id;name\n1;Ann\n");
    assert.equal(seenDuringWrite.length, 1);
    assert.match(seenDuringWrite[0] ?? "", /^\.customers\.csv\.[0-9a-f]+\.part$/);
    assert.deepEqual(readdirSync(join(drop, "exports")), ["customers.csv"]);
  });

  test("any other path is the file's own name, placeholders expanded; an old file is replaced", async () => {
    writeFileSync(join(drop, "exports", "daily_20270101.csv"), "old");
    const result = await putDestinationFile(
      source("exports/daily_$yyyyMMdd.csv"),
      "ignored.csv",
      chunks("new"),
      context(),
    );
    assert.equal(result.location, "exports/daily_20270101.csv in HERALD_FILE_DROP_DIR");
    assert.equal(readFileSync(join(drop, "exports", "daily_20270101.csv"), "utf8"), "new");
    assert.equal(existsSync(join(drop, "exports", "ignored.csv")), false);
  });

  test("a failing content leaves neither the final file nor the temporary one", async () => {
    async function* failing(): AsyncGenerator<Uint8Array> {
      yield Buffer.from("half");
      throw new Error("the export failed");
    }
    await assert.rejects(
      putDestinationFile(source("exports/"), "broken.csv", failing(), context()),
      /the export failed/,
    );
    await refusal(
      putDestinationFile(
        source("exports/"),
        "large.csv",
        chunks("x".repeat(600), "y".repeat(600)),
        context({ maxBytes: 1000 }),
      ),
      "TOO_LARGE",
    );
    assert.deepEqual(readdirSync(join(drop, "exports")).sort(), [
      "customers.csv",
      "daily_20270101.csv",
    ]);
  });

  test("a put that fails before reading its content lets go of it", async () => {
    let released = false;
    async function* content(): AsyncGenerator<Uint8Array> {
      try {
        yield Buffer.from("never read");
      } finally {
        released = true;
      }
    }
    const generator = content();
    await generator.next(); // started, as a stream of the file store would be
    await refusal(
      putDestinationFile(source("nowhere/"), "x.csv", generator, context()),
      "WRITE_FAILED",
    );
    assert.equal(released, true);
  });

  test("outside the drop directory, a missing directory, a directory as file, a bad name", async () => {
    await refusal(
      putDestinationFile(source("dir-out/"), "x.csv", chunks("x"), context()),
      "OUTSIDE_DROP_DIR",
    );
    await refusal(
      putDestinationFile(source("../outside/"), "x.csv", chunks("x"), context()),
      "OUTSIDE_DROP_DIR",
    );
    assert.deepEqual(readdirSync(outside), ["secret.csv"]);
    const missing = await refusal(
      putDestinationFile(source("nowhere/"), "x.csv", chunks("x"), context()),
      "WRITE_FAILED",
    );
    assert.match(missing.message, /does not exist/);
    await refusal(
      putDestinationFile(source("exports"), "x.csv", chunks("x"), context()),
      "NOT_A_FILE",
    );
    await refusal(
      putDestinationFile(source("exports/"), "../x.csv", chunks("x"), context()),
      "INVALID_SOURCE",
    );
    await refusal(
      putDestinationFile(source("exports/"), "x.csv", chunks("x"), context({ dropDir: undefined })),
      "DROP_DIR_UNAVAILABLE",
    );
  });
});
