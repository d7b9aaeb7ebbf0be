/**
 * SVG pictures of memory, drawn to scale: the pieces the machine picture
 * (boot/svg.ts) and the policy comparison (replay_picture.ts) are made of.
 * Pure: numbers in, SVG text out.
 *
 * - {@link stackedColumns}: a bar of one-pixel-or-wider columns, each the
 *   stacked share of every class (page state, allocated / free) in the
 *   range of memory it stands for; a class present in a column gets at
 *   least one pixel, so nothing small vanishes, and runs of equal columns
 *   are drawn as one rectangle.
 * - {@link arenaStrip}: an arena's spans laid end to end in address order,
 *   to a common scale, allocated and free segments in them, span starts
 *   ticked, an axis of bytes and a label with the counts.
 * - {@link plot}: lines over operations, bytes on the left axis and a
 *   fraction (fragmentation) on the right.
 *
 * Cost: proportional to the segments and columns drawn; the text grows with
 * the runs of distinct columns, not with the size of memory.
 *
 * @module
 */

/** Builds an SVG document piece by piece. */
export class Svg {
  readonly #parts: string[] = [];

  /** Adds raw SVG. */
  raw(s: string): void {
    this.#parts.push(s);
  }

  /** Adds a text at `(x, y)` (the baseline). */
  text(
    x: number,
    y: number,
    s: string,
    o?: { size?: number; anchor?: "start" | "middle" | "end"; bold?: boolean; fill?: string },
  ): void {
    if (o === undefined) o = {};
    const attrs = [`x="${num(x)}"`, `y="${num(y)}"`, `font-size="${o.size ?? 11}"`];
    if (o.anchor !== undefined && o.anchor !== "start") attrs.push(`text-anchor="${o.anchor}"`);
    if (o.bold) attrs.push(`font-weight="bold"`);
    if (o.fill !== undefined) attrs.push(`fill="${o.fill}"`);
    this.#parts.push(`<text ${attrs.join(" ")}>${esc(s)}</text>`);
  }

  /** Adds a rectangle. */
  rect(x: number, y: number, w: number, h: number, fill: string, stroke?: string): void {
    const s = stroke === undefined ? "" : ` stroke="${stroke}" stroke-width="0.5"`;
    this.#parts.push(
      `<rect x="${num(x)}" y="${num(y)}" width="${num(w)}" height="${num(h)}" fill="${fill}"${s}/>`,
    );
  }

  /** Adds a line. */
  line(x1: number, y1: number, x2: number, y2: number, stroke: string, dash?: string): void {
    if (dash === undefined) dash = "";
    const d = dash === "" ? "" : ` stroke-dasharray="${dash}"`;
    this.#parts.push(
      `<line x1="${num(x1)}" y1="${num(y1)}" x2="${num(x2)}" y2="${
        num(y2)
      }" stroke="${stroke}"${d}/>`,
    );
  }

  /** The document, `width` by `height`, on a white background. */
  render(width: number, height: number, title: string): string {
    const w = Math.ceil(width), h = Math.ceil(height);
    return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" ` +
      `viewBox="0 0 ${w} ${h}" font-family="sans-serif">\n<title>${esc(title)}</title>\n` +
      `<rect width="${w}" height="${h}" fill="white"/>\n${this.#parts.join("\n")}\n</svg>\n`;
  }
}

/** Escapes text for SVG. */
export function esc(text: string): string {
  return text.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

function num(x: number): string {
  return Number.isInteger(x) ? String(x) : x.toFixed(2);
}

/** A size in binary units with at most three significant digits: `4 KiB`, `1.5 MiB`. */
export function bytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let u = 0;
  while (Math.abs(n) >= 1024 && u < units.length - 1) {
    n /= 1024;
    u++;
  }
  return `${+n.toPrecision(3)} ${units[u]}`;
}

