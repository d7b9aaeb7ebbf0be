import { test } from "node:test";
import assert from "node:assert/strict";
import { Mulberry32 } from "./random.ts";
import {
  CHUNK_PAGES,
  chunkOf,
  PG_PGLIST,
  PhysMem,
  popcount32,
  TOUCHED,
  u32,
  VM_FREELIST_FIRST16,
} from "./physseg.ts";
import { refusal } from "./_test_util.ts";

/** Everything observable of a PhysMem, to compare before and after a refusal. */
function snapshot(pm: PhysMem): string {
  const segs = [];
  for (let s = 0; s < pm.nsegs; s++) segs.push(pm.segment(s));
  return JSON.stringify({
    segs,
    nids: pm.nids,
    nchunks: pm.nchunks,
    states: Array.from(pm.chunkState.subarray(0, pm.nchunks)),
    free: pm.freeRuns(),
    map: Array.from(pm.busyMap.subarray(0, Math.ceil(pm.nids / 32))),
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
  pm.check(true);
});

test("physseg: only the avail range starts free", () => {
  const pm = new PhysMem();
  pm.plug(0, 100, 10, 90, 0);
  for (let pfn = 0; pfn < 100; pfn++) {
    assert.equal(pm.isFreeId(pm.idOf(pfn)), pfn >= 10 && pfn < 90, `pfn ${pfn}`);
  }
  assert.deepEqual(pm.freeRuns(), [[10, 80]]);
  pm.check(true);
});

test("physseg: ids map back to exact frames, also far above 2^32", () => {
  const pm = new PhysMem();
  const far = 2 ** 40 + 7;
  pm.plug(far, far + 100, far, far + 100, 0);
  pm.plug(3, 40, 3, 40, 0);
  for (const pfn of [far, far + 1, far + 99, 3, 39]) {
    const id = pm.idOf(pfn);
    assert.ok(id >= CHUNK_PAGES && id < pm.nids, "chunk 0 holds no frames");
    assert.equal(id % 32, pfn % 32, "ids keep the frame's position in a bitmap word");
    assert.equal(pm.pfnOf(id), pfn);
    assert.equal(pm.segmentOfId(id), pm.find(pfn));
  }
  assert.equal(pm.idOf(far + 100), -1);
  // The largest page frame a 2^53-byte space allows.
  const top = pm.maxFrame;
  pm.plug(top - 10, top, top - 10, top, 0);
  assert.equal(pm.pfnOf(pm.idOf(top - 1)), top - 1);
  pm.check(true);
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
    const c = refusal(() => pm.plug(...args));
    assert.equal(c, "EINVAL", JSON.stringify(args));
    assert.equal(snapshot(pm), before, `refused ${JSON.stringify(args)} changed the state`);
  }
  assert.match(String(catchMessage(() => pm.plug(150, 250, 150, 250, 0))), /overlap/);
  assert.match(String(catchMessage(() => pm.plug(0, 50, 0, 50, 9))), /freelist.*9/);
  // More ids than the page array can number.
  assert.equal(refusal(() => pm.plug(2 ** 40, 2 ** 40 + 2 ** 36, 2 ** 40, 2 ** 40, 0)), "ENOMEM");
  assert.equal(refusal(() => pm.reserve(2 ** 36)), "ENOMEM");
  assert.equal(snapshot(pm), before);
  assert.equal(refusal(() => new PhysMem(4096, "smallest" as "bsearch")), "EINVAL");
  pm.check(true);
});

function catchMessage(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return (e as Error).message;
  }
  return "";
}

test("physseg: adjacent segments never share a chunk, and their ids are never adjacent", () => {
  const pm = new PhysMem();
  pm.plug(0, 64, 0, 64, 0);
  pm.plug(64, 128, 64, 128, 3);
  const lastOfFirst = pm.idOf(63);
  const firstOfSecond = pm.idOf(64);
  assert.ok(firstOfSecond > lastOfFirst + 1, "a gap separates the id ranges");
  assert.notEqual(chunkOf(lastOfFirst), chunkOf(firstOfSecond));
  assert.equal(pm.freeListOf(lastOfFirst), 0);
  assert.equal(pm.freeListOf(firstOfSecond), 3);
  assert.deepEqual(pm.freeRuns(), [[0, 128]], "free runs of adjacent segments merge");
  pm.check(true);
});

