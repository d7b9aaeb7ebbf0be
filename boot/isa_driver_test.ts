import { test } from "node:test";
import assert from "node:assert/strict";
import { createMachine, type DmaPort, fnv1a } from "../machine/mod.ts";
import { Kernel } from "./kernel.ts";
import { KernelError } from "../mm/errors.ts";
import { mapLoad } from "../mm/bus_dma.ts";
import { IsaDmaModel, IsaDriver } from "../devices/mod.ts";
import { NO_LEAKS } from "./_test_util.ts";

const MiB = 2 ** 20;

function boot(
  opts: { preset?: "isa" | "pc"; ramSize?: number; ignoreTags?: boolean; dmaDebug?: boolean } = {},
) {
  const preset = opts.preset ?? "pc";
  const m = createMachine({
    preset,
    ramSize: preset === "pc" ? opts.ramSize ?? 64 * MiB : undefined,
  });
  new IsaDmaModel(m);
  const lines: string[] = [];
  const k = new Kernel(m, {
    ignoreTags: opts.ignoreTags,
    dmaDebug: opts.dmaDebug,
    log: (l) => lines.push(l),
  });
  const d = k.drivers[0] as IsaDriver;
  assert.ok(d instanceof IsaDriver);
  const port: DmaPort = m.devices[0]!.port;
  return { m, k, d, port, lines };
}

function bytes(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 167 + seed * 13 + (i >> 8)) & 0xff;
  return b;
}

function readBack(k: Kernel, va: number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  k.pmap.read(va, b);
  return b;
}

test("isa driver: the tag is the 8237's and its bounce reservation sits below 16 MiB", () => {
  const { k, d, lines } = boot();
  assert.equal(d.tag.maxAddress, 2 ** 24 - 1);
  assert.equal(d.tag.boundary, 65536);
  assert.equal(d.tag.maxSegments, 1);
  assert.equal(d.tag.maxSegmentSize, 65536);
  assert.equal(d.tag.bouncePages, 17);
  const pool = k.busDma.bouncePool;
  assert.ok(pool.base + pool.pages * 4096 <= 16 * MiB);
  assert.deepEqual(pool.tags, [{ tag: "isa0", pages: 17, inUse: 0 }]);
  assert.equal(d.map.bounceBuffer, true);
  assert.equal(d.map.maxSegs, 1);
  assert.ok(lines.some((l) => l.includes("isa0 dma: window [0x0, 0xffffff]")));
  assert.ok(lines.some((l) => l.startsWith("bus_dma: bounce pool of 64 pages")));
  k.check();
  assert.deepEqual(k.shutdown(), NO_LEAKS);
});

test("isa driver: play, record and fill kmem buffers above 16 MiB through bounce pages", async () => {
  const { k, d, port } = boot({ dmaDebug: true });
  for (const len of [1, 4096, 10000, 65536]) {
    const a = k.kmem.alloc(len), b = k.kmem.alloc(len);
    assert.ok(k.pmap.extract(a) >= 16 * MiB, "kmem pages lie past the channel's reach");
    const data = bytes(len, len);
    k.pmap.write(a, data);
    const before = d.stats();
    assert.equal(await d.transfer("play", a, len), "ok");
    assert.equal(await d.transfer("record", b, len), "ok");
    assert.deepEqual(readBack(k, b, len), data);
    assert.equal(await d.transfer("fill", b, len, 0x33), "ok");
    const filled = readBack(k, b, len);
    for (let i = 0; i < len; i++) assert.equal(filled[i], (0x33 + i) & 0xff);
    const s = d.stats();
    assert.equal(s.transfers - before.transfers, 3);
    assert.equal(s.bytes - before.bytes, 3 * len);
    assert.equal(s.bouncedBytes - before.bouncedBytes, 3 * len, "every byte went through bounce");
    k.kmem.free(a, len);
    k.kmem.free(b, len);
  }
  assert.equal(port.faults, 0);
  assert.equal(d.stats().mismatches, 0);
  assert.equal(k.dmaDebugSummary().violations, 0);
  k.check();
  assert.deepEqual(k.shutdown(), NO_LEAKS);
});

