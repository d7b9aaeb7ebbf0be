/**
 * The picture of a policy comparison (`mm/replay.ts vmem --compare ...
 * --svg OUT`): the figures, each measured arena at each policy's peak, one
 * above another on one scale so the footprints compare by length, and the
 * footprint and fragmentation of every policy over the trace.
 *
 * @module
 */

import { type Comparison, FIGURE_HEADS, figureCells } from "./replay_compare.ts";
import { arenaStrip, bytes, group, heldBytes, plot, type PlotSeries, Svg } from "./picture.ts";

/** A colour per policy, in the order compared. */
export const POLICY_COLORS: readonly string[] = [
  "#1f77b4",
  "#d62728",
  "#2ca02c",
  "#9467bd",
  "#ff7f0e",
  "#17becf",
  "#8c564b",
  "#e377c2",
];

const WIDTH = 1100;
const MARGIN = 16;

/** The comparison `c` of the trace called `traceName` as an SVG document. */
export function comparisonSvg(c: Comparison, traceName: string): string {
  const svg = new Svg();
  const inner = WIDTH - 2 * MARGIN;
  let y = MARGIN;
  const title = `${traceName}: ${group(c.ops)} operations replayed under ${
    c.runs.map((r) => r.figures.policy).join(", ")
  }`;
  svg.text(MARGIN, y + 14, title, { size: 15, bold: true });
  y += 28;

  // The figures.
  const cols = [0, 130, 260, 400, 500, 620, 730, 810];
  FIGURE_HEADS.forEach((h, i) => svg.text(MARGIN + cols[i]!, y + 11, h, { size: 11, bold: true }));
  y += 16;
  c.runs.forEach((r, i) => {
    const cells = figureCells(r.figures, bytes);
    svg.rect(MARGIN, y + 3, 8, 8, POLICY_COLORS[i % POLICY_COLORS.length]!);
    cells.forEach((s, j) => svg.text(MARGIN + cols[j]! + (j === 0 ? 12 : 0), y + 11, s));
    y += 15;
  });
  y += 12;

  // Each measured arena at each policy's peak, on one scale.
  const names: string[] = [];
  for (const r of c.runs) {
    for (const a of r.peakArenas) if (!names.includes(a.name)) names.push(a.name);
  }
  for (const name of names) {
    let scale = 1;
    for (const r of c.runs) {
      const a = r.peakArenas.find((p) => p.name === name);
      if (a !== undefined) scale = Math.max(scale, heldBytes(a));
    }
    svg.text(
      MARGIN,
      y + 12,
      `arena ${name} at each policy's peak (one scale: the longest bar holds ${bytes(scale)})`,
      {
        size: 13,
        bold: true,
      },
    );
    y += 20;
    for (const r of c.runs) {
      const a = r.peakArenas.find((p) => p.name === name);
      if (a === undefined) continue;
      y += arenaStrip(svg, a, MARGIN, y, inner, scale, r.figures.policy) + 4;
    }
    y += 6;
  }
  // Legend of the bars.
  svg.rect(MARGIN, y, 10, 10, "#c0392b");
  svg.text(MARGIN + 14, y + 9, "allocated");
  svg.rect(MARGIN + 90, y, 10, 10, "#8fcf8a");
  svg.text(MARGIN + 104, y + 9, "free");
  svg.rect(MARGIN + 150, y, 10, 10, "#e3e3e3", "#999");
  svg.text(MARGIN + 164, y + 9, "in a span, in no segment (rounding slack)");
  svg.text(MARGIN + 440, y + 9, "ticks above a bar: span starts", { fill: "#555" });
  y += 24;

  // Footprint (and in use) and fragmentation over the trace.
  const color = (i: number) => POLICY_COLORS[i % POLICY_COLORS.length]!;
  const foot: PlotSeries[] = c.runs.map((r, i) => ({
    name: `${r.figures.policy} footprint`,
    color: color(i),
    axis: "bytes",
    points: r.series.map((s) => [s.op, s.footprint] as const),
  }));
  if (c.runs.length > 0) {
    foot.push({
      name: "in use",
      color: "#555",
      axis: "bytes",
      dash: "4,3",
      points: c.runs[0]!.series.map((s) => [s.op, s.inUse] as const),
    });
  }
  plot(svg, MARGIN, y, inner, 240, {
    title: "footprint of the measured arenas over the trace",
    xLabel: "operations",
    xMax: c.ops,
    series: foot,
  });
  y += 250;
  plot(svg, MARGIN, y, inner, 220, {
    title: "fragmentation of their free space (1 - largest free / free bytes) over the trace",
    xLabel: "operations",
    xMax: c.ops,
    series: c.runs.map((r, i) => ({
      name: r.figures.policy,
      color: color(i),
      axis: "fraction",
      points: r.series.map((s) => [s.op, s.fragmentation] as const),
    })),
  });
  y += 230 + MARGIN;
  return svg.render(WIDTH, y, title);
}
