import { test } from "node:test";
import assert from "node:assert/strict";
import {
  BUS_DMASYNC_POSTREAD,
  BUS_DMASYNC_POSTWRITE,
  BUS_DMASYNC_PREREAD,
  BUS_DMASYNC_PREWRITE,
  mapLoad,
} from "./bus_dma.ts";
import type { KernelError } from "./errors.ts";
import { Mulberry32 } from "./random.ts";
import { IommuDriver, IOVA_QCACHE_MAX } from "./iommu.ts";
import { DmaDebug } from "./dma_debug.ts";
import { pglistAlloc } from "./pglist.ts";
import {
  DMA_24BIT,
  DMA_30BIT,
  DMA_32BIT,
  IOPTE_READ,
  IOPTE_WRITE,
  segmentProblem,
} from "../machine/mod.ts";
import { code, iommuWorld, segsOf } from "./_dma_test_util.ts";

const PS = 4096, MiB = 2 ** 20;
const RW = IOPTE_READ | IOPTE_WRITE;

/** Four devices: 24-bit ISA-like (one segment, 64 KiB boundary), 30-bit, 32-bit, 64-bit. */
function world() {
  return iommuWorld({
    isa: { maxAddress: DMA_24BIT, boundary: 65536, maxSegments: 1, maxSegmentSize: 65536 },
    cap: { maxAddress: DMA_30BIT, alignment: 65536, maxSegments: 1 },
    nic: { maxAddress: DMA_32BIT, maxSegments: 8, maxSegmentSize: 4096 },
    nvme: { alignment: 4, boundary: PS, maxSegmentSize: PS },
  }, 128);
}

function bytes(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 13 + seed) & 0xff;
  return b;
}

function checkAll(w: ReturnType<typeof world>): void {
  w.dma.check();
  w.iommu.check();
  w.m.check();
}

test("iommu driver: each device gets a domain whose arena lies below its limit", () => {
  const w = world();
  const d = (name: string) => w.iommu.domainOf(name)!;
  assert.deepEqual([d("isa").base, d("isa").size], [PS, 2 ** 24 - PS]);
  assert.deepEqual([d("cap").base, d("cap").size], [PS, 2 ** 30 - PS]);
  assert.deepEqual([d("nic").base, d("nic").size], [PS, 2 ** 32 - PS]);
  assert.deepEqual([d("nvme").base, d("nvme").size], [PS, 2 ** 48 - PS]);
  assert.deepEqual(w.iommu.domains.map((x) => x.id), [1, 2, 3, 4]);
  assert.equal(d("isa").arena.qcacheMax, IOVA_QCACHE_MAX);
  assert.equal(w.iommu.domainOf("nothing"), null);
  assert.equal(w.m.iommu!.enabled, true);
  assert.equal(d("isa").tablePages, 1);
  checkAll(w);
});

test("iommu: a 24-bit device reaches a buffer anywhere in RAM without a bounce page", () => {
  const w = world();
  const port = w.ports.isa!;
  const tag = w.dma.tagForDevice(w.m.device("isa")!);
  assert.equal(tag.bouncePages, 0, "a translated tag reserves nothing");
  assert.equal(tag.domain, w.iommu.domainOf("isa"));
  assert.match(tag.describe(), /I\/O virtual \(IOMMU domain 1\)$/);
  const map = w.dma.createMap(tag, 65536, 1);
  // Three scattered frames, two of them above 16 MiB.
  const va = w.buffer([0x3000, 0x1500, 0x2800]);
  const data = bytes(3 * PS - 300, 1);
  w.pmap.write(va + 100, data);
  w.dma.load(map, va + 100, data.length);
  assert.equal(map.nsegs, 1, "scattered pages become one segment");
  assert.equal(map.bouncedBytes, 0);
  const [addr, len] = segsOf(map)[0]!;
  assert.equal(len, data.length);
  assert.ok(addr + len <= 2 ** 24 && addr % PS === 100);
  assert.equal(segmentProblem(tag.limits, addr, len), null);
  checkAll(w);
  // The device reads the buffer through its I/O virtual addresses, and writes it.
  w.dma.sync(map, BUS_DMASYNC_PREWRITE);
  const got = new Uint8Array(len);
  assert.equal(port.readSg(map.segs, map.nsegs, got), len);
  assert.deepEqual(got, data);
  const back = bytes(len, 9);
  assert.equal(port.writeSg(map.segs, map.nsegs, back), len);
  w.dma.sync(map, BUS_DMASYNC_POSTREAD);
  const seen = new Uint8Array(len);
  w.pmap.read(va + 100, seen);
  assert.deepEqual(seen, back);
  assert.equal(w.dma.stats.bouncedBytes, 0);
  // Unload unmaps and invalidates: the device's next access faults.
  const domain = w.iommu.domainOf("isa")!;
  const inv = w.iommu.invalidations;
  assert.equal(domain.mappedPages, 3);
  w.dma.unload(map);
  assert.equal(domain.mappedPages, 0);
  assert.equal(domain.inUse, 0);
  assert.equal(w.iommu.invalidations, inv + 1);
  assert.equal(port.readSg(new Float64Array([addr, len]), 1, got), -1);
  assert.equal(port.lastFault?.kind, "translation");
  assert.equal(w.m.iommu!.lastFault?.device, "isa");
  checkAll(w);
});

