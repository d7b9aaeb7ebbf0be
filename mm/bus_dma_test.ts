import { test } from "node:test";
import assert from "node:assert/strict";
import {
  BUS_DMA_NOWAIT,
  BUS_DMASYNC_POSTREAD,
  BUS_DMASYNC_PREWRITE,
  type DmaMap,
  DmaTag,
  mapLoad,
} from "./bus_dma.ts";
import { pglistAlloc, pglistFree } from "./pglist.ts";
import { KernelError } from "./errors.ts";
import { Mulberry32 } from "./random.ts";
import { DMA_24BIT, DMA_32BIT, dmaLimits, segmentProblem } from "../machine/mod.ts";
import { code, dmaWorld, segsOf } from "./_dma_test_util.ts";

const PS = 4096;
const MiB = 2 ** 20;
const RAM = 32 * MiB; // frames 1..8191

const world = dmaWorld;

/** True when segment `i` of `map` lies in its bounce space. */
function bounced(map: DmaMap, i: number): boolean {
  const a = map.segAddr(i);
  for (let r = 0; r < mapLoad(map).nruns; r++) {
    if (
      a >= mapLoad(map).runs[2 * r]! &&
      a < mapLoad(map).runs[2 * r]! + mapLoad(map).runs[2 * r + 1]!
    ) return true;
  }
  return false;
}

const NIC = dmaLimits({ maxAddress: DMA_32BIT, maxSegments: 8, maxSegmentSize: 4096 });

test("bus_dma: a tag is made from a device's limits in one call and narrowed", () => {
  const w = world();
  const dev = { name: "nic0", dma: NIC };
  const tag = w.dma.tagForDevice(dev, { maxTransfer: 32768 });
  assert.equal(tag.name, "nic0");
  assert.equal(tag.device, "nic0");
  assert.deepEqual(
    [tag.maxAddress, tag.maxSegments, tag.maxSegmentSize, tag.maxTransfer],
    [DMA_32BIT, 8, 4096, 32768],
  );
  const rings = w.dma.createTag("nic0 rings", { alignment: 128 }, { parent: tag, bouncePages: 0 });
  assert.equal(rings.alignment, 128);
  assert.equal(rings.maxAddress, DMA_32BIT);
  assert.equal(rings.device, "nic0");
  assert.equal(rings.parent, tag);
  // The tag's words are the port's.
  assert.deepEqual(dmaLimits(tag), tag.limits);
  assert.match(tag.describe(), /window \[0x0, 0xffffffff\] align 1 boundary - segments 8 of 4096/);
  assert.throws(() => w.dma.destroyTag(tag), /is the parent of nic0 rings/);
  w.dma.destroyTag(rings);
  w.dma.destroyTag(tag);
  assert.deepEqual(w.dma.liveTags, []);
});

