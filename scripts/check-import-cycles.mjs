#!/usr/bin/env node
/**
 * Fails when the modules of src/ import each other in a cycle, type-only imports included
 * (DESIGN §8: dependencies point inward only, and a cycle is two modules that each point at the
 * other). A type-only cycle costs nothing at run time but still ties two files together: neither
 * can be understood, moved or tested without the other.
 *
 *   node scripts/check-import-cycles.mjs [folder…]   (default: src)
 *
 * Plain Node, no dependency: the import statements of this codebase are prettier-formatted, so a
 * regular expression finds them (`import … from "…"`, `import type …`, `export … from "…"`,
 * `import "…"` and `import("…")`, including the `import("…")` of a type position). Relative
 * specifiers are resolved as TypeScript's NodeNext resolution does here (`./x.js` is `./x.ts`);
 * packages are not followed. The strongly connected components come from Tarjan's algorithm, and
 * each is printed as a few shortest cycles that together go through every module in it.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const STATIC_IMPORT =
  /^[ \t]*(?:import|export)\s+(?:type\s+)?(?:[\w$]+\s*,\s*)?(?:\*(?:\s+as\s+[\w$]+)?|\{[^}]*\}|[\w$]+)\s+from\s+["']([^"']+)["']/gm;
const SIDE_EFFECT_IMPORT = /^[ \t]*import\s+["']([^"']+)["']/gm;
const DYNAMIC_IMPORT = /\bimport\(\s*["']([^"']+)["']\s*\)/g;

function sourceFiles(folder) {
  const found = [];
  for (const entry of readdirSync(folder, { withFileTypes: true })) {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) found.push(...sourceFiles(path));
    else if (entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts")) found.push(path);
  }
  return found;
}

function specifiers(text) {
  const found = new Set();
  for (const pattern of [STATIC_IMPORT, SIDE_EFFECT_IMPORT, DYNAMIC_IMPORT])
    for (const match of text.matchAll(pattern)) found.add(match[1]);
  return found;
}

/** The .ts file a relative specifier names, or undefined for a package or a file not found. */
function resolveSpecifier(from, specifier) {
  if (!specifier.startsWith(".")) return undefined;
  const target = resolve(dirname(from), specifier);
  const candidates = [
    target.replace(/\.(m?)js$/, ".$1ts"),
    target,
    `${target}.ts`,
    join(target, "index.ts"),
  ];
  return candidates.find(
    (path) => path.endsWith(".ts") && existsSync(path) && statSync(path).isFile(),
  );
}

function importGraph(files) {
  const graph = new Map(files.map((file) => [file, []]));
  const unresolved = [];
  for (const file of files) {
    for (const specifier of specifiers(readFileSync(file, "utf8"))) {
      const target = resolveSpecifier(file, specifier);
      if (target && graph.has(target)) graph.get(file).push(target);
      else if (specifier.startsWith(".") && !target) unresolved.push(`${file}: ${specifier}`);
    }
  }
  return { graph, unresolved };
}

/** Tarjan's algorithm, iterative so that a long import chain cannot overflow the stack. */
function stronglyConnectedComponents(graph) {
  const index = new Map();
  const lowLink = new Map();
  const stack = [];
  const onStack = new Set();
  const components = [];
  let next = 0;
  for (const root of graph.keys()) {
    if (index.has(root)) continue;
    const work = [{ node: root, edge: 0 }];
    index.set(root, next);
    lowLink.set(root, next++);
    stack.push(root);
    onStack.add(root);
    while (work.length > 0) {
      const frame = work[work.length - 1];
      const targets = graph.get(frame.node);
      if (frame.edge < targets.length) {
        const target = targets[frame.edge++];
        if (!index.has(target)) {
          index.set(target, next);
          lowLink.set(target, next++);
          stack.push(target);
          onStack.add(target);
          work.push({ node: target, edge: 0 });
        } else if (onStack.has(target)) {
          lowLink.set(frame.node, Math.min(lowLink.get(frame.node), index.get(target)));
        }
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent)
        lowLink.set(parent.node, Math.min(lowLink.get(parent.node), lowLink.get(frame.node)));
      if (lowLink.get(frame.node) !== index.get(frame.node)) continue;
      const component = [];
      let member;
      do {
        member = stack.pop();
        onStack.delete(member);
        component.push(member);
      } while (member !== frame.node);
      components.push(component);
    }
  }
  return components;
}

/** The shortest path from start back to start inside the component (breadth first). */
function shortestCycle(graph, members, start) {
  const cameFrom = new Map();
  const queue = [start];
  for (let head = 0; head < queue.length; head++) {
    const node = queue[head];
    for (const target of graph.get(node)) {
      if (!members.has(target)) continue;
      if (target === start) {
        const back = [];
        for (let step = node; step !== start; step = cameFrom.get(step)) back.push(step);
        return [start, ...back.reverse(), start];
      }
      if (!cameFrom.has(target)) {
        cameFrom.set(target, node);
        queue.push(target);
      }
    }
  }
  return undefined;
}

function cyclesThrough(graph, component) {
  const members = new Set(component);
  const covered = new Set();
  const cycles = [];
  for (const start of [...component].sort()) {
    if (covered.has(start)) continue;
    const cycle = shortestCycle(graph, members, start);
    if (!cycle) continue;
    cycle.forEach((node) => covered.add(node));
    cycles.push(cycle);
  }
  return cycles;
}

const root = process.cwd();
const folders = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ["src"];
const files = folders.flatMap((folder) => sourceFiles(resolve(root, folder)));
const { graph, unresolved } = importGraph(files);
const show = (path) => relative(root, path);

for (const line of unresolved) console.warn(`import-cycles: cannot resolve ${show(line)}`);
const tangled = stronglyConnectedComponents(graph).filter(
  (component) => component.length > 1 || graph.get(component[0]).includes(component[0]),
);
if (tangled.length === 0) {
  console.log(`import-cycles: no cycle among ${files.length} modules of ${folders.join(", ")}`);
} else {
  console.error(
    `import-cycles: ${tangled.length} group(s) of modules import each other in a cycle`,
  );
  console.error(
    "(type-only imports count: move the shared piece to the module both sides may import)",
  );
  for (const component of tangled) {
    console.error(`\n${component.length} modules:`);
    for (const cycle of cyclesThrough(graph, component))
      console.error(`  ${cycle.map(show).join(" → ")}`);
  }
  process.exitCode = 1;
}