test("iommu: every load kind maps its pages, and the device moves the right bytes", () => {
  const w = world();
  const port = w.ports.nic!;
  const tag = w.dma.tagForDevice(w.m.device("nic")!);
  const map = w.dma.createMap(tag, 32768, 8);
  const check = (want: Uint8Array) => {
    const got = new Uint8Array(map.mapsize);
    assert.equal(port.readSg(map.segs, map.nsegs, got), map.mapsize);
    assert.deepEqual(got, want);
    for (const [a, n] of segsOf(map)) assert.ok(a + n <= 2 ** 32 && n <= 4096);
    checkAll(w);
    w.dma.unload(map);
  };
  // A scatter list of two kernel buffers.
  const a = w.buffer([0x2000]), b = w.buffer([0x3800, 0x3802]);
  w.pmap.write(a + 10, bytes(50, 1));
  w.pmap.write(b + 4000, bytes(300, 2));
  w.dma.loadSg(map, [[a + 10, 50], [b + 4000, 300]]);
  assert.equal(map.nsegs, 2, "a stretch per buffer, the second across two frames");
  check(new Uint8Array([...bytes(50, 1), ...bytes(300, 2)]));
  // Physical ranges and a page list.
  w.m.ram.write(0x2400000, bytes(PS, 3));
  w.m.ram.write(0x2100000, bytes(PS, 4));
  w.dma.loadPhys(map, [[0x2400000, PS], [0x2100000, PS]]);
  assert.equal(
    mapLoad(map).iovaCached,
    true,
    "no alignment or boundary: the quantum caches serve it",
  );
  const cached = w.iommu.domainOf("nic")!.arena.summary().qcaches.reduce((n, q) => n + q.alloc, 0);
  assert.ok(cached > 0, "allocated from a quantum cache");
  assert.equal(map.nsegs, 2);
  assert.equal(map.segAddr(1), map.segAddr(0) + PS, "two frames, contiguous I/O addresses");
  check(new Uint8Array([...bytes(PS, 3), ...bytes(PS, 4)]));
  const list = pglistAlloc(w.uvm, 3 * PS, 0, 64 * MiB, PS, 0, 3);
  const runs = { runs: list.runs() };
  const pa0 = runs.runs[0]![0] * PS;
  w.m.ram.write(pa0, bytes(3 * PS, 5));
  w.dma.loadPages(map, runs, 100, 2 * PS);
  check(bytes(3 * PS, 5).subarray(100, 100 + 2 * PS));
  // DMA memory of a translated tag comes from anywhere in RAM.
  const mem = w.dma.dmamemAlloc(tag, 3 * PS);
  w.pmap.write(mem.kva, bytes(3 * PS, 6));
  w.dma.loadMemory(map, mem);
  check(bytes(3 * PS, 6));
  w.dma.dmamemFree(mem);
  assert.equal(w.iommu.domainOf("nic")!.mappedPages, 0);
  assert.equal(w.dma.stats.bouncedBytes, 0);
});

