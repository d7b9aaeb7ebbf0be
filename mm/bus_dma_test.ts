import { test } from "node:test";
import assert from "node:assert/strict";
import {
  BUS_DMASYNC_POSTREAD,
  BUS_DMASYNC_PREWRITE,
  BusDma,
  type DmaBackend,
  DmaTag,
  type PageRuns,
} from "./bus_dma.ts";
import { loadRam, Uvm } from "./page.ts";
import { type PageList, pglistAlloc, pglistFree } from "./pglist.ts";
import { Pmap } from "./pmap.ts";
import { VM_NOSLEEP, Vmem } from "./vmem.ts";
import { KernelError } from "./errors.ts";
import { Mulberry32 } from "./random.ts";

const PS = 4096;
const RAM = 32 * 2 ** 20; // frames 0..8191: FIRST16 below 16 MiB, FIRST4G above
const KVA = 2 ** 40;

/** A small kernel: flat RAM, the page allocator, a pmap and a VA arena. */
function world() {
  const mem = new Uint8Array(RAM);
  const phys = {
    read: (pa: number, dst: Uint8Array) => dst.set(mem.subarray(pa, pa + dst.length)),
    write: (pa: number, src: Uint8Array) => mem.set(src, pa),
    fill: (pa: number, len: number, b: number) => mem.fill(b, pa, pa + len),
  };
  const uvm = new Uvm({ pageSize: PS });
  loadRam(uvm, [{ base: PS, size: RAM - PS }]);
  const pmap = new Pmap(phys, KVA, 2 ** 30, PS);
  const va = Vmem.create("va", KVA, 2 ** 30, PS);
  const lists = new WeakMap<PageRuns, PageList>();
  const backend: DmaBackend = {
    pageSize: PS,
    ramEnd: RAM,
    phys,
    kva: pmap,
    allocPages(size, low, high, alignment, boundary, nsegs) {
      const list = pglistAlloc(uvm, size, low, high, alignment, boundary, nsegs);
      const runs = { runs: list.runs() };
      lists.set(runs, list);
      return runs;
    },
    freePages: (runs) => pglistFree(uvm, lists.get(runs)!),
    mapPages(runs) {
      let n = 0;
      for (const [, c] of runs.runs) n += c;
      const base = va.alloc(n * PS, VM_NOSLEEP);
      let off = 0;
      for (const [pfn, c] of runs.runs) {
        for (let i = 0; i < c; i++, off += PS) pmap.enter(base + off, (pfn + i) * PS);
      }
      return base;
    },
    unmapPages(base, size) {
      pmap.remove(base, size);
      va.free(base, size);
    },
  };
  /** A kernel buffer of `pages` pages on the given frames, mapped contiguously. */
  const buffer = (pfns: number[]) => {
    const base = va.alloc(pfns.length * PS, VM_NOSLEEP);
    pfns.forEach((pfn, i) => {
      uvm.pageClaim(pfn);
      pmap.enter(base + i * PS, pfn * PS);
    });
    return base;
  };
  return { mem, uvm, pmap, dma: new BusDma(backend), buffer };
}

test("bus_dma: a child tag only tightens its parent's restrictions", () => {
  const pci = new DmaTag("pci", { highAddr: 2 ** 32 - 1, boundary: 2 ** 32, nSegments: 64 });
  const dev = new DmaTag("dev", {
    highAddr: 2 ** 40,
    alignment: 16,
    boundary: 65536,
    maxSegSize: 8192,
  }, pci);
  assert.equal(dev.highAddr, 2 ** 32 - 1);
  assert.equal(dev.boundary, 65536);
  assert.equal(dev.alignment, 16);
  assert.equal(dev.nSegments, 64);
  assert.equal(dev.maxSegSize, 8192);
  const loose = new DmaTag("loose", { lowAddr: 4096 }, dev);
  assert.equal(loose.lowAddr, 4096);
  assert.equal(loose.boundary, 65536);
  assert.throws(() => new DmaTag("x", { alignment: 3 }), /alignment/);
  assert.throws(() => new DmaTag("x", { lowAddr: 10, highAddr: 5 }), /below/);
  assert.throws(() => new DmaTag("x", { lowAddr: 2 ** 33 }, pci), /no address/);
});

