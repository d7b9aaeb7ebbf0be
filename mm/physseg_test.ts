import { test } from "node:test";
import assert from "node:assert/strict";
import { KernelError } from "./errors.ts";
import { Mulberry32 } from "./random.ts";
import { PG_FREE, PhysMem, popcount32, u32, VM_FREELIST_FIRST16 } from "./physseg.ts";

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof KernelError, `not a KernelError: ${e}`);
    return e.code;
  }
  assert.fail("no error thrown");
}

/** Everything observable of a PhysMem, to compare before and after a refusal. */
function snapshot(pm: PhysMem): string {
  const segs = [];
  for (let s = 0; s < pm.nsegs; s++) segs.push(pm.segment(s));
  return JSON.stringify({
    segs,
    nids: pm.nids,
    flags: Array.from(pm.flags.subarray(0, pm.nids)),
    map: Array.from(pm.freeMap.subarray(0, (pm.nids + 31) >> 5)),
  });
}

test("physseg: segments stay sorted by start whatever the load order", () => {
  const pm = new PhysMem();
  pm.plug(500, 600, 500, 600, 0);
  pm.plug(0, 100, 10, 90, 5);
  pm.plug(200, 300, 200, 200, 3);
  assert.deepEqual(
    [0, 1, 2].map((s) => pm.segment(s).start),
    [0, 200, 500],
  );
  assert.equal(pm.segment(0).freeList, VM_FREELIST_FIRST16);
  assert.equal(pm.find(0), 0);
  assert.equal(pm.find(99), 0);
  assert.equal(pm.find(100), -1);
  assert.equal(pm.find(250), 1);
  assert.equal(pm.find(599), 2);
  assert.equal(pm.find(600), -1);
  pm.check();
});

test("physseg: only the avail range starts free", () => {
  const pm = new PhysMem();
  pm.plug(0, 100, 10, 90, 0);
  for (let pfn = 0; pfn < 100; pfn++) {
    const id = pm.idOf(pfn);
    assert.equal((pm.flags[id]! & PG_FREE) !== 0, pfn >= 10 && pfn < 90, `pfn ${pfn}`);
  }
  pm.check();
});

test("physseg: ids map back to exact frames, also far above 2^32", () => {
  const pm = new PhysMem();
  const far = 2 ** 40 + 7;
  pm.plug(far, far + 100, far, far + 100, 0);
  pm.plug(3, 40, 3, 40, 0);
  for (const pfn of [far, far + 1, far + 99, 3, 39]) {
    const id = pm.idOf(pfn);
    assert.ok(id >= 32 && id < pm.nids);
    assert.equal(id % 32, pfn % 32, "ids keep the frame's position in a bitmap word");
    assert.equal(pm.pfnOf(id), pfn);
  }
  assert.equal(pm.idOf(far + 100), -1);
  // The largest page frame a 2^53-byte space allows.
  const top = pm.maxFrame;
  pm.plug(top - 10, top, top - 10, top, 0);
  assert.equal(pm.pfnOf(pm.idOf(top - 1)), top - 1);
  pm.check();
});

test("physseg: bad segments are refused, naming the value, and change nothing", () => {
  const pm = new PhysMem();
  pm.plug(100, 200, 100, 200, 0);
  const before = snapshot(pm);
  const bad: [number, number, number, number, number][] = [
    [10, 10, 10, 10, 0], // empty
    [20, 10, 10, 10, 0], // reversed
    [0, 50, 60, 60, 0], // avail beyond end
    [0, 50, 40, 30, 0], // avail reversed
    [0, 50, 0, 50, 6], // unknown free list
    [0, 50, 0, 50, -1],
    [150, 250, 150, 250, 0], // overlap
    [50, 101, 50, 101, 0], // overlap at the start
    [0, 300, 0, 300, 0], // covers it
    [1.5, 50, 2, 50, 0], // not an integer
    [NaN, 50, 0, 50, 0],
    [-1, 50, 0, 50, 0],
    [0, 2 ** 53, 0, 10, 0], // past 2^53 bytes
  ];
  for (const args of bad) {
    const c = code(() => pm.plug(...args));
    assert.equal(c, "EINVAL", JSON.stringify(args));
    assert.equal(snapshot(pm), before, `refused ${JSON.stringify(args)} changed the state`);
  }
  assert.match(String(catchMessage(() => pm.plug(150, 250, 150, 250, 0))), /overlap/);
  assert.match(String(catchMessage(() => pm.plug(0, 50, 0, 50, 9))), /freelist.*9/);
  pm.check();
});

function catchMessage(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return (e as Error).message;
  }
  return "";
}

test("physseg: adjacent segments never share a bitmap word", () => {
  const pm = new PhysMem();
  pm.plug(0, 64, 0, 64, 0);
  pm.plug(64, 128, 64, 128, 3);
  const lastOfFirst = pm.idOf(63);
  const firstOfSecond = pm.idOf(64);
  assert.ok(firstOfSecond > lastOfFirst + 1, "a gap separates the id ranges");
  assert.notEqual(lastOfFirst >> 5, firstOfSecond >> 5);
  pm.check();
});

/** Naive answers for the bitmap searches. */
function naiveFree(pm: PhysMem, id: number): boolean {
  return (pm.freeMap[id >> 5]! >>> (id & 31) & 1) === 1;
}