test("iommu: the tag's alignment and boundary are allocation constraints, and its window narrows the arena", () => {
  const w = world();
  // 64 KiB alignment (the capture device): the frame starts on 64 KiB.
  const cap = w.dma.tagForDevice(w.m.device("cap")!);
  const capMap = w.dma.createMap(cap, 16 * MiB, 1);
  const frame = w.buffer([0x3001, 0x1001, 0x2001]);
  w.dma.load(capMap, frame, 3 * PS);
  assert.equal(capMap.segAddr(0) % 65536, 0);
  assert.equal(capMap.nsegs, 1);
  // A piece off the alignment in its page cannot be fixed by any address.
  w.dma.unload(capMap);
  assert.equal(code(() => w.dma.load(capMap, frame + 16, PS)), "EINVAL");
  assert.equal(capMap.mapsize, 0);
  // 64 KiB boundary and one segment: 15 scattered pages never cross it.
  const isa = w.dma.tagForDevice(w.m.device("isa")!);
  const isaMap = w.dma.createMap(isa, 65536, 1);
  const pages = Array.from({ length: 15 }, (_, i) => 0x1000 + 37 * i);
  const buf = w.buffer(pages);
  for (let round = 0; round < 20; round++) {
    w.dma.load(isaMap, buf + 7, 15 * PS - 7);
    assert.equal(mapLoad(isaMap).iovaCached, false, "a boundary is an xalloc constraint");
    const a = isaMap.segAddr(0);
    assert.equal(Math.floor(a / 65536), Math.floor((a + 15 * PS - 8) / 65536));
    w.dma.unload(isaMap);
  }
  // A tag narrowed below its device's limit gets addresses below its own.
  const low = w.dma.createTag("isa low", { maxAddress: 2 * MiB - 1 }, { parent: isa });
  assert.equal(low.domain, isa.domain);
  const lowMap = w.dma.createMap(low, 65536, 1);
  const big = w.buffer([0x3100, 0x3101, 0x3102]);
  w.dma.load(lowMap, big, 3 * PS);
  assert.ok(lowMap.segAddr(0) + 3 * PS <= 2 * MiB);
  checkAll(w);
  w.dma.unload(lowMap);
});

test("iommu: a piece the last segment cannot take starts a stretch of its own, aligned", () => {
  // Segments start on 8 KiB and hold 16 KiB: a page, then four contiguous pages.
  const w = iommuWorld({ al: { alignment: 8192, maxSegmentSize: 16384, maxSegments: 4 } });
  const tag = w.dma.tagForDevice(w.m.device("al")!);
  const map = w.dma.createMap(tag, 65536, 4);
  const va = w.buffer([0x2100, 0x2200, 0x2201, 0x2202, 0x2203]);
  const data = bytes(5 * PS, 3);
  w.pmap.write(va, data);
  w.dma.load(map, va, 5 * PS);
  const [a, b] = segsOf(map);
  assert.equal(map.nsegs, 2);
  assert.equal(a![1], PS);
  assert.deepEqual([b![0] - a![0], b![1]], [8192, 4 * PS], "the second on the next 8 KiB");
  for (const [addr, n] of segsOf(map)) assert.equal(segmentProblem(tag.limits, addr, n), null);
  assert.equal(w.iommu.domainOf("al")!.mappedPages, 5, "the page between them is not mapped");
  const got = new Uint8Array(5 * PS);
  assert.equal(w.ports.al!.readSg(map.segs, map.nsegs, got), 5 * PS);
  assert.deepEqual(got, data);
  w.dma.check();
  w.iommu.check();
  w.dma.unload(map);
  assert.equal(w.iommu.domainOf("al")!.mappedPages, 0);
});

