import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { test } from "node:test";
import { createLogger } from "../../src/logger.js";

/** A logger writing into an array, and the text it wrote. */
function capture() {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { logger: createLogger("info", sink), text: () => lines.join("") };
}

test("credentials, signing secrets and the secret key never reach the log, nested or not", () => {
  const { logger, text } = capture();
  const values = {
    password: "pw-top-0001",
    nestedPassword: "pw-nested-0002",
    deepPassword: "pw-deep-0003",
    privateKey: "-----BEGIN OPENSSH PRIVATE KEY----- k1",
    deepKey: "-----BEGIN OPENSSH PRIVATE KEY----- k2",
    secret: "whsec_c2VjcmV0LXRvcA==",
    previousSecret: "whsec_cHJldmlvdXM=",
    sealed: "hs1.abcd1234.aXY.Ym9keQ",
    secretKey: "5e1f0c0ffee0ddba11d00dfeedfacecafebabe0123456789abcdef0011223344",
    previousKey: "ab".repeat(32),
  };
  logger.info({ password: values.password, privateKey: values.privateKey }, "top");
  logger.info({ source: { type: "SFTP", password: values.nestedPassword } }, "nested");
  logger.info(
    { fileReference: { source: { password: values.deepPassword, privateKey: values.deepKey } } },
    "deep",
  );
  logger.info(
    { subscription: { secret: values.secret, previousSecret: values.previousSecret } },
    "s",
  );
  logger.info({ reference: { credentials: values.sealed } }, "sealed");
  logger.info(
    { config: { secretKey: values.secretKey, secretKeyPrevious: values.previousKey } },
    "c",
  );
  const log = text();
  for (const [name, value] of Object.entries(values))
    assert.ok(!log.includes(value), `${name} is in the log:\n${log}`);
  assert.equal(log.match(/\[redacted\]/g)?.length, 10, log);
  assert.match(log, /"type":"SFTP"/, "what is not secret stays");
});