test("physseg: word-wise searches agree with a page-by-page look", () => {
  const pm = new PhysMem();
  pm.plug(0, 5000, 0, 5000, 0);
  const r = new Mulberry32(7);
  const base = pm.idOf(0);
  // Random busy pages with long free and busy stretches.
  for (let p = 0; p < 5000;) {
    const len = 1 + r.below(r.below(3) === 0 ? 200 : 6);
    const busy = r.below(2) === 0;
    for (let q = p; q < Math.min(p + len, 5000); q++) {
      if (busy) {
        pm.flags[base + q] = 0;
        pm.markBusy(base + q);
      }
    }
    p += len;
  }
  pm.check();
  for (let i = 0; i < 3000; i++) {
    const a = base + r.below(5000);
    const b = a + r.below(base + 5000 - a + 1);
    let first = -1, firstBusy = -1, lastBusy = -1, count = 0;
    for (let id = a; id < b; id++) {
      if (naiveFree(pm, id)) {
        count++;
        if (first < 0) first = id;
      } else {
        if (firstBusy < 0) firstBusy = id;
        lastBusy = id;
      }
    }
    assert.equal(pm.findFree(a, b), first);
    assert.equal(pm.findBusy(a, b), firstBusy);
    assert.equal(pm.lastBusy(a, b), lastBusy);
    assert.equal(pm.countFree(a, b), count);
    const wa = a >> 5;
    const wb = wa + r.below(40);
    let full = -1;
    for (let w = wa; w < wb && w < pm.freeMap.length; w++) {
      if (pm.freeMap[w] === -1) {
        full = w;
        break;
      }
    }
    assert.equal(pm.findFullWord(wa, wb), full, `findFullWord(${wa}, ${wb})`);
  }
});

test("physseg: the full-word summaries follow page frees and takes", () => {
  const pm = new PhysMem();
  pm.plug(0, 70000, 0, 70000, 0);
  const base = pm.idOf(0);
  const r = new Mulberry32(3);
  // Make every word busy, then free a few whole words far apart.
  for (let w = base >> 5; w <= (base + 69999) >> 5; w++) {
    const id = w * 32 + 5;
    if (id >= base && id < base + 70000) {
      pm.flags[id] = 0;
      pm.markBusy(id);
    }
  }
  assert.equal(pm.findFullWord(base >> 5, (base + 70000) >> 5), -1);
  const target = ((base + 60000) >> 5) + 1;
  pm.flags[target * 32 + 5] = PG_FREE;
  pm.markFree(target * 32 + 5);
  assert.equal(pm.findFullWord(base >> 5, (base + 70000) >> 5), target);
  assert.equal(pm.findFullWord(target + 1, (base + 70000) >> 5), -1);
  pm.check();
  for (let i = 0; i < 200; i++) {
    const id = base + r.below(70000);
    if ((pm.flags[id]! & PG_FREE) !== 0) {
      pm.flags[id] = 0;
      pm.markBusy(id);
    } else {
      pm.flags[id] = PG_FREE;
      pm.markFree(id);
    }
  }
  pm.check();
});

test("physseg: check() notices a bitmap that disagrees with the flags", () => {
  const pm = new PhysMem();
  pm.plug(0, 100, 0, 100, 0);
  pm.check();
  pm.flags[pm.idOf(40)] = 0;
  assert.equal(code(() => pm.check()), "CORRUPT");
});

test("physseg: helpers popcount32 and u32", () => {
  assert.equal(popcount32(0), 0);
  assert.equal(popcount32(-1), 32);
  assert.equal(popcount32(0x80000001), 2);
  assert.equal(u32(2 ** 44), 0);
  assert.equal(u32(2 ** 44 + 16), 16);
  assert.equal(u32(-1), 2 ** 32 - 1);
});

test("physseg: a 64 GiB page array is built in well under a second", () => {
  const pm = new PhysMem();
  const t = performance.now();
  pm.plug(0, 160, 0, 160, 5);
  pm.plug(256, 4096, 256, 4096, 5);
  pm.plug(4096, 786432, 4096, 786432, 3);
  pm.plug(1048576, 1048576 + 15990784, 1048576, 1048576 + 15990784, 0);
  const ms = performance.now() - t;
  assert.ok(ms < 1000, `took ${ms} ms`);
  assert.equal(pm.countFree(pm.idOf(1048576), pm.idOf(1048576) + 15990784), 15990784);
  assert.equal(pm.findFullWord(0, pm.nids >> 5) >= 0, true);
});

test("physseg: the page array stays within 16 bytes a loaded frame, whatever the load order", () => {
  const pm = new PhysMem();
  let frames = 0;
  const load = (start: number, n: number) => {
    pm.plug(start, start + n, start, start + n, 0);
    frames += n;
  };
  // A big segment, then small ones: each small load makes the arrays grow.
  load(2 ** 30, 1 << 20);
  load(2 ** 36, 64);
  for (let i = 0; i < 4; i++) load(i * 100_000, 3000 + i * 997);
  const bytes = pm.flags.byteLength + pm.owner.byteLength + pm.freeListOf.byteLength +
    pm.nextRel.byteLength + pm.prevRel.byteLength + pm.freeMap.byteLength +
    pm.fullMap.byteLength + pm.fullSum.byteLength;
  assert.ok(bytes / frames <= 16, `${(bytes / frames).toFixed(2)} bytes a frame`);
  pm.check();
});
