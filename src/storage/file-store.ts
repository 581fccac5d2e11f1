/**
 * The file store (DESIGN §6b, SPEC §7 "Files"): uploaded files live in the database, in chunks of
 * about 1 MiB, so that every process can read what another received and no file is ever whole in
 * memory. Writing streams chunk by chunk (hashing as it goes); reading streams chunk by chunk from
 * any offset, and `readFileRange` serves random access (a ZIP's central directory is at its end).
 */
import { createHash, randomUUID } from "node:crypto";
import type { Queryable } from "./database.js";

/** Chunk size: big enough that a 100 MiB file is ~100 rows, small enough to hold a few in memory. */
export const FILE_CHUNK_BYTES = 1 << 20;

export interface StoredFile {
  id: string;
  entityId: number;
  name: string;
  bytes: number;
  sha256: string;
  createdAt: Date;
  expiresAt: Date;
}

/** The content went past the size limit; nothing of it is kept. */
export class FileTooLarge extends Error {
  constructor(readonly limit: number) {
    super(`the file exceeds ${limit} bytes`);
    this.name = "FileTooLarge";
  }
}

function toBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * Stores a stream as a new file. `isTruncated` (asked once the stream ended) says whether the
 * source cut the content at the limit (multipart uploads do). Throws FileTooLarge past `maxBytes`,
 * after removing what was written.
 */
export async function storeFile(
  db: Queryable,
  options: { entityId: number; name: string; retentionDays: number; maxBytes: number },
  source: AsyncIterable<Uint8Array>,
  isTruncated: () => boolean = () => false,
): Promise<StoredFile> {
  const id = randomUUID();
  await db.query(
    `INSERT INTO stored_files (id, entity_id, name, expires_at)
     VALUES ($1, $2, $3, now() + make_interval(days => $4))`,
    [id, options.entityId, options.name, options.retentionDays],
  );
  const hash = createHash("sha256");
  let bytes = 0;
  let seq = 0;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  /** Bytes already in chunk rows: the next chunk's start offset. */
  let stored = 0;
  const flush = async () => {
    if (pendingBytes === 0) return;
    const joined = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
    // A source handing over more than a chunk at once still makes chunks of FILE_CHUNK_BYTES.
    const data = joined.subarray(0, FILE_CHUNK_BYTES);
    const rest = joined.subarray(FILE_CHUNK_BYTES);
    // As base64 text: the embedded database encodes a bytea parameter byte by byte in JavaScript;
    // decode() in SQL takes Node's native base64 instead (docs/performance-notes.md, "File store").
    await db.query(
      `INSERT INTO stored_file_chunks (file_id, seq, start_offset, data)
       VALUES ($1, $2, $3, decode($4, 'base64'))`,
      [id, seq, stored, data.toString("base64")],
    );
    seq++;
    stored += data.length;
    pending = rest.length > 0 ? [rest] : [];
    pendingBytes = rest.length;
  };
  try {
    for await (const piece of source) {
      const chunk = toBuffer(piece);
      bytes += chunk.length;
      if (bytes > options.maxBytes) throw new FileTooLarge(options.maxBytes);
      hash.update(chunk);
      pending.push(chunk);
      pendingBytes += chunk.length;
      while (pendingBytes >= FILE_CHUNK_BYTES) await flush();
    }
    if (isTruncated()) throw new FileTooLarge(options.maxBytes);
    while (pendingBytes > 0) await flush();
    const sha256 = hash.digest("hex");
    const { rows } = await db.query<FileRow>(
      `UPDATE stored_files SET bytes = $2, sha256 = $3, complete = true WHERE id = $1
       RETURNING ${FILE_COLUMNS}`,
      [id, bytes, sha256],
    );
    return toStoredFile(rows[0]!);
  } catch (error) {
    await deleteFile(db, id).catch(() => {});
    throw error;
  }
}

interface FileRow {
  id: string;
  entity_id: number;
  name: string;
  bytes: number;
  sha256: string;
  created_at: Date;
  expires_at: Date;
}
const FILE_COLUMNS = "id, entity_id, name, bytes, sha256, created_at, expires_at";

function toStoredFile(row: FileRow): StoredFile {
  return {
    id: row.id,
    entityId: row.entity_id,
    name: row.name,
    bytes: row.bytes,
    sha256: row.sha256,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
  };
}

