/**
 * The body of `PUT /v5/…/profiles` (SPEC §3, "Profiles (v5)") checked against the table: which
 * profile it names (`key`: exactly one unique attribute, or `profileId`) and the same ProfileWrite
 * a v4 body gives, so that the write goes through the one capture path. Error paths name the body's
 * keys (`attributes.points`, `segmentations.ClientType`).
 */
import type { Static } from "typebox";
import type { ProfileWrite } from "../../capture/profile-writer.js";
import { checkValue } from "../../domain/attribute-values.js";
import { parseDataCollection } from "../../domain/data-collection.js";
import type { DataTable } from "../../domain/data-table.js";
import { HeraldError, invalid } from "../../domain/errors.js";
import type { KeyValue, SegmentChange, SubscriptionChange } from "../../domain/record-change.js";
import { keyText } from "../../domain/record-keys.js";
import { parseAttributeList } from "../../domain/record-input.js";
import type { V5ProfileWrite } from "./profile-v5-schemas.js";
import { segmentationChange, type NamedSegment } from "./segmentation-target.js";

export type V5Target = { kind: "unique"; key: KeyValue } | { kind: "profileId"; profileId: number };

function badKey(shown: string, path: string, message: string): HeraldError {
  return new HeraldError("HERALD_INVALID_PROFILE_KEY", { key: shown }, [{ path, message }]);
}

/** `key`: one entry, naming profileId or a unique attribute, with a valid value. */
function parseKey(table: DataTable, key: Record<string, unknown>): V5Target {
  const entries = Object.entries(key);
  const [entry] = entries;
  if (!entry || entries.length > 1)
    throw badKey(
      JSON.stringify(key),
      "body.key",
      `must name exactly one unique attribute, e.g. {"emailAddress": "a@b.c"} (it names ${entries.length})`,
    );
  const [name, raw] = entry;
  const shown = `${name}=${String(raw)}`;
  if (name === "profileId") {
    const id = typeof raw === "number" ? raw : Number(String(raw).trim());
    if (!Number.isSafeInteger(id) || id < 1 || !/^\s*\d+\s*$/.test(String(raw)))
      throw badKey(shown, "body.key.profileId", "must be a profile id");
    return { kind: "profileId", profileId: id };
  }
  const attribute = table.attributes.find((a) => a.name === name);
  if (!attribute?.unique)
    throw badKey(
      shown,
      `body.key.${name}`,
      attribute
        ? `'${name}' is not a unique attribute: it cannot name one profile`
        : `'${name}' is not an attribute of the table`,
    );
  const checked = checkValue(attribute, raw);
  if (checked.kind === "invalid")
    throw new HeraldError("HERALD_INVALID_VALUE", { attribute: name, reason: checked.message }, [
      { path: `body.key.${name}`, message: `${name} ${checked.message}` },
    ]);
  const value = keyText(checked.value);
  if (value === undefined) throw badKey(shown, `body.key.${name}`, "needs a value");
  return { kind: "unique", key: { attribute: name, value } };
}

/** Runs a v4 list parser and renames its `list[i]` error paths after the body's object keys. */
function withNamedPaths<T>(listName: string, names: readonly string[], parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (error instanceof HeraldError)
      for (const detail of error.details)
        detail.path = detail.path.replace(
          new RegExp(`^${listName}\\[(\\d+)\\](?:\\.(?:name|value))?`),
          (whole, i: string) => `body.${listName}.${names[Number(i)] ?? whole}`,
        );
    throw error;
  }
}

export function parseV5ProfileWrite(
  table: DataTable,
  body: Static<typeof V5ProfileWrite>,
): { target: V5Target; write: ProfileWrite } {
  const target = parseKey(table, body.key);
  const given = Object.entries(body.attributes ?? {});
  // The key's value is written too, unless the attributes give that attribute another one (a
  // change of the key value: the profile found by the old value takes the new one).
  if (target.kind === "unique" && !given.some(([name]) => name === target.key.attribute))
    given.push([target.key.attribute, body.key[target.key.attribute] ?? null]);
  const names = given.map(([name]) => name);
  const attributes = withNamedPaths("attributes", names, () =>
    parseAttributeList(
      table,
      given.map(([name, value]) => ({ name, value })),
      "attributes",
    ),
  );

  const subscriptions: SubscriptionChange[] = [];
  for (const [name, subscribe] of Object.entries(body.subscriptions ?? {})) {
    if (!table.subscriptions.some((s) => s.name === name))
      throw invalid(`body.subscriptions.${name}`, `'${name}' is not a subscription of the table`);
    subscriptions.push({ subscriptionName: name, subscribe });
  }

  const segments: SegmentChange[] = [];
  const leaveSegmentations: string[] = [];
  for (const [name, wanted] of Object.entries(body.segmentations ?? {})) {
    const segmentation = table.segmentations.find((s) => s.name === name);
    const path = `body.segmentations.${name}`;
    if (!segmentation) throw invalid(path, `'${name}' is not a segmentation of the table`);
    const named: NamedSegment | undefined =
      typeof wanted === "string" ? { segment: wanted, path } : undefined;
    const change = segmentationChange(
      table,
      segmentation,
      named,
      wanted !== false && wanted !== null,
      path,
    );
    segments.push(...change.segments);
    leaveSegmentations.push(...change.leaveSegmentations);
  }

  const dataCollection = parseDataCollection(
    body.dataCollectionInformation,
    "body.dataCollectionInformation",
  );
  return {
    target,
    write: {
      attributes,
      subscriptions,
      segments,
      leaveSegmentations,
      ...(dataCollection ? { dataCollection } : {}),
    },
  };
}
