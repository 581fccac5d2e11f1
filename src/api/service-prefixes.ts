/**
 * Actito's hrefs carry service prefixes (`/webhooks/v4/…`, `/profiles/v5/…`) and legacy clients call
 * `/ActitoWebServices/ws/v4/…`. Every such path answers exactly like the bare `/v4/…` or `/v5/…`
 * path (SPEC intro, §1), so the prefix is removed before routing.
 */
export const SERVICE_PREFIXES = [
  "/webhooks",
  "/custom-data",
  "/mass-imports",
  "/profiles",
  "/profile-table-structure",
  "/custom-table-structure",
  "/ActitoWebServices/ws",
] as const;

const PATTERN = new RegExp(
  `^(?:${SERVICE_PREFIXES.map((p) => p.replace(/[/-]/g, "\\$&")).join("|")})(?=/v\\d+/)`,
);

export function stripServicePrefix(url: string): string {
  return url.replace(PATTERN, "");
}
