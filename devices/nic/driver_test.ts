import { test } from "node:test";
import assert from "node:assert/strict";
import { createMachine, type DmaPort } from "../../machine/mod.ts";
import { Kernel } from "../../boot/kernel.ts";
import { KernelError } from "../../mm/errors.ts";
import { NIC_REG_RX_FRAMES, NIC_REG_TX_FRAMES, NicModel } from "./model.ts";
import { NIC_BOUNCE_PAGES, NIC_MTU, NIC_RING_SIZE, NicDriver } from "./driver.ts";

const MiB = 2 ** 20, GiB = 2 ** 30;

function boot(opts: { ramSize?: number; ignoreTags?: boolean } = {}) {
  const m = createMachine({ preset: "pc", ramSize: opts.ramSize ?? 64 * MiB });
  new NicModel(m);
  const k = new Kernel(m, { ignoreTags: opts.ignoreTags });
  const d = k.drivers[0] as NicDriver;
  assert.ok(d instanceof NicDriver);
  const port: DmaPort = m.devices[0]!.port;
  const reg = (off: number) => m.bus.read32(m.devices[0]!.base + off);
  return { m, k, d, port, reg };
}

function frame(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 89 + seed * 7 + (i >> 9)) & 0xff;
  return b;
}

/** Sends `len` bytes at offset `off` of a fresh kmem buffer; returns the result and the copy. */
function sendOne(k: Kernel, d: NicDriver, len: number, off = 0) {
  const tx = k.kmem.alloc(off + len), rx = k.kmem.alloc(len);
  const data = frame(len, len + off);
  k.pmap.write(tx + off, data);
  const res = d.send(tx + off, len, rx);
  const got = new Uint8Array(len);
  k.pmap.read(rx, got);
  k.kmem.free(tx, off + len);
  k.kmem.free(rx, len);
  return { res, same: got.every((b, i) => b === data[i]) };
}

test("nic driver: rings and receive buffers come from DMA memory the card reaches", () => {
  const { k, d } = boot();
  for (const ring of [d.txRing, d.rxRing]) {
    assert.equal(ring.segs.length, 1);
    assert.equal(ring.segs[0]![0] % 128, 0);
    assert.ok(ring.segs[0]![0] < 2 ** 32);
  }
  assert.equal(d.rxBuffers.size, NIC_RING_SIZE * 4096);
  assert.equal(d.tag.nSegments, 8);
  assert.equal(d.tag.maxSegSize, 4096);
  assert.equal(d.tag.maxSize, NIC_MTU);
  assert.equal(k.busDma.pools.size, 0, "RAM ends below 4 GiB: no bounce pool");
  k.check();
  assert.equal(k.shutdown().pages, 0);
});

test("nic driver: frames go out, loop back and arrive equal, around the rings", () => {
  const { k, d, port, reg } = boot();
  const sizes = [14, 60, 1500, 4096, 9018, 20000, NIC_MTU];
  let frames = 0, bytes = 0;
  for (let round = 0; round < 12; round++) {
    for (const len of sizes) {
      const { res, same } = sendOne(k, d, len, len === NIC_MTU ? 0 : (round * 97) % 4096);
      assert.equal(res, "ok", `frame of ${len}`);
      assert.ok(same, `frame of ${len} arrived changed`);
      frames++;
      bytes += len;
    }
  }
  assert.equal(reg(NIC_REG_TX_FRAMES), frames);
  assert.equal(reg(NIC_REG_RX_FRAMES), frames);
  const s = d.stats();
  assert.equal(s.transfers, 2 * frames);
  assert.equal(s.bytes, 2 * bytes);
  assert.equal(s.bouncedBytes, 0);
  assert.equal(s.faults + s.mismatches + s.errors + d.drops + port.faults, 0);
  d.check();
  k.check();
  assert.deepEqual(k.shutdown(), { pages: 0, heapBytes: 0, kvaBytes: 0, ids: 0, pageLists: 0 });
});

