#!/usr/bin/env -S node --max-semi-space-size=4
// Runs the TypeScript sources directly through tsx's loader (no build step).
// --max-semi-space-size=4 (MiB, V8's default is 16): a smaller young generation keeps a busy
// worker's peak RSS down (import bench, 300,000 rows: 247 MB against 305; a 1,000,000-event BULK
// drain: 224 against 248-255) at no cost in throughput measured (capture, delivery, import).
// `npm start` passes the same flag; so do the benches (bench/bench-support.ts, HERALD_NODE_FLAGS).
import { register } from "tsx/esm/api";

register();
await import("../src/cli/herald.ts");
