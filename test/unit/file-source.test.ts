import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { FileSource, ParseFileSourceOptions } from "../../src/domain/file-source.js";
import {
  describeFileSource,
  dropPathProblem,
  expandDatePlaceholders,
  hasDatePlaceholders,
  normalizeHostKeySha256,
  parseFileSource,
  splitCredentials,
  withCredentials,
} from "../../src/domain/file-source.js";

const STRICT: ParseFileSourceOptions = { allowInsecureTargets: false, dropDirSet: true };

function parse(raw: unknown, options: Partial<ParseFileSourceOptions> = {}) {
  const problems: { path: string; message: string }[] = [];
  const source = parseFileSource(raw, (path, message) => problems.push({ path, message }), {
    ...STRICT,
    ...options,
  });
  return { source, problems, paths: problems.map((p) => p.path) };
}

/** A fingerprint as `ssh-keygen -lf` prints it, and the same digest in hex. */
const DIGEST = Buffer.from("c0ffee".repeat(11), "hex").subarray(0, 32);
const FINGERPRINT = `SHA256:${DIGEST.toString("base64").replace(/=+$/, "")}`;
const HEX = DIGEST.toString("hex");

/** An unencrypted OpenSSH key's shape: the magic, then the cipher name `none`. */
function opensshKey(cipher: string): string {
  const magic = Buffer.from("openssh-key-v1\0", "latin1");
  const length = Buffer.alloc(4);
  length.writeUInt32BE(cipher.length);
  const body = Buffer.concat([magic, length, Buffer.from(cipher), Buffer.alloc(40, 1)]);
  return `-----BEGIN OPENSSH PRIVATE KEY-----\n${body.toString("base64")}\n-----END OPENSSH PRIVATE KEY-----\n`;
}

describe("file sources: HTTPS", () => {
  test("a URL with headers, kept as given", () => {
    const { source, problems } = parse({
      type: "https",
      url: "https://files.example.com/crm/customers_$yyyyMMdd.csv",
      headers: { Authorization: "Bearer abc" },
    });
    assert.deepEqual(problems, []);
    assert.deepEqual(source, {
      type: "HTTPS",
      url: "https://files.example.com/crm/customers_$yyyyMMdd.csv",
      headers: { Authorization: "Bearer abc" },
    });
  });

  test("http:// only with insecure targets allowed; the message names the setting", () => {
    const refused = parse({ type: "HTTPS", url: "http://files.example.com/a.csv" });
    assert.equal(refused.source, undefined);
    assert.deepEqual(refused.paths, ["source.url"]);
    assert.match(refused.problems[0]?.message ?? "", /HERALD_ALLOW_INSECURE_TARGETS/);
    const allowed = parse(
      { type: "HTTPS", url: "http://127.0.0.1:8080/a.csv" },
      { allowInsecureTargets: true },
    );
    assert.deepEqual(allowed.problems, []);
  });

  test("bad URLs and headers are named path by path", () => {
    assert.deepEqual(parse({ type: "HTTPS" }).paths, ["source.url"]);
    assert.deepEqual(parse({ type: "HTTPS", url: "files/a.csv" }).paths, ["source.url"]);
    assert.deepEqual(parse({ type: "HTTPS", url: "ftp://x.example/a" }).paths, ["source.url"]);
    const userinfo = parse({ type: "HTTPS", url: "https://u:p@x.example/a" });
    assert.match(userinfo.problems[0]?.message ?? "", /must not carry credentials/);
    const { paths } = parse({
      type: "HTTPS",
      url: "https://x.example/a",
      headers: { "Bad Name": "x", Host: "y", "X-A": "a\r\nb", "X-B": 3 },
    });
    assert.deepEqual(paths.sort(), [
      "source.headers.Bad Name",
      "source.headers.Host",
      "source.headers.X-A",
      "source.headers.X-B",
    ]);
    assert.deepEqual(parse({ type: "HTTPS", url: "https://x.example", headers: [] }).paths, [
      "source.headers",
    ]);
  });

  test("the path prefix follows options.path; the type is required", () => {
    assert.deepEqual(parse({ url: "https://x.example" }, { path: "destination" }).paths, [
      "destination.type",
    ]);
    assert.deepEqual(parse("https://x.example").paths, ["source"]);
    assert.deepEqual(parse({ type: "FTP" }).paths, ["source.type"]);
  });
});