test("bus_dma: dmamem_alloc obeys the tag and maps the pages in kernel space", () => {
  const w = world();
  const tag = new DmaTag("isa", { highAddr: 2 ** 24 - 1, boundary: 65536, nSegments: 1 });
  const mem = w.dma.dmamemAlloc(tag, 3 * PS, { alignment: 16 * PS });
  assert.equal(mem.segs.length, 1);
  const [pa, len] = mem.segs[0]!;
  assert.equal(len, 3 * PS);
  assert.equal(pa % (16 * PS), 0);
  assert.ok(pa + len <= 2 ** 24);
  assert.equal(Math.floor(pa / 65536), Math.floor((pa + len - 1) / 65536));
  assert.equal(w.pmap.extract(mem.kva), pa);
  w.dma.dmamemFree(mem);
  assert.throws(
    () => w.dma.dmamemFree(mem),
    (e) => e instanceof KernelError && e.code === "BADFREE",
  );
  assert.throws(
    () => w.dma.dmamemAlloc(tag, 65536 + PS),
    (e) => e instanceof KernelError && e.code === "EINVAL",
  );
  w.uvm.check();
});

test("bus_dma: a reachable buffer loads in place, merged and split at the boundary", () => {
  const w = world();
  const tag = new DmaTag("dev", { highAddr: 2 ** 32 - 1, boundary: 8192, nSegments: 8 });
  const va = w.buffer([100, 101, 102, 103, 50]);
  const map = w.dma.createMap(tag, 5 * PS, 8);
  w.dma.load(map, va + 100, 5 * PS - 200);
  const segs = [];
  for (let i = 0; i < map.nsegs; i++) segs.push([map.segAddr(i), map.segLen(i)]);
  assert.deepEqual(segs, [
    [100 * PS + 100, 2 * PS - 100], // 100-101 merge, 102 starts a new 8 KiB window
    [102 * PS, 2 * PS],
    [50 * PS, PS - 100],
  ]);
  assert.equal(map.nbounce, 0);
  w.dma.unload(map);
  assert.throws(() => w.dma.unload(map), /unloaded/);
});

test("bus_dma: pages out of reach bounce, and sync copies both ways", () => {
  const w = world();
  const tag = new DmaTag("low", { highAddr: 2 ** 24 - 1, nSegments: 16 });
  const pool = w.dma.reserveBounce(tag, 8);
  assert.equal(pool.total, 8);
  // Two pages above 16 MiB (out of reach) around one below.
  const va = w.buffer([5000, 200, 5001]);
  const data = new Uint8Array(3 * PS).map((_, i) => (i * 13) & 0xff);
  w.pmap.write(va, data);
  const map = w.dma.createMap(tag, 3 * PS, 16);
  w.dma.load(map, va, 3 * PS);
  assert.equal(map.nbounce, 2);
  assert.equal(map.bouncedBytes, 2 * PS);
  assert.equal(pool.stats.used, 2);
  for (let i = 0; i < map.nsegs; i++) assert.ok(map.segAddr(i) + map.segLen(i) <= 2 ** 24);
  assert.equal(map.segAddr(0) !== 5000 * PS, true);
  w.dma.sync(map, BUS_DMASYNC_PREWRITE);
  // What the device sees, segment by segment, is the buffer.
  const seen: number[] = [];
  for (let i = 0; i < map.nsegs; i++) {
    seen.push(...w.mem.subarray(map.segAddr(i), map.segAddr(i) + map.segLen(i)));
  }
  assert.deepEqual(new Uint8Array(seen), data);
  // The device writes; after POSTREAD the buffer holds it.
  for (let i = 0; i < map.nsegs; i++) {
    w.mem.fill(0x77, map.segAddr(i), map.segAddr(i) + map.segLen(i));
  }
  w.dma.sync(map, BUS_DMASYNC_POSTREAD);
  const back = new Uint8Array(3 * PS);
  w.pmap.read(va, back);
  assert.ok(back.every((b) => b === 0x77));
  assert.equal(w.dma.stats.bouncedBytes, 4 * PS);
  w.dma.unload(map);
  assert.equal(pool.stats.used, 0);
});