test("iommu: a layout that needs more segments than the map is EFBIG; a full arena is ENOMEM", () => {
  const w = iommuWorld({ tiny: { maxAddress: 4 * PS - 1, maxSegments: 2 } });
  assert.equal(w.iommu.domainOf("tiny")!.arena.qcacheMax, 0, "too small to spare slabs");
  const tag = w.dma.tagForDevice(w.m.device("tiny")!);
  const map = w.dma.createMap(tag, 8 * PS, 2);
  const a = w.buffer([0x2000]), b = w.buffer([0x2002]), c = w.buffer([0x2004]);
  // Three sub-page buffers are three stretches: three segments.
  assert.equal(code(() => w.dma.loadSg(map, [[a, 10], [b + 5, 10], [c, 10]])), "EFBIG");
  assert.equal(w.dma.stats.efbig, 1);
  // The arena holds pages 1 to 3: a fourth page does not fit.
  const four = w.buffer([0x2010, 0x2011, 0x2012, 0x2013]);
  assert.equal(code(() => w.dma.load(map, four, 4 * PS)), "ENOMEM");
  assert.equal(map.mapsize, 0);
  w.dma.load(map, four, 3 * PS);
  const other = w.dma.createMap(tag, PS, 1);
  assert.equal(code(() => w.dma.load(other, a, 1)), "ENOMEM");
  assert.equal(w.iommu.domainOf("tiny")!.inUse, 3 * PS);
  checkAll(w);
  w.dma.unload(map);
  w.dma.load(other, a, 1);
  w.dma.unload(other);
  checkAll(w);
});

test("iommu: a map with bounceBuffer bounces a layout no address fixes, and maps the bounce space", () => {
  const w = world();
  const port = w.ports.isa!;
  const isa = w.dma.tagForDevice(w.m.device("isa")!, {}, { bouncePages: 17 });
  const map = w.dma.createMap(isa, 65536, 1, { bounceBuffer: true });
  // 64 KiB from 10 bytes into a page: no 64 KiB window holds it as one segment.
  const pfns = Array.from({ length: 17 }, (_, i) => 0x2000 + 3 * i);
  const va = w.buffer(pfns);
  const data = bytes(65536, 7);
  w.pmap.write(va + 10, data);
  w.dma.load(map, va + 10, 65536);
  assert.equal(map.nsegs, 1);
  assert.equal(map.bouncedBytes, 65536);
  assert.ok(map.segAddr(0) < 2 ** 24 && map.segAddr(0) % 65536 === 0);
  w.dma.sync(map, BUS_DMASYNC_PREWRITE);
  const got = new Uint8Array(65536);
  assert.equal(port.readSg(map.segs, 1, got), 65536);
  assert.deepEqual(got, data);
  checkAll(w);
  w.dma.sync(map, BUS_DMASYNC_POSTWRITE);
  w.dma.unload(map);
  // What fits goes through in place.
  w.dma.load(map, va + 10, 1000);
  assert.equal(map.bouncedBytes, 0);
  w.dma.unload(map);
  checkAll(w);
});

test("iommu: DMA-API debugging sees through the IOMMU: the CPU side is the RAM, the device side the I/O addresses", () => {
  const w = world();
  const debug = new DmaDebug(w.backend);
  w.dma.debug = debug;
  debug.watch(w.ports.nic!);
  const tag = w.dma.tagForDevice(w.m.device("nic")!);
  const map = w.dma.createMap(tag, 32768, 8);
  const va = w.buffer([0x2500, 0x2200]);
  w.dma.load(map, va, 2 * PS);
  w.dma.sync(map, BUS_DMASYNC_PREREAD);
  assert.equal(w.ports.nic!.writeSg(map.segs, map.nsegs, bytes(2 * PS, 1)), 2 * PS);
  // The CPU reads the buffer (its RAM) before the POSTREAD sync.
  debug.cpu("read", va, 16);
  assert.equal(debug.violations, 1);
  assert.equal(debug.list[0]!.kind, "no-postread");
  w.dma.sync(map, BUS_DMASYNC_POSTREAD);
  // The device reads what the CPU wrote without a PREWRITE sync.
  debug.cpu("write", va + PS, 8);
  w.ports.nic!.readSg(map.segs, map.nsegs, new Uint8Array(2 * PS));
  assert.equal(debug.list[1]!.kind, "no-prewrite");
  assert.equal(debug.violations, 2);
  w.dma.unload(map);
});