describe("file sources: SFTP", () => {
  const base = {
    type: "SFTP",
    host: "sftp.example.com",
    username: "herald",
    path: "/outgoing/customers_$yyyyMMdd.csv",
    password: "s3cret",
  };

  test("defaults: port 22, no pin (kept null: refused at transfer time, not here)", () => {
    const { source, problems } = parse(base);
    assert.deepEqual(problems, []);
    assert.deepEqual(source, { ...base, port: 22, hostKeySha256: null });
  });

  test("the host key pin: ssh-keygen's line, the bare base64, or hex; stored as SHA256:…", () => {
    const printed = `256 ${FINGERPRINT} root@files (ED25519)`;
    for (const given of [FINGERPRINT, printed, FINGERPRINT.slice(7), `${FINGERPRINT}=`, HEX]) {
      const { source, problems } = parse({ ...base, hostKeySha256: given });
      assert.deepEqual(problems, [], given);
      assert.equal((source as { hostKeySha256: string }).hostKeySha256, FINGERPRINT, given);
    }
    const colons = HEX.match(/../g)?.join(":") ?? "";
    assert.equal(normalizeHostKeySha256(colons), FINGERPRINT);
    for (const bad of ["SHA256:short", "MD5:aa:bb", "0".repeat(63), 42]) {
      const { source, problems } = parse({ ...base, hostKeySha256: bad });
      assert.equal(source, undefined);
      assert.deepEqual(
        problems.map((p) => p.path),
        ["source.hostKeySha256"],
      );
      assert.match(problems[0]?.message ?? "", /ssh-keygen -lf/);
    }
  });

  test("a password or a private key is required; a key must be unencrypted", () => {
    const { password: _, ...noCredentials } = base;
    assert.deepEqual(parse(noCredentials).paths, ["source.password"]);
    assert.deepEqual(parse({ ...noCredentials, privateKey: opensshKey("none") }).problems, []);
    const encrypted = parse({ ...noCredentials, privateKey: opensshKey("aes256-ctr") });
    assert.deepEqual(encrypted.paths, ["source.privateKey"]);
    assert.match(encrypted.problems[0]?.message ?? "", /passphrase/);
    const pem =
      "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nabc\n-----END RSA PRIVATE KEY-----";
    assert.match(
      parse({ ...noCredentials, privateKey: pem }).problems[0]?.message ?? "",
      /passphrase/,
    );
    assert.deepEqual(parse({ ...noCredentials, privateKey: "hunter2" }).paths, [
      "source.privateKey",
    ]);
  });

  test("host, port, username and path problems", () => {
    const { paths } = parse({
      type: "SFTP",
      host: "sftp://files.example.com",
      port: 70000,
      path: "",
      password: "x",
    });
    assert.deepEqual(paths.sort(), [
      "source.host",
      "source.path",
      "source.port",
      "source.username",
    ]);
    assert.deepEqual(parse({ ...base, host: "files.example.com:22" }).paths, ["source.host"]);
    assert.deepEqual(parse({ ...base, host: "::1" }).problems, []);
    assert.deepEqual(parse({ ...base, port: "2222" }).problems, []);
  });

  test("a problem message never repeats a credential", () => {
    const { problems } = parse({ ...base, password: 7, privateKey: "not a key s3cret" });
    assert.ok(problems.length > 0);
    for (const problem of problems) assert.doesNotMatch(problem.message, /s3cret/);
  });
});

describe("file sources: DIRECTORY", () => {
  test("a relative path inside the drop directory", () => {
    const { source, problems } = parse({ type: "DIRECTORY", path: "crm/in_$yyyyMMdd.csv" });
    assert.deepEqual(problems, []);
    assert.deepEqual(source, { type: "DIRECTORY", path: "crm/in_$yyyyMMdd.csv" });
  });

  test("refused without HERALD_FILE_DROP_DIR, with a message naming it", () => {
    const { source, problems } = parse({ type: "DIRECTORY", path: "a.csv" }, { dropDirSet: false });
    assert.equal(source, undefined);
    assert.deepEqual(
      problems.map((p) => p.path),
      ["source"],
    );
    assert.match(problems[0]?.message ?? "", /HERALD_FILE_DROP_DIR/);
  });

  test("absolute paths and `..` segments are refused at parse time", () => {
    for (const path of [
      "/etc/passwd",
      "\\\\server\\share",
      "C:\\x",
      "../x",
      "a/../../x",
      "a\\..\\x",
      "~/x",
    ]) {
      const { source, paths } = parse({ type: "DIRECTORY", path });
      assert.equal(source, undefined, path);
      assert.deepEqual(paths, ["source.path"], path);
    }
    assert.equal(dropPathProblem("a..b/c...csv"), undefined);
    assert.equal(dropPathProblem("exports/"), undefined);
  });
});

