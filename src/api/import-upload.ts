/**
 * Receives an import's multipart upload (SPEC §7.1): the data file streams straight into the file
 * store (never whole in memory; 413 past HERALD_MAX_FILE_BYTES, nothing kept), the definition part
 * is read as text (a JSON file or a plain field), other fields are kept as text. Parts may come in
 * any order. Any failure after the file was stored removes it.
 */
import { finished } from "node:stream/promises";
import type { FastifyRequest } from "fastify";
import { HeraldError } from "../domain/errors.js";
import type { Database } from "../storage/database.js";
import type { StoredFile } from "../storage/file-store.js";
import { deleteFile, FileTooLarge, storeFile } from "../storage/file-store.js";

export const FILE_PARTS = ["inputFile", "file", "dataFile"] as const;
export const DEFINITION_PARTS = ["etlDefinition", "parameters"] as const;

/** Largest definition part (a JSON document): far above any real definition. */
const MAX_DEFINITION_BYTES = 1 << 20;

export interface ImportUpload {
  file: StoredFile | undefined;
  /** The text of the definition part (`etlDefinition` or `parameters`). */
  definition: string | undefined;
  /** Other text fields, by name. */
  fields: Map<string, string>;
}

async function readText(
  stream: AsyncIterable<Buffer>,
  limit: number,
  name: string,
): Promise<string> {
  const parts: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of stream) {
    bytes += chunk.length;
    if (bytes > limit)
      throw new HeraldError(
        "HERALD_VALIDATION",
        { reason: `the '${name}' part exceeds ${limit} bytes` },
        [{ path: name, message: `exceeds ${limit} bytes` }],
      );
    parts.push(chunk);
  }
  return Buffer.concat(parts).toString("utf8");
}

function multipartError(error: unknown, request: FastifyRequest, maxBytes: number): unknown {
  if (
    error instanceof FileTooLarge ||
    (error as { code?: string }).code === "FST_REQ_FILE_TOO_LARGE"
  )
    return new HeraldError("HERALD_FILE_TOO_LARGE", { limit: maxBytes });
  const code = (error as { code?: string }).code;
  if (code === "FST_INVALID_MULTIPART_CONTENT_TYPE")
    return new HeraldError("HERALD_MULTIPART_EXPECTED", {
      contentType: request.headers["content-type"] ?? "",
    });
  if (typeof code === "string" && code.startsWith("FST_"))
    return new HeraldError("HERALD_VALIDATION", {
      reason: `the multipart body cannot be read: ${(error as Error).message}`,
    });
  return error;
}

export async function receiveImportUpload(
  request: FastifyRequest,
  db: Database,
  options: { entityId: number; maxFileBytes: number; retentionDays: number },
): Promise<ImportUpload> {
  if (!request.isMultipart())
    throw new HeraldError("HERALD_MULTIPART_EXPECTED", {
      contentType: request.headers["content-type"] ?? "",
    });
  const upload: ImportUpload = { file: undefined, definition: undefined, fields: new Map() };
  try {
    const parts = request.parts({
      // busboy stops at the limit and marks the file truncated (the plugin is registered with
      // throwFileSizeLimit: false); storeFile then says 413.
      limits: { fileSize: options.maxFileBytes, fieldSize: MAX_DEFINITION_BYTES, parts: 20 },
    });
    for await (const part of parts) {
      const name = part.fieldname;
      if (part.type === "file") {
        if ((FILE_PARTS as readonly string[]).includes(name) && !upload.file) {
          upload.file = await storeFile(
            db,
            {
              entityId: options.entityId,
              name: part.filename || name,
              retentionDays: options.retentionDays,
              maxBytes: options.maxFileBytes,
            },
            part.file,
            () => part.file.truncated,
          );
        } else if ((DEFINITION_PARTS as readonly string[]).includes(name)) {
          upload.definition = await readText(part.file, MAX_DEFINITION_BYTES, name);
        } else {
          // A part Herald does not read: consumed, so the rest of the body arrives.
          part.file.resume();
          await finished(part.file);
        }
      } else if (typeof part.value === "string") {
        if ((DEFINITION_PARTS as readonly string[]).includes(name)) upload.definition = part.value;
        else upload.fields.set(name, part.value);
      }
    }
  } catch (error) {
    if (upload.file) await deleteFile(db, upload.file.id).catch(() => {});
    throw multipartError(error, request, options.maxFileBytes);
  }
  return upload;
}

export function missingPart(part: string, aliases: readonly string[]): HeraldError {
  return new HeraldError(
    "HERALD_MISSING_PART",
    { part, aliases: aliases.filter((a) => a !== part).join(", ") },
    [{ path: part, message: "is required" }],
  );
}
