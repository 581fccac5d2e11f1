/**
 * Which segment a segmentation call means (SPEC §3, v4): `PUT|DELETE …/segmentation/{name}` with
 * the segment as the body's `name` (or `segment`), the matrix parameter `;category=<segment>` or
 * `?segment=`; and the segmentations of a v5 profile write. A SIMPLE segmentation's one segment has
 * the segmentation's name, so it needs none; naming another is HERALD_UNKNOWN_SEGMENT, like naming
 * a segment an EXCLUSIVE segmentation does not have.
 */
import type { SegmentChange } from "../../domain/record-change.js";
import type { DataTable, Segmentation } from "../../domain/data-table.js";
import { HeraldError, invalid } from "../../domain/errors.js";

/** A segment named in a request, with where it was named (for error paths). */
export interface NamedSegment {
  segment: string;
  path: string;
}

/** The table's segmentation of that name, or 404 HERALD_SEGMENTATION_NOT_FOUND. */
function segmentationOf(table: DataTable, name: string): Segmentation {
  const segmentation = table.segmentations.find((s) => s.name === name);
  if (!segmentation)
    throw new HeraldError("HERALD_SEGMENTATION_NOT_FOUND", {
      segmentation: name,
      table: table.name,
    });
  return segmentation;
}

/**
 * Splits the `{segmentationName}` path parameter into the segmentation and its matrix parameters
 * (`ClientType;category=Gold`). `category` is the only one: any other is a 400, so that a typo does
 * not silently put the profile in a segment it did not name.
 */
export function parseSegmentationParam(
  table: DataTable,
  raw: string,
): { segmentation: Segmentation; named?: NamedSegment } {
  const [name = "", ...matrix] = raw.split(";");
  const segmentation = segmentationOf(table, name);
  let named: NamedSegment | undefined;
  for (const parameter of matrix) {
    const eq = parameter.indexOf("=");
    const key = eq < 0 ? parameter : parameter.slice(0, eq);
    if (key !== "category" || eq < 0)
      throw invalid(
        "params.segmentationName",
        `has the matrix parameter '${parameter}'; the only one is ;category=<segment>`,
      );
    named = oneSegment(named, {
      segment: parameter.slice(eq + 1),
      path: "params.segmentationName",
    });
  }
  return named ? { segmentation, named } : { segmentation };
}

/** The one segment a request names among several places (400 when they name different ones). */
export function oneSegment(
  a: NamedSegment | undefined,
  b: NamedSegment | undefined,
): NamedSegment | undefined {
  if (a && b && a.segment !== b.segment)
    throw invalid(b.path, `names segment '${b.segment}' but ${a.path} names '${a.segment}'`);
  return a ?? b;
}

/** The segment named, checked against the segmentation (400 HERALD_UNKNOWN_SEGMENT). */
function checkedSegment(table: DataTable, segmentation: Segmentation, named: NamedSegment): string {
  const known =
    segmentation.type === "SIMPLE"
      ? named.segment === segmentation.name
      : (segmentation.segments ?? []).includes(named.segment);
  if (!known)
    throw new HeraldError(
      "HERALD_UNKNOWN_SEGMENT",
      { segment: named.segment, segmentation: segmentation.name, table: table.name },
      [
        {
          path: named.path,
          message:
            segmentation.type === "SIMPLE"
              ? `'${segmentation.name}' is SIMPLE: its one segment is '${segmentation.name}'`
              : `'${named.segment}' is not one of ${(segmentation.segments ?? []).join(", ")}`,
        },
      ],
    );
  return named.segment;
}

/**
 * The membership change a call asks for: join the named segment (a SIMPLE segmentation: its own);
 * leave it (`belongs: false`), or, naming none, leave whatever segment the profile is in.
 */
export function segmentationChange(
  table: DataTable,
  segmentation: Segmentation,
  named: NamedSegment | undefined,
  belongs: boolean,
  missingPath: string,
): { segments: SegmentChange[]; leaveSegmentations: string[] } {
  const segment = named
    ? checkedSegment(table, segmentation, named)
    : segmentation.type === "SIMPLE"
      ? segmentation.name
      : undefined;
  if (segment !== undefined)
    return {
      segments: [{ segmentation: segmentation.name, segment, belongs }],
      leaveSegmentations: [],
    };
  if (!belongs) return { segments: [], leaveSegmentations: [segmentation.name] };
  throw invalid(
    missingPath,
    `names no segment: '${segmentation.name}' is EXCLUSIVE, one of ${(segmentation.segments ?? []).join(", ")}`,
  );
}