test("iommu driver: domains refuse bad input by name and change nothing", () => {
  const w = world();
  const d = w.iommu.domainOf("nic")!;
  const frames = new Float64Array([0x2000000, 0x2001000]);
  // A map the arena does not cover: below it, past it, misaligned.
  for (const at of [0, 2 ** 32 - PS, 0x10800]) {
    assert.throws(
      () => d.mapPages(at, frames, 2, RW),
      (e: KernelError) =>
        e.code === "EINVAL" && /arena covers \[0x1000, 0x100000000\)/.test(e.message),
    );
  }
  // Hostile types everywhere.
  for (const bad of [1n, "0x10000", NaN, undefined, null, true, -PS, 1.5]) {
    assert.equal(code(() => d.mapPages(bad as number, frames, 1, RW)), "EINVAL");
    assert.equal(code(() => d.mapPages(0x10000, frames, bad as number, RW)), "EINVAL");
    assert.equal(code(() => d.mapPages(0x10000, frames, 1, bad as number)), "EINVAL");
    assert.equal(code(() => d.mapPages(0x10000, [bad as number], 1, RW)), "EINVAL");
    assert.equal(code(() => d.unmap(bad as number, PS)), "EINVAL");
    assert.equal(code(() => d.unmap(0x10000, bad as number)), "EINVAL");
    assert.equal(code(() => w.iommu.attach(bad as number, d)), "EINVAL");
    assert.equal(d.extract(bad as number), -1);
  }
  assert.equal(code(() => d.mapPages(0x10000, frames, 1, 4)), "EINVAL");
  assert.equal(code(() => d.mapPages(0x10000, frames, 3, RW)), "EINVAL", "frames too short");
  assert.equal(code(() => d.mapPages(0x10000, null as unknown as number[], 1, RW)), "EINVAL");
  assert.equal(d.mappedPages, 0);
  assert.equal(d.tablePages, 1, "no table was made");
  // An unmap of something never mapped.
  assert.throws(
    () => d.unmap(0x10000, PS),
    (e: KernelError) =>
      e.code === "BADFREE" && /0x10000 of domain 3, which is not mapped/.test(e.message),
  );
  d.mapPages(0x10000, frames, 2, RW);
  assert.equal(code(() => d.unmap(0x10000, 3 * PS)), "BADFREE", "one page of three is not mapped");
  assert.equal(code(() => d.mapPages(0x11000, frames, 1, RW)), "EBUSY");
  assert.equal(d.mappedPages, 2);
  assert.equal(d.extract(0x11008), 0x2001008);
  assert.equal(d.extract(0x11008, true), 0x2001008);
  d.unmap(0x10000, 2 * PS);
  // A read-only page: extract for a write says no, and the device's write faults.
  d.mapPages(0x10000, frames, 1, IOPTE_READ);
  assert.equal(d.extract(0x10000, true), -1);
  assert.equal(w.ports.nic!.write(0x10000, bytes(8, 1)), false);
  assert.equal(w.m.iommu!.lastFault?.reason, "read-only");
  d.unmap(0x10000, PS);
  // A source outside the scope, a domain that is not the driver's.
  assert.equal(code(() => w.iommu.attach(9, d)), "EINVAL");
  assert.equal(code(() => w.iommu.attach(0, {} as typeof d)), "EINVAL");
  checkAll(w);
});

