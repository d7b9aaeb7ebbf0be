/**
 * Checks an SVG picture as the tests of the pictures need: well-formed XML
 * (every tag closed in order, attributes quoted, text escaped), everything
 * drawn inside the viewBox (rectangles, lines, paths, polylines, and texts
 * by an estimate of their width), a title, and the labels expected.
 *
 * @module
 */

import assert from "node:assert/strict";

const NAME = /^[a-zA-Z][\w:-]*$/;

/** Tags in document order: `[name, attributes, kind]`, and the text between them. */
function tokens(
  svg: string,
): { tags: [string, Record<string, string>, string][]; texts: string[] } {
  const tags: [string, Record<string, string>, string][] = [];
  const texts: string[] = [];
  let i = 0;
  while (i < svg.length) {
    const lt = svg.indexOf("<", i);
    const text = svg.slice(i, lt < 0 ? svg.length : lt);
    assert.ok(!/&(?!#\d+;|amp;|lt;|gt;|quot;)/.test(text), `unescaped & in ${text}`);
    assert.ok(!text.includes(">"), `stray > in ${JSON.stringify(text.slice(0, 40))}`);
    texts.push(text);
    if (lt < 0) break;
    const gt = svg.indexOf(">", lt);
    assert.ok(gt > lt, "a tag is not closed");
    const body = svg.slice(lt + 1, gt);
    assert.ok(!body.includes("<"), `< inside a tag: ${body.slice(0, 60)}`);
    const kind = body.startsWith("/") ? "close" : body.endsWith("/") ? "empty" : "open";
    const inner = body.replace(/^\//, "").replace(/\/$/, "");
    const m = /^(\S+)\s*(.*)$/s.exec(inner);
    assert.ok(m !== null && NAME.test(m[1]!), `bad tag <${body.slice(0, 40)}>`);
    const attrs: Record<string, string> = {};
    let rest = m[2]!.trim();
    while (rest !== "") {
      const a = /^([a-zA-Z][\w:-]*)="([^"<]*)"\s*/.exec(rest);
      assert.ok(a !== null, `bad attribute in <${m[1]} ${rest.slice(0, 60)}`);
      assert.ok(!(a[1]! in attrs), `attribute ${a[1]} twice`);
      attrs[a[1]!] = a[2]!;
      rest = rest.slice(a[0].length);
    }
    tags.push([m[1]!, attrs, kind]);
    i = gt + 1;
  }
  return { tags, texts };
}

/**
 * Asserts that `svg` is well-formed, stays within its viewBox, has a title
 * and holds every string of `labels` in its texts.
 */
export function checkSvg(svg: string, labels: readonly string[]): void {
  const { tags, texts } = tokens(svg);
  const stack: string[] = [];
  for (const [name, , kind] of tags) {
    if (kind === "open") stack.push(name);
    if (kind === "close") assert.equal(stack.pop(), name, `</${name}> closes the wrong tag`);
  }
  assert.deepEqual(stack, [], "tags left open");
  assert.equal(tags[0]?.[0], "svg", "the document is one <svg> element");
  assert.equal(tags[tags.length - 1]?.[0], "svg");
  const vb = tags[0]![1].viewBox?.split(" ").map(Number);
  assert.ok(vb !== undefined && vb.length === 4 && vb.every(Number.isFinite), "a viewBox");
  const [, , W, H] = vb as [number, number, number, number];
  const within = (x: number, y: number, what: string) => {
    assert.ok(Number.isFinite(x) && Number.isFinite(y), `${what}: not a number`);
    assert.ok(x >= -0.5 && x <= W + 0.5 && y >= -0.5 && y <= H + 0.5, `${what} at ${x},${y}`);
  };
  let inText: Record<string, string> | null = null;
  const allText: string[] = [];
  let title = false;
  for (let t = 0; t < tags.length; t++) {
    const [name, a, kind] = tags[t]!;
    const n = (k: string) => Number(a[k] ?? 0);
    if (name === "title" && kind === "open") title = texts[t + 1]!.trim() !== "";
    if (name === "rect" && a.width !== "100%") {
      within(n("x"), n("y"), "rect");
      within(n("x") + n("width"), n("y") + n("height"), "rect end");
    }
    if (name === "line") {
      within(n("x1"), n("y1"), "line");
      within(n("x2"), n("y2"), "line end");
    }
    if (name === "polyline") {
      for (const p of a.points!.split(" ")) {
        const [x, y] = p.split(",").map(Number) as [number, number];
        within(x, y, "polyline point");
      }
    }
    if (name === "path") {
      // The pictures' paths use absolute M, H and relative h, v only.
      let x = 0, y = 0;
      for (const [, c, v] of a.d!.matchAll(/([MHhvz])([^MHhvz]*)/g)) {
        const nums = v!.trim().split(/[\s,]+/).filter((s) => s !== "").map(Number);
        if (c === "M") [x, y] = nums as [number, number];
        if (c === "H") x = nums[0]!;
        if (c === "h") x += nums[0]!;
        if (c === "v") y += nums[0]!;
        within(x, y, `path ${c}`);
      }
    }
    if (name === "text" && kind === "open") inText = a;
    if (name === "text" && kind === "close" && inText !== null) {
      const s = texts[t]!.replace(/&#\d+;/g, "x");
      allText.push(texts[t]!.replace(/&#(\d+);/g, (_, d) => String.fromCharCode(Number(d))));
      const size = Number(inText["font-size"] ?? 11);
      // A generous estimate of a sans-serif text's width.
      const w = s.length * size * 0.55;
      const x = Number(inText.x), y = Number(inText.y);
      const anchor = inText["text-anchor"] ?? "start";
      const x0 = anchor === "start" ? x : anchor === "middle" ? x - w / 2 : x - w;
      within(x0, y - size * 0.8, `text ${JSON.stringify(s.slice(0, 40))}`);
      within(x0 + w, y, `end of text ${JSON.stringify(s.slice(0, 40))}`);
      inText = null;
    }
  }
  assert.ok(title, "a <title>");
  const joined = allText.join("\n");
  for (const l of labels) assert.ok(joined.includes(l), `label ${JSON.stringify(l)} drawn`);
}