test("bus_dma: a tag wider than its device is refused, naming the field and both values", () => {
  const w = world();
  const isa = dmaLimits({
    minAddress: 4096,
    maxAddress: DMA_24BIT,
    alignment: 16,
    boundary: 65536,
    maxSegments: 4,
    maxSegmentSize: 32768,
    maxTransfer: 65536,
  });
  const dev = { name: "isa0", dma: isa };
  const cases: [object, RegExp][] = [
    [{ minAddress: 0 }, /minAddress 0x0 asks for more than its device's 0x1000/],
    [{ maxAddress: DMA_32BIT }, /maxAddress 0xffffffff asks for more than its device's 0xffffff/],
    [{ alignment: 4 }, /alignment 4 asks for more than its device's 16/],
    [{ boundary: 0 }, /boundary 0 \(none\) asks for more than its device's 0x10000/],
    [{ boundary: 2 ** 20 }, /boundary 0x100000 asks for more than its device's 0x10000/],
    [{ maxSegments: 5 }, /maxSegments 5 asks for more than its device's 4/],
    [{ maxSegmentSize: 65536 }, /maxSegmentSize 65536 asks for more than its device's 32768/],
    [{ maxTransfer: 2 ** 20 }, /maxTransfer 1048576 asks for more than its device's 65536/],
    // Contradictions are refused too: a cut at 1000 bytes would misalign.
    [
      { alignment: 512, maxSegmentSize: 1000 },
      /maxSegmentSize 1000 is not a multiple of alignment 512/,
    ],
    [{ alignment: 3 }, /alignment must be a power of two/],
    [{ maxSegments: 2n }, /maxSegments must be an integer/],
    [{ maxAddress: "0xffff" }, /maxAddress must be an integer/],
    [{ boundary: NaN }, /boundary must be an integer/],
  ];
  for (const [narrow, re] of cases) {
    assert.throws(() => w.dma.tagForDevice(dev, narrow), (e: unknown) => {
      assert.ok(e instanceof KernelError && e.code === "EINVAL", String(e));
      assert.match(e.message, /^tag isa0: /);
      assert.match(e.message, re);
      return true;
    });
  }
  assert.deepEqual(w.dma.liveTags, [], "a refused tag leaves nothing behind");
  assert.equal(w.dma.bouncePool.reserved, 0);
  const narrow = w.dma.tagForDevice(dev, { maxAddress: 2 ** 23 - 1, boundary: 4096 });
  assert.equal(narrow.boundary, 4096);
  for (const bad of [null, "isa0", 7, undefined]) {
    assert.throws(() => w.dma.tagForDevice(bad as never), /device must be a device table row/);
  }
  for (const bad of ["isa0", 7, {}, 5n]) {
    assert.throws(() => w.dma.createTag("t", {}, { parent: bad as never }), /parent must be/);
  }
  assert.throws(() => w.dma.createTag("", {}), /tag name must be a non-empty string/);
  assert.throws(() => w.dma.createTag("t", null as never), /constraints must be an object/);
  assert.throws(() => w.dma.createTag("t", {}, { bouncePages: -1 }), /bouncePages/);
});

test("bus_dma: dmamem_alloc obeys the tag and maps the pages in kernel space", () => {
  const w = world();
  const tag = w.dma.createTag("isa", { maxAddress: DMA_24BIT, boundary: 65536, maxSegments: 1 });
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
  assert.throws(() => w.dma.dmamemAlloc(tag, 65536 + PS), (e) => e instanceof KernelError);
  w.uvm.check();
});

test("bus_dma: a reachable buffer loads in place, merged and split at the boundary", () => {
  const w = world();
  const tag = w.dma.createTag("dev", { maxAddress: DMA_32BIT, boundary: 8192, maxSegments: 8 });
  const va = w.buffer([1000, 1001, 1002, 1003, 950]);
  const map = w.dma.createMap(tag, 5 * PS, 8);
  w.dma.load(map, va + 100, 5 * PS - 200);
  assert.deepEqual(segsOf(map), [
    [1000 * PS + 100, 2 * PS - 100], // 1000-1001 merge, 1002 starts a new 8 KiB window
    [1002 * PS, 2 * PS],
    [950 * PS, PS - 100],
  ]);
  assert.equal(mapLoad(map).nbounce, 0);
  w.dma.check();
  w.dma.unload(map);
  assert.throws(() => w.dma.unload(map), /unload of map dev\/map1, which is not loaded/);
});

test("bus_dma: the bounce pool is taken low when first needed; a reservation lies in its window", () => {
  const w = world(64);
  const free = w.uvm.free;
  assert.deepEqual([w.dma.bouncePool.pages, w.dma.bouncePool.base], [64, 0], "not taken yet");
  const isa = w.dma.createTag("isa", { maxAddress: DMA_24BIT, maxTransfer: 65536 });
  assert.equal(isa.bouncePages, 17, "one 64 KiB load, at any offset");
  const pool = w.dma.bouncePool;
  assert.ok(pool.base > 0 && pool.base + 64 * PS <= 16 * MiB, "below 16 MiB");
  assert.equal(w.uvm.free, free - 64);
  const all = w.dma.createTag("all", { maxTransfer: 65536 });
  assert.equal(all.bouncePages, 0, "a tag that reaches all RAM needs no bounce pages");
  const none = w.dma.createTag("none", { maxAddress: DMA_24BIT }, { bouncePages: 0 });
  assert.equal(none.bouncePages, 0);
  assert.deepEqual(w.dma.bouncePool.tags, [{ tag: "isa", pages: 17, inUse: 0 }]);
  // A window the pool does not reach: refused when made.
  assert.throws(
    () =>
      w.dma.createTag("high", { minAddress: 20 * MiB, maxAddress: 30 * MiB - 1, maxTransfer: PS }),
    (e) =>
      e instanceof KernelError && e.code === "ENOMEM" &&
      /no room for a 2-page bounce/.test(e.message),
  );
  // More than the pool holds: refused when made.
  assert.throws(
    () => w.dma.createTag("big", { maxAddress: DMA_24BIT }, { bouncePages: 60 }),
    /no room for a 60-page bounce reservation/,
  );
  // A load that needs bounce pages without a reservation is refused with EINVAL.
  const va = w.buffer([7000]);
  const map = w.dma.createMap(none, PS, 1);
  assert.throws(
    () => w.dma.load(map, va, PS),
    (e) =>
      e instanceof KernelError && e.code === "EINVAL" && /no bounce reservation/.test(e.message),
  );
  w.dma.destroyMap(map);
  for (const t of [isa, all, none]) w.dma.destroyTag(t);
  assert.equal(w.dma.bouncePool.reserved, 0);
  const before = w.uvm.free;
  assert.deepEqual(w.dma.shutdown(), { maps: [], memory: 0, tags: [] });
  assert.equal(w.uvm.free, before + 64, "shutdown gives the pool back");
});

test("bus_dma: pages out of reach bounce as one run, and sync copies both ways", () => {
  const w = world();
  const tag = w.dma.createTag("low", {
    maxAddress: DMA_24BIT,
    maxSegments: 16,
    maxTransfer: 8 * PS,
  });
  // Two pages above 16 MiB (out of reach) around one below.
  const va = w.buffer([5000, 200, 5001]);
  const data = new Uint8Array(3 * PS).map((_, i) => (i * 13) & 0xff);
  w.pmap.write(va, data);
  const map = w.dma.createMap(tag, 3 * PS, 16);
  w.dma.load(map, va, 3 * PS);
  assert.equal(mapLoad(map).nbounce, 2);
  assert.equal(
    mapLoad(map).nruns,
    2,
    "the two pages are separate runs: the page between is in place",
  );
  assert.equal(map.bouncedBytes, 2 * PS);
  assert.deepEqual(segsOf(map).map(([, n]) => n), [PS, PS, PS]);
  assert.equal(map.segAddr(1), 200 * PS);
  assert.ok(bounced(map, 0) && !bounced(map, 1) && bounced(map, 2));
  assert.equal(w.dma.bouncePool.inUse, 2);
  for (let i = 0; i < map.nsegs; i++) assert.ok(map.segAddr(i) + map.segLen(i) <= 2 ** 24);
  w.dma.sync(map, BUS_DMASYNC_PREWRITE);
  // What the device sees, segment by segment, is the buffer.
  const seen = new Uint8Array(3 * PS);
  for (let i = 0, o = 0; i < map.nsegs; o += map.segLen(i), i++) {
    w.ram.read(map.segAddr(i), seen, o, map.segLen(i));
  }
  assert.deepEqual(seen, data);
  // The device writes; after POSTREAD the buffer holds it.
  for (let i = 0; i < map.nsegs; i++) w.ram.fill(map.segAddr(i), map.segLen(i), 0x77);
  w.dma.sync(map, BUS_DMASYNC_POSTREAD);
  const back = new Uint8Array(3 * PS);
  w.pmap.read(va, back);
  assert.ok(back.every((b) => b === 0x77));
  assert.equal(w.dma.stats.bouncedBytes, 4 * PS);
  // A sync of part of the map copies only that part.
  w.ram.fill(map.segAddr(2), PS, 0x11);
  w.dma.sync(map, BUS_DMASYNC_POSTREAD, 2 * PS + 100, 10);
  w.pmap.read(va, back);
  assert.deepEqual(
    [back[2 * PS + 99], back[2 * PS + 100], back[2 * PS + 109], back[2 * PS + 110]],
    [
      0x77,
      0x11,
      0x11,
      0x77,
    ],
  );
  w.dma.check();
  w.dma.unload(map);
  assert.equal(w.dma.bouncePool.inUse, 0);
});

test("bus_dma: a bounced run keeps the tag's alignment above a page and its window", () => {
  const w = world();
  // 8 KiB alignment: a piece that starts a segment off 8 KiB bounces, and
  // its bounce space is 8 KiB-aligned.
  const a8k = w.dma.createTag("a8k", { alignment: 8192, maxTransfer: 4 * PS });
  const map = w.dma.createMap(a8k, 4 * PS, 4);
  const va = w.buffer([301, 302, 305]);
  w.dma.load(map, va, 3 * PS);
  assert.deepEqual(segsOf(map).map(([, n]) => n), [PS, PS, PS]);
  assert.equal(map.segAddr(1), 302 * PS, "302 starts aligned: in place");
  assert.ok(bounced(map, 0) && bounced(map, 2));
  for (let i = 0; i < map.nsegs; i++) {
    assert.equal(segmentProblem(a8k.limits, map.segAddr(i), map.segLen(i)), null, `segment ${i}`);
  }
  w.dma.unload(map);
  // A window holding only the top of the pool: bounce space inside it, never below.
  w.takePool();
  const pool = w.dma.bouncePool;
  const minAddress = pool.base + 32 * PS, maxAddress = pool.base + 64 * PS - 1;
  const win = w.dma.createTag("win", { minAddress, maxAddress, maxTransfer: 2 * PS });
  const m2 = w.dma.createMap(win, 2 * PS, 2);
  const low = w.buffer([3, 4]);
  w.dma.load(m2, low + 1, 2 * PS - 1);
  assert.ok(m2.nsegs > 0 && bounced(m2, 0));
  for (let i = 0; i < m2.nsegs; i++) {
    assert.ok(m2.segAddr(i) >= minAddress && m2.segAddr(i) + m2.segLen(i) - 1 <= maxAddress);
  }
  w.dma.check();
  w.dma.unload(m2);
});

test("bus_dma: a load's segments never depend on which bounce pages earlier loads left", () => {
  // A card taking 8 segments of 4 KiB below 16 MiB: a 5-page frame above it
  // always takes the same segments, whatever the reservation looks like.
  const w = world();
  const tag = w.dma.createTag("nic", {
    maxAddress: DMA_24BIT,
    maxSegments: 8,
    maxSegmentSize: PS,
    maxTransfer: 8 * PS,
  }, {
    bouncePages: 24,
  });
  const frame = w.buffer([5000, 5100, 5200, 5300, 5400]);
  const other = w.buffer([6000, 6001, 6002, 6003, 6004, 6005]);
  const fm = w.dma.createMap(tag, 8 * PS, 8);
  const om = w.dma.createMap(tag, 8 * PS, 8);
  const rng = new Mulberry32(3);
  const seen = new Set<string>();
  for (let round = 0; round < 40; round++) {
    const held = rng.below(3) === 0 ? 0 : 1 + rng.below(6);
    if (held > 0) w.dma.load(om, other + rng.below(PS), held * PS - PS + 1);
    const off = 100;
    w.dma.load(fm, frame + off, 5 * PS - off - 7);
    seen.add(JSON.stringify(segsOf(fm).map(([, n]) => n)));
    w.dma.check();
    w.dma.unload(fm);
    if (held > 0) w.dma.unload(om);
  }
  assert.deepEqual([...seen], [JSON.stringify([PS, PS, PS, PS, PS - 107])]);
  // Pages in reach between the bounced ones: 9 segments, EFBIG every time,
  // whatever is free.
  const nine = w.buffer([5001, 1500, 5101, 1600, 5201, 1700, 5301, 1800, 5401]);
  for (let round = 0; round < 5; round++) {
    if (round % 2) w.dma.load(om, other, 3 * PS);
    assert.equal(code(() => w.dma.load(fm, nine + 1, 8 * PS)), "EFBIG");
    if (round % 2) w.dma.unload(om);
  }
});

test("bus_dma: a tag's reservation that is busy refuses a load at once, or makes it wait", async () => {
  const w = world();
  const tag = w.dma.createTag("low", { maxAddress: DMA_24BIT, maxTransfer: 3 * PS }, {
    bouncePages: 3,
  });
  const va = w.buffer([5000, 5001, 5002]);
  const vb = w.buffer([6000, 6001]);
  const a = w.dma.createMap(tag, 3 * PS, 8), b = w.dma.createMap(tag, 3 * PS, 8);
  w.dma.load(a, va, 2 * PS);
  assert.throws(() => w.dma.load(b, vb, 2 * PS), (e) => {
    assert.ok(e instanceof KernelError && e.code === "ENOMEM");
    assert.match(e.message, /tag low's bounce reservation \(3 pages\) has no room now/);
    return true;
  });
  assert.equal(b.mapsize, 0);
  assert.equal(w.dma.stats.bounceShortages, 1);
  await assert.rejects(
    w.dma.loadAsync(b, { kind: "kva", va: vb, len: 2 * PS }, BUS_DMA_NOWAIT),
    /no room now/,
  );
  assert.equal(w.dma.stats.bounceShortages, 2);
  // Waiting: the load completes when `a` gives its bounce pages back.
  let done = false;
  const waiting = w.dma.loadAsync(b, { kind: "kva", va: vb, len: 2 * PS }).then(
    () => (done = true),
  );
  await Promise.resolve();
  assert.equal(done, false);
  assert.equal(w.dma.stats.bounceWaits, 1);
  w.dma.unload(a);
  await waiting;
  assert.equal(done, true);
  assert.equal(b.mapsize, 2 * PS);
  // Cancelled while waiting: ECANCELED, nothing loaded.
  const ac = new AbortController();
  const c = w.dma.createMap(tag, 3 * PS, 8);
  const p = w.dma.loadAsync(c, { kind: "kva", va, len: 2 * PS }, undefined, ac.signal);
  ac.abort();
  await assert.rejects(p, (e) => e instanceof KernelError && e.code === "ECANCELED");
  assert.equal(c.mapsize, 0);
  w.dma.unload(b);
  // A run the reservation could never hold fails at once, waiting or not.
  const tiny = w.dma.createTag("tiny", { maxAddress: DMA_24BIT, maxTransfer: 3 * PS }, {
    bouncePages: 2,
  });
  const tm = w.dma.createMap(tiny, 3 * PS, 8);
  const three = w.buffer([7000, 7001, 7002]);
  await assert.rejects(
    w.dma.loadAsync(tm, { kind: "kva", va: three, len: 3 * PS }),
    /needs more bounce space in one run than tag tiny's reservation of 2 pages can ever hold/,
  );
  assert.equal(w.dma.stats.bounceWaits, 2);
  assert.equal(tm.mapsize, 0);
  w.dma.check();
});

test("bus_dma: scatter lists, physical ranges, page lists and DMA memory all load", () => {
  const w = world();
  const tag = w.dma.createTag("dev", {
    maxAddress: DMA_24BIT,
    maxSegments: 16,
    maxTransfer: 16 * PS,
  });
  const map = w.dma.createMap(tag, 16 * PS, 16);
  // A scatter list whose entries are contiguous in RAM merge, as dma_map_sg does.
  const a = w.buffer([1000, 1001]), b = w.buffer([1002]), c = w.buffer([1500]);
  w.dma.loadSg(map, [[a + 8, 2 * PS - 8], [b, PS], [c, 100]]);
  assert.deepEqual(segsOf(map), [[1000 * PS + 8, 3 * PS - 8], [1500 * PS, 100]]);
  assert.equal(map.mapsize, 3 * PS + 92);
  w.dma.unload(map);
  // Raw physical ranges; one above 16 MiB bounces.
  w.ram.fill(6000 * PS, PS, 0x42);
  w.dma.loadPhys(map, [[3000 * PS, 512], [6000 * PS, PS]]);
  assert.equal(map.segAddr(0), 3000 * PS);
  assert.ok(bounced(map, 1));
  w.dma.sync(map, BUS_DMASYNC_PREWRITE);
  assert.equal(w.ram.read8(map.segAddr(1) + 17), 0x42);
  w.dma.unload(map);
  // A page list from uvm_pglistalloc, part of it.
  const list = pglistAlloc(w.uvm, 4 * PS, 0, 16 * MiB, PS, 0, 1);
  const runs = { runs: list.runs() };
  w.dma.loadPages(map, runs, PS + 10, 2 * PS);
  assert.deepEqual(segsOf(map), [[runs.runs[0]![0] * PS + PS + 10, 2 * PS]]);
  w.dma.unload(map);
  assert.equal(code(() => w.dma.loadPages(map, runs, 4 * PS)), "EINVAL");
  assert.equal(code(() => w.dma.loadPages(map, runs, 0, 4 * PS + 1)), "EINVAL");
  pglistFree(w.uvm, list);
  // DMA memory, by construction in reach.
  const mem = w.dma.dmamemAlloc(tag, 2 * PS, { nsegs: 1 });
  w.dma.loadMemory(map, mem, 3000);
  assert.deepEqual(segsOf(map), [[mem.segs[0]![0], 3000]]);
  w.dma.unload(map);
  w.dma.dmamemFree(mem);
  assert.equal(code(() => w.dma.loadMemory(map, mem)), "EINVAL");
  w.dma.check();
});

test("bus_dma: a map with bounceBuffer carries a scattered buffer whole in one segment", () => {
  const w = world();
  const tag = w.dma.createTag("isa", {
    maxAddress: DMA_24BIT,
    boundary: 65536,
    maxSegments: 1,
    maxTransfer: 65536,
  });
  const map = w.dma.createMap(tag, 4 * PS, 1, { bounceBuffer: true });
  const va = w.buffer([6000, 300, 6002, 7]);
  const data = new Uint8Array(4 * PS - 10).map((_, i) => (i * 7 + 3) & 0xff);
  w.pmap.write(va + 10, data);
  w.dma.load(map, va + 10, data.length);
  assert.equal(map.nsegs, 1);
  assert.equal(map.bouncedBytes, data.length);
  assert.equal(
    Math.floor(map.segAddr(0) / 65536),
    Math.floor((map.segAddr(0) + data.length - 1) / 65536),
  );
  w.dma.sync(map, BUS_DMASYNC_PREWRITE);
  const dev = new Uint8Array(data.length);
  w.ram.read(map.segAddr(0), dev);
  assert.deepEqual(dev, data);
  w.ram.fill(map.segAddr(0), data.length, 0x3c);
  w.dma.sync(map, BUS_DMASYNC_POSTREAD);
  const back = new Uint8Array(data.length);
  w.pmap.read(va + 10, back);
  assert.ok(back.every((b) => b === 0x3c));
  w.dma.unload(map);
  // A page in reach, then one out of it: the trailing bounce run is the
  // second segment, which the map has not; so the whole buffer bounces.
  const tail = w.buffer([301, 6100]);
  w.dma.load(map, tail, 2 * PS);
  assert.deepEqual([map.nsegs, map.bouncedBytes], [1, 2 * PS]);
  w.dma.unload(map);
  // A one-page buffer within reach loads in place.
  w.dma.load(map, va + PS, 100);
  assert.equal(map.segAddr(0), 300 * PS);
  assert.equal(map.bouncedBytes, 0);
  assert.throws(() => w.dma.destroyMap(map), (e) => e instanceof KernelError && e.code === "EBUSY");
  assert.throws(() => w.dma.destroyTag(tag), (e) => e instanceof KernelError && e.code === "EBUSY");
  w.dma.unload(map);
  w.dma.destroyMap(map);
  assert.throws(() => w.dma.destroyMap(map), /not live/);
  w.dma.destroyTag(tag);
  w.uvm.check();
});

test("bus_dma: bad input is refused with a named error and changes nothing", () => {
  const w = world();
  const tag = w.dma.createTag("low", {
    maxAddress: DMA_24BIT,
    maxSegments: 4,
    maxTransfer: 4 * PS,
  });
  const map = w.dma.createMap(tag, 2 * PS, 4);
  const va = w.buffer([5000, 5001]);
  const stats = w.dma.stats;
  const all = w.dma.createTag("all", { maxTransfer: PS });
  assert.throws(() => w.dma.createMap(all, PS, 1, { bounceBuffer: true }), /no bounce reservation/);
  const refuse = (f: () => unknown, want: string, re: RegExp, loaded = 0) => {
    const inUse = w.dma.bouncePool.inUse;
    assert.throws(f, (e: unknown) => {
      assert.ok(e instanceof KernelError, String(e));
      assert.equal(e.code, want, e.message);
      assert.match(e.message, re);
      return true;
    });
    assert.equal(map.mapsize, loaded);
    assert.equal(w.dma.bouncePool.inUse, inUse);
  };
  refuse(() => w.dma.load(map, va, 0), "EINVAL", /len must be an integer in \[1, /);
  refuse(() => w.dma.load(map, va, 2 * PS + 1), "EFBIG", /exceeds map low\/map1's 8192/);
  refuse(() => w.dma.load(map, va + 2 * PS, 100), "EFAULT", /has an unmapped page/);
  refuse(() => w.dma.load(map, va + PS, 2 * PS), "EFAULT", /has an unmapped page/);
  for (const bad of [2n, "4096", null, undefined, true, NaN]) {
    refuse(() => w.dma.load(map, va, bad as number), "EINVAL", /len must be an integer/);
    refuse(() => w.dma.load(map, bad as number, 100), "EFAULT", /unmapped page/);
    refuse(() => w.dma.sync(map, bad as number), "EINVAL", /not loaded/);
    refuse(() => w.dma.loadSg(map, [[va, bad as number]]), "EINVAL", /list\[0\] length/);
    refuse(() => w.dma.loadPhys(map, bad as never), "EINVAL", /list must be a non-empty array/);
    refuse(() => w.dma.load(bad as never, va, 100), "EINVAL", /not live/);
    if (bad !== undefined) {
      refuse(() => w.dma.createMap(tag, bad as number), "EINVAL", /size must be an integer/);
    }
  }
  refuse(
    () => w.dma.sync(map, BUS_DMASYNC_PREWRITE),
    "EINVAL",
    /sync of map low\/map1, which is not loaded/,
  );
  refuse(() => w.dma.unload(map), "EINVAL", /unload of map low\/map1, which is not loaded/);
  refuse(() => w.dma.loadSg(map, []), "EINVAL", /non-empty array/);
  refuse(() => w.dma.loadPhys(map, [[RAM - 100, 200]]), "EFAULT", /past the end of RAM/);
  refuse(() => w.dma.createMap(tag, 8 * PS), "EINVAL", /size must be an integer in \[1, 16384\]/);
  refuse(() => w.dma.createMap(tag, PS, 5), "EINVAL", /nsegs must be an integer in \[1, 4\]/);
  w.dma.load(map, va, 100);
  refuse(() => w.dma.sync(map, 16), "EINVAL", /ops must be/, 100);
  refuse(() => w.dma.sync(map, BUS_DMASYNC_PREWRITE, 100), "EINVAL", /offset must be/, 100);
  refuse(() => w.dma.sync(map, BUS_DMASYNC_PREWRITE, 0, 101), "EINVAL", /len must be/, 100);
  refuse(() => w.dma.load(map, va, 100), "EBUSY", /map low\/map1 is already loaded/, 100);
  refuse(() => w.dma.destroyMap(map), "EBUSY", /still loaded/, 100);
  w.dma.unload(map);
  assert.deepEqual(
    { ...w.dma.stats, efbig: stats.efbig },
    { ...stats, loads: 1, segments: 1 },
    "only the counters of refusals and the one load moved",
  );
});

test("bus_dma: random loads of every kind under random constraints satisfy them and carry the data", () => {
  const rng = new Mulberry32(42);
  const w = world(256);
  w.takePool();
  for (let round = 0; round < 150; round++) {
    const alignment = 1 << rng.below(14);
    const boundary = rng.below(3) === 0 ? 0 : Math.max(alignment, PS << rng.below(5));
    const tag = w.dma.createTag(`t${round}`, {
      minAddress: rng.below(4) === 0 ? w.dma.bouncePool.base : 0,
      maxAddress: [DMA_24BIT, 20 * MiB - 1, RAM - 1][rng.below(3)]!,
      alignment,
      boundary,
      maxSegments: 1 + rng.below(16),
      maxSegmentSize: Math.max(alignment, PS << rng.below(4)),
      maxTransfer: 8 * PS,
    }, { bouncePages: 40 });
    const pages = 1 + rng.below(6);
    const pfns: number[] = [];
    while (pfns.length < pages) {
      let pfn = 1 + rng.below(RAM / PS - 2);
      for (let run = 1 + rng.below(4); run > 0 && pfns.length < pages; run--, pfn++) {
        if (w.uvm.isFree(pfn) && !pfns.includes(pfn)) pfns.push(pfn);
      }
    }
    const va = w.buffer(pfns);
    const off = rng.below(PS);
    const len = 1 + rng.below(pages * PS - off);
    const data = new Uint8Array(len).map(() => rng.below(256));
    w.pmap.write(va + off, data);
    const map = w.dma.createMap(tag, 8 * PS, tag.maxSegments, {
      bounceBuffer: tag.bouncePages > 0 && rng.below(4) === 0,
    });
    const kind = len === 1 ? 0 : rng.below(3);
    const half = Math.ceil(len / 2);
    const c = code(() =>
      kind === 0
        ? w.dma.load(map, va + off, len)
        : kind === 1
        ? w.dma.loadSg(map, [[va + off, half], [va + off + half, len - half]])
        : w.dma.loadPhys(map, [[w.pmap.extract(va + off), Math.min(len, PS - off)]])
    );
    w.dma.check();
    if (c !== null) {
      assert.ok(c === "EFBIG" || c === "ENOMEM", `round ${round}: ${c}`);
      assert.equal(map.mapsize, 0);
    } else {
      const total = kind === 2 ? Math.min(len, PS - off) : len;
      w.dma.sync(map, BUS_DMASYNC_PREWRITE);
      const seen = new Uint8Array(total);
      let o = 0;
      for (let i = 0; i < map.nsegs; i++) {
        assert.equal(segmentProblem(tag.limits, map.segAddr(i), map.segLen(i)), null);
        w.ram.read(map.segAddr(i), seen, o, map.segLen(i));
        o += map.segLen(i);
      }
      assert.ok(map.nsegs <= tag.maxSegments);
      assert.equal(o, total);
      assert.deepEqual(seen, data.subarray(0, total));
      w.dma.unload(map);
    }
    w.dma.destroyMap(map);
    w.dma.destroyTag(tag);
  }
  assert.equal(w.dma.bouncePool.reserved, 1, "the anchor's");
  w.uvm.check();
});

/**
 * The load rules of bus_dma.ts written plainly, piece by piece: which
 * pieces stay in place and the lengths of every segment (bounced runs at a
 * stand-in address).
 */
function modelLoad(
  tag: DmaTag,
  pieces: [number, number][],
  maxSegs: number,
  force: boolean,
): { code: string | null; segs: [number | null, number][] } {
  const segs: [number | null, number][] = [];
  let mergeEnd = -1, run = 0, open = false;
  const add = (pa: number, n: number, merge: boolean, bounce: boolean): boolean => {
    while (n > 0) {
      let take = n, window = 0;
      if (tag.boundary !== 0) {
        window = Math.floor(pa / tag.boundary) * tag.boundary;
        take = Math.min(take, window + tag.boundary - pa);
      }
      const last = segs[segs.length - 1];
      if (
        merge && last !== undefined && last[0] !== null && last[0] + last[1] === pa &&
        last[1] + take <= tag.maxSegmentSize && (tag.boundary === 0 || last[0] >= window)
      ) {
        last[1] += take;
      } else {
        take = Math.min(take, tag.maxSegmentSize);
        if (segs.length === maxSegs) return false;
        segs.push([bounce ? null : pa, take]);
      }
      pa += take;
      n -= take;
      merge = true;
    }
    return true;
  };
  const close = () => {
    open = false;
    mergeEnd = -1;
    return add(0, run, false, true);
  };
  for (const [pa, n] of pieces) {
    const inWindow = pa >= tag.minAddress && pa + n - 1 <= tag.maxAddress;
    const last = segs[segs.length - 1];
    const toBoundary = tag.boundary === 0 ? n : Math.min(n, tag.boundary - (pa % tag.boundary));
    const cont = !open && pa === mergeEnd && last![1] + toBoundary <= tag.maxSegmentSize;
    if (!force && inWindow && (cont || pa % tag.alignment === 0)) {
      if (open && !close()) return { code: "EFBIG", segs };
      if (!add(pa, n, cont, false)) return { code: "EFBIG", segs };
      mergeEnd = pa + n;
    } else {
      if (!open) run = 0;
      open = true;
      run += n;
    }
  }
  if (open && !close()) return { code: "EFBIG", segs };
  return { code: null, segs };
}

test("bus_dma: loads of buffers and physical ranges agree piece by piece with a plain model of the rules", () => {
  const rng = new Mulberry32(17);
  const codes = new Map<string, number>();
  const w = world(512);
  w.takePool();
  for (let round = 0; round < 200; round++) {
    const alignment = 1 << rng.below(15);
    const tag = w.dma.createTag(`m${round}`, {
      minAddress: rng.below(4) === 0 ? w.dma.bouncePool.base : 0,
      maxAddress: [DMA_24BIT, 20 * MiB - 1, RAM - 1][rng.below(3)],
      alignment,
      boundary: rng.below(3) === 0 ? 0 : Math.max(alignment, 512 << rng.below(7)),
      maxSegments: 1 + rng.below(40),
      maxSegmentSize: Math.max(alignment, 1024 << rng.below(6)),
      maxTransfer: 64 * PS,
    }, { bouncePages: 200 });
    const pages = 1 + rng.below(60);
    const pfns: number[] = [];
    while (pfns.length < pages) {
      let pfn = 1 + rng.below(RAM / PS - 2);
      for (let run = 1 + rng.below(8); run > 0 && pfns.length < pages; run--, pfn++) {
        if (pfn < RAM / PS && w.uvm.isFree(pfn) && !pfns.includes(pfn)) pfns.push(pfn);
      }
    }
    const va = w.buffer(pfns);
    const off = rng.below(PS);
    const len = 1 + rng.below(pages * PS - off);
    const force = tag.bouncePages > 0 && rng.below(5) === 0;
    const map = w.dma.createMap(tag, 64 * PS, tag.maxSegments, { bounceBuffer: force });
    const pieces: [number, number][] = [];
    for (let o = 0; o < len;) {
      const v = va + off + o, n = Math.min(PS - (v % PS), len - o);
      pieces.push([w.pmap.extract(v), n]);
      o += n;
    }
    let want = modelLoad(tag, pieces, map.maxSegs, false);
    if (want.code === "EFBIG" && force) want = modelLoad(tag, pieces, map.maxSegs, true);
    // The same pieces as a kernel buffer, or as the physical ranges they make
    // (contiguous pieces joined: whole ranges take the fast path).
    const ranges: [number, number][] = [];
    for (const [pa, n] of pieces) {
      const last = ranges[ranges.length - 1];
      if (last !== undefined && last[0] + last[1] === pa) last[1] += n;
      else ranges.push([pa, n]);
    }
    const asPhys = rng.below(2) === 0;
    const c = code(() => asPhys ? w.dma.loadPhys(map, ranges) : w.dma.load(map, va + off, len));
    codes.set(c ?? "ok", (codes.get(c ?? "ok") ?? 0) + 1);
    // Runs padded to a large alignment may outgrow the reservation: the
    // rules decide the segments, the reservation whether they fit.
    if (c !== "ENOMEM") assert.equal(c, want.code, `round ${round}`);
    if (c === null) {
      const got = segsOf(map).map(([a, n], i) => [bounced(map, i) ? null : a, n]);
      assert.deepEqual(got, want.segs, `round ${round}`);
      w.dma.unload(map);
    }
    w.dma.destroyMap(map);
    w.dma.destroyTag(tag);
  }
  for (const c of ["ok", "EFBIG"]) {
    assert.ok((codes.get(c) ?? 0) >= 10, `outcomes ${JSON.stringify([...codes])}`);
  }
});

test("bus_dma: tags from the device's limits equal tags built field by field", () => {
  const w = world();
  const t = w.dma.createTag("x", { maxAddress: DMA_32BIT }, { bouncePages: 0 });
  assert.ok(t instanceof DmaTag);
  assert.equal(t.reaches(DMA_32BIT - 9, 10), true);
  assert.equal(t.reaches(DMA_32BIT - 9, 11), false);
});
