import { test } from "node:test";
import assert from "node:assert/strict";
import { createMachine, type DmaPort } from "../machine/mod.ts";
import { Kernel } from "./kernel.ts";
import { KernelError } from "../mm/errors.ts";
import { NVME_MAX_TRANSFER, NvmeDriver, NvmeModel } from "../devices/mod.ts";
import { NVME_REG_CQ_COUNT } from "../devices/nvme/reg.ts";
import { NO_LEAKS } from "./_test_util.ts";

const MiB = 2 ** 20, GiB = 2 ** 30;

function boot(
  opts: { ramSize?: number; ignoreTags?: boolean; blockSize?: number; synchronous?: boolean } = {},
) {
  const m = createMachine({ preset: "pc", ramSize: opts.ramSize ?? 64 * MiB });
  const model = new NvmeModel(m, {
    blockSize: opts.blockSize,
    blocks: 65536,
    synchronous: opts.synchronous,
  });
  const k = new Kernel(m, { ignoreTags: opts.ignoreTags });
  const d = k.drivers[0] as NvmeDriver;
  assert.ok(d instanceof NvmeDriver);
  const port: DmaPort = m.devices[0]!.port;
  const reg = (off: number) => m.bus.read32(m.devices[0]!.base + off);
  return { m, k, d, port, model, reg };
}

function data(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 211 + seed * 31 + (i >> 10)) & 0xff;
  return b;
}

/** Writes `len` bytes from offset `offA` of one buffer, reads them back at `offB` of another. */
async function roundTrip(
  k: Kernel,
  d: NvmeDriver,
  lba: number,
  len: number,
  offA: number,
  offB: number,
): Promise<{ write: string; read: string; same: boolean; written: Uint8Array }> {
  const a = k.kmem.alloc(offA + len), b = k.kmem.alloc(offB + len);
  const written = data(len, lba + offA);
  k.pmap.write(a + offA, written);
  const write = await d.write(lba, a + offA, len);
  const read = await d.read(lba, b + offB, len);
  const got = new Uint8Array(len);
  k.pmap.read(b + offB, got);
  k.kmem.free(a, offA + len);
  k.kmem.free(b, offB + len);
  return { write, read, same: got.every((x, i) => x === written[i]), written };
}

test("nvme driver: blocks round-trip with one page, two pages and a PRP list", async () => {
  const { k, d, port, model } = boot();
  assert.equal(d.blockSize, 4096);
  assert.equal(d.blocks, 65536);
  assert.equal(d.tag.boundary, 4096);
  assert.equal(d.tag.maxSegmentSize, 4096);
  assert.equal(d.tag.maxTransfer, NVME_MAX_TRANSFER);
  assert.equal(d.tag.maxAddress, d.limits.maxAddress, "the tag is the device's own");
  const cases: [number, number, number, number][] = [
    // lba, bytes, offset of the written buffer, offset of the read buffer
    [0, 4096, 0, 0],
    [7, 4096, 100, 2048], // one block over two pages: PRP1 and PRP2
    [20, 8192, 0, 4], // two pages
    [100, 12288, 12, 0], // four pieces: a PRP list
    [300, NVME_MAX_TRANSFER, 4092, 8], // 65 pieces
  ];
  for (const [lba, len, offA, offB] of cases) {
    const r = await roundTrip(k, d, lba, len, offA, offB);
    assert.deepEqual([r.write, r.read, r.same], ["ok", "ok", true], `${len} bytes at ${offA}`);
    const image = new Uint8Array(len);
    model.disk.read(lba * 4096, image, 0, len);
    assert.deepEqual(image, r.written, "the disk holds what was written");
  }
  // The PRP list page holds the page entries of the last command past PRP1.
  const entry = new Uint8Array(8);
  k.pmap.read(d.prpList.kva, entry);
  assert.equal(new DataView(entry.buffer).getUint32(0, true) % 4096, 0);
  const s = d.stats();
  assert.equal(s.transfers, 2 * cases.length);
  assert.equal(s.bouncedBytes, 0);
  assert.equal(s.faults + s.errors + port.faults + s.breaches, 0);
  k.check();
  assert.deepEqual(k.shutdown(), NO_LEAKS);
});

test("nvme driver: commands complete later and the driver waits; a synchronous device works too", async () => {
  for (const synchronous of [false, true]) {
    const { m, k, d, reg } = boot({ synchronous });
    const va = k.kmem.alloc(8192);
    const before = m.clock.ran;
    const pending = d.write(3, va, 8192);
    if (!synchronous) assert.equal(reg(NVME_REG_CQ_COUNT), 0, "submitted, not yet completed");
    assert.equal(await pending, "ok");
    assert.equal(reg(NVME_REG_CQ_COUNT), 1);
    assert.equal(m.clock.ran - before, synchronous ? 0 : 1);
    // Operations queue one behind the other.
    const rs = await Promise.all([
      d.read(3, va, 4096),
      d.read(4, va + 4096, 4096),
      d.write(5, va, 8192),
    ]);
    assert.deepEqual(rs, ["ok", "ok", "ok"]);
    assert.equal(reg(NVME_REG_CQ_COUNT), 4);
    k.kmem.free(va, 8192);
    assert.deepEqual(k.shutdown(), NO_LEAKS);
  }
});