test("nic driver: a frame past 8 segments of 4 KiB is refused by load with EFBIG, changing nothing", () => {
  const { k, d, port } = boot();
  assert.deepEqual(sendOne(k, d, 100), { res: "ok", same: true });
  const stats = d.stats(), counters = port.counters(), efbig = k.busDma.stats.efbig;
  const va = k.kmem.alloc(NIC_MTU + 1);
  assert.throws(
    () => d.send(va, NIC_MTU + 1),
    (e) => e instanceof KernelError && e.code === "EFBIG",
  );
  assert.equal(k.busDma.stats.efbig, efbig + 1);
  assert.deepEqual(d.stats(), stats);
  assert.deepEqual(port.counters(), counters);
  d.check(); // the rings are where they were
  k.kmem.free(va, NIC_MTU + 1);
  assert.deepEqual(sendOne(k, d, 100), { res: "ok", same: true });
  assert.equal(k.shutdown().pages, 0);
});

test("nic driver: above 4 GiB frames bounce below it; 9 bounce pieces are EFBIG", () => {
  const { k, d, port } = boot({ ramSize: 6 * GiB });
  const pool = k.busDma.pools.get(2 ** 32 - 1)!;
  assert.equal(pool.total, NIC_BOUNCE_PAGES);
  const va = k.kmem.alloc(10000);
  assert.ok(k.pmap.extract(va) >= 4 * GiB, "kmem pages come from above 4 GiB");
  k.kmem.free(va, 10000);
  const { res, same } = sendOne(k, d, 10000, 5);
  assert.equal(res, "ok");
  assert.ok(same);
  assert.equal(d.stats().bouncedBytes, 10000);
  assert.equal(port.faults, 0, "every segment the card saw was below 4 GiB");
  // 32 KiB from 16 bytes into a page: nine pieces, each on its own bounce page.
  const tx = k.kmem.alloc(NIC_MTU + 4096);
  assert.throws(
    () => d.send(tx + 16, NIC_MTU),
    (e) => e instanceof KernelError && e.code === "EFBIG",
  );
  assert.equal(pool.stats.used, 0, "the refused load gave its bounce pages back");
  k.kmem.free(tx, NIC_MTU + 4096);
  k.check();
  assert.equal(k.shutdown().pages, 0);
});

test("nic driver: with tags ignored a frame the card cannot gather faults, and the card recovers", () => {
  const { k, d, port } = boot({ ignoreTags: true });
  assert.ok(d.ignoreTags);
  // 40 KiB cannot go in 8 segments of at most 4 KiB, however the pages lie.
  const big = sendOne(k, d, 40000);
  assert.equal(big.res, "fault");
  assert.equal(port.faults, 1);
  assert.equal(d.stats().faults, 1);
  assert.ok(d.lastFault !== null);
  d.check();
  // The driver reset the card and its rings: the next frame goes through.
  assert.deepEqual(sendOne(k, d, 3000, 10), { res: "ok", same: true });
  k.check();
  assert.equal(k.shutdown().pages, 0);
});

test("nic driver: bad arguments are refused and change nothing; detach frees everything", () => {
  const { k, d, port, m } = boot();
  const stats = d.stats(), counters = port.counters();
  for (
    const f of [() => d.send(-1, 10), () => d.send(2 ** 47, 0), () => d.send(2 ** 47, 10, 0.5)]
  ) {
    assert.throws(f, (e) => e instanceof KernelError && e.code === "EINVAL");
  }
  assert.throws(() => d.send(4096, 10), (e) => e instanceof KernelError && e.code === "EFAULT");
  assert.deepEqual(d.stats(), stats);
  assert.deepEqual(port.counters(), counters);
  assert.equal(d.txMap.mapsize, 0);
  const free = k.uvm.free;
  d.detach();
  assert.equal(k.busDma.liveMemory, 0);
  assert.equal(k.uvm.free, free + 2 + NIC_RING_SIZE, "two ring pages and the receive buffers");
  m.irq.establish(m.devices[0]!.irq, () => {});
  assert.throws(() => d.send(2 ** 47, 10), (e) => e instanceof KernelError && e.code === "ENXIO");
  assert.equal(k.shutdown().pages, 0);
});

test("nic driver: a frame received with wrong bytes is a mismatch", () => {
  const { k, d, port } = boot();
  const writeSg = port.writeSg.bind(port);
  port.writeSg = (segs, n, src, o) => {
    src[(o ?? 0) + 5]! ^= 0x80;
    return writeSg(segs, n, src, o);
  };
  assert.equal(sendOne(k, d, 700).res, "mismatch");
  port.writeSg = writeSg;
  assert.deepEqual(sendOne(k, d, 700), { res: "ok", same: true });
  assert.equal(d.stats().mismatches, 1);
  d.check();
  assert.equal(k.shutdown().pages, 0);
});