test("isa driver: pages out of reach bounce as one run; a buffer in reach but scattered bounces whole", async () => {
  const { k, d } = boot();
  const va = k.kmem.alloc(3 * 4096);
  const bd = k.busDma;
  bd.load(d.map, va + 100, 200); // one page out of reach: one bounce page
  assert.deepEqual([d.map.nsegs, mapLoad(d.map).nbounce, mapLoad(d.map).nruns], [1, 1, 1]);
  assert.ok(d.map.segAddr(0) < 16 * MiB);
  bd.unload(d.map);
  bd.load(d.map, va + 100, 8000); // two pages out of reach: one run, one segment
  assert.deepEqual([d.map.nsegs, mapLoad(d.map).nruns, d.map.bouncedBytes], [1, 1, 8000]);
  bd.unload(d.map);
  k.pmap.write(va + 100, bytes(200, 9));
  assert.equal(await d.transfer("play", va + 100, 200), "ok");
  assert.equal(d.stats().bouncedBytes, 200);
  k.kmem.free(va, 3 * 4096);
  assert.deepEqual(k.shutdown(), NO_LEAKS);
  // On the isa machine all RAM is in reach: two kmem pages that are not
  // adjacent would be two segments, so the map's bounceBuffer bounces them whole.
  const isa = boot({ preset: "isa" });
  const two = isa.k.kmem.alloc(8192);
  const p0 = isa.k.pmap.extract(two), p1 = isa.k.pmap.extract(two + 4096);
  isa.k.busDma.load(isa.d.map, two, 8192);
  if (p1 !== p0 + 4096) assert.equal(isa.d.map.bouncedBytes, 8192);
  else assert.equal(isa.d.map.bouncedBytes, 0);
  assert.equal(isa.d.map.nsegs, 1);
  isa.k.busDma.unload(isa.d.map);
  isa.k.kmem.free(two, 8192);
  assert.deepEqual(isa.k.shutdown(), NO_LEAKS);
});

test("isa driver: DMA memory and buffers the channel reaches are used in place", async () => {
  const { k, d } = boot();
  const src = d.allocBuffer(30000), dst = d.allocBuffer(30000);
  const [pa, n] = src.segs[0]!;
  assert.ok(pa + n <= 16 * MiB && Math.floor(pa / 65536) === Math.floor((pa + n - 1) / 65536));
  const data = bytes(30000, 3);
  k.pmap.write(src.kva, data);
  assert.equal(await d.transferMemory("play", src), "ok");
  assert.equal(await d.transferMemory("record", dst, 30000), "ok");
  assert.deepEqual(readBack(k, dst.kva, 30000), data);
  assert.equal(d.stats().bouncedBytes, 0);
  assert.equal(src.size, 32768);
  assert.equal(d.stats().bytes, 32768 + 30000); // play took the whole DMA memory
  d.freeBuffer(src);
  d.freeBuffer(dst);
  assert.throws(() => d.freeBuffer(src), (e) => e instanceof KernelError && e.code === "BADFREE");
  k.check();
  assert.deepEqual(k.shutdown(), NO_LEAKS);

  // On the isa machine all RAM is below 16 MiB: a one-page kmem buffer needs no bounce.
  const isa = boot({ preset: "isa" });
  assert.equal(isa.d.tag.bouncePages, 17, "a scattered buffer may still need the bounce buffer");
  const va = isa.k.kmem.alloc(1000);
  isa.k.pmap.write(va, bytes(1000, 1));
  assert.equal(await isa.d.transfer("play", va, 1000), "ok");
  assert.equal(isa.d.stats().bouncedBytes, 0);
  isa.k.kmem.free(va, 1000);
  assert.deepEqual(isa.k.shutdown(), NO_LEAKS);
});

test("isa driver: the checksum the device reports is checked against the buffer", async () => {
  const { k, d, m } = boot();
  const va = k.kmem.alloc(5000);
  const data = bytes(5000, 5);
  k.pmap.write(va, data);
  assert.equal(await d.transfer("play", va, 5000), "ok");
  const isa = m.devices[0]!;
  assert.equal(m.bus.read32(isa.base + 0x20), fnv1a(data));
  k.kmem.free(va, 5000);
  assert.deepEqual(k.shutdown(), NO_LEAKS);
});

test("isa driver: with tags ignored a buffer above 16 MiB reaches the device, which faults", async () => {
  const { k, d, port, lines } = boot({ ignoreTags: true });
  assert.ok(d.ignoreTags);
  assert.equal(d.tag.bouncePages, 0);
  assert.equal(d.map.bounceBuffer, false);
  const va = k.kmem.alloc(100);
  assert.ok(k.pmap.extract(va) >= 16 * MiB);
  k.pmap.fill(va, 100, 0xee);
  assert.equal(await d.transfer("fill", va, 100, 1), "fault");
  assert.ok(readBack(k, va, 100).every((b) => b === 0xee), "nothing was written");
  assert.equal(port.faults, 1);
  assert.deepEqual(
    [d.stats().faults, d.stats().breaches, d.stats().caught, d.stats().transfers],
    [1, 1, 1, 0],
  );
  assert.match(d.lastFault!, /^access fault at 0x[0-9a-f]+ \(100 bytes\)$/);
  assert.ok(lines.some((l) => l.startsWith("isa0: DMA access fault")));
  // DMA memory from the permissive tag lands past 16 MiB too.
  const mem = d.allocBuffer(4096);
  assert.equal(await d.transferMemory("play", mem), "fault");
  assert.equal(d.stats().faults, 2);
  // Pages that are not contiguous cannot be the channel's one segment: EFBIG.
  const two = k.kmem.alloc(8192);
  if (k.pmap.extract(two + 4096) !== k.pmap.extract(two) + 4096) {
    await assert.rejects(
      d.transfer("play", two, 8192),
      (e) => e instanceof KernelError && e.code === "EFBIG",
    );
  }
  k.kmem.free(two, 8192);
  k.kmem.free(va, 100);
  assert.deepEqual(k.dmaProblems(), [], "every breach was caught");
  k.check();
  assert.deepEqual(k.shutdown(), NO_LEAKS, "detach freed the DMA memory left allocated");
});

