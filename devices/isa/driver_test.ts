import { test } from "node:test";
import assert from "node:assert/strict";
import { createMachine, type DmaPort, fnv1a } from "../../machine/mod.ts";
import { Kernel } from "../../boot/kernel.ts";
import { KernelError } from "../../mm/errors.ts";
import { IsaDmaModel } from "./model.ts";
import { ISA_BOUNCE_PAGES, IsaDriver } from "./driver.ts";

const MiB = 2 ** 20;

function boot(opts: { preset?: "isa" | "pc"; ramSize?: number; ignoreTags?: boolean } = {}) {
  const preset = opts.preset ?? "pc";
  const m = createMachine({
    preset,
    ramSize: preset === "pc" ? opts.ramSize ?? 64 * MiB : undefined,
  });
  new IsaDmaModel(m);
  const lines: string[] = [];
  const k = new Kernel(m, { ignoreTags: opts.ignoreTags, log: (l) => lines.push(l) });
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

test("isa driver: the tag is the 8237's and a bounce pool sits below 16 MiB", () => {
  const { k, d, lines } = boot();
  assert.equal(d.tag.highAddr, 2 ** 24 - 1);
  assert.equal(d.tag.boundary, 65536);
  assert.equal(d.tag.nSegments, 1);
  assert.equal(d.tag.maxSegSize, 65536);
  const pool = k.busDma.pools.get(d.tag.highAddr)!;
  assert.equal(pool.total, ISA_BOUNCE_PAGES);
  assert.ok(pool.addr(0) < 16 * MiB);
  // The map's own bounce buffer is one segment the channel can take.
  const bb = d.map.bounceBuffer!;
  assert.equal(bb.segs.length, 1);
  assert.ok(bb.segs[0]![0] + 65536 <= 16 * MiB && bb.segs[0]![0] % 65536 === 0);
  assert.ok(lines.some((l) => l.includes("isa0 dma: window [0x0, 0xffffff]")));
  k.check();
  assert.equal(k.shutdown().pages, 0);
});

test("isa driver: play, record and fill kmem buffers above 16 MiB through the bounce buffer", () => {
  const { k, d, port } = boot();
  for (const len of [1, 4096, 10000, 65536]) {
    const a = k.kmem.alloc(len), b = k.kmem.alloc(len);
    assert.ok(k.pmap.extract(a) >= 16 * MiB, "kmem pages lie past the channel's reach");
    const data = bytes(len, len);
    k.pmap.write(a, data);
    const before = d.stats();
    assert.equal(d.transfer("play", a, len), "ok");
    assert.equal(d.transfer("record", b, len), "ok");
    assert.deepEqual(readBack(k, b, len), data);
    assert.equal(d.transfer("fill", b, len, 0x33), "ok");
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
  k.check();
  assert.deepEqual(k.shutdown(), { pages: 0, heapBytes: 0, kvaBytes: 0, ids: 0, pageLists: 0 });
});

test("isa driver: one page out of reach takes a pool page; more pages bounce whole", () => {
  const { k, d } = boot();
  const va = k.kmem.alloc(3 * 4096);
  const bd = k.busDma;
  bd.load(d.map, va + 100, 200); // one page: a bounce page stands in for it
  assert.equal(d.map.nbounce, 1);
  assert.equal(d.map.wholeVa, 0);
  assert.ok(d.map.segAddr(0) < 16 * MiB);
  bd.unload(d.map);
  bd.load(d.map, va + 100, 8000); // two pages: not one segment, so the whole buffer bounces
  assert.equal(d.map.wholeVa, va + 100);
  assert.equal(d.map.segAddr(0), d.map.bounceBuffer!.segs[0]![0]);
  bd.unload(d.map);
  k.pmap.write(va + 100, bytes(200, 9));
  assert.equal(d.transfer("play", va + 100, 200), "ok");
  assert.equal(d.stats().bouncedBytes, 200);
  k.kmem.free(va, 3 * 4096);
  k.check();
  assert.equal(k.shutdown().pages, 0);
});

test("isa driver: DMA memory and buffers the channel reaches are used in place", () => {
  const { k, d } = boot();
  const src = d.allocBuffer(30000), dst = d.allocBuffer(30000);
  const [pa, n] = src.segs[0]!;
  assert.ok(pa + n <= 16 * MiB && Math.floor(pa / 65536) === Math.floor((pa + n - 1) / 65536));
  const data = bytes(30000, 3);
  k.pmap.write(src.kva, data);
  assert.equal(d.transferMemory("play", src), "ok");
  assert.equal(d.transferMemory("record", dst, 30000), "ok");
  assert.deepEqual(readBack(k, dst.kva, 30000), data);
  assert.equal(d.stats().bouncedBytes, 0);
  assert.equal(src.size, 32768);
  assert.equal(d.stats().bytes, 32768 + 30000); // play took the whole DMA memory
  d.freeBuffer(src);
  d.freeBuffer(dst);
  assert.throws(() => d.freeBuffer(src), (e) => e instanceof KernelError && e.code === "BADFREE");
  k.check();
  assert.equal(k.shutdown().pages, 0);

  // On the isa machine all RAM is below 16 MiB: a one-page kmem buffer needs no bounce.
  const isa = boot({ preset: "isa" });
  assert.equal(isa.k.busDma.pools.size, 0, "no pool where the channel reaches all RAM");
  const va = isa.k.kmem.alloc(1000);
  isa.k.pmap.write(va, bytes(1000, 1));
  assert.equal(isa.d.transfer("play", va, 1000), "ok");
  assert.equal(isa.d.stats().bouncedBytes, 0);
  isa.k.kmem.free(va, 1000);
  assert.equal(isa.k.shutdown().pages, 0);
});

test("isa driver: the checksum the device reports is checked against the buffer", () => {
  const { k, d, m } = boot();
  const va = k.kmem.alloc(5000);
  const data = bytes(5000, 5);
  k.pmap.write(va, data);
  assert.equal(d.transfer("play", va, 5000), "ok");
  const isa = m.devices[0]!;
  assert.equal(m.bus.read32(isa.base + 0x20), fnv1a(data));
  k.kmem.free(va, 5000);
  k.shutdown();
});

test("isa driver: with tags ignored a buffer above 16 MiB reaches the device, which faults", () => {
  const { k, d, port, lines } = boot({ ignoreTags: true });
  assert.ok(d.ignoreTags);
  assert.equal(k.busDma.pools.size, 0);
  assert.equal(d.map.bounceBuffer, null);
  const va = k.kmem.alloc(100);
  assert.ok(k.pmap.extract(va) >= 16 * MiB);
  k.pmap.fill(va, 100, 0xee);
  assert.equal(d.transfer("fill", va, 100, 1), "fault");
  assert.ok(readBack(k, va, 100).every((b) => b === 0xee), "nothing was written");
  assert.equal(port.faults, 1);
  assert.equal(d.stats().faults, 1);
  assert.equal(d.stats().transfers, 0);
  assert.match(d.lastFault!, /^access fault at 0x[0-9a-f]+ \(100 bytes\)$/);
  assert.ok(lines.some((l) => l.startsWith("isa0: DMA access fault")));
  // DMA memory from the permissive tag lands past 16 MiB too.
  const mem = d.allocBuffer(4096);
  assert.equal(d.transferMemory("play", mem), "fault");
  assert.equal(d.stats().faults, 2);
  k.kmem.free(va, 100);
  k.check();
  assert.equal(k.shutdown().pages, 0, "detach freed the DMA memory left allocated");
});

test("isa driver: bad arguments are refused and change nothing", () => {
  const { k, d, port } = boot();
  const va = k.kmem.alloc(100);
  const stats = d.stats(), dma = k.busDma.stats, counters = port.counters();
  const bad: [() => unknown, RegExp][] = [
    [() => d.transfer("stop" as "play", va, 10), /cmd/],
    [() => d.transfer("play", va, 0), /len/],
    [() => d.transfer("play", va, 65537), /len/],
    [() => d.transfer("fill", va, 10, 256), /pattern/],
    [() => d.transfer("play", 1.5, 10), /va/],
    [() => d.allocBuffer(0), /size/],
    [() => d.allocBuffer(65537), /size/],
  ];
  for (const [f, what] of bad) {
    assert.throws(
      f,
      (e) => e instanceof KernelError && e.code === "EINVAL" && what.test(e.message),
    );
  }
  // An unmapped buffer: the load refuses it.
  assert.throws(() => d.transfer("play", 4096, 10), (e) => e instanceof KernelError);
  assert.deepEqual(d.stats(), stats);
  assert.deepEqual(port.counters(), counters);
  assert.equal(k.busDma.stats.loads, dma.loads);
  assert.equal(d.map.mapsize, 0);
  k.kmem.free(va, 100);
  k.check();
  assert.equal(k.shutdown().pages, 0);
  assert.throws(
    () => d.transfer("play", va, 10),
    (e) => e instanceof KernelError && e.code === "ENXIO",
  );
});

test("isa driver: detach gives back the map, its bounce buffer and DMA memory, and the line", () => {
  const { k, d, m } = boot();
  const free = k.uvm.free;
  d.allocBuffer(8192);
  d.detach();
  d.detach(); // idempotent
  assert.ok(d.detached);
  assert.ok(d.map.destroyed);
  assert.equal(k.busDma.liveMemory, 0);
  assert.equal(k.uvm.free, free + 16, "the 64 KiB bounce buffer came back");
  m.irq.establish(m.devices[0]!.irq, () => {}); // the line is free again
  assert.equal(k.shutdown().pages, 0);
});

test("isa driver: a device that moves wrong bytes is caught by the checksum and record checks", () => {
  const { k, d, port } = boot({ preset: "isa" });
  const va = k.kmem.alloc(2000);
  k.pmap.write(va, bytes(2000, 4));
  const read = port.read.bind(port), write = port.write.bind(port);
  port.read = (pa, dst, o, n) => {
    const ok = read(pa, dst, o, n);
    dst[o! + 10]! ^= 1; // what the device took in is not what memory held
    return ok;
  };
  assert.equal(d.transfer("play", va, 2000), "mismatch");
  port.read = read;
  assert.equal(d.transfer("play", va, 2000), "ok");
  port.write = (pa, src, o, n) => {
    src[o! + 1999]! ^= 2;
    const ok = write(pa, src, o, n);
    src[o! + 1999]! ^= 2;
    return ok;
  };
  assert.equal(d.transfer("record", va, 2000), "mismatch");
  port.write = write;
  assert.equal(d.transfer("record", va, 2000), "ok");
  assert.equal(d.stats().mismatches, 2);
  assert.equal(d.map.mapsize, 0);
  k.kmem.free(va, 2000);
  assert.equal(k.shutdown().pages, 0);
});
