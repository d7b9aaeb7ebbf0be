/**
 * The picture of a run (`boot.ts --svg FILE`), drawn to scale.
 *
 * For each workload's peak: physical memory by page state, in rows of a
 * power-of-two size with an address on each row and offsets above the
 * first, every pixel column the stacked share of each state in its frames
 * (a state present gets at least a pixel), the free-list boundaries at
 * 16 MiB and 4 GiB marked; then each kernel arena's spans end to end in
 * address order, allocated and free segments in them. At the end, the heap
 * over the run: in use, footprint and fragmentation of the kmem arena.
 *
 * {@link physicalPicture} reads the page states of a kernel into column
 * counts (one pass over the managed frames, nothing kept per frame);
 * {@link renderSvg} turns the snapshots into SVG text.
 *
 * @module
 */

import type { Kernel } from "./kernel.ts";
import { OWNER_CACHE, OWNER_DMA, OWNER_KMEM } from "../mm/kmem.ts";
import { PG_PGLIST } from "../mm/physseg.ts";
import {
  type ArenaPicture,
  arenaStrip,
  bytes,
  group,
  heldBytes,
  plot,
  stackedColumns,
  Svg,
} from "../mm/picture.ts";

export type { ArenaPicture } from "../mm/picture.ts";

/** One page state of the physical-memory panel. */
export interface PageStateStyle {
  /** Legend text. */
  name: string;
  /** Fill colour. */
  color: string;
}

/** Page states drawn, by index. */
export const PAGE_STYLES: readonly PageStateStyle[] = [
  { name: "not RAM", color: "#e8e8e8" },
  { name: "free", color: "#8fcf8a" },
  { name: "kernel heap", color: "#c0392b" },
  { name: "page cache", color: "#5d8aa8" },
  { name: "DMA / page lists", color: "#e6a23c" },
  { name: "kernel image / reserved", color: "#555555" },
];

/** The free-list boundaries of the x86 port: FIRST16 below, FIRST4G below, DEFAULT above. */
export const FREELIST_BOUNDARIES: readonly { addr: number; label: string }[] = [
  { addr: 2 ** 24, label: "16 MiB: FIRST16 below" },
  { addr: 2 ** 32, label: "4 GiB: FIRST4G below, DEFAULT above" },
];

/** Pixel columns of a row of physical memory. */
const ROW_PX = 1024;
/** At most this many rows. */
const MAX_ROWS = 8;

/** Physical memory by page state, counted per pixel column. */
export interface PhysicalPicture {
  /** End of RAM (the highest RAM address + 1). */
  ramEnd: number;
  /** Bytes per page. */
  pageSize: number;
  /** Bytes per row (a power of two). */
  rowBytes: number;
  /** Rows. */
  rows: number;
  /** Columns per row. */
  columns: number;
  /** Frames of column c of row r in state s: `counts[(r * columns + c) * states + s]`. */
  counts: Float64Array;
  /** Frames in each state. */
  totals: Float64Array;
}

/** Page states of `k`, counted into the columns of the picture. */
export function physicalPicture(k: Kernel): PhysicalPicture {
  const ps = k.uvm.pageSize;
  const ramEnd = k.machine.memmap.ramEnd();
  const frames = Math.ceil(ramEnd / ps);
  const rowBytes = Math.max(ps, 2 ** Math.ceil(Math.log2(Math.max(1, ramEnd / MAX_ROWS))));
  const framesPerRow = rowBytes / ps;
  const columns = Math.min(ROW_PX, framesPerRow);
  const perCol = framesPerRow / columns;
  const rows = Math.ceil(frames / framesPerRow);
  const states = PAGE_STYLES.length;
  const counts = new Float64Array(rows * columns * states);
  const totals = new Float64Array(states);
  // Every frame starts as "not RAM"; the managed ones are counted again below.
  for (let col = 0; col * perCol < frames; col++) {
    counts[col * states] = Math.min(perCol, frames - col * perCol);
  }
  totals[0] = frames;
  for (let i = 0; i < k.uvm.segmentCount; i++) {
    const seg = k.uvm.segment(i);
    for (let pfn = seg.start; pfn < seg.end; pfn++) {
      let s: number;
      if (k.uvm.isFree(pfn)) s = 1;
      else {
        const owner = k.uvm.owner(pfn);
        s = owner === OWNER_KMEM
          ? 2
          : owner === OWNER_CACHE
          ? 3
          : owner === OWNER_DMA || (k.uvm.pageFlags(pfn) & PG_PGLIST) !== 0
          ? 4
          : 5;
      }
      const at = Math.floor(pfn / perCol) * states;
      counts[at]!--;
      counts[at + s]!++;
      totals[0]!--;
      totals[s]!++;
    }
  }
  return { ramEnd, pageSize: ps, rowBytes, rows, columns, counts, totals };
}