describe("credentials", () => {
  const sftp: FileSource = {
    type: "SFTP",
    host: "h",
    port: 22,
    username: "u",
    path: "p",
    hostKeySha256: FINGERPRINT,
    password: "pw",
    privateKey: "key",
  };

  test("split off and put back: SFTP password and key, HTTPS headers", () => {
    const split = splitCredentials(sftp);
    assert.deepEqual(split.credentials, { password: "pw", privateKey: "key" });
    assert.equal(JSON.stringify(split.source).includes("pw"), false);
    assert.deepEqual(withCredentials(split.source, split.credentials), sftp);

    const https: FileSource = { type: "HTTPS", url: "https://x", headers: { "X-Key": "k" } };
    const httpsSplit = splitCredentials(https);
    assert.deepEqual(httpsSplit.source, { type: "HTTPS", url: "https://x", headers: {} });
    assert.deepEqual(withCredentials(httpsSplit.source, httpsSplit.credentials), https);

    const dir: FileSource = { type: "DIRECTORY", path: "a" };
    assert.deepEqual(splitCredentials(dir), { source: dir, credentials: undefined });
    assert.deepEqual(
      splitCredentials({ type: "HTTPS", url: "https://x", headers: {} }).credentials,
      undefined,
    );
  });

  test("described without secrets: what is set, not its value", () => {
    const split = splitCredentials(sftp);
    const described = describeFileSource(split.source, split.credentials);
    assert.deepEqual(described, {
      type: "SFTP",
      host: "h",
      port: 22,
      username: "u",
      path: "p",
      hostKeySha256: FINGERPRINT,
      passwordSet: true,
      privateKeySet: true,
    });
    assert.equal(describeFileSource(split.source).passwordSet, false);
    const https = describeFileSource({ type: "HTTPS", url: "https://x", headers: { A: "secret" } });
    assert.deepEqual(https, { type: "HTTPS", url: "https://x", headerNames: ["A"] });
  });
});

describe("date placeholders", () => {
  // 2026-12-31 23:30:05 UTC is already 2027-01-01 00:30:05 in Brussels.
  const at = new Date("2026-12-31T23:30:05Z");

  test("evaluated in the time zone", () => {
    assert.equal(expandDatePlaceholders("c_$yyyyMMdd.csv", at, "UTC"), "c_20261231.csv");
    assert.equal(
      expandDatePlaceholders("c_$yyyyMMdd.csv", at, "Europe/Brussels"),
      "c_20270101.csv",
    );
    assert.equal(
      expandDatePlaceholders("$yyyy-$MM-$dd/$HH$mm$ss", at, "Europe/Brussels"),
      "2027-01-01/003005",
    );
    assert.equal(expandDatePlaceholders("$ddMMyy_$yyyyMMddHHmm", at, "UTC"), "311226_202612312330");
    assert.equal(
      expandDatePlaceholders("x_$HH", new Date("2026-06-01T00:15:00Z"), "America/New_York"),
      "x_20",
    );
  });

  test("`$$` is a dollar; other `$` text stays as it is", () => {
    assert.equal(expandDatePlaceholders("price$$_$yyyy", at, "UTC"), "price$_2026");
    assert.equal(expandDatePlaceholders("$file_$abc.csv", at, "UTC"), "$file_$abc.csv");
    assert.equal(expandDatePlaceholders("no placeholders", at, "UTC"), "no placeholders");
    assert.equal(hasDatePlaceholders("a_$yyyy"), true);
    assert.equal(hasDatePlaceholders("a_$$yyyy"), false);
  });

  test("an unknown time zone throws", () => {
    assert.throws(() => expandDatePlaceholders("$yyyy", at, "Mars/Olympus"), RangeError);
  });
});