test("nvme driver: a device that never completes times out as an error, not a hang", async () => {
  const { m, k, d, port } = boot();
  // The device wedges: its work is dropped before it runs.
  const va = k.kmem.alloc(4096);
  const pending = d.read(0, va, 4096);
  await Promise.resolve();
  port.readSg = port.writeSg = () => {
    throw new Error("the device wedged");
  };
  assert.equal(await pending, "error");
  assert.equal(d.stats().errors, 1);
  assert.ok(m.clock.now >= 1e9, "the wait ended by its timeout");
  assert.deepEqual(m.clock.errors, ["the device wedged"]);
  assert.equal(d.map.mapsize, 0);
  k.kmem.free(va, 4096);
  assert.deepEqual(k.shutdown(), NO_LEAKS);
});

test("nvme driver: buffers above 4 GiB go to the device in place, never bounced", async () => {
  const { k, d, port } = boot({ ramSize: 6 * GiB });
  const va = k.kmem.alloc(65536);
  k.busDma.load(d.map, va + 8, 32768);
  assert.ok(d.map.nsegs >= 8);
  for (let i = 0; i < d.map.nsegs; i++) assert.ok(d.map.segAddr(i) >= 4 * GiB);
  assert.equal(d.map.bouncedBytes, 0);
  k.busDma.unload(d.map);
  k.kmem.free(va, 65536);
  const r = await roundTrip(k, d, 50, 65536, 40, 0);
  assert.deepEqual([r.write, r.read, r.same], ["ok", "ok", true]);
  assert.equal(d.stats().bouncedBytes, 0);
  assert.equal(port.faults, 0);
  assert.deepEqual(k.shutdown(), NO_LEAKS);
});

test("nvme driver: 512-byte blocks", async () => {
  const { k, d } = boot({ blockSize: 512 });
  assert.equal(d.blockSize, 512);
  for (const [lba, len, off] of [[1, 512, 4000], [9, 1536, 0], [33, 9216, 1020]] as const) {
    const r = await roundTrip(k, d, lba, len, off, 4096 - off);
    assert.deepEqual([r.write, r.read, r.same], ["ok", "ok", true], `${len} at ${off}`);
  }
  assert.deepEqual(k.shutdown(), NO_LEAKS);
});

test("nvme driver: with tags ignored a segment spans pages, and the PRPs still split at pages", async () => {
  const { k, d, port } = boot({ ignoreTags: true });
  assert.ok(d.ignoreTags);
  // 17 physically contiguous pages mapped in kernel space: the permissive
  // tag makes one segment of them, which the PRPs must cut into pages.
  const list = k.allocPages(17 * 4096, 0, 64 * MiB, 4096, 0, 1);
  const va = k.kmem.mapPhysical(list.runs());
  k.busDma.load(d.map, va + 16, 65536);
  assert.equal(d.map.nsegs, 1);
  assert.equal(d.map.segLen(0), 65536);
  k.busDma.unload(d.map);
  const written = data(65536, 3);
  k.pmap.write(va + 16, written);
  assert.equal(await d.write(10, va + 16, 65536), "ok");
  k.pmap.fill(va, 17 * 4096, 0);
  assert.equal(await d.read(10, va + 16, 65536), "ok");
  const got = new Uint8Array(65536);
  k.pmap.read(va + 16, got);
  assert.deepEqual(got, written);
  assert.equal(port.faults, 0, "the device reaches everything, so nothing faults");
  assert.equal(d.stats().breaches, 0, "what the device saw (page pieces) was within its limits");
  k.kmem.unmapPhysical(va, 17 * 4096);
  k.freePages(list);
  assert.deepEqual(k.shutdown(), NO_LEAKS);
});

test("nvme driver: bad arguments are refused and change nothing", async () => {
  const { k, d, port, reg } = boot();
  const va = k.kmem.alloc(3 * 4096);
  const stats = d.stats(), counters = port.counters(), done = reg(NVME_REG_CQ_COUNT);
  const bad: [() => Promise<unknown>, RegExp][] = [
    [() => d.write(0, va + 2, 4096), /4-byte aligned/],
    [() => d.write(0, va, 100), /len/],
    [() => d.write(0, va, 6000), /multiple of 4096/],
    [() => d.write(0, va, NVME_MAX_TRANSFER + 4096), /len/],
    [() => d.read(65536, va, 4096), /lba/],
    [() => d.read(65535, va, 8192), /lba/],
    [() => d.read(-1, va, 4096), /lba/],
    [() => d.read(0, 0.5, 4096), /va/],
    [() => d.read(0, 4096n as unknown as number, 4096), /va/],
    [() => d.read("0" as unknown as number, va, 4096), /lba/],
    [() => d.write(0, va, null as unknown as number), /len/],
    [() => d.write(0, undefined as unknown as number, 4096), /va/],
    [() => d.write(true as unknown as number, va, 4096), /lba/],
  ];
  for (const [f, what] of bad) {
    await assert.rejects(
      f(),
      (e) => e instanceof KernelError && e.code === "EINVAL" && what.test(e.message),
    );
  }
  assert.deepEqual(d.stats(), stats);
  assert.deepEqual(port.counters(), counters);
  assert.equal(reg(NVME_REG_CQ_COUNT), done, "no command reached the device");
  assert.equal(d.map.mapsize, 0);
  k.kmem.free(va, 3 * 4096);
  const free = k.uvm.free;
  d.detach();
  assert.equal(k.uvm.free, free + 1, "the PRP list page came back");
  assert.deepEqual(k.busDma.liveMaps, [], "the data and PRP list maps are gone");
  await assert.rejects(d.read(0, va, 4096), (e) => e instanceof KernelError && e.code === "ENXIO");
  assert.deepEqual(k.shutdown(), NO_LEAKS);
});
