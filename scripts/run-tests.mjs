#!/usr/bin/env node
// Runs the test suite with Node's test runner (Node 20's --test does not expand globs).
// Usage: node scripts/run-tests.mjs [dir-or-file ...]   (default: test/)
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

function collect(path, out) {
  if (statSync(path).isDirectory()) {
    for (const name of readdirSync(path).sort()) collect(join(path, name), out);
  } else if (path.endsWith(".test.ts")) out.push(path);
  return out;
}

const roots = process.argv.slice(2);
const files = (roots.length ? roots : ["test"]).flatMap((root) => collect(root, []));
if (files.length === 0) {
  console.error("no test files found");
  process.exit(1);
}
const concurrency = process.env.HERALD_TEST_CONCURRENCY ?? "2";
const result = spawnSync(
  process.execPath,
  // --test-force-exit: a test file's process ends once its tests have run, even if something it
  // started is still scheduled. A fresh-clone run on 2026-12-07 saw database-outage.test.ts pass
  // every test and then keep one core busy for more than ten minutes instead of exiting, which
  // would hold CI until its deadline.
  [
    "--import",
    "tsx",
    "--test",
    "--test-force-exit",
    `--test-concurrency=${concurrency}`,
    "--test-reporter=spec",
    ...files,
  ],
  { stdio: "inherit", env: { ...process.env, HERALD_LOG_LEVEL: process.env.HERALD_LOG_LEVEL ?? "silent" } },
);
process.exit(result.status ?? 1);