test("bus_dma: a full bounce pool refuses with ENOMEM and counts it, changing nothing", () => {
  const w = world();
  const tag = new DmaTag("low", { highAddr: 2 ** 24 - 1 });
  const pool = w.dma.reserveBounce(tag, 2);
  const va = w.buffer([5000, 5001, 5002]);
  const map = w.dma.createMap(tag, 3 * PS, 8);
  assert.throws(() => w.dma.load(map, va, 3 * PS), (e) => {
    assert.ok(e instanceof KernelError && e.code === "ENOMEM");
    assert.match(e.message, /total 2 \(pages\), used 2 \(pages\)/);
    return true;
  });
  assert.equal(pool.stats.used, 0);
  assert.equal(pool.stats.exhausted, 1);
  assert.equal(map.mapsize, 0);
  w.dma.load(map, va, 2 * PS);
  w.dma.unload(map);
});

test("bus_dma: segments that do not fit are refused with EFBIG", () => {
  const w = world();
  const tag = new DmaTag("sg2", { nSegments: 2, maxSegSize: PS });
  const va = w.buffer([300, 301, 302]);
  const map = w.dma.createMap(tag, 3 * PS, 2);
  assert.throws(
    () => w.dma.load(map, va, 3 * PS),
    (e) => e instanceof KernelError && e.code === "EFBIG",
  );
  assert.equal(map.mapsize, 0);
  assert.equal(w.dma.stats.efbig, 1);
  assert.throws(
    () => w.dma.load(map, va, 4 * PS),
    (e) => e instanceof KernelError && e.code === "EFBIG",
  );
  w.dma.load(map, va, 2 * PS);
  assert.equal(map.nsegs, 2);
});

test("bus_dma: random loads under random constraints always satisfy them", () => {
  const rng = new Mulberry32(42);
  for (let round = 0; round < 60; round++) {
    const w = world();
    const high = [2 ** 24 - 1, 20 * 2 ** 20 - 1, RAM - 1][rng.below(3)]!;
    const tag = new DmaTag(`t${round}`, {
      highAddr: high,
      alignment: 1 << rng.below(13),
      boundary: rng.below(3) === 0 ? 0 : PS << rng.below(5),
      nSegments: 1 + rng.below(16),
      maxSegSize: PS << rng.below(4),
    });
    w.dma.reserveBounce(tag, 16);
    const pages = 1 + rng.below(6);
    const pfns: number[] = [];
    while (pfns.length < pages) {
      const pfn = 1 + rng.below(RAM / PS - 1);
      if (w.uvm.isFree(pfn) && !pfns.includes(pfn)) pfns.push(pfn);
    }
    const va = w.buffer(pfns);
    const off = rng.below(PS);
    const len = 1 + rng.below(pages * PS - off);
    const data = new Uint8Array(len).map(() => rng.below(256));
    w.pmap.write(va + off, data);
    const map = w.dma.createMap(tag, pages * PS, tag.nSegments);
    try {
      w.dma.load(map, va + off, len);
    } catch (e) {
      assert.ok(e instanceof KernelError && e.code === "EFBIG", String(e));
      assert.equal(map.mapsize, 0);
      continue;
    }
    let total = 0;
    const seen: number[] = [];
    w.dma.sync(map, BUS_DMASYNC_PREWRITE);
    let needBounce = false;
    for (let v = va + off; v < va + off + len; v = (Math.floor(v / PS) + 1) * PS) {
      const pa = w.pmap.extract(v);
      const n = Math.min(PS - (v % PS), va + off + len - v);
      if (pa + n - 1 > high || pa % tag.alignment !== 0) needBounce = true;
    }
    assert.equal(
      map.nbounce > 0,
      needBounce,
      "bounce exactly when a piece is out of reach or misaligned",
    );
    for (let i = 0; i < map.nsegs; i++) {
      const a = map.segAddr(i), n = map.segLen(i);
      assert.ok(a + n - 1 <= high, "within reach");
      assert.equal(a % tag.alignment, 0, "aligned");
      assert.ok(n <= tag.maxSegSize, "no longer than maxsegsz");
      if (tag.boundary) {
        assert.equal(Math.floor(a / tag.boundary), Math.floor((a + n - 1) / tag.boundary));
      }
      total += n;
      seen.push(...w.mem.subarray(a, a + n));
    }
    assert.ok(map.nsegs <= tag.nSegments);
    assert.equal(total, len);
    assert.deepEqual(new Uint8Array(seen), data);
    w.dma.unload(map);
    w.uvm.check();
  }
});

