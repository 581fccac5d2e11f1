/**
 * First start (SPEC §1): `bootstrap` creates the licence and the default entity, and a configured
 * HERALD_ADMIN_API_KEY that is not yet known; `createAdminKeyIfNone` generates the admin key, called
 * only once the process is really up (listening), so that a start that fails on a busy port or a bad
 * role does not create a key nobody saw. Both run under an advisory lock, so two processes starting
 * at once create each thing once.
 */
import type { Database, Queryable } from "../storage/database.js";
import {
  countLicences,
  countLiveAdminKeys,
  firstLicenceId,
  findApiKeyByHash,
  findEntityByName,
  insertApiKey,
  insertEntity,
  insertLicence,
  lockBootstrap,
} from "../storage/tenancy-repository.js";
import { hashSecret, keyPrefix, newApiKey } from "./api-key-secrets.js";

export const DEFAULT_LICENCE = "herald";
export const ADMIN_KEY_NAME = "admin";

export async function bootstrap(
  db: Database,
  options: { defaultEntity: string; adminApiKey: string | undefined },
): Promise<void> {
  await db.transaction(async (tx) => {
    await lockBootstrap(tx);
    const licenceId =
      (await countLicences(tx)) === 0
        ? await insertLicence(tx, DEFAULT_LICENCE)
        : await firstLicenceId(tx);
    const configured = options.adminApiKey;
    if (configured && !(await findApiKeyByHash(tx, hashSecret(configured))))
      await insertAdminKey(tx, licenceId, configured);
    if (!(await findEntityByName(tx, licenceId, options.defaultEntity)))
      await insertEntity(tx, licenceId, options.defaultEntity);
  });
}

/**
 * Generates the admin API key when the first licence has no admin key yet (a first start, or a start
 * after every admin key was revoked); returns it to be printed once, or undefined when an admin key
 * already exists. Only its hash is stored.
 */
export async function createAdminKeyIfNone(db: Database): Promise<string | undefined> {
  return db.transaction(async (tx) => {
    await lockBootstrap(tx);
    const licenceId = await firstLicenceId(tx);
    if ((await countLiveAdminKeys(tx, licenceId)) > 0) return undefined;
    const raw = newApiKey();
    await insertAdminKey(tx, licenceId, raw);
    return raw;
  });
}

/** The first admin key is named `admin` (SPEC §1); a further one, a dated name. */
async function insertAdminKey(tx: Queryable, licenceId: number, raw: string): Promise<void> {
  const key = {
    licenceId,
    keyHash: hashSecret(raw),
    keyPrefix: keyPrefix(raw),
    isAdmin: true,
    entityIds: null,
  };
  if (!(await insertApiKey(tx, { ...key, name: ADMIN_KEY_NAME })))
    await insertApiKey(tx, { ...key, name: `${ADMIN_KEY_NAME}-${Date.now()}` });
}
