import { test } from "node:test";
import assert from "node:assert/strict";
import { arenaStrip, bytes, niceStep, plot, stackedColumns, Svg } from "./picture.ts";
import { arenaFigures, FigureTally, fragmentation } from "./fragmentation.ts";
import { VM_NOSLEEP, Vmem } from "./vmem.ts";
import { checkSvg } from "./svg_check_test_util.ts";

/** The rectangles of each `<path fill=...>` as [x, y, width, height]. */
function rects(svg: string): Map<string, number[][]> {
  const out = new Map<string, number[][]>();
  for (const [, fill, d] of svg.matchAll(/<path fill="([^"]+)" d="([^"]+)"/g)) {
    const list = out.get(fill!) ?? [];
    for (const [, x, y, w, h] of d!.matchAll(/M([\d.]+) ([\d.]+)h([\d.]+)v([\d.]+)H[\d.]+z/g)) {
      list.push([Number(x), Number(y), Number(w), Number(h)]);
    }
    out.set(fill!, list);
  }
  return out;
}

test("picture: a class present in a column gets a pixel; equal columns are one rectangle", () => {
  const svg = new Svg();
  // 100 columns of 999 "b" and 1 "a", then 100 of only "b".
  const amounts = new Float64Array(200 * 2);
  for (let c = 0; c < 200; c++) {
    amounts[2 * c] = c < 100 ? 1 : 0;
    amounts[2 * c + 1] = c < 100 ? 999 : 1000;
  }
  stackedColumns(svg, 10, 20, 1, 16, amounts, 2, ["#a", "#b"]);
  const r = rects(svg.render(300, 60, "t"));
  assert.deepEqual(r.get("#a"), [[10, 20, 100, 1]]);
  assert.deepEqual(r.get("#b"), [[10, 21, 100, 15], [110, 20, 100, 16]]);
  // Against a capacity, a half-full column is half high.
  const half = new Svg();
  stackedColumns(half, 0, 0, 2, 16, new Float64Array([4, 4, 0, 8]), 2, ["#a", "#b"], 16);
  assert.deepEqual(rects(half.render(10, 20, "t")).get("#a"), [[0, 0, 2, 4]]);
});

test("picture: arenas are drawn to one scale, every span counted and ticked", () => {
  const small = { name: "s", segs: [["span", 0x1000, 4096], ["alloc", 0x1000, 4096]] as const };
  const big = {
    name: "b",
    segs: [
      ["span", 0x100000, 4096],
      ["free", 0x100000, 4096],
      ["span", 0x10000, 53248],
      ["alloc", 0x10000, 100],
      ["free", 0x11000, 49152],
    ] as const,
  };
  const svg = new Svg();
  const h = arenaStrip(svg, small, 16, 0, 1024, 57344);
  arenaStrip(svg, big, 16, h, 1024, 57344);
  const text = svg.render(1056, 2 * h + 10, "arenas");
  checkSvg(text, [
    "1 span, 4 KiB held: 4 KiB allocated in 1 segments",
    "2 spans, 56 KiB held: 100 B allocated in 1 segments, 52 KiB free in 2 (largest 48 KiB), " +
    "fragmentation 0.077",
    "addresses 0x10000 to 0x101000 (gaps between spans left out)",
  ]);
  // The held bars: 4 KiB is a 14th of 56 KiB.
  const held = [
    ...text.matchAll(/<rect x="16" y="[\d.]+" width="([\d.]+)" height="16" fill="#e3e3e3"/g),
  ]
    .map((m) => Number(m[1]));
  assert.deepEqual(held, [+(1024 / 14).toFixed(2), 1024]);
  // Spans are ticked in address order: at 0 and at 52 KiB into the bar.
  const ticks = [...text.matchAll(/<path stroke="#333" d="([^"]+)"/g)].map((m) => m[1]);
  assert.equal(
    ticks[1],
    `M16 ${h + 18}vM${(16 + 1024 * 13 / 14).toFixed(2)} ${h + 18}v4`.replace("vM", "v4M"),
  );
});

