/**
 * A picture of the machine after a run: physical memory as a grid of cells
 * coloured by page state, and the kernel's arenas as bars of spans coloured
 * by segment. Pure: it takes numbers and returns SVG text.
 *
 * @module
 */

/** One page state of the physical-memory grid. */
export interface PageStateStyle {
  /** Legend text. */
  name: string;
  /** Fill colour. */
  color: string;
}

/** One arena drawn as bars: its spans, each with its segments. */
export interface ArenaPicture {
  /** Arena name. */
  name: string;
  /** Segments in walk order: `["span" | "alloc" | "free", start, size]`. */
  segs: readonly (readonly [string, number, number])[];
}

/** What {@link renderSvg} draws. */
export interface MachinePicture {
  /** Heading of the picture. */
  title: string;
  /** State index per physical page frame, from frame 0 up. */
  pageStates: Uint8Array;
  /** Style per state index. */
  styles: readonly PageStateStyle[];
  /** Bytes per page. */
  pageSize: number;
  /** Arenas to draw under the grid. */
  arenas: readonly ArenaPicture[];
}

const COLS = 256;
const CELL = 4;
const MAX_ROWS = 128;
const MARGIN = 16;
/** Spans drawn per arena; the rest are counted in one line. */
const MAX_SPANS = 8;

function esc(text: string): string {
  return text.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

function bytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let u = 0;
  while (n >= 1024 && u < units.length - 1 && n % 1024 === 0) {
    n /= 1024;
    u++;
  }
  return `${n} ${units[u]}`;
}

/**
 * Renders the picture. Each grid cell stands for an equal run of page
 * frames and takes the colour of the state most of them are in.
 */
export function renderSvg(p: MachinePicture): string {
  const frames = p.pageStates.length;
  const pagesPerCell = Math.max(1, Math.ceil(frames / (COLS * MAX_ROWS)));
  const cells = Math.ceil(frames / pagesPerCell);
  const rows = Math.ceil(cells / COLS);
  const gridW = COLS * CELL;
  const out: string[] = [];
  let y = MARGIN;
  const line = (s: string) => out.push(s);

  line(
    `<text x="${MARGIN}" y="${y + 12}" font-size="14" font-weight="bold">${esc(p.title)}</text>`,
  );
  y += 24;
  line(
    `<text x="${MARGIN}" y="${y + 10}" font-size="11">physical memory: ${frames} frames of ` +
      `${bytes(p.pageSize)}, ${pagesPerCell} frame${pagesPerCell > 1 ? "s" : ""} per cell ` +
      `(${bytes(pagesPerCell * p.pageSize)}), ${COLS} cells per row</text>`,
  );
  y += 16;
  const counts = new Int32Array(p.styles.length);
  const byColor = new Map<number, string[]>();
  for (let c = 0; c < cells; c++) {
    counts.fill(0);
    const lo = c * pagesPerCell;
    const hi = Math.min(frames, lo + pagesPerCell);
    for (let f = lo; f < hi; f++) counts[p.pageStates[f]!]!++;
    let best = 0;
    for (let s = 1; s < counts.length; s++) if (counts[s]! > counts[best]!) best = s;
    const rects = byColor.get(best) ?? [];
    rects.push(
      `M${MARGIN + (c % COLS) * CELL} ${y + Math.floor(c / COLS) * CELL}h${CELL}v${CELL}h-${CELL}z`,
    );
    byColor.set(best, rects);
  }
  for (const [state, rects] of byColor) {
    line(`<path fill="${p.styles[state]!.color}" d="${rects.join("")}"/>`);
  }
  y += rows * CELL + 8;
  let x = MARGIN;
  const totals = new Float64Array(p.styles.length);
  for (let f = 0; f < frames; f++) totals[p.pageStates[f]!]!++;
  p.styles.forEach((s, i) => {
    const label = `${s.name} (${totals[i]})`;
    line(
      `<rect x="${x}" y="${y}" width="10" height="10" fill="${s.color}" stroke="#333" stroke-width="0.5"/>`,
    );
    line(`<text x="${x + 14}" y="${y + 9}" font-size="11">${esc(label)}</text>`);
    x += 24 + label.length * 6.5;
  });
  y += 28;

  for (const arena of p.arenas) {
    line(
      `<text x="${MARGIN}" y="${y + 10}" font-size="12" font-weight="bold">arena ${
        esc(arena.name)
      }</text>`,
    );
    y += 16;
    const spans = splitSpans(arena.segs);
    if (spans.length === 0) {
      line(`<text x="${MARGIN}" y="${y + 10}" font-size="11">(no spans)</text>`);
      y += 16;
    }
    for (const span of spans.slice(0, MAX_SPANS)) {
      const [, base, size] = span.span;
      let inuse = 0;
      for (const [t, , n] of span.segs) if (t === "alloc") inuse += n;
      line(
        `<text x="${MARGIN}" y="${y + 10}" font-size="10">span 0x${base.toString(16)} ` +
          `${bytes(size)}, ${bytes(inuse)} allocated in ${
            span.segs.filter((s) => s[0] === "alloc").length
          } segments</text>`,
      );
      y += 13;
      line(
        `<rect x="${MARGIN}" y="${y}" width="${gridW}" height="12" fill="#dfe8d8" stroke="#333" stroke-width="0.5"/>`,
      );
      for (const [t, start, n] of span.segs) {
        if (t !== "alloc") continue;
        const sx = MARGIN + ((start - base) / size) * gridW;
        const w = Math.max(0.5, (n / size) * gridW);
        line(
          `<rect x="${sx.toFixed(2)}" y="${y}" width="${
            w.toFixed(2)
          }" height="12" fill="#c0392b"/>`,
        );
      }
      y += 18;
    }
    if (spans.length > MAX_SPANS) {
      let bytesLeft = 0;
      for (const span of spans.slice(MAX_SPANS)) bytesLeft += span.span[2];
      line(
        `<text x="${MARGIN}" y="${y + 10}" font-size="10">... and ${spans.length - MAX_SPANS} ` +
          `more spans (${bytes(bytesLeft)})</text>`,
      );
      y += 16;
    }
  }
  y += MARGIN;
  const width = gridW + 2 * MARGIN;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y}" ` +
    `viewBox="0 0 ${width} ${y}" font-family="monospace">\n` +
    `<rect width="100%" height="100%" fill="white"/>\n${out.join("\n")}\n</svg>\n`;
}

interface SpanPicture {
  span: readonly [string, number, number];
  segs: (readonly [string, number, number])[];
}

function splitSpans(segs: ArenaPicture["segs"]): SpanPicture[] {
  const spans: SpanPicture[] = [];
  for (const s of segs) {
    if (s[0] === "span") spans.push({ span: s, segs: [] });
    else spans[spans.length - 1]?.segs.push(s);
  }
  return spans;
}