/** A complete file's description, or undefined. */
export async function findFile(db: Queryable, id: string): Promise<StoredFile | undefined> {
  const { rows } = await db.query<FileRow>(
    `SELECT ${FILE_COLUMNS} FROM stored_files WHERE id = $1 AND complete`,
    [id],
  );
  return rows[0] ? toStoredFile(rows[0]) : undefined;
}

export async function deleteFile(db: Queryable, id: string): Promise<void> {
  await db.query("DELETE FROM stored_files WHERE id = $1", [id]);
}

/** The chunk holding byte `offset` and the ones after it, up to `limit` chunks. */
async function chunksFrom(
  db: Queryable,
  fileId: string,
  offset: number,
  limit: number,
): Promise<{ start: number; data: Buffer }[]> {
  // The chunk holding `offset` is the last one starting at or before it; the primary key orders them.
  // As base64 text for the same reason as the writes (the embedded database decodes bytea
  // results slowly in JavaScript).
  const { rows } = await db.query<{ start_offset: number; data: string }>(
    `SELECT start_offset, encode(data, 'base64') AS data FROM stored_file_chunks
      WHERE file_id = $1
        AND seq >= coalesce((SELECT max(seq) FROM stored_file_chunks
                              WHERE file_id = $1 AND start_offset <= $2), 0)
      ORDER BY seq LIMIT $3`,
    [fileId, offset, limit],
  );
  return rows.map((row) => ({ start: row.start_offset, data: Buffer.from(row.data, "base64") }));
}

/** The file's content from byte `start`, chunk by chunk (two chunks per query). */
export async function* readFileStream(
  db: Queryable,
  fileId: string,
  start = 0,
): AsyncGenerator<Buffer> {
  let offset = start;
  for (;;) {
    const chunks = await chunksFrom(db, fileId, offset, 2);
    if (chunks.length === 0) return;
    for (const chunk of chunks) {
      const skip = Math.max(0, offset - chunk.start);
      if (skip < chunk.data.length) yield skip === 0 ? chunk.data : chunk.data.subarray(skip);
      offset = chunk.start + chunk.data.length;
    }
    if (chunks.length < 2) return;
  }
}

/** Bytes [start, end) of a file (fewer at its end). */
export async function readFileRange(
  db: Queryable,
  fileId: string,
  start: number,
  end: number,
): Promise<Buffer> {
  const parts: Buffer[] = [];
  let offset = start;
  while (offset < end) {
    const wanted = Math.ceil((end - offset) / FILE_CHUNK_BYTES) + 1;
    const before = offset;
    for (const chunk of await chunksFrom(db, fileId, offset, wanted)) {
      const from = offset - chunk.start;
      if (from < 0 || from >= chunk.data.length) continue;
      const to = Math.min(chunk.data.length, end - chunk.start);
      parts.push(chunk.data.subarray(from, to));
      offset = chunk.start + to;
      if (offset >= end) break;
    }
    if (offset === before) break; // past the end of the file
  }
  return Buffer.concat(parts);
}

/**
 * Removes expired files, except those an unfinished import or file synchronisation still uses, the
 * file an export execution is copying and the latest file of each export (migration 025), and
 * uploads that never completed (an interrupted upload or synchronisation) after a day. Returns how
 * many went.
 */
export async function deleteExpiredFiles(db: Queryable): Promise<number> {
  const { rowCount } = await db.query(
    `DELETE FROM stored_files f
      WHERE (f.expires_at < now() OR (NOT f.complete AND f.created_at < now() - interval '1 day'))
        AND NOT EXISTS (SELECT 1 FROM etl_executions e
                         WHERE e.file_id = f.id AND e.status IN ('PENDING', 'RUNNING'))
        AND NOT EXISTS (SELECT 1 FROM file_synchronizations s
                         WHERE s.file_id = f.id AND s.status IN ('PENDING', 'RUNNING'))
        -- An export's file while its execution still copies it, and each export's latest file.
        AND NOT EXISTS (SELECT 1 FROM export_executions x
                         WHERE x.file_id = f.id
                           AND (x.status IN ('PENDING', 'RUNNING')
                                OR x.id = (SELECT max(y.id) FROM export_executions y
                                            WHERE y.export_id = x.export_id
                                              AND y.status = 'SUCCESS' AND y.file_id IS NOT NULL)))`,
  );
  return rowCount;
}