test("bus_dma: a map with a bounce buffer carries a scattered buffer in one segment", () => {
  const w = world();
  const tag = new DmaTag("isa", {
    highAddr: 2 ** 24 - 1,
    boundary: 65536,
    nSegments: 1,
    maxSize: 65536,
  });
  const map = w.dma.createMap(tag, 4 * PS, 1, { bounceBuffer: true });
  const bb = map.bounceBuffer!;
  assert.equal(bb.segs.length, 1);
  const va = w.buffer([6000, 300, 6002, 7]);
  const data = new Uint8Array(4 * PS - 10).map((_, i) => (i * 7 + 3) & 0xff);
  w.pmap.write(va + 10, data);
  w.dma.load(map, va + 10, data.length);
  assert.equal(map.nsegs, 1);
  assert.equal(map.segAddr(0), bb.segs[0]![0]);
  assert.equal(map.bouncedBytes, data.length);
  w.dma.sync(map, BUS_DMASYNC_PREWRITE);
  assert.deepEqual(w.mem.subarray(map.segAddr(0), map.segAddr(0) + data.length), data);
  w.mem.fill(0x3c, map.segAddr(0), map.segAddr(0) + data.length);
  w.dma.sync(map, BUS_DMASYNC_POSTREAD);
  const back = new Uint8Array(data.length);
  w.pmap.read(va + 10, back);
  assert.ok(back.every((b) => b === 0x3c));
  w.dma.unload(map);
  // A one-page buffer within reach loads in place, without the bounce buffer.
  w.dma.load(map, va + PS, 100);
  assert.equal(map.segAddr(0), 300 * PS);
  assert.equal(map.bouncedBytes, 0);
  assert.throws(() => w.dma.destroyMap(map), (e) => e instanceof KernelError && e.code === "EBUSY");
  w.dma.unload(map);
  w.dma.destroyMap(map);
  assert.equal(w.dma.liveMemory, 0);
  w.uvm.check();
});

/**
 * The load as NetBSD's _bus_dmamap_load_buffer and busdma_bounce describe
 * it, written plainly: one pmap_extract per page, each piece used in place
 * or bounced, then _bus_dmamap_addseg. `poolPages` are the bounce pages in
 * the order the pool hands them out.
 */
function modelLoad(
  pmap: Pmap,
  tag: DmaTag,
  va: number,
  len: number,
  maxSegs: number,
  poolPages: number[] | null,
): { code: string | null; segs: number[]; bounce: number[] } {
  const segs: number[] = [], bounce: number[] = [];
  const addSeg = (pa: number, n: number): boolean => {
    while (n > 0) {
      let take = n, window = 0;
      if (tag.boundary !== 0) {
        window = Math.floor(pa / tag.boundary) * tag.boundary;
        take = Math.min(take, window + tag.boundary - pa);
      }
      const k = segs.length / 2;
      if (
        k > 0 && segs[2 * k - 2]! + segs[2 * k - 1]! === pa &&
        segs[2 * k - 1]! + take <= tag.maxSegSize &&
        (tag.boundary === 0 || segs[2 * k - 2]! >= window)
      ) {
        segs[2 * k - 1]! += take;
      } else {
        take = Math.min(take, tag.maxSegSize);
        if (k === maxSegs) return false;
        segs.push(pa, take);
      }
      pa += take;
      n -= take;
    }
    return true;
  };
  const done = (code: string | null) => ({ code, segs, bounce });
  for (let off = 0; off < len;) {
    const v = va + off;
    const pa = pmap.extract(v);
    if (pa < 0) return done("EFAULT");
    const n = Math.min(PS - v % PS, len - off);
    if (tag.reaches(pa, n)) {
      if (!addSeg(pa, n)) return done("EFBIG");
    } else {
      if (poolPages === null) return done("EINVAL");
      if (bounce.length / 2 === poolPages.length) return done("ENOMEM");
      bounce.push(v, n);
      if (!addSeg(poolPages[bounce.length / 2 - 1]!, n)) return done("EFBIG");
    }
    off += n;
  }
  return done(null);
}

