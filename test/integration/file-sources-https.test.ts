import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { HttpsSource } from "../../src/domain/file-source.js";
import type { TransferContext } from "../../src/jobs/file-sources/index.js";
import { checkSourceTarget, fetchSourceFile } from "../../src/jobs/file-sources/index.js";
import type { HttpsFileServer } from "../helpers/https-file-server.js";
import { startHttpsFileServer } from "../helpers/https-file-server.js";
import { contentOf, refusal } from "../helpers/file-transfers.js";

let server: HttpsFileServer;

function context(overrides: Partial<TransferContext> = {}): TransferContext {
  return {
    at: new Date("2026-12-31T23:30:00Z"),
    timeZone: "Europe/Brussels",
    timeoutMs: 10_000,
    maxBytes: 1024 * 1024,
    // Loopback is a guarded address: the tests that are not about the guard allow it.
    allowInsecureTargets: true,
    dropDir: undefined,
    trustedCa: server.ca,
    ...overrides,
  };
}

function source(path: string, headers: Record<string, string> = {}): HttpsSource {
  return { type: "HTTPS", url: `${server.url}${path}`, headers };
}

/** Times a refusal, to check it came within the deadline and its margin, not after a hang. */
async function timed<T>(run: () => Promise<T>): Promise<{ result: T; ms: number }> {
  const started = performance.now();
  const result = await run();
  return { result, ms: performance.now() - started };
}

before(async () => {
  server = await startHttpsFileServer();
});
after(() => server.stop());