/** `n` with its thousands separated by commas. */
export function group(n: number): string {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** A tick step for an axis up to `max` with about `ticks` ticks: 1, 2 or 5 times a power of ten, or a power of two for `binary`. */
export function niceStep(max: number, ticks: number, binary?: boolean): number {
  if (binary === undefined) binary = false;
  const raw = max / Math.max(1, ticks);
  if (!(raw > 0)) return 1;
  if (binary) return 2 ** Math.ceil(Math.log2(raw));
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

/**
 * Draws `columns` columns of width `colW` from `(x, y)`, `h` high. Column c
 * holds `amounts[c * k + s]` of class s (s < k), drawn top down in class
 * order in `colors[s]`. Heights are shares of `capacity` when given (the
 * rest of the column stays empty), else of the column's own total. A class
 * present gets at least one pixel.
 */
export function stackedColumns(
  svg: Svg,
  x: number,
  y: number,
  colW: number,
  h: number,
  amounts: Float64Array,
  k: number,
  colors: readonly string[],
  capacity?: number | null,
): void {
  if (capacity === undefined) capacity = null;
  const columns = Math.floor(amounts.length / k);
  const paths: string[][] = colors.map(() => []);
  const heights = new Int32Array(k);
  const prev = new Int32Array(k).fill(-1);
  let runStart = 0;
  const flush = (end: number) => {
    if (end <= runStart) return;
    let top = y;
    for (let s = 0; s < k; s++) {
      const hh = prev[s]!;
      if (hh > 0) {
        paths[s]!.push(
          `M${num(x + runStart * colW)} ${top}h${num((end - runStart) * colW)}v${hh}H${
            num(x + runStart * colW)
          }z`,
        );
      }
      top += Math.max(0, hh);
    }
  };
  for (let c = 0; c < columns; c++) {
    let total = 0;
    for (let s = 0; s < k; s++) total += amounts[c * k + s]!;
    const scale = capacity ?? total;
    heights.fill(0);
    if (total > 0 && scale > 0) {
      let used = 0;
      for (let s = 0; s < k; s++) {
        const a = amounts[c * k + s]!;
        if (a <= 0) continue;
        heights[s] = Math.max(1, Math.round((h * Math.min(a, scale)) / scale));
        used += heights[s]!;
      }
      // Trim the overshoot of rounding from the tallest classes.
      const target = capacity === null ? h : Math.min(h, used);
      while (used > target) {
        let big = 0;
        for (let s = 1; s < k; s++) if (heights[s]! > heights[big]!) big = s;
        if (heights[big]! <= 1) break;
        heights[big]!--;
        used--;
      }
      if (capacity === null && used < h) {
        let big = 0;
        for (let s = 1; s < k; s++) if (amounts[c * k + s]! > amounts[c * k + big]!) big = s;
        heights[big]! += h - used;
      }
    }
    let same = true;
    for (let s = 0; s < k; s++) if (heights[s] !== prev[s]) same = false;
    if (!same) {
      flush(c);
      prev.set(heights);
      runStart = c;
    }
  }
  flush(columns);
  for (let s = 0; s < k; s++) {
    if (paths[s]!.length > 0) svg.raw(`<path fill="${colors[s]}" d="${paths[s]!.join("")}"/>`);
  }
}

/** An arena's segments as a walk gives them: spans, each followed by its segments. */
export interface ArenaPicture {
  /** Arena name. */
  name: string;
  /** `[type, start, size]`, type "span", "alloc" or "free". */
  segs: readonly (readonly [string, number, number])[];
}

/** Colours of allocated and free segments. */
export const SEGMENT_COLORS = ["#c0392b", "#8fcf8a"] as const;

/** Bytes held in the spans of `a`. */
export function heldBytes(a: ArenaPicture): number {
  let n = 0;
  for (const [t, , size] of a.segs) if (t === "span") n += size;
  return n;
}

/**
 * Draws arena `a` at `(x, y)`: a label line, then its spans end to end in
 * address order on a bar where `scale` bytes take `width` pixels, then an
 * axis. Returns the height used.
 */
export function arenaStrip(
  svg: Svg,
  a: ArenaPicture,
  x: number,
  y: number,
  width: number,
  scale: number,
  label?: string,
): number {
  if (label === undefined) label = `arena ${a.name}`;
  interface Span {
    start: number;
    size: number;
    segs: (readonly [string, number, number])[];
  }
  const spans: Span[] = [];
  let allocN = 0, allocB = 0, freeN = 0, freeB = 0, largest = 0;
  for (const s of a.segs) {
    if (s[0] === "span") spans.push({ start: s[1], size: s[2], segs: [] });
    else spans[spans.length - 1]?.segs.push(s);
    if (s[0] === "alloc") (allocN++, allocB += s[2]);
    if (s[0] === "free") (freeN++, freeB += s[2], largest = Math.max(largest, s[2]));
  }
  spans.sort((p, q) => p.start - q.start);
  const held = spans.reduce((n, s) => n + s.size, 0);
  const frag = freeB === 0 ? 0 : 1 - largest / freeB;
  svg.text(x, y + 11, label, { size: 12, bold: true });
  svg.text(
    x + 12 + label.length * 7.6,
    y + 11,
    `${spans.length} span${spans.length === 1 ? "" : "s"}, ${bytes(held)} held: ` +
      `${bytes(allocB)} allocated in ${group(allocN)} segments, ${bytes(freeB)} free in ${
        group(freeN)
      } (largest ${bytes(largest)}), fragmentation ${frag.toFixed(3)}`,
    { size: 11 },
  );
  const barY = y + 22;
  const barH = 16;
  const perPx = scale / width;
  const barW = Math.min(width, Math.max(held > 0 ? 1 : 0, held / perPx));
  const columns = Math.max(1, Math.ceil(barW));
  svg.rect(x, barY, width, barH, "#f4f4f4");
  svg.rect(x, barY, barW, barH, "#e3e3e3", "#999");
  const amounts = new Float64Array(columns * 2);
  let off = 0;
  const ticks: number[] = [];
  for (const span of spans) {
    ticks.push(off / perPx);
    for (const [t, start, size] of span.segs) {
      spread(
        amounts,
        columns,
        t === "alloc" ? 0 : 1,
        (off + start - span.start) / perPx,
        size / perPx,
      );
    }
    off += span.size;
  }
  stackedColumns(svg, x, barY, 1, barH, amounts, 2, SEGMENT_COLORS, 1);
  // Span starts, merged where they are closer than two pixels.
  let last = -Infinity;
  const d: string[] = [];
  for (const t of ticks) {
    if (t - last < 2) continue;
    d.push(`M${num(x + t)} ${barY - 4}v4`);
    last = t;
  }
  if (d.length > 0) svg.raw(`<path stroke="#333" d="${d.join("")}"/>`);
  // Axis: bytes from the first span's start, spans end to end.
  const axisY = barY + barH;
  svg.line(x, axisY, x + width, axisY, "#333");
  const stepB = niceStep(scale, 6, true);
  for (let b = 0; b <= scale * 1.0001; b += stepB) {
    const tx = x + b / perPx;
    svg.line(tx, axisY, tx, axisY + 3, "#333");
    svg.text(tx, axisY + 13, b === 0 ? "0" : bytes(b), {
      size: 9,
      anchor: b === 0 ? "start" : tx > x + width - 30 ? "end" : "middle",
    });
  }
  if (spans.length > 0) {
    const first = spans[0]!, lastSpan = spans[spans.length - 1]!;
    svg.text(
      x + width,
      axisY + 25,
      `addresses 0x${first.start.toString(16)} to 0x${
        (lastSpan.start + lastSpan.size).toString(16)
      }` +
        (spans.length > 1 ? " (gaps between spans left out)" : ""),
      { size: 9, anchor: "end", fill: "#555" },
    );
  }
  return 22 + barH + 30;
}

/** Adds `len` units starting at column position `from` (fractional) to class `cls`. */
function spread(amounts: Float64Array, columns: number, cls: number, from: number, len: number) {
  let pos = from;
  const end = from + len;
  while (pos < end) {
    const c = Math.floor(pos);
    if (c >= columns) break;
    const next = Math.min(end, c + 1);
    amounts[c * 2 + cls]! += next - pos;
    pos = next;
  }
}

/** One line of a {@link plot}. */
export interface PlotSeries {
  /** Legend text. */
  name: string;
  /** Stroke colour. */
  color: string;
  /** Points `[x, y]` in data units. */
  points: readonly (readonly [number, number])[];
  /** Which axis y belongs to: bytes (left) or a fraction in [0, 1] (right). */
  axis: "bytes" | "fraction";
  /** Dash pattern, if any. */
  dash?: string;
}

/** What {@link plot} draws. */
export interface PlotSpec {
  /** Heading. */
  title: string;
  /** Label of the x axis. */
  xLabel: string;
  /** Largest x. */
  xMax: number;
  /** The lines. */
  series: readonly PlotSeries[];
  /** Vertical marks: at x, a label (e.g. where a workload starts). */
  marks?: readonly { x: number; label: string }[];
}

/** Draws a plot in the box `(x, y, w, h)` (axes and labels inside it). */
export function plot(svg: Svg, x: number, y: number, w: number, h: number, p: PlotSpec): void {
  const left = x + 64, right = x + w - 48, top = y + 30, bottom = y + h - 34;
  svg.text(x, y + 12, p.title, { size: 12, bold: true });
  let bMax = 0;
  for (const s of p.series) {
    if (s.axis === "bytes") { for (const [, v] of s.points) bMax = Math.max(bMax, v); }
  }
  const bStep = niceStep(bMax || 1, 4, true);
  const bTop = Math.max(bStep, Math.ceil((bMax || 1) / bStep) * bStep);
  const xMax = Math.max(1, p.xMax);
  const px = (v: number) => left + (v / xMax) * (right - left);
  const pb = (v: number) => bottom - (v / bTop) * (bottom - top);
  const pf = (v: number) => bottom - v * (bottom - top);
  svg.rect(left, top, right - left, bottom - top, "#fbfbfb", "#999");
  const hasBytes = p.series.some((s) => s.axis === "bytes");
  const hasFraction = p.series.some((s) => s.axis === "fraction");
  if (hasBytes) {
    for (let v = 0; v <= bTop; v += bStep) {
      svg.line(left - 3, pb(v), right, pb(v), "#e2e2e2");
      svg.text(left - 5, pb(v) + 3, v === 0 ? "0" : bytes(v), { size: 9, anchor: "end" });
    }
    svg.text(left - 5, top - 9, "bytes", { size: 9, anchor: "end" });
  }
  if (hasFraction) {
    // A fraction alone takes the left axis; beside bytes, the right one.
    const ax = hasBytes ? right : left;
    const sign = hasBytes ? 1 : -1;
    for (const v of [0, 0.25, 0.5, 0.75, 1]) {
      if (!hasBytes) svg.line(left, pf(v), right, pf(v), "#e2e2e2");
      svg.line(ax, pf(v), ax + 3 * sign, pf(v), "#333");
      svg.text(ax + 5 * sign, pf(v) + 3, v.toFixed(2), {
        size: 9,
        anchor: hasBytes ? "start" : "end",
      });
    }
    svg.text(ax + 5 * sign, top - 9, "fraction", { size: 9, anchor: hasBytes ? "start" : "end" });
  }
  const xStep = niceStep(xMax, 6);
  for (let v = 0; v <= xMax; v += xStep) {
    svg.line(px(v), bottom, px(v), bottom + 3, "#333");
    svg.text(px(v), bottom + 13, group(v), { size: 9, anchor: "middle" });
  }
  svg.text((left + right) / 2, bottom + 27, p.xLabel, { size: 10, anchor: "middle" });
  // Marks, their labels stepped down where they would overlap.
  let lastX = -Infinity, row = 0;
  for (const m of p.marks ?? []) {
    const mx = px(m.x);
    row = mx - lastX < 70 ? row + 1 : 0;
    lastX = mx;
    svg.line(mx, top, mx, bottom, "#777", "3,3");
    svg.text(mx + 3, top + 10 + 11 * (row % 4), m.label, { size: 9, fill: "#555" });
  }
  for (const s of p.series) {
    if (s.points.length === 0) continue;
    const py = s.axis === "bytes" ? pb : pf;
    const pts = s.points.map(([a, b]) => `${num(px(a))},${num(py(b))}`).join(" ");
    const dash = s.dash === undefined ? "" : ` stroke-dasharray="${s.dash}"`;
    svg.raw(
      `<polyline fill="none" stroke="${s.color}" stroke-width="1.5"${dash} points="${pts}"/>`,
    );
  }
  // Legend on the title's line, after it.
  let lx = Math.max(left, x + p.title.length * 7 + 24);
  for (const s of p.series) {
    const dash = s.dash === undefined ? "" : ` stroke-dasharray="${s.dash}"`;
    svg.raw(
      `<line x1="${num(lx)}" y1="${y + 8}" x2="${num(lx + 18)}" y2="${
        y + 8
      }" stroke="${s.color}" stroke-width="2"${dash}/>`,
    );
    const label = s.name;
    svg.text(lx + 22, y + 11, label, { size: 10 });
    lx += 34 + label.length * 5.6;
  }
}
