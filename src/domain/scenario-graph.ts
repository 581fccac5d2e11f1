/**
 * The graph checks of a scenario's blocks (SPEC §7.4, docs/scenarios.md "A definition is a
 * graph"): runs begin at the first block; every `next` and `otherwise` names a block; every block
 * can be reached from the first; from every block a path leads to a way out (an EXIT, or a FILTER
 * without `otherwise`, whose runs leave where the filter fails); and every loop passes a WAIT that
 * pauses: one whose `duration` is at least a minute (LOOP_PAUSE) and that has no `untilAttribute`
 * (a date already past lets the run on at once). Without it a run would go round the loop without
 * end, a TRIGGER or a profile write per pass. Pure; parseScenario calls it once every block has a
 * valid id, type and links.
 */
import type { ErrorDetail } from "./errors.js";
import type { BlockType } from "./scenario.js";
import { LOOP_PAUSE } from "./scenario-blocks.js";

/** What the checks need of one block, in the order of the definition. */
export interface GraphBlock {
  id: string;
  type: BlockType;
  next?: string;
  otherwise?: string;
  /** A WAIT that holds every run for at least a minute (LOOP_PAUSE): it breaks a loop. */
  pauses: boolean;
}

type Link = "next" | "otherwise";

interface Edge {
  from: number;
  to: number;
  link: Link;
}

/** Every problem of the graph, each with the path of the block or the link it is about. */
export function graphProblems(blocks: readonly GraphBlock[]): ErrorDetail[] {
  const problems: ErrorDetail[] = [];
  const first = blocks[0];
  if (!first) return problems;
  const indexOf = new Map(blocks.map((block, i) => [block.id, i]));
  const edges = linksOf(blocks, indexOf, problems);
  // A link to nowhere would make the blocks around it look unreachable or dead too: it alone is said.
  if (problems.length > 0) return problems;
  const reachable = reachableFrom([0], edges, "forward", blocks.length);
  blocks.forEach((block, i) => {
    if (!reachable.has(i))
      problems.push({
        path: `blocks[${i}]`,
        message: `'${block.id}' cannot be reached: no next or otherwise leads to it from the first block '${first.id}', where every run begins`,
      });
  });
  problems.push(...dead(blocks, edges, reachable));
  problems.push(...loopsWithoutPause(blocks, edges));
  return problems;
}

/** The links between blocks; one that names no block is a problem (and no edge). */
function linksOf(
  blocks: readonly GraphBlock[],
  indexOf: Map<string, number>,
  problems: ErrorDetail[],
): Edge[] {
  const edges: Edge[] = [];
  const ids = blocks.map((b) => b.id).join(", ");
  blocks.forEach((block, from) => {
    for (const link of ["next", "otherwise"] as const) {
      const target = block[link];
      if (target === undefined) continue;
      const to = indexOf.get(target);
      if (to === undefined)
        problems.push({
          path: `blocks[${from}].${link}`,
          message: `names block '${target}', which is not in the scenario (its blocks: ${ids})`,
        });
      else edges.push({ from, to, link });
    }
  });
  return edges;
}

function reachableFrom(
  starts: readonly number[],
  edges: readonly Edge[],
  direction: "forward" | "backward",
  size: number,
): Set<number> {
  const out = Array.from({ length: size }, () => [] as number[]);
  for (const edge of edges)
    if (direction === "forward") out[edge.from]!.push(edge.to);
    else out[edge.to]!.push(edge.from);
  const seen = new Set(starts);
  const queue = [...starts];
  while (queue.length > 0) {
    const at = queue.pop()!;
    for (const to of out[at]!)
      if (!seen.has(to)) {
        seen.add(to);
        queue.push(to);
      }
  }
  return seen;
}

/** A block where a run may leave the scenario. */
function isWayOut(block: GraphBlock): boolean {
  return block.type === "EXIT" || (block.type === "FILTER" && block.otherwise === undefined);
}

/** Reachable blocks from which no path leads out: a run that gets there never ends. */
function dead(
  blocks: readonly GraphBlock[],
  edges: readonly Edge[],
  reachable: ReadonlySet<number>,
): ErrorDetail[] {
  const exits = blocks.flatMap((block, i) => (isWayOut(block) ? [i] : []));
  if (exits.length === 0)
    return [
      {
        path: "blocks",
        message:
          'has no EXIT block: every path of a scenario ends in one ({"id": "end", "type": "EXIT"})',
      },
    ];
  const canLeave = reachableFrom(exits, edges, "backward", blocks.length);
  return blocks.flatMap((block, i) =>
    reachable.has(i) && !canLeave.has(i)
      ? [
          {
            path: `blocks[${i}]`,
            message: `no path from '${block.id}' leads to an EXIT: a run that gets here would never end`,
          },
        ]
      : [],
  );
}

/**
 * Loops that pass no pausing WAIT: a depth-first walk of the blocks that do not pause finds each
 * as a link back to a block still on the walk's path, and the problem names that link.
 */
function loopsWithoutPause(blocks: readonly GraphBlock[], edges: readonly Edge[]): ErrorDetail[] {
  const problems: ErrorDetail[] = [];
  const out = Array.from({ length: blocks.length }, () => [] as Edge[]);
  for (const edge of edges)
    if (!blocks[edge.from]!.pauses && !blocks[edge.to]!.pauses) out[edge.from]!.push(edge);
  const state = new Array<"new" | "open" | "done">(blocks.length).fill("new");
  const path: number[] = [];
  const visit = (at: number): void => {
    state[at] = "open";
    path.push(at);
    for (const edge of out[at]!) {
      if (state[edge.to] === "new") visit(edge.to);
      else if (state[edge.to] === "open") {
        const loop = [...path.slice(path.indexOf(edge.to)), edge.to].map((i) => blocks[i]!.id);
        problems.push({
          path: `blocks[${at}].${edge.link}`,
          message: `closes the loop ${loop.join(" → ")}, which passes no WAIT of at least ${LOOP_PAUSE}: a run would go round it without end. A loop needs a WAIT with a duration of one minute or more and no untilAttribute (a date already past lets a run on at once)`,
        });
      }
    }
    path.pop();
    state[at] = "done";
  };
  blocks.forEach((_, i) => {
    if (state[i] === "new") visit(i);
  });
  return problems;
}