test("picture: plots stay inside their box and label their axes", () => {
  const svg = new Svg();
  plot(svg, 0, 0, 600, 200, {
    title: "over time",
    xLabel: "operations",
    xMax: 1000,
    marks: [{ x: 0, label: "heap" }, { x: 10, label: "ids" }, { x: 500, label: "dma" }],
    series: [
      { name: "in use", color: "#f00", axis: "bytes", points: [[0, 0], [500, 3 << 20], [1000, 1]] },
      { name: "frag", color: "#00f", axis: "fraction", points: [[0, 0], [1000, 1]] },
    ],
  });
  checkSvg(svg.render(600, 200, "p"), [
    "over time",
    "operations",
    "in use",
    "frag",
    "3 MiB",
    "1.00",
  ]);
});

test("picture: sizes and steps read as a person would write them", () => {
  assert.equal(bytes(0), "0 B");
  assert.equal(bytes(4096), "4 KiB");
  assert.equal(bytes(1.5 * 2 ** 20), "1.5 MiB");
  assert.equal(bytes(2 ** 40 * 3), "3 TiB");
  assert.equal(niceStep(1000, 4), 500);
  assert.equal(niceStep(3 << 20, 4, true), 1 << 20);
});

test("fragmentation: 1 - largest free / free bytes, 0 with nothing free, from a walk", () => {
  assert.equal(fragmentation(0, 0), 0);
  assert.equal(fragmentation(30, 40), 0.25);
  const t = new FigureTally();
  for (const [type, size] of [["span", 100], ["alloc", 10], ["free", 30], ["free", 10], ["x", 5]]) {
    t.add(type as string, size as number);
  }
  assert.deepEqual(t.figures("t"), {
    name: "t",
    inUse: 10,
    footprint: 100,
    spans: 1,
    freeBytes: 40,
    freeSegments: 2,
    largestFree: 30,
    fragmentation: 0.25,
  });
  const vmp = Vmem.create("f", 0x1000, 0x10000, 0x1000);
  const a = vmp.alloc(0x1000, VM_NOSLEEP);
  vmp.alloc(0x1000, VM_NOSLEEP);
  vmp.free(a, 0x1000);
  const f = arenaFigures(vmp);
  assert.equal(f.footprint, 0x10000);
  assert.equal(f.inUse, 0x1000);
  assert.equal(f.freeSegments, 2);
  assert.equal(f.largestFree, 0xe000);
  assert.equal(f.fragmentation, 1 - 14 / 15);
});

test("picture: the checker of the tests refuses what a broken picture would be", () => {
  const ok = (body: string, w = 100) =>
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="50" viewBox="0 0 ${w} 50">` +
    `<title>t</title>${body}</svg>`;
  checkSvg(
    ok(`<rect x="0" y="0" width="100" height="50" fill="#fff"/><text x="2" y="20">hi</text>`),
    [
      "hi",
    ],
  );
  for (
    const [svg, why] of [
      [ok(`<g><rect x="0" y="0" width="1" height="1"/>`), /closes the wrong tag|left open/],
      [ok(`<rect x="90" y="0" width="20" height="5"/>`), /rect end/],
      [ok(`<text x="90" y="20">far too long a label</text>`), /end of text/],
      [ok(`<path d="M10 10h200z"/>`), /path h/],
      [ok(`<text x="2" y="20">a & b</text>`), /unescaped &/],
      [ok(`<rect x=0 y="0"/>`), /bad attribute/],
      [ok(`<text x="2" y="20">other</text>`), /label "hi" drawn/],
      [ok("").replace("<title>t</title>", ""), /a <title>/],
    ] as const
  ) {
    assert.throws(() => checkSvg(svg, ["hi"]), why, svg);
  }
});