test("isa driver: bad arguments are refused and change nothing", async () => {
  const { k, d, port } = boot();
  const va = k.kmem.alloc(100);
  const stats = d.stats(), dma = k.busDma.stats, counters = port.counters();
  const bad: [() => unknown, RegExp][] = [
    [() => d.transfer("stop" as "play", va, 10), /cmd/],
    [() => d.transfer("play", va, 0), /len/],
    [() => d.transfer("play", va, 65537), /len/],
    [() => d.transfer("fill", va, 10, 256), /pattern/],
    [() => d.transfer("play", 1.5, 10), /va/],
    [() => d.transfer("play", 4096n as unknown as number, 10), /va/],
    [() => d.transfer("play", va, "10" as unknown as number), /len/],
    [() => d.transfer(null as unknown as "play", va, 10), /cmd/],
    [() => d.transferMemory("play", {} as never), /not this driver's/],
  ];
  for (const [f, what] of bad) {
    await assert.rejects(
      async () => await f(),
      (e) => e instanceof KernelError && e.code === "EINVAL" && what.test(e.message),
    );
  }
  for (const size of [0, 65537, NaN, undefined]) {
    assert.throws(() => d.allocBuffer(size as number), /size/);
  }
  // An unmapped buffer: the load refuses it.
  await assert.rejects(
    d.transfer("play", 4096, 10),
    (e) => e instanceof KernelError && e.code === "EFAULT",
  );
  assert.deepEqual(d.stats(), stats);
  assert.deepEqual(port.counters(), counters);
  assert.equal(k.busDma.stats.loads, dma.loads);
  assert.equal(d.map.mapsize, 0);
  k.kmem.free(va, 100);
  k.check();
  assert.deepEqual(k.shutdown(), NO_LEAKS);
  await assert.rejects(
    d.transfer("play", va, 10),
    (e) => e instanceof KernelError && e.code === "ENXIO",
  );
});

test("isa driver: detach gives back the map, the tag's reservation, DMA memory and the line", () => {
  const { k, d, m } = boot();
  const free = k.uvm.free;
  d.allocBuffer(8192);
  d.detach();
  d.detach(); // idempotent
  assert.ok(d.detached);
  assert.ok(d.map.destroyed);
  assert.equal(k.busDma.liveMemory, 0);
  assert.equal(k.busDma.bouncePool.reserved, 0, "the reservation went back to the pool");
  assert.equal(k.uvm.free, free);
  m.irq.establish(m.devices[0]!.irq, () => {}); // the line is free again
  m.irq.disestablish(m.devices[0]!.irq);
  assert.deepEqual(k.shutdown(), NO_LEAKS);
});

test("isa driver: a device that moves wrong bytes is caught by the checksum and record checks", async () => {
  const { k, d, port } = boot({ preset: "isa" });
  const va = k.kmem.alloc(2000);
  k.pmap.write(va, bytes(2000, 4));
  const read = port.read.bind(port), write = port.write.bind(port);
  port.read = (pa, dst, o, n) => {
    const ok = read(pa, dst, o, n);
    dst[o! + 10]! ^= 1; // what the device took in is not what memory held
    return ok;
  };
  assert.equal(await d.transfer("play", va, 2000), "mismatch");
  port.read = read;
  assert.equal(await d.transfer("play", va, 2000), "ok");
  port.write = (pa, src, o, n) => {
    src[o! + 1999]! ^= 2;
    const ok = write(pa, src, o, n);
    src[o! + 1999]! ^= 2;
    return ok;
  };
  assert.equal(await d.transfer("record", va, 2000), "mismatch");
  port.write = write;
  assert.equal(await d.transfer("record", va, 2000), "ok");
  assert.equal(d.stats().mismatches, 2);
  assert.equal(d.map.mapsize, 0);
  k.kmem.free(va, 2000);
  assert.deepEqual(k.shutdown(), NO_LEAKS);
});