test("physseg: a segment's frames outside its avail range start busy, across chunks", () => {
  const pm = new PhysMem();
  const n = 3 * CHUNK_PAGES + 1000;
  pm.plug(1000, 1000 + n, 1000 + CHUNK_PAGES + 5, 1000 + 2 * CHUNK_PAGES + 7, 0);
  assert.deepEqual(pm.freeRuns(), [[1000 + CHUNK_PAGES + 5, CHUNK_PAGES + 2]]);
  const base = pm.idOf(1000);
  assert.equal(pm.countFree(base, base + n), CHUNK_PAGES + 2);
  // Blocks holding busy frames or ids that are no frames are dirty; no
  // chunk has per-page arrays of its own yet.
  for (let c = 1; c < pm.nchunks; c++) {
    assert.equal(pm.chunkState[c]! & TOUCHED, 0, `chunk ${c}`);
  }
  assert.equal(pm.chunkDirty[chunkOf(pm.idOf(1000 + CHUNK_PAGES + 5))], 1, "up to the avail start");
  assert.equal(pm.chunkDirty[chunkOf(pm.idOf(1000 + 2 * CHUNK_PAGES + 100))] !== 0, true);
  pm.check(true);
});

/** Naive answers for the bitmap searches. */
function naiveFree(pm: PhysMem, id: number): boolean {
  return (pm.busyMap[id >> 5]! >>> (id & 31) & 1) === 0;
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
    for (let q = p; q < Math.min(p + len, 5000); q++) if (busy) pm.markBusy(base + q);
    p += len;
  }
  pm.check(true);
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
    for (let w = wa; w < wb && w < pm.busyMap.length; w++) {
      if (pm.busyMap[w] === 0) {
        full = w;
        break;
      }
    }
    assert.equal(pm.findFullWord(wa, wb), full, `findFullWord(${wa}, ${wb})`);
  }
});

test("physseg: the summaries follow page frees and takes", () => {
  const pm = new PhysMem();
  pm.plug(0, 70000, 0, 70000, 0);
  const base = pm.idOf(0);
  const r = new Mulberry32(3);
  // Make every word busy, then free a few whole words far apart.
  for (let w = base >> 5; w <= (base + 69999) >> 5; w++) {
    const id = w * 32 + 5;
    if (id >= base && id < base + 70000) pm.markBusy(id);
  }
  assert.equal(pm.findFullWord(base >> 5, (base + 70000) >> 5), -1);
  const target = ((base + 60000) >> 5) + 1;
  pm.markFree(target * 32 + 5);
  assert.equal(pm.findFullWord(base >> 5, (base + 70000) >> 5), target);
  assert.equal(pm.findFullWord(target + 1, (base + 70000) >> 5), -1);
  pm.check(true);
  for (let i = 0; i < 2000; i++) {
    const id = base + r.below(70000);
    if (pm.isFreeId(id)) pm.markBusy(id);
    else pm.markFree(id);
  }
  pm.check(true);
  pm.markBusyRange(base + 10, base + 69990);
  assert.equal(pm.countFree(base + 10, base + 69990), 0);
  assert.equal(pm.findFullWord(base >> 5, (base + 70000) >> 5), -1);
  pm.markFreeRange(base + 10, base + 69990);
  assert.equal(pm.countFree(base + 10, base + 69990), 69980);
  assert.equal(pm.findFullWord((base + 64) >> 5, (base + 69900) >> 5), (base + 64) >> 5);
  pm.check(true);
});

