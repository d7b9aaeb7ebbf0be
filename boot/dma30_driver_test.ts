import { test } from "node:test";
import assert from "node:assert/strict";
import { createMachine, type DmaPort } from "../machine/mod.ts";
import { Kernel } from "./kernel.ts";
import { KernelError } from "../mm/errors.ts";
import { CaptureDriver, type CaptureFrame, CaptureModel } from "../devices/mod.ts";
import { capturePixel } from "../devices/dma30/model.ts";
import { CAP_REG_FRAME } from "../devices/dma30/reg.ts";
import { NO_LEAKS } from "./_test_util.ts";

const MiB = 2 ** 20, GiB = 2 ** 30;

function boot(opts: { ramSize?: number; ignoreTags?: boolean } = {}) {
  const m = createMachine({ preset: "pc", ramSize: opts.ramSize ?? 64 * MiB });
  new CaptureModel(m);
  const k = new Kernel(m, { ignoreTags: opts.ignoreTags });
  const d = k.drivers[0] as CaptureDriver;
  assert.ok(d instanceof CaptureDriver);
  const port: DmaPort = m.devices[0]!.port;
  const reg = (off: number) => m.bus.read32(m.devices[0]!.base + off);
  return { m, k, d, port, reg };
}

function pixel(k: Kernel, f: CaptureFrame, x: number, y: number): number {
  const b = new Uint8Array(4);
  k.pmap.read(f.mem.kva + 4 * (y * f.width + x), b);
  return new DataView(b.buffer).getUint32(0, true);
}

test("dma30 driver: frames are one 64 KiB-aligned segment below 1 GiB, captured and checked", async () => {
  for (const ramSize of [64 * MiB, 6 * GiB]) {
    const { k, d, port, reg } = boot({ ramSize });
    assert.equal(d.tag.bouncePages, 0, "frames are DMA memory: no bounce reservation");
    const f = d.allocFrame(320, 200);
    assert.equal(f.mem.segs.length, 1);
    const [pa, n] = f.mem.segs[0]!;
    assert.equal(pa % 65536, 0);
    assert.ok(pa + n <= GiB);
    for (let frameNo = 0; frameNo < 3; frameNo++) {
      assert.equal(await d.capture(f), "ok");
      assert.equal(reg(CAP_REG_FRAME), frameNo + 1);
      assert.equal(pixel(k, f, 0, 0), capturePixel(0, 0, frameNo));
      assert.equal(pixel(k, f, 319, 199), capturePixel(319, 199, frameNo));
      assert.equal(await d.scanout(f), "ok");
    }
    const s = d.stats();
    assert.equal(s.transfers, 6);
    assert.equal(s.bytes, 6 * 320 * 200 * 4);
    assert.equal(s.bouncedBytes + s.faults + s.mismatches + s.errors + port.faults, 0);
    d.freeFrame(f);
    k.check();
    assert.deepEqual(k.shutdown(), NO_LEAKS);
  }
});

test("dma30 driver: a device that moves wrong bytes is caught by the pixel and hash checks", async () => {
  const { k, d, port } = boot();
  const f = d.allocFrame(16, 16);
  // Fault injection: the port flips a bit of what the device writes, then of what it reads.
  const write = port.write.bind(port), read = port.read.bind(port);
  port.write = (pa, src, o, n) => {
    src[o! + 77]! ^= 4;
    return write(pa, src, o, n);
  };
  assert.equal(await d.capture(f), "mismatch");
  port.write = write;
  assert.equal(await d.capture(f), "ok");
  port.read = (pa, dst, o, n) => {
    const ok = read(pa, dst, o, n);
    dst[o! + 3]! ^= 1;
    return ok;
  };
  assert.equal(await d.scanout(f), "mismatch");
  port.read = read;
  assert.equal(await d.scanout(f), "ok");
  assert.equal(d.stats().mismatches, 2);
  assert.equal(d.map.mapsize, 0);
  assert.deepEqual(k.shutdown(), NO_LEAKS);
});

test("dma30 driver: with tags ignored a frame off a 64 KiB boundary faults, nothing written", async () => {
  const { k, d, port } = boot({ ignoreTags: true });
  assert.ok(d.ignoreTags);
  // The permissive tag places frames at any page: find one that is misaligned.
  const frames: CaptureFrame[] = [];
  let bad: CaptureFrame | undefined;
  for (let i = 0; i < 32 && bad === undefined; i++) {
    const f = d.allocFrame(64, 64);
    frames.push(f);
    if (f.mem.segs[0]![0] % 65536 !== 0) bad = f;
  }
  assert.ok(bad !== undefined, "frames land off 64 KiB boundaries");
  k.pmap.fill(bad.mem.kva, bad.bytes, 0x11);
  assert.equal(await d.capture(bad), "fault");
  const b = new Uint8Array(bad.bytes);
  k.pmap.read(bad.mem.kva, b);
  assert.ok(b.every((x) => x === 0x11), "nothing was written");
  assert.equal(port.faults, 1);
  assert.deepEqual([d.stats().faults, d.stats().breaches, d.stats().caught], [1, 1, 1]);
  assert.match(d.lastFault!, /^access fault/);
  assert.deepEqual(k.dmaProblems(), []);
  k.check();
  assert.deepEqual(k.shutdown(), NO_LEAKS, "detach freed the frames left allocated");
  assert.ok(d.detached);
});

test("dma30 driver: bad arguments are refused and change nothing", async () => {
  const { k, d, port } = boot();
  const f = d.allocFrame(8, 8);
  const stats = d.stats(), counters = port.counters(), live = k.busDma.liveMemory;
  for (
    const [w, h] of [[0, 8], [8, 0], [2049, 1], [1, 2049], [1.5, 2], [8n, 8], ["8", 8], [null, 8]]
  ) {
    assert.throws(
      () => d.allocFrame(w as number, h as number),
      (e) => e instanceof KernelError && e.code === "EINVAL",
    );
  }
  const second = boot();
  const other = second.d.allocFrame(8, 8);
  await assert.rejects(d.capture(other), (e) => e instanceof KernelError && e.code === "EINVAL");
  await assert.rejects(d.scanout(other), (e) => e instanceof KernelError && e.code === "EINVAL");
  await assert.rejects(d.capture(null as never), (e) => e instanceof KernelError);
  second.k.shutdown();
  assert.deepEqual(d.stats(), stats);
  assert.deepEqual(port.counters(), counters);
  assert.equal(k.busDma.liveMemory, live);
  d.freeFrame(f);
  assert.throws(() => d.freeFrame(f), (e) => e instanceof KernelError && e.code === "EINVAL");
  d.detach();
  assert.throws(() => d.allocFrame(8, 8), (e) => e instanceof KernelError && e.code === "ENXIO");
  assert.deepEqual(k.shutdown(), NO_LEAKS);
});