/** The heap at one moment of the run. */
export interface HeapSample {
  /** Arena operations carried out so far. */
  op: number;
  /** The workload running. */
  workload: string;
  /** Bytes the heap's callers hold. */
  inUse: number;
  /** Bytes in the kmem arena's spans. */
  footprint: number;
  /** Fragmentation of its free space. */
  fragmentation: number;
  /** Free pages. */
  freePages: number;
}

/** The machine at one workload's peak. */
export interface PeakPicture {
  /** Heading, e.g. "at the peak of workload heap". */
  label: string;
  /** Physical memory. */
  physical: PhysicalPicture;
  /** The kernel's arenas. */
  arenas: ArenaPicture[];
}

/** What {@link renderSvg} draws. */
export interface MachinePicture {
  /** Heading of the picture. */
  title: string;
  /** One section per peak. */
  peaks: readonly PeakPicture[];
  /** The heap over the run (no plot when empty). */
  samples: readonly HeapSample[];
}

const MARGIN = 16;
const LABEL_W = 72;
const WIDTH = 2 * MARGIN + LABEL_W + ROW_PX;
const ROW_H = 14;
const ROW_GAP = 13;

function drawPhysical(svg: Svg, p: PhysicalPicture, y0: number): number {
  let y = y0;
  const x0 = MARGIN + LABEL_W;
  const colW = ROW_PX / p.columns;
  const perCol = p.rowBytes / p.columns;
  svg.text(
    MARGIN,
    y + 11,
    `physical memory: RAM up to 0x${p.ramEnd.toString(16)} (${bytes(p.ramEnd)}), ` +
      `${bytes(p.rowBytes)} per row, ${bytes(perCol)} (${group(perCol / p.pageSize)} page${
        perCol === p.pageSize ? "" : "s"
      }) per ${colW === 1 ? "pixel column" : `${colW}-pixel column`}; blue: free-list boundaries`,
    { size: 11 },
  );
  y += 20;
  y += 6;
  const states = PAGE_STYLES.length;
  const colors = PAGE_STYLES.map((s) => s.color);
  for (let r = 0; r < p.rows; r++) {
    const ry = y + r * (ROW_H + ROW_GAP);
    svg.text(x0 - 6, ry + 11, r === 0 ? "0" : bytes(r * p.rowBytes), { size: 10, anchor: "end" });
    const slice = p.counts.subarray(r * p.columns * states, (r + 1) * p.columns * states);
    stackedColumns(svg, x0, ry, colW, ROW_H, slice, states, colors);
    svg.rect(x0, ry, ROW_PX, ROW_H, "none", "#999");
  }
  for (const b of FREELIST_BOUNDARIES) {
    if (b.addr >= p.ramEnd) continue;
    const r = Math.floor(b.addr / p.rowBytes);
    const x = x0 + ((b.addr - r * p.rowBytes) / p.rowBytes) * ROW_PX;
    const ry = y + r * (ROW_H + ROW_GAP);
    svg.line(x, ry - 4, x, ry + ROW_H + 4, "#1a4fd6");
    svg.text(x + 3, ry - 3, b.label, { size: 9, fill: "#1a4fd6" });
  }
  y += p.rows * (ROW_H + ROW_GAP) - ROW_GAP;
  // Offsets within a row, below the last.
  const step = p.rowBytes / 4;
  for (let i = 0; i <= 4; i++) {
    const x = x0 + (i * step / p.rowBytes) * ROW_PX;
    svg.line(x, y, x, y + 3, "#333");
    svg.text(x, y + 12, i === 0 ? "+0" : `+${bytes(i * step)}`, {
      size: 9,
      anchor: i === 0 ? "start" : i === 4 ? "end" : "middle",
    });
  }
  svg.text(x0 - 6, y + 12, "offset", { size: 9, anchor: "end" });
  y += 22;
  // Legend with the count of each state.
  let x = MARGIN;
  PAGE_STYLES.forEach((s, i) => {
    const n = p.totals[i]!;
    const label = `${s.name} ${group(n)} (${bytes(n * p.pageSize)})`;
    svg.rect(x, y, 10, 10, s.color, "#333");
    svg.text(x + 14, y + 9, label, { size: 10 });
    x += 26 + label.length * 5.4;
  });
  return y + 22 - y0;
}

