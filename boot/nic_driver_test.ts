import { test } from "node:test";
import assert from "node:assert/strict";
import { createMachine, type DmaPort } from "../machine/mod.ts";
import { Kernel } from "./kernel.ts";
import { KernelError } from "../mm/errors.ts";
import { NIC_MTU, NicDriver, NicModel } from "../devices/mod.ts";
import { NIC_REG_RX_FRAMES, NIC_REG_TX_FRAMES } from "../devices/nic/reg.ts";
import { NIC_RING_SIZE } from "../devices/nic/driver.ts";
import { NO_LEAKS } from "./_test_util.ts";

const MiB = 2 ** 20, GiB = 2 ** 30;

function boot(opts: { ramSize?: number; ignoreTags?: boolean; dmaDebug?: boolean } = {}) {
  const m = createMachine({ preset: "pc", ramSize: opts.ramSize ?? 64 * MiB });
  new NicModel(m);
  const k = new Kernel(m, { ignoreTags: opts.ignoreTags, dmaDebug: opts.dmaDebug });
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
async function sendOne(k: Kernel, d: NicDriver, len: number, off = 0) {
  const tx = k.kmem.alloc(off + len), rx = k.kmem.alloc(len);
  const data = frame(len, len + off);
  k.pmap.write(tx + off, data);
  try {
    const res = await d.send(tx + off, len, rx);
    const got = new Uint8Array(len);
    k.pmap.read(rx, got);
    return { res, same: got.every((b, i) => b === data[i]) };
  } finally {
    k.kmem.free(tx, off + len);
    k.kmem.free(rx, len);
  }
}

test("nic driver: rings and receive buffers come from DMA memory the card reaches, in maps", () => {
  const { k, d } = boot();
  for (const ring of [d.txRing, d.rxRing]) {
    assert.equal(ring.segs.length, 1);
    assert.equal(ring.segs[0]![0] % 128, 0);
    assert.ok(ring.segs[0]![0] < 2 ** 32);
  }
  assert.equal(d.rxBuffers.size, NIC_RING_SIZE * 4096);
  assert.equal(d.tag.maxSegments, 8);
  assert.equal(d.tag.maxSegmentSize, 4096);
  assert.equal(d.tag.maxTransfer, NIC_MTU);
  assert.equal(d.ringTag.alignment, 128);
  assert.equal(d.ringTag.parent, d.tag);
  assert.equal(d.tag.bouncePages, 0, "RAM ends below 4 GiB: nothing to bounce");
  // Two rings, a map per receive buffer, and the transmit map.
  assert.equal(k.busDma.liveMaps.length, 2 + NIC_RING_SIZE + 1);
  k.check();
  assert.deepEqual(k.shutdown(), NO_LEAKS);
});

test("nic driver: frames go out, loop back and arrive equal, around the rings", async () => {
  const { k, d, port, reg } = boot({ dmaDebug: true });
  const sizes = [14, 60, 1500, 4096, 9018, 20000, NIC_MTU];
  let frames = 0, bytes = 0;
  for (let round = 0; round < 12; round++) {
    for (const len of sizes) {
      const { res, same } = await sendOne(k, d, len, len === NIC_MTU ? 0 : (round * 97) % 4096);
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
  assert.equal(k.dmaDebugSummary().violations, 0, "every hand-over was synced");
  d.check();
  k.check();
  assert.deepEqual(k.shutdown(), NO_LEAKS);
});

test("nic driver: a frame past 8 segments of 4 KiB is refused by load with EFBIG, changing nothing", async () => {
  const { k, d, port } = boot();
  assert.deepEqual(await sendOne(k, d, 100), { res: "ok", same: true });
  const stats = d.stats(), counters = port.counters(), efbig = k.busDma.stats.efbig;
  const va = k.kmem.alloc(NIC_MTU + 1);
  await assert.rejects(
    d.send(va, NIC_MTU + 1),
    (e) => e instanceof KernelError && e.code === "EFBIG",
  );
  assert.equal(k.busDma.stats.efbig, efbig + 1);
  assert.deepEqual(d.stats(), stats);
  assert.deepEqual(port.counters(), counters);
  d.check(); // the rings are where they were
  k.kmem.free(va, NIC_MTU + 1);
  assert.deepEqual(await sendOne(k, d, 100), { res: "ok", same: true });
  assert.deepEqual(k.shutdown(), NO_LEAKS);
});

test("nic driver: above 4 GiB frames bounce below it, as one run: a full 32 KiB frame fits", async () => {
  const { k, d, port } = boot({ ramSize: 6 * GiB });
  assert.equal(d.tag.bouncePages, 9, "one frame of 8 pages at any offset");
  const va = k.kmem.alloc(10000);
  assert.ok(k.pmap.extract(va) >= 4 * GiB, "kmem pages come from above 4 GiB");
  k.kmem.free(va, 10000);
  const { res, same } = await sendOne(k, d, 10000, 5);
  assert.equal(res, "ok");
  assert.ok(same);
  assert.equal(d.stats().bouncedBytes, 10000);
  assert.equal(port.faults, 0, "every segment the card saw was below 4 GiB");
  // 32 KiB from 16 bytes into a page: nine pieces, but one bounce run of 8 pages.
  const big = await sendOne(k, d, NIC_MTU, 16);
  assert.deepEqual(big, { res: "ok", same: true });
  assert.equal(k.busDma.bouncePool.inUse, 0, "the unload gave the bounce pages back");
  k.check();
  assert.deepEqual(k.shutdown(), NO_LEAKS);
});

test("nic driver: with tags ignored a frame the card cannot gather faults, and the card recovers", async () => {
  const { k, d, port } = boot({ ignoreTags: true });
  assert.ok(d.ignoreTags);
  // 40 KiB cannot go in 8 segments of at most 4 KiB, however the pages lie.
  const big = await sendOne(k, d, 40000);
  assert.equal(big.res, "fault");
  assert.equal(port.faults, 1);
  assert.deepEqual(
    [d.stats().faults, d.stats().breaches, d.stats().caught, d.stats().unexpectedFaults],
    [1, 1, 1, 0],
  );
  assert.ok(d.lastFault !== null);
  d.check();
  // The driver reset the card and its rings: the next frame goes through.
  assert.deepEqual(await sendOne(k, d, 3000, 10), { res: "ok", same: true });
  assert.deepEqual(k.dmaProblems(), [], "the breach was caught: no problem");
  k.check();
  assert.deepEqual(k.shutdown(), NO_LEAKS);
});

test("nic driver: with tags ignored on 6 GiB the rings above 4 GiB are programmed whole and faulted", async () => {
  const { k, d, port } = boot({ ignoreTags: true, ramSize: 6 * GiB });
  assert.ok(d.txRing.segs[0]![0] >= 4 * GiB, "a permissive tag put the ring high");
  const r = await sendOne(k, d, 500);
  assert.equal(r.res, "fault");
  assert.match(port.lastFault!.reason, /past the device's last address 0xffffffff/);
  assert.equal(port.lastFault!.addr, d.txRing.segs[0]![0]);
  assert.deepEqual([d.stats().breaches, d.stats().caught], [1, 1]);
  assert.deepEqual(k.dmaProblems(), []);
  assert.deepEqual(k.shutdown(), NO_LEAKS);
});

test("nic driver: bad arguments are refused and change nothing; detach frees everything", async () => {
  const { k, d, port, m } = boot();
  const stats = d.stats(), counters = port.counters();
  for (
    const f of [
      () => d.send(-1, 10),
      () => d.send(2 ** 47, 0),
      () => d.send(2 ** 47, 10, 0.5),
      () => d.send(2n ** 47n as unknown as number, 10),
      () => d.send(2 ** 47, "10" as unknown as number),
      () => d.send(null as unknown as number, 10),
    ]
  ) {
    await assert.rejects(f(), (e) => e instanceof KernelError && e.code === "EINVAL");
  }
  await assert.rejects(d.send(4096, 10), (e) => e instanceof KernelError && e.code === "EFAULT");
  assert.deepEqual(d.stats(), stats);
  assert.deepEqual(port.counters(), counters);
  assert.equal(d.txMap.mapsize, 0);
  const free = k.uvm.free;
  d.detach();
  assert.equal(k.busDma.liveMemory, 0);
  assert.deepEqual(k.busDma.liveMaps, []);
  assert.deepEqual(k.busDma.liveTags, []);
  assert.equal(k.uvm.free, free + 2 + NIC_RING_SIZE, "two ring pages and the receive buffers");
  m.irq.establish(m.devices[0]!.irq, () => {}); // the line is free again
  m.irq.disestablish(m.devices[0]!.irq);
  await assert.rejects(d.send(2 ** 47, 10), (e) => e instanceof KernelError && e.code === "ENXIO");
  assert.deepEqual(k.shutdown(), NO_LEAKS);
});

test("nic driver: a frame received with wrong bytes is a mismatch", async () => {
  const { k, d, port } = boot();
  const writeSg = port.writeSg.bind(port);
  port.writeSg = (segs, n, src, o) => {
    src[(o ?? 0) + 5]! ^= 0x80;
    return writeSg(segs, n, src, o);
  };
  assert.equal((await sendOne(k, d, 700)).res, "mismatch");
  port.writeSg = writeSg;
  assert.deepEqual(await sendOne(k, d, 700), { res: "ok", same: true });
  assert.equal(d.stats().mismatches, 1);
  d.check();
  assert.deepEqual(k.shutdown(), NO_LEAKS);
});
