/**
 * Where a process's HERALD_SECRET_KEY comes from (docs/files-and-exports.md "Secrets at rest"):
 *
 * - the setting, always with DATABASE_URL (every process on one PostgreSQL database needs the same
 *   key, so Herald cannot make one up: a start without it is refused before anything is opened);
 * - on the embedded database without the setting, the file `secret.key` in HERALD_DATA_DIR
 *   (mode 0600), read at every start. Herald writes it the first time, and only while the database
 *   has no key check yet: a database whose key file went missing is refused with what to restore,
 *   not given a new key that opens nothing. During a rotation (HERALD_SECRET_KEY_PREVIOUS set) a
 *   missing file is the new key to make.
 */
import {
  closeSync,
  fsyncSync,
  linkSync,
  openSync,
  readFileSync,
  statSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { generateSecretKey, parseSecretKey, SecretBox } from "../domain/secret-box.js";
import type { Queryable } from "./database.js";

export const SECRET_KEY_FILE_NAME = "secret.key";

/** The settings that decide the key. */
export interface SecretKeySettings {
  databaseUrl: string | undefined;
  dataDir: string;
  secretKey: string | undefined;
  secretKeyPrevious: string | undefined;
}

/** The key settings are missing or wrong (a start refused with exit code 2). */
export class SecretKeySetupError extends Error {
  override name = "SecretKeySetupError";
}

/** The keys given by the settings, checked; refuses a start on PostgreSQL without HERALD_SECRET_KEY. */
export function configuredKeys(settings: SecretKeySettings): {
  current: Buffer | undefined;
  previous: Buffer | undefined;
} {
  if (settings.databaseUrl && !settings.secretKey)
    throw new SecretKeySetupError(
      "HERALD_SECRET_KEY is required with DATABASE_URL: it encrypts webhook signing secrets and file source credentials in the database, and every Herald process on the database needs the same one. Make one with `openssl rand -hex 32`, keep it with the database's credentials (a backup of the database is useless without it), and set it on every process",
    );
  try {
    return {
      current:
        settings.secretKey === undefined
          ? undefined
          : parseSecretKey(settings.secretKey, "HERALD_SECRET_KEY"),
      previous:
        settings.secretKeyPrevious === undefined
          ? undefined
          : parseSecretKey(settings.secretKeyPrevious, "HERALD_SECRET_KEY_PREVIOUS"),
    };
  } catch (error) {
    throw new SecretKeySetupError((error as Error).message, { cause: error });
  }
}

export interface OpenedSecretBox {
  secrets: SecretBox;
  /** The key file written by this start (embedded database, first start), else undefined. */
  generatedFile: string | undefined;
  /** Something the operator should fix (a key file others may read). */
  warning: string | undefined;
}

/**
 * The process's SecretBox: from the settings, else (embedded database) from the key file in the
 * data directory, written now when the database has no key check yet. `db` is migrated.
 */
export async function openSecretBox(
  db: Queryable,
  settings: SecretKeySettings,
): Promise<OpenedSecretBox> {
  const { current, previous } = configuredKeys(settings);
  if (current)
    return {
      secrets: new SecretBox(current, previous),
      generatedFile: undefined,
      warning: undefined,
    };
  const path = join(settings.dataDir, SECRET_KEY_FILE_NAME);
  const existing = readKeyFile(path);
  if (existing)
    return {
      secrets: new SecretBox(existing.key, previous),
      generatedFile: undefined,
      warning: existing.warning,
    };
  if (!previous && (await hasKeyCheck(db)))
    throw new SecretKeySetupError(
      `the secret key file ${path} is missing, and this database's secrets are encrypted with the key that was in it. Restore the file from a backup (mode 0600), or set that key as HERALD_SECRET_KEY`,
    );
  const created = createKeyFile(path);
  return { secrets: new SecretBox(created, previous), generatedFile: path, warning: undefined };
}

async function hasKeyCheck(db: Queryable): Promise<boolean> {
  const { rowCount } = await db.query("SELECT 1 FROM secret_key_check");
  return rowCount > 0;
}

/** The key in `path`; undefined when there is no such file. */
export function readKeyFile(
  path: string,
): { key: Buffer; warning: string | undefined } | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new SecretKeySetupError(
      `cannot read the secret key file ${path}: ${(error as Error).message}`,
      { cause: error },
    );
  }
  let key: Buffer;
  try {
    key = parseSecretKey(text, `the secret key file ${path}`);
  } catch (error) {
    throw new SecretKeySetupError((error as Error).message, { cause: error });
  }
  const mode = statSync(path).mode & 0o777;
  const warning =
    process.platform !== "win32" && (mode & 0o077) !== 0
      ? `the secret key file ${path} may be read by other users (mode ${mode.toString(8)}); make it private with: chmod 600 ${path}`
      : undefined;
  return { key, warning };
}

/**
 * Writes a new key to `path` (mode 0600) and returns it; if another process wrote one first, that
 * one. The key is written and synced under a temporary name, then linked to `path`, which fails
 * when `path` exists: never a half-written key file, never two keys.
 */
export function createKeyFile(path: string): Buffer {
  const dir = join(path, "..");
  mkdirSync(dir, { recursive: true });
  const text = generateSecretKey();
  const temporary = `${path}.${process.pid}.tmp`;
  const fd = openSync(temporary, "w", 0o600);
  try {
    writeSync(fd, `${text}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(temporary, path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    return readKeyFile(path)!.key;
  } finally {
    unlinkSync(temporary);
  }
  syncDirectory(dir);
  return parseSecretKey(text);
}

function syncDirectory(dir: string): void {
  try {
    const fd = openSync(dir, "r");
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // Some file systems cannot sync a directory; the file itself is synced.
  }
}