/** Renders the picture of a run. */
export function renderSvg(p: MachinePicture): string {
  const svg = new Svg();
  let y = MARGIN;
  svg.text(MARGIN, y + 14, p.title, { size: 15, bold: true });
  y += 26;
  for (const peak of p.peaks) {
    svg.line(MARGIN, y, WIDTH - MARGIN, y, "#bbb");
    svg.text(MARGIN, y + 16, peak.label, { size: 13, bold: true });
    y += 24;
    y += drawPhysical(svg, peak.physical, y);
    for (const a of peak.arenas) {
      y += arenaStrip(svg, a, MARGIN, y, WIDTH - 2 * MARGIN, Math.max(1, heldBytes(a))) + 2;
    }
    svg.rect(MARGIN, y, 10, 10, "#c0392b");
    svg.text(MARGIN + 14, y + 9, "allocated", { size: 10 });
    svg.rect(MARGIN + 80, y, 10, 10, "#8fcf8a");
    svg.text(MARGIN + 94, y + 9, "free", { size: 10 });
    svg.rect(MARGIN + 130, y, 10, 10, "#e3e3e3", "#999");
    svg.text(MARGIN + 144, y + 9, "in a span, in no segment (rounding slack)", { size: 10 });
    svg.text(MARGIN + 420, y + 9, "ticks above a bar: span starts", { size: 10, fill: "#555" });
    y += 22;
  }
  if (p.samples.length > 0) {
    const marks: { x: number; label: string }[] = [];
    let last = "";
    for (const s of p.samples) {
      if (s.workload !== last) marks.push({ x: s.op, label: s.workload });
      last = s.workload;
    }
    const xMax = p.samples[p.samples.length - 1]!.op;
    plot(svg, MARGIN, y, WIDTH - 2 * MARGIN, 250, {
      title: "the heap over the run (kmem arena)",
      xLabel: "arena operations (kmem_alloc, kmem_free, process IDs, kernel mappings)",
      xMax,
      marks,
      series: [
        {
          name: "in use",
          color: "#c0392b",
          axis: "bytes",
          points: p.samples.map((s) => [s.op, s.inUse] as const),
        },
        {
          name: "footprint",
          color: "#1f77b4",
          axis: "bytes",
          points: p.samples.map((s) => [s.op, s.footprint] as const),
        },
        {
          name: "fragmentation (right axis)",
          color: "#555",
          axis: "fraction",
          dash: "4,3",
          points: p.samples.map((s) => [s.op, s.fragmentation] as const),
        },
      ],
    });
    y += 260;
  }
  return svg.render(WIDTH, y + MARGIN, p.title);
}
