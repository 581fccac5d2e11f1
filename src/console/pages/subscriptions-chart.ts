/**
 * The throughput chart of a subscription's page: push attempts per minute over the last hour as a
 * small inline SVG bar chart (delivered and failed stacked), with a title, an aria-label and a text
 * summary. The markup is built here from numbers only (never from data), with attributes and no
 * style, so the Content-Security-Policy has nothing to object to.
 */
import type { SafeHtml } from "../html.js";
import { html, unsafeRaw } from "../html.js";
import type { MinuteCounts } from "./subscriptions-throughput.js";
import { countText } from "./subscriptions-throughput.js";

const WIDTH = 600;
const HEIGHT = 120;
const TOP = 14;
const BOTTOM = 16;
const LEFT = 4;

function whole(n: number): string {
  return String(Math.round(n * 10) / 10);
}

/** The summary in words, also the chart's accessible name. */
export function throughputSummary(minutes: readonly MinuteCounts[]): string {
  const delivered = minutes.reduce((sum, m) => sum + m.delivered, 0);
  const failed = minutes.reduce((sum, m) => sum + m.failed, 0);
  const estimated = minutes.some((m) => m.estimated);
  const busiest = minutes.reduce((max, m) => Math.max(max, m.delivered + m.failed), 0);
  if (delivered + failed === 0) return "No push attempts in the last hour.";
  return (
    `${countText(delivered + failed, estimated)} push attempts in the last hour: ` +
    `${countText(delivered, estimated)} delivered, ${countText(failed, estimated)} failed; ` +
    `at most ${countText(busiest, estimated)} in one minute` +
    (estimated ? " (≈: estimated from the first attempts of the busiest minutes)." : ".")
  );
}

export function throughputChart(minutes: readonly MinuteCounts[]): SafeHtml {
  const summary = throughputSummary(minutes);
  const busiest = Math.max(1, ...minutes.map((m) => m.delivered + m.failed));
  const plot = HEIGHT - TOP - BOTTOM;
  const slot = (WIDTH - LEFT) / Math.max(1, minutes.length);
  const bar = Math.max(1, slot - 2);
  const bars: string[] = [];
  minutes.forEach((m, i) => {
    const x = LEFT + i * slot;
    const deliveredHeight = (m.delivered / busiest) * plot;
    const failedHeight = (m.failed / busiest) * plot;
    const base = HEIGHT - BOTTOM;
    if (m.delivered > 0)
      bars.push(
        `<rect class="bar" x="${whole(x)}" y="${whole(base - deliveredHeight)}" width="${whole(bar)}" height="${whole(deliveredHeight)}"></rect>`,
      );
    if (m.failed > 0)
      bars.push(
        `<rect class="bar failed" x="${whole(x)}" y="${whole(base - deliveredHeight - failedHeight)}" width="${whole(bar)}" height="${whole(failedHeight)}"></rect>`,
      );
  });
  // Only numbers and fixed words go into this markup; the summary is escaped by `html` below.
  const svg = unsafeRaw(
    [
      `<line class="axis" x1="0" y1="${HEIGHT - BOTTOM}" x2="${WIDTH}" y2="${HEIGHT - BOTTOM}"></line>`,
      ...bars,
      `<text x="0" y="10">${busiest} per minute</text>`,
      `<text x="0" y="${HEIGHT - 3}">60 min ago</text>`,
      `<text x="${WIDTH}" y="${HEIGHT - 3}" text-anchor="end">now</text>`,
    ].join(""),
  );
  return html`<figure class="throughput">
    <svg
      class="chart"
      viewBox="0 0 ${WIDTH} ${HEIGHT}"
      role="img"
      aria-label="Push attempts per minute over the last hour. ${summary}"
      xmlns="http://www.w3.org/2000/svg"
    >
      <title>Push attempts per minute over the last hour</title>
      ${svg}
    </svg>
    <figcaption>
      ${summary}
      <span class="legend"
        ><span class="key delivered"></span> delivered <span class="key failed"></span> failed</span
      >
    </figcaption>
  </figure>`;
}