test("physseg: per-page values read zero until written; writing one sets up only its chunk", () => {
  const pm = new PhysMem();
  const n = 5 * CHUNK_PAGES;
  pm.plug(0, n, 0, n, 0);
  const id = pm.idOf(2 * CHUNK_PAGES + 17);
  assert.equal(pm.flagsOf(id), 0);
  assert.equal(pm.ownerOf(id), 0);
  assert.equal(pm.nextOf(id), id - 1, "zero links chain the pages downward");
  assert.equal(pm.prevOf(id), id + 1);
  const touched = () => {
    let k = 0;
    for (let c = 0; c < pm.nchunks; c++) if (pm.chunkState[c]! & TOUCHED) k++;
    return k;
  };
  const before = touched();
  pm.setFlags(id, 0);
  pm.setOwner(id, 0);
  pm.setNext(id, id - 1);
  assert.equal(touched(), before, "writing what a page already reads writes nothing");
  pm.markBusy(id);
  pm.setFlags(id, PG_PGLIST);
  pm.setOwner(id, 9);
  assert.equal(touched(), before + 1);
  assert.equal(pm.flagsOf(id), PG_PGLIST);
  assert.equal(pm.ownerOf(id), 9);
  assert.equal(pm.nextOf(id + 1), id, "the rest of the chunk still reads as fresh");
  pm.check(true);
});

test("physseg: check() notices broken summaries, stray writes and a written shared array", () => {
  const fresh = () => {
    const pm = new PhysMem();
    pm.plug(0, 3 * CHUNK_PAGES, 0, 3 * CHUNK_PAGES, 0);
    pm.markBusy(pm.idOf(40));
    pm.setFlags(pm.idOf(40), PG_PGLIST);
    pm.check(true);
    return pm;
  };
  let pm = fresh();
  pm.partMap[pm.idOf(40) >>> 10] = 0;
  assert.equal(refusal(() => pm.check()), "CORRUPT", "a summary bit");
  pm = fresh();
  pm.flags[chunkOf(pm.idOf(41))]![pm.idOf(41) & (CHUNK_PAGES - 1)] = PG_PGLIST;
  assert.equal(refusal(() => pm.check()), "CORRUPT", "flags on a free page");
  // A busy bit in a chunk nothing wrote: only the exhaustive check reads it.
  pm = fresh();
  const mid = pm.idOf(CHUNK_PAGES + 100);
  assert.equal(pm.chunkDirty[chunkOf(mid)], 0);
  pm.busyMap[mid >>> 5] = 1;
  pm.check();
  assert.equal(refusal(() => pm.check(true)), "CORRUPT");
  pm = fresh();
  pm.zero64[7] = 1;
  pm.check();
  assert.equal(refusal(() => pm.check(true)), "CORRUPT");
  pm = fresh();
  pm.chunkLoad[chunkOf(mid)] = -1;
  assert.equal(refusal(() => pm.check()), "CORRUPT", "a chunk that forgot its segment");
});

test("physseg: helpers popcount32 and u32", () => {
  assert.equal(popcount32(0), 0);
  assert.equal(popcount32(-1), 32);
  assert.equal(popcount32(0x80000001), 2);
  assert.equal(u32(2 ** 44), 0);
  assert.equal(u32(2 ** 44 + 16), 16);
  assert.equal(u32(-1), 2 ** 32 - 1);
});

test("physseg: loading 16 TiB of frames sets up none of their pages", () => {
  const pm = new PhysMem();
  const pages = 2 ** 32;
  pm.plug(0, 160, 0, 160, 5);
  pm.plug(2 ** 20, 2 ** 20 + pages, 2 ** 20, 2 ** 20 + pages, 0);
  for (let c = 0; c < pm.nchunks; c++) {
    assert.equal(pm.chunkState[c]! & TOUCHED, c === 0 ? TOUCHED : 0, `chunk ${c}`);
  }
  assert.equal(pm.countFree(pm.idOf(2 ** 20), pm.idOf(2 ** 20) + 1024), 1024);
  const top = pm.idOf(2 ** 20 + pages - 1);
  assert.ok(top > 2 ** 32, "ids past 2^32 work");
  assert.equal(pm.pfnOf(top), 2 ** 20 + pages - 1);
  assert.ok(pm.isFreeId(top));
  pm.markBusy(top);
  assert.equal(pm.lastBusy(top - 100, top + 1), top);
  assert.equal(pm.findFree(top - 3, top + 1), top - 3);
  assert.equal(pm.freeRuns().length, 2);
  pm.check();
});
