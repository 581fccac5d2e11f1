/**
 * What the file source tests (test/integration/file-sources-*.test.ts) share: reading a fetched
 * file whole, expecting a transfer to fail with a given FileTransferError code, and content to put.
 */
import assert from "node:assert/strict";
import type { FetchedFile } from "../../src/jobs/file-sources/index.js";
import { FileTransferError } from "../../src/jobs/file-sources/index.js";

/** The whole content of a file that was found (asserts it was). */
export async function contentOf(file: FetchedFile): Promise<Buffer> {
  assert.ok(file.found, `expected a file at ${file.location}`);
  const chunks: Buffer[] = [];
  for await (const chunk of file.content) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

/** The FileTransferError `promise` fails with, asserting its code. */
export async function refusal(promise: Promise<unknown>, code: string): Promise<FileTransferError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof FileTransferError, String(error));
    assert.equal(error.code, code, error.message);
    return error;
  }
  assert.fail(`expected ${code}`);
}

/** Content for a put, one chunk per part. */
export async function* chunks(...parts: (string | Buffer)[]): AsyncGenerator<Uint8Array> {
  for (const part of parts) yield Buffer.from(part);
}
