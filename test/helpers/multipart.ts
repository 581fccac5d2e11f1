/** A multipart/form-data body built in memory, for `inject` tests of the upload routes. */
export interface Part {
  name: string;
  /** A file part when given. */
  filename?: string;
  contentType?: string;
  content: string | Buffer;
}

export function multipartBody(parts: readonly Part[]): { payload: Buffer; contentType: string } {
  const boundary = `----herald-test-${Math.random().toString(16).slice(2)}`;
  const chunks: Buffer[] = [];
  for (const part of parts) {
    let head = `--${boundary}\r\nContent-Disposition: form-data; name="${part.name}"`;
    if (part.filename !== undefined) head += `; filename="${part.filename}"`;
    head += "\r\n";
    if (part.filename !== undefined || part.contentType)
      head += `Content-Type: ${part.contentType ?? "application/octet-stream"}\r\n`;
    chunks.push(Buffer.from(`${head}\r\n`), Buffer.from(part.content), Buffer.from("\r\n"));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return {
    payload: Buffer.concat(chunks),
    contentType: `multipart/form-data; boundary=${boundary}`,
  };
}