test("iommu driver: a destroyed domain has no root table: attaching or mapping it is refused", () => {
  const w = world();
  const spare = w.iommu.createDomain("spare", { minAddress: 0, maxAddress: DMA_32BIT });
  assert.equal(
    code(() => w.iommu.createDomain("spare", { minAddress: 0, maxAddress: 1 })),
    "EEXIST",
  );
  assert.equal(code(() => w.iommu.createDomain("x", { minAddress: 0, maxAddress: 100 })), "EINVAL");
  assert.equal(
    code(() => w.iommu.createDomain("", { minAddress: 0, maxAddress: DMA_32BIT })),
    "EINVAL",
  );
  spare.mapPages(0x10000, [0x2000000], 1, RW);
  assert.equal(code(() => w.iommu.destroyDomain(spare)), "EBUSY");
  spare.unmap(0x10000, PS);
  const free = w.uvm.free, tables = spare.tablePages;
  assert.equal(tables, 4, "a root and three tables below it");
  w.iommu.destroyDomain(spare);
  assert.equal(w.uvm.free, free + tables, "its root and its tables came back");
  assert.equal(spare.root, 0);
  assert.throws(
    () => w.iommu.attach(0, spare),
    (e: KernelError) =>
      e.code === "EINVAL" && /domain 5 \(spare\) has no root table/.test(e.message),
  );
  assert.throws(() => spare.mapPages(0x10000, [0x2000000], 1, RW), /has no root table/);
  assert.equal(code(() => w.iommu.destroyDomain(spare)), "EINVAL");
  // The device's context is still its own domain's.
  const tag = w.dma.tagForDevice(w.m.device("isa")!);
  const map = w.dma.createMap(tag, PS, 1);
  w.dma.load(map, w.buffer([0x2100]), 64);
  assert.equal(w.ports.isa!.read(map.segAddr(0), new Uint8Array(64)), true);
  w.dma.unload(map);
  checkAll(w);
});

test("iommu driver: an IOMMU that refuses a context or is not there is an error, undone", () => {
  const w = world();
  const regs = { read32: () => 0, write32: () => {} };
  const be = { ram: w.m.ram, regs, allocTable: () => -1, freeTable: () => {} };
  assert.throws(() => new IommuDriver(be, []), (e: KernelError) => e.code === "ENODEV");
  // A table "page" outside RAM: the IOMMU refuses the root, the driver says so.
  const base = w.m.iommu!.base;
  const real = {
    read32: (o: number) => w.m.bus.read32(base + o),
    write32: (o: number, v: number) => w.m.bus.write32(base + o, v),
  };
  const freed: number[] = [];
  assert.throws(
    () =>
      new IommuDriver(
        {
          ram: w.m.ram,
          regs: real,
          allocTable: () => 0x2000800,
          freeTable: (pa) => freed.push(pa),
        },
        [{ name: "isa2", source: 0, limits: { minAddress: 0, maxAddress: DMA_24BIT } }],
      ),
    (e: KernelError) => e.code === "ENXIO" && /bad root table/.test(e.message),
  );
  assert.deepEqual(freed, [0x2000800], "what it took is given back");
  const none = new IommuDriver({ ...be, regs: real }, []);
  assert.equal(
    code(() => none.createDomain("d", { minAddress: 0, maxAddress: DMA_24BIT })),
    "ENOMEM",
  );
});

test("iommu driver: shutdown gives every table back, and counts what a leaked map still holds", () => {
  const w = world();
  const tag = w.dma.tagForDevice(w.m.device("nvme")!);
  const map = w.dma.createMap(tag, 8 * PS, 9);
  w.dma.load(map, w.buffer([0x2200, 0x2210]), 2 * PS);
  const s = w.iommu.summary();
  assert.equal(s.maps, 1);
  assert.equal(s.mappedPages, 2);
  assert.ok(s.tablePages >= 4 + 3, "four roots and the three tables below one of them");
  assert.equal(s.domains.length, 4);
  assert.equal(s.domains[3]!.inUse, 2 * PS);
  assert.equal(s.domains[3]!.arena.name, "iova nvme");
  const leak = w.iommu.shutdown();
  assert.equal(leak.iovaBytes, 2 * PS);
  assert.equal(leak.tablePages, 4, "the root and three tables of the domain that still maps");
  assert.equal(w.m.iommu!.enabled, false);
  // A clean one.
  const v = world();
  const free = v.uvm.free;
  const t2 = v.dma.tagForDevice(v.m.device("nvme")!);
  const m2 = v.dma.createMap(t2, 8 * PS, 9);
  v.dma.load(m2, v.buffer([0x2200]), PS);
  v.dma.unload(m2);
  assert.deepEqual(v.iommu.shutdown(), { iovaBytes: 0, tablePages: 0 });
  assert.equal(
    v.uvm.free,
    free - 1 + 4,
    "every table came back, and the four roots (less the buffer)",
  );
});

