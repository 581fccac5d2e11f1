/**
 * Transfers from and to file sources (SPEC §7.2, §7.3): `fetchSourceFile` downloads a file
 * reference's file, `putDestinationFile` writes an export's copy. One file per kind of source;
 * every transfer keeps one deadline and the size limit (transfer-deadline.ts) and fails with a
 * FileTransferError whose message is the reason a run shows.
 */
import { isIP } from "node:net";
import type { DirectorySource, FileSource, SftpSource } from "../../domain/file-source.js";
import { expandDatePlaceholders } from "../../domain/file-source.js";
import type { TargetVerdict } from "../../delivery/address-guard.js";
import { checkTargetHost, systemHostLookup } from "../../delivery/address-guard.js";
import { fetchDirectoryFile, putDirectoryFile } from "./directory-source.js";
import { fetchHttpsFile } from "./https-source.js";
import { fetchSftpFile, putSftpFile } from "./sftp-source.js";
import { checkedFileName } from "./destination-path.js";
import { releasable } from "./transfer-deadline.js";
import type { FetchedFile, TransferContext } from "./transfer-context.js";

export type { FetchedFile, TransferContext } from "./transfer-context.js";
export type { FileTransferErrorCode } from "./file-transfer-error.js";
export { FILE_TRANSFER_ERROR_CODES, FileTransferError } from "./file-transfer-error.js";
export { hostKeyFingerprint } from "./sftp-session.js";

/**
 * The file a source names at `ctx.at`: `{found: false}` when the source says it is not there (HTTP
 * 404 or 410, no such remote file, no such path in the drop directory), else its streamed content.
 * Every other failure throws a FileTransferError.
 */
export function fetchSourceFile(source: FileSource, ctx: TransferContext): Promise<FetchedFile> {
  switch (source.type) {
    case "HTTPS":
      return fetchHttpsFile(source, ctx);
    case "SFTP":
      return fetchSftpFile(source, ctx);
    case "DIRECTORY":
      return fetchDirectoryFile(source, ctx);
  }
}

/**
 * Writes `content` to a destination atomically (a temporary name, renamed when complete): never a
 * partial file under the final name. A destination path ending with `/` is a directory that
 * receives `fileName`; any other path is the file's own name (placeholders expanded). However the
 * put ends, `content` is let go of (its producer, a stream of the file store, is ended).
 */
export async function putDestinationFile(
  destination: SftpSource | DirectorySource,
  fileName: string,
  content: AsyncIterable<Uint8Array>,
  ctx: TransferContext,
): Promise<{ location: string; bytes: number }> {
  const input = releasable(content);
  try {
    checkedFileName(fileName);
    return destination.type === "SFTP"
      ? await putSftpFile(destination, fileName, input.chunks, ctx)
      : await putDirectoryFile(destination, fileName, input.chunks, ctx);
  } finally {
    await input.release();
  }
}

/**
 * The address guard's verdict on an HTTPS source's host or an SFTP source's host, for a 4xx when
 * a reference is defined (a courtesy to the person defining it: the check at connect time is the
 * defence). Undefined for DIRECTORY sources and when insecure targets are allowed.
 */
export async function checkSourceTarget(
  source: FileSource,
  allowInsecureTargets: boolean,
): Promise<TargetVerdict | undefined> {
  if (allowInsecureTargets || source.type === "DIRECTORY") return undefined;
  if (source.type === "HTTPS")
    return checkTargetHost(expandDatePlaceholders(source.url, new Date(), "UTC"), systemHostLookup);
  const host = isIP(source.host) === 6 ? `[${source.host}]` : source.host;
  return checkTargetHost(`https://${host}/`, systemHostLookup);
}
