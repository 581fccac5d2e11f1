/**
 * A file of the file store sent as a download (an export's file, a synchronised file): its type,
 * its length and an attachment name, the content streamed from the database chunk by chunk.
 */
import { Readable } from "node:stream";
import type { FastifyReply } from "fastify";
import type { Database } from "../storage/database.js";
import type { StoredFile } from "../storage/file-store.js";
import { readFileStream } from "../storage/file-store.js";

export interface DownloadOptions {
  /** The Content-Type. */
  type: string;
  /** The name the client saves the file under. */
  fileName: string;
  /** Also give the name as UTF-8 (`filename*`), for names outside printable ASCII. */
  utf8Name?: boolean;
}

/** The name safe inside the header's quotes: printable ASCII, no quote or backslash. */
function quotedName(fileName: string): string {
  return fileName.replace(/[^\x20-\x7e]|["\\]/g, "_");
}

export function sendStoredFile(
  reply: FastifyReply,
  db: Database,
  file: Pick<StoredFile, "id" | "bytes">,
  options: DownloadOptions,
): FastifyReply {
  const disposition =
    `attachment; filename="${quotedName(options.fileName)}"` +
    (options.utf8Name ? `; filename*=UTF-8''${encodeURIComponent(options.fileName)}` : "");
  return reply
    .type(options.type)
    .header("content-length", String(file.bytes))
    .header("content-disposition", disposition)
    .send(Readable.from(readFileStream(db, file.id)));
}