test("iommu: mappedFor says whether a device reaches what a driver programmed", () => {
  const w = world();
  const tag = w.dma.tagForDevice(w.m.device("nic")!);
  const map = w.dma.createMap(tag, 32768, 8);
  const va = w.buffer([0x2300]);
  w.dma.load(map, va, 100);
  assert.equal(w.dma.mappedFor("nic", map.segs, map.nsegs), true);
  assert.equal(w.dma.mappedFor("nic", new Float64Array([0x2300 * PS, 100]), 1), false);
  assert.equal(w.dma.mappedFor("nic", new Float64Array([map.segAddr(0), PS + 1]), 1), false);
  assert.equal(w.dma.mappedFor("not behind it", new Float64Array([0, 1]), 1), true);
  // A tag with no parent hands out physical addresses, which the domain does not map.
  const plain = w.dma.createTag("physical", {}, { device: "nic", bouncePages: 0 });
  assert.equal(plain.domain, null);
  const pm = w.dma.createMap(plain, PS, 1);
  w.dma.load(pm, va, 100);
  assert.equal(pm.segAddr(0), 0x2300 * PS);
  assert.equal(w.ports.nic!.read(pm.segAddr(0), new Uint8Array(100)), false);
  assert.equal(w.m.iommu!.lastFault?.reason, "not-present");
  w.dma.unload(pm);
  w.dma.unload(map);
});

test("iommu: random loads of every kind through random tags carry the data and keep every check", () => {
  const w = world();
  const rng = new Mulberry32(41);
  const names = ["isa", "cap", "nic", "nvme"] as const;
  const tags = names.map((n) => w.dma.tagForDevice(w.m.device(n)!, {}, { bouncePages: 17 }));
  const maps = tags.map((t) =>
    w.dma.createMap(t, Math.min(t.maxTransfer, 65536), Math.min(t.maxSegments, 17), {
      bounceBuffer: true,
    })
  );
  // A pool of scattered frames above 16 MiB and below, for buffers.
  const frames = Array.from({ length: 64 }, (_, i) => (i % 2 === 0 ? 0x1100 : 0x300) + 5 * i);
  const va = w.buffer(frames);
  let loads = 0, refused = 0;
  for (let step = 0; step < 600; step++) {
    const i = rng.below(4), map = maps[i]!, port = w.ports[names[i]!]!;
    if (map.mapsize !== 0) {
      w.dma.unload(map);
    } else {
      const off = i === 1 ? 0 : rng.below(2) === 0 ? 0 : 4 * rng.below(1000);
      const len = 1 + rng.below(Math.min(map.maxSize, 64 * PS - off) - 1);
      const data = bytes(len, step);
      w.pmap.write(va + off, data);
      const kind = rng.below(3);
      const c = code(() => {
        if (kind === 0) w.dma.load(map, va + off, len);
        else if (kind === 1) w.dma.loadSg(map, [[va + off, len]]);
        else {
          const list: [number, number][] = [];
          for (let o = off, left = len; left > 0;) {
            const n = Math.min(left, PS - (o % PS));
            list.push([frames[Math.floor(o / PS)]! * PS + (o % PS), n]);
            o += n;
            left -= n;
          }
          w.dma.loadPhys(map, list);
        }
      });
      if (c === null) {
        loads++;
        for (const [a, n] of segsOf(map)) assert.equal(segmentProblem(map.tag.limits, a, n), null);
        w.dma.sync(map, BUS_DMASYNC_PREWRITE);
        const got = new Uint8Array(len);
        assert.equal(port.readSg(map.segs, map.nsegs, got), len, `step ${step}`);
        assert.deepEqual(got, data, `step ${step}`);
      } else {
        refused++;
        assert.ok(["EFBIG", "EINVAL"].includes(c), `step ${step}: ${c}`);
        assert.equal(map.mapsize, 0);
      }
    }
    checkAll(w);
  }
  for (const map of maps) if (map.mapsize !== 0) w.dma.unload(map);
  for (const d of w.iommu.domains) {
    assert.equal(d.mappedPages, 0);
    assert.equal(d.inUse, 0);
  }
  assert.ok(loads > 200 && refused > 0, `${loads} loads, ${refused} refused`);
  assert.equal(w.m.iommu!.faults, 0);
  checkAll(w);
});