test("bus_dma: loads agree page by page with a plain model of the load", () => {
  const rng = new Mulberry32(17);
  const codes = new Map<string, number>();
  for (let round = 0; round < 120; round++) {
    const w = world();
    const alignment = 1 << rng.below(15);
    const tag = new DmaTag(`m${round}`, {
      lowAddr: rng.below(4) === 0 ? 2 * 2 ** 20 : 0,
      highAddr: [2 ** 24 - 1, 20 * 2 ** 20 - 1, RAM - 1][rng.below(3)],
      alignment,
      boundary: rng.below(3) === 0 ? 0 : Math.max(alignment, 512 << rng.below(7)),
      nSegments: 1 + rng.below(300),
      maxSegSize: 1024 << rng.below(6),
    });
    const pool = rng.below(3) === 0 ? null : w.dma.reserveBounce(tag, 1 + rng.below(40));
    const poolPages = pool === null
      ? null
      : Array.from({ length: pool.free }, (_, i) => pool.addr(i));
    // Up to 150 pages (past a batch of the pmap walk), in runs of adjacent frames.
    const pages = 1 + rng.below(150);
    const pfns: number[] = [];
    while (pfns.length < pages) {
      let pfn = 1 + rng.below(RAM / PS - 1);
      for (let run = 1 + rng.below(8); run > 0 && pfns.length < pages; run--, pfn++) {
        if (pfn < RAM / PS && w.uvm.isFree(pfn) && !pfns.includes(pfn)) pfns.push(pfn);
      }
    }
    const va = w.buffer(pfns);
    if (rng.below(4) === 0) w.pmap.remove(va + rng.below(pages) * PS, PS);
    const off = rng.below(PS);
    const len = 1 + rng.below(pages * PS - off);
    const map = w.dma.createMap(tag, pages * PS, tag.nSegments);
    const want = modelLoad(w.pmap, tag, va + off, len, map.maxSegs, poolPages);
    let code: string | null = null;
    try {
      w.dma.load(map, va + off, len);
    } catch (e) {
      assert.ok(e instanceof KernelError, String(e));
      code = e.code;
    }
    codes.set(code ?? "ok", (codes.get(code ?? "ok") ?? 0) + 1);
    assert.equal(code, want.code, `round ${round}`);
    if (code !== null) {
      assert.equal(map.mapsize, 0);
      assert.equal(pool?.stats.used ?? 0, 0);
      continue;
    }
    assert.deepEqual(Array.from(map.segs.subarray(0, 2 * map.nsegs)), want.segs, `round ${round}`);
    assert.equal(map.nbounce, want.bounce.length / 2);
    for (let i = 0; i < map.nbounce; i++) {
      assert.equal(map.bounce[3 * i], want.bounce[2 * i]);
      assert.equal(map.bounce[3 * i + 2], want.bounce[2 * i + 1]);
    }
    w.dma.unload(map);
  }
  for (const c of ["ok", "EFAULT", "EFBIG", "ENOMEM", "EINVAL"]) {
    assert.ok((codes.get(c) ?? 0) >= 3, `outcomes ${JSON.stringify([...codes])}`);
  }
});
