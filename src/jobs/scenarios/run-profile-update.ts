/**
 * An UPDATE_PROFILE block as the write the API would make (SPEC §7.4: "writes through the same
 * capture as the API"): its attribute values, subscriptions and segmentations checked against the
 * table as it is now, with the API's rules and errors, and handed to capture's applyToProfile.
 */
import type { ProfileWrite } from "../../capture/profile-writer.js";
import type { DataTable } from "../../domain/data-table.js";
import {
  parseAttributeList,
  parseSegmentationList,
  parseSubscriptionList,
} from "../../domain/record-input.js";
import type { UpdateProfileBlock } from "../../domain/scenario-steps.js";

/**
 * The block's write: attributes (null clears a value), subscriptions (name → subscribe),
 * segmentations (name → the segment to enter, or false to leave whatever segment of it the
 * profile is in), each in the table's order of declaration (the stored block is JSON, whose key
 * order the database does not keep), so the write's events come in an order that says something.
 * Throws the API's 400 when the table changed since the scenario was saved so that the block no
 * longer fits it (an attribute removed, a segment renamed).
 */
export function profileWriteOf(table: DataTable, block: UpdateProfileBlock): ProfileWrite {
  const attributes = parseAttributeList(
    table,
    inTableOrder(block.attributes, table.attributes).map(([name, value]) => ({ name, value })),
    `blocks.${block.id}.attributes`,
  );
  const subscriptions = parseSubscriptionList(
    table,
    inTableOrder(block.subscriptions, table.subscriptions).map(([name, subscribe]) => ({
      name,
      subscribe,
    })),
  );
  const entering: { category: string; name: string; belongs: boolean }[] = [];
  const leaving: string[] = [];
  for (const [segmentation, segment] of inTableOrder(block.segmentations, table.segmentations)) {
    if (segment === false) leaving.push(segmentation);
    else entering.push({ category: segmentation, name: segment, belongs: true });
  }
  return {
    attributes,
    subscriptions,
    segments: parseSegmentationList(table, entering),
    leaveSegmentations: leaving,
  };
}

/** The entries of `values` in the order `declared` names them; names it does not have last. */
function inTableOrder<V>(
  values: Record<string, V>,
  declared: readonly { name: string }[],
): [string, V][] {
  const rank = new Map(declared.map((d, i) => [d.name, i]));
  return Object.entries(values).sort(
    ([a], [b]) => (rank.get(a) ?? declared.length) - (rank.get(b) ?? declared.length),
  );
}
