/** What a transfer from or to a file source is given, and what a download hands back. */

export interface TransferContext {
  /** The time date placeholders are evaluated at (the run's due time, or now). */
  at: Date;
  /** The IANA time zone placeholders are evaluated in. */
  timeZone: string;
  /** The whole transfer (connecting, handshake, every byte) must end within this. */
  timeoutMs: number;
  /** A file larger than this is refused: early when its size is known, else while it streams. */
  maxBytes: number;
  /** HERALD_ALLOW_INSECURE_TARGETS: `http://` and guarded (private, loopback…) hosts allowed. */
  allowInsecureTargets: boolean;
  /** HERALD_FILE_DROP_DIR: the directory DIRECTORY sources read from and write to. */
  dropDir: string | undefined;
  /** Cancels the transfer (shutdown): it ends with an ABORTED FileTransferError. */
  signal?: AbortSignal;
  /** Extra CA certificate(s) to trust for HTTPS (tests only; production uses the system's and NODE_EXTRA_CA_CERTS). */
  trustedCa?: string | Buffer;
}

export type FetchedFile =
  /** The source answered that the file is not there (404/410, no such remote file, no such path). */
  | { found: false; location: string }
  | {
      found: true;
      /** The file's name: the last segment of its URL or path, placeholders expanded. */
      name: string;
      /** Where it came from, as messages show it (never a credential, never a query string). */
      location: string;
      /**
       * The bytes, streamed: read them once. Iterating throws a FileTransferError when the size
       * limit or the deadline is passed or the connection fails, so a partial file is never
       * mistaken for a complete one. The connection is released when the iteration ends.
       */
      content: AsyncIterable<Uint8Array>;
      /** Releases the connection or the file (idempotent); call it when not reading to the end. */
      close(): Promise<void>;
    };
