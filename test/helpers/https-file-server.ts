/**
 * An HTTPS file server on loopback for tests of HTTPS file sources: node:https with a certificate
 * made at test time by the `openssl` command (valid for 127.0.0.1 and localhost), which a test
 * trusts through TransferContext.trustedCa and nowhere else.
 *
 *   const server = await startHttpsFileServer();
 *   writeFileSync(join(server.dir, "a.csv"), "…");         // GET /a.csv serves it (404 when absent)
 *   server.route("/slow", (req, res) => {});                // or answer a path yourself
 *   await fetchSourceFile({ type: "HTTPS", url: `${server.url}/a.csv`, headers: {} },
 *     { …, allowInsecureTargets: true, trustedCa: server.ca });
 *   await server.stop();
 */
import { execFileSync } from "node:child_process";
import { createReadStream, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import { createServer } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join, normalize, sep } from "node:path";

export interface TestCertificate {
  /** PEM of the self-signed certificate: what a client trusts. */
  cert: string;
  key: string;
}

let cached: TestCertificate | undefined;

/** A self-signed EC certificate for 127.0.0.1, ::1 and localhost, valid one day (made once per process). */
export function testCertificate(): TestCertificate {
  if (cached) return cached;
  const dir = mkdtempSync(join(tmpdir(), "herald-test-cert-"));
  try {
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=herald-test",
        "-addext",
        "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost",
        "-keyout",
        join(dir, "key.pem"),
        "-out",
        join(dir, "cert.pem"),
      ],
      { stdio: "pipe" },
    );
    cached = {
      cert: readFileSync(join(dir, "cert.pem"), "utf8"),
      key: readFileSync(join(dir, "key.pem"), "utf8"),
    };
    return cached;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export type RouteHandler = (request: IncomingMessage, response: ServerResponse) => void;

export interface HttpsFileServer {
  /** `https://127.0.0.1:<port>` (no trailing slash). */
  readonly url: string;
  readonly port: number;
  /** The certificate to pass as `trustedCa`. */
  readonly ca: string;
  /** Files here are served: GET /a/b.csv → <dir>/a/b.csv, with a Content-Length; 404 otherwise. */
  readonly dir: string;
  /** Every request received, in order (path with query, and headers). */
  readonly requests: { path: string; headers: IncomingHttpHeaders }[];
  /** Answers `path` (without query) with `handler` instead of a file. */
  route(path: string, handler: RouteHandler): void;
  stop(): Promise<void>;
}

export async function startHttpsFileServer(): Promise<HttpsFileServer> {
  const { cert, key } = testCertificate();
  const dir = mkdtempSync(join(tmpdir(), "herald-https-files-"));
  const routes = new Map<string, RouteHandler>();
  const requests: { path: string; headers: IncomingHttpHeaders }[] = [];
  const sockets = new Set<Socket>();

  const server = createServer({ cert, key }, (request, response) => {
    const path = request.url ?? "/";
    requests.push({ path, headers: request.headers });
    const bare = decodeURIComponent(path.split("?")[0] ?? "/");
    const handler = routes.get(bare);
    if (handler) return handler(request, response);
    const file = normalize(join(dir, bare));
    let size: number | undefined;
    try {
      const stats = statSync(file);
      if (file.startsWith(dir + sep) && stats.isFile()) size = stats.size;
    } catch {
      size = undefined;
    }
    if (size === undefined) {
      response.writeHead(404, { "content-type": "text/plain" }).end("not found");
      return;
    }
    response.writeHead(200, { "content-type": "text/csv", "content-length": size });
    createReadStream(file).pipe(response);
  });
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  // A client that gives up on a TLS handshake (an untrusted certificate) is not the server's error.
  server.on("tlsClientError", () => undefined);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;

  return {
    url: `https://127.0.0.1:${port}`,
    port,
    ca: cert,
    dir,
    requests,
    route: (path, handler) => void routes.set(path, handler),
    stop: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