describe("HTTPS sources", () => {
  test("a file: placeholders in the URL, the source's headers sent, every byte streamed", async () => {
    const bytes = randomBytes(700_000);
    mkdirSync(join(server.dir, "crm"));
    writeFileSync(join(server.dir, "crm", "customers_20270101.csv"), bytes);
    const file = await fetchSourceFile(
      source("/crm/customers_$yyyyMMdd.csv", { "X-Api-Key": "k-123" }),
      context(),
    );
    assert.ok(file.found);
    assert.equal(file.name, "customers_20270101.csv");
    assert.equal(file.location, `${server.url}/crm/customers_20270101.csv`);
    assert.deepEqual(await contentOf(file), bytes);
    const request = server.requests.at(-1);
    assert.equal(request?.headers["x-api-key"], "k-123");
    assert.match(String(request?.headers["user-agent"]), /^Herald\//);
  });

  test("404 and 410 mean the file is not there; the location hides the query string", async () => {
    assert.deepEqual(await fetchSourceFile(source("/absent.csv?token=abc"), context()), {
      found: false,
      location: `${server.url}/absent.csv?…`,
    });
    server.route("/gone.csv", (_, res) => res.writeHead(410).end());
    assert.equal((await fetchSourceFile(source("/gone.csv"), context())).found, false);
  });

  test("another status is an error naming the status and the host, never a header value or the query", async () => {
    server.route("/broken.csv", (_, res) => res.writeHead(500).end("boom"));
    const error = await refusal(
      fetchSourceFile(
        source("/broken.csv?sig=SECRET-SIG", { Authorization: "Bearer SECRET-TOKEN" }),
        context(),
      ),
      "HTTP_STATUS",
    );
    assert.match(error.message, /answered 500/);
    assert.ok(error.message.includes(`127.0.0.1:${server.port}`), error.message);
    assert.doesNotMatch(error.message, /SECRET/);
  });

  test("a Content-Length over the limit is refused before the body is read", async () => {
    server.route("/huge.csv", (_, res) => {
      res.writeHead(200, { "content-length": 50_000_000 });
      res.write(Buffer.alloc(1000));
    });
    const error = await refusal(
      fetchSourceFile(source("/huge.csv"), context({ maxBytes: 1_000_000 })),
      "TOO_LARGE",
    );
    assert.match(error.message, /47\.7 MiB, over the limit of 976\.6 KiB/);
  });

  test("a body without a length is counted as it streams and cut at the limit", async () => {
    server.route("/endless.csv", (_, res) => {
      res.writeHead(200);
      const timer = setInterval(() => res.write(Buffer.alloc(16_384, "x")), 1);
      res.on("close", () => clearInterval(timer));
    });
    const file = await fetchSourceFile(source("/endless.csv"), context({ maxBytes: 100_000 }));
    await refusal(contentOf(file), "TOO_LARGE");
  });

  test("a server that does not answer, or stalls mid-body, ends in TIMEOUT at the deadline", async () => {
    server.route("/silent.csv", () => undefined);
    const silent = await timed(() =>
      refusal(fetchSourceFile(source("/silent.csv"), context({ timeoutMs: 1_500 })), "TIMEOUT"),
    );
    assert.ok(silent.ms >= 1_400 && silent.ms < 10_000, `${silent.ms} ms`);
    assert.match(silent.result.message, /within 1500 ms/);

    server.route("/stalls.csv", (_, res) => {
      res.writeHead(200, { "content-length": 100_000 });
      res.write(Buffer.alloc(10_000));
    });
    const file = await fetchSourceFile(source("/stalls.csv"), context({ timeoutMs: 1_500 }));
    const stalled = await timed(() => refusal(contentOf(file), "TIMEOUT"));
    assert.ok(stalled.ms < 10_000, `${stalled.ms} ms`);
    assert.match(stalled.result.message, /while reading the file/);
  });

  test("a certificate not trusted (no trustedCa) is a TLS failure", async () => {
    const error = await refusal(
      fetchSourceFile(source("/crm/customers_$yyyyMMdd.csv"), context({ trustedCa: undefined })),
      "TLS_FAILED",
    );
    assert.match(error.message, /self-signed/);
  });

  test("a refused connection says so", async () => {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
    const { port } = probe.address() as AddressInfo;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const error = await refusal(
      fetchSourceFile(
        { type: "HTTPS", url: `https://127.0.0.1:${port}/a.csv`, headers: {} },
        context(),
      ),
      "CONNECTION_FAILED",
    );
    assert.match(error.message, /refused/);
  });

  test("the address guard refuses loopback (and http://) unless insecure targets are allowed", async () => {
    const before = server.requests.length;
    const error = await refusal(
      fetchSourceFile(
        source("/crm/customers_$yyyyMMdd.csv"),
        context({ allowInsecureTargets: false }),
      ),
      "BLOCKED_TARGET",
    );
    assert.match(error.message, /127\.0\.0\.1 \(a loopback address\)/);
    assert.match(error.message, /HERALD_ALLOW_INSECURE_TARGETS/);
    await refusal(
      fetchSourceFile(
        { type: "HTTPS", url: `https://localhost:${server.port}/a.csv`, headers: {} },
        context({ allowInsecureTargets: false }),
      ),
      "BLOCKED_TARGET",
    );
    await refusal(
      fetchSourceFile(
        { type: "HTTPS", url: "http://files.example.com/a.csv", headers: {} },
        context({ allowInsecureTargets: false }),
      ),
      "BLOCKED_TARGET",
    );
    assert.equal(server.requests.length, before, "no request reached the server");
  });

  test("redirects are followed; the headers go only to the source's origin; too many are refused", async () => {
    writeFileSync(join(server.dir, "target.csv"), "moved here\n");
    server.route("/old.csv", (_, res) => res.writeHead(302, { location: "/target.csv" }).end());
    const file = await fetchSourceFile(
      source("/old.csv", { Authorization: "Bearer t" }),
      context(),
    );
    assert.equal(file.found && file.name, "target.csv");
    assert.equal((await contentOf(file)).toString(), "moved here\n");
    assert.equal(server.requests.at(-1)?.headers.authorization, "Bearer t");

    // localhost is another origin than 127.0.0.1 (the certificate covers both).
    server.route("/elsewhere.csv", (_, res) =>
      res.writeHead(307, { location: `https://localhost:${server.port}/target.csv` }).end(),
    );
    const moved = await fetchSourceFile(
      source("/elsewhere.csv", { Authorization: "Bearer t" }),
      context(),
    );
    assert.equal((await contentOf(moved)).toString(), "moved here\n");
    assert.equal(server.requests.at(-1)?.headers.host, `localhost:${server.port}`);
    assert.equal(server.requests.at(-1)?.headers.authorization, undefined);

    server.route("/ftp.csv", (_, res) =>
      res.writeHead(302, { location: "ftp://files.example.com/a.csv" }).end(),
    );
    await refusal(fetchSourceFile(source("/ftp.csv"), context()), "REDIRECT_REFUSED");

    server.route("/loop.csv", (_, res) => res.writeHead(301, { location: "/loop.csv" }).end());
    const loop = await refusal(fetchSourceFile(source("/loop.csv"), context()), "REDIRECT_REFUSED");
    assert.match(loop.message, /more than 5 redirects/);
  });

  test("a file closed without being read releases the connection quietly", async () => {
    const file = await fetchSourceFile(source("/crm/customers_$yyyyMMdd.csv"), context());
    assert.ok(file.found);
    await file.close();
    await file.close();
    await new Promise((resolve) => setTimeout(resolve, 100));
  });

  test("checkSourceTarget judges a source's host as the guard will, for an early 4xx", async () => {
    const https = (url: string): HttpsSource => ({ type: "HTTPS", url, headers: {} });
    assert.deepEqual(await checkSourceTarget(https("https://93.184.215.14/a.csv"), false), {
      kind: "allowed",
    });
    assert.equal(
      (await checkSourceTarget(https("https://127.0.0.1/a.csv"), false))?.kind,
      "refused",
    );
    const sftp = {
      type: "SFTP",
      host: "10.1.2.3",
      port: 22,
      username: "u",
      path: "a",
      hostKeySha256: null,
    } as const;
    const verdict = await checkSourceTarget(sftp, false);
    assert.equal(verdict?.kind, "refused");
    assert.match(verdict?.kind === "refused" ? verdict.reason : "", /private address/);
    assert.equal(await checkSourceTarget(sftp, true), undefined);
    assert.equal(await checkSourceTarget({ type: "DIRECTORY", path: "a" }, false), undefined);
  });

  test("the caller's signal cancels the transfer", async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 200);
    await refusal(
      fetchSourceFile(source("/silent.csv"), context({ signal: controller.signal })),
      "ABORTED",
    );
  });
});
